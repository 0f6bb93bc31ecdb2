"""The node's int8 from its own camera frames: when to try it, and how the candidate is made.

The gathering, the background calibration and the agreement gate are
:class:`~lw_refinenet_ros.engine.live_calibration.LiveInt8` (no ROS there); this module
decides whether a node tries it at all (:func:`live_int8_for`) and builds the candidate as a
second :class:`~lw_refinenet_ros.segmenter.Segmenter` of the same model and classes, running
int8 on the runtime that has an int8 path (OpenVINO, else ONNX Runtime). The worker thread
switches to it between two batches (ros/inference.py).
"""

from __future__ import annotations

import dataclasses
import importlib.util
from typing import Any

import numpy as np

from lw_refinenet_ros.config import NodeConfig
from lw_refinenet_ros.engine.live_calibration import LiveInt8, LiveInt8Settings


def int8_runtime() -> str | None:
    """The runtime live int8 is built for: OpenVINO (with NNCF), else ONNX Runtime; None
    when neither is installed."""
    from lw_refinenet_ros.engine.backends import backend_unavailable

    if importlib.util.find_spec('nncf') is not None and \
            backend_unavailable('openvino', 'cpu') is None:
        return 'openvino'
    if backend_unavailable('onnxruntime', 'cpu') is None:
        return 'onnxruntime'
    return None


def why_not(config: NodeConfig, segmenter: Any) -> str | None:
    """Why this node does not try live int8, or None when it does."""
    if not config.live_int8_enabled:
        return 'off (live_int8.enabled is false)'
    if config.precision != 'auto':
        return f'off (precision {config.precision} was asked for)'
    if segmenter is None or segmenter.engine is None:
        return 'off (no model of its own to quantize)'
    described = segmenter.describe()
    if described.get('device') != 'cpu':
        return f'off (running on {described.get("device")})'
    if described.get('precision') == 'int8':
        return 'off (already running int8)'
    if described.get('int8_model'):
        return (f'off (an int8 model was cached and judged at start-up: '
                f'{described["int8_model"]})')
    if config.backend not in ('auto', 'openvino', 'onnxruntime') or int8_runtime() is None:
        return 'off (no int8 runtime: pip install openvino nncf, or onnxruntime)'
    return None


def build_candidate(segmenter: Any, runtime: str, calibration: Any,
                    sample: np.ndarray) -> Any:
    """The int8 :class:`Segmenter` of ``segmenter``'s model, warmed up on ``sample`` (RGB,
    the camera's size): the int8 model cached earlier for this network size when there is one
    (a camera whose size differs from ``warmup_size`` is not found at start-up, so this is
    where a restart finds it without calibrating again), else one calibrated on
    ``calibration`` into the runtime cache, keyed with the calibration's identity. Its
    ``int8_source`` says which.

    Raises:
        ConfigError, EngineError, OSError: the build failed (nothing half-written is kept).
    """
    from lw_refinenet_ros.engine.backends.base import BackendRequest
    from lw_refinenet_ros.engine.cache import ArtifactCache
    from lw_refinenet_ros.engine.export import model_fingerprint
    from lw_refinenet_ros.engine.preprocess import network_size
    from lw_refinenet_ros.segmenter import Segmenter

    base = segmenter.engine_config
    size = network_size(sample.shape[0], sample.shape[1], base.max_side)
    request = BackendRequest(precision='int8', input_size=size,
                             cache_dir=base.resolved_cache_dir(),
                             extra={'calibration': calibration})
    cache = ArtifactCache(request.cache_dir)
    weights = model_fingerprint(segmenter.model)
    if runtime == 'openvino':
        from lw_refinenet_ros.engine.quantize import find_int8, prepare_int8

        cached = find_int8(cache, request, weights, size) is not None
        if not cached:
            prepare_int8(segmenter.model, calibration, size, request.cache_dir,
                         weights_id=weights)
    else:
        from lw_refinenet_ros.engine.ort_quantize import cached_qdq_model, find_qdq

        cached = find_qdq(cache, weights, size) is not None
        if not cached:
            cached_qdq_model(segmenter.model, request, cache, weights, size)
    # The live gate is the judge: the engine's own gate (one synthetic frame) is not repeated.
    config = dataclasses.replace(base, backend=runtime, precision='int8', agreement_min=0.0,
                                 backend_fallback=False, remember_selection=False)
    candidate = Segmenter(segmenter.model, segmenter.class_map, engine=config,
                          objects=segmenter.objects_config, info=segmenter.info,
                          warmup_image=sample)
    candidate.int8_source = (f'cached earlier for {size[1]}x{size[0]}' if cached
                             else f'calibrated on {len(calibration.frames)} camera frames')
    candidate.engine.int8_model = f'{runtime}: {candidate.int8_source}'
    return candidate


def live_int8_for(config: NodeConfig, segmenter: Any) -> tuple[LiveInt8 | None, str]:
    """The live int8 attempt this node makes (None: none) and its status in words."""
    reason = why_not(config, segmenter)
    if reason is not None:
        return None, reason
    runtime = int8_runtime()
    described = segmenter.describe()
    current = f'{described.get("backend")}/{described.get("precision")}'
    settings = LiveInt8Settings(frames=config.live_int8_frames,
                                check_frames=config.live_int8_check_frames,
                                gather_s=config.live_int8_gather_s,
                                agreement_min=config.agreement_min,
                                max_side=segmenter.engine_config.max_side)
    live = LiveInt8(settings, lambda calibration, sample: build_candidate(
        segmenter, str(runtime), calibration, sample), current=current)
    return live, live.status
