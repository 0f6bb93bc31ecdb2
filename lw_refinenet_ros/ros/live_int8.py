"""The node's int8 from its own camera frames: when to try it, and how the candidate is made.

The gathering, the background calibration and the agreement gate are
:class:`~lw_refinenet_ros.engine.live_calibration.LiveInt8` (no ROS there); this module
decides whether a node tries it at all (:func:`live_int8_for`), what it calibrates on, and
builds the candidate as a second :class:`~lw_refinenet_ros.segmenter.Segmenter` of the same
model and classes, running int8 on the runtime that has an int8 path (OpenVINO, else ONNX
Runtime). The worker thread switches to it between two batches (ros/inference.py).

What it calibrates on: a user's checkpoint, the camera's frames (gathered over the first
minute). The packaged default model, the conveyor generator's frames (its own domain,
:func:`~lw_refinenet_ros.data.calibration.conveyor_calibration`, the set and cache entry the
demo's int8 check uses too): the build starts with the node, and the camera's frames only
check it. Either way the candidate is judged on camera frames before the switch, and the
model is cached for the next start. For the packaged model an int8 model that start-up found
cached and judged on its one synthetic frame is judged again on camera frames (stronger
evidence), unless start-up timed it no faster than the precision it chose.
"""

from __future__ import annotations

import dataclasses
import importlib.util
from typing import Any

import numpy as np

from lw_refinenet_ros.config import NodeConfig
from lw_refinenet_ros.engine.live_calibration import LiveInt8, LiveInt8Settings, ReadyCalibration


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
        if not packaged_model(config):
            return (f'off (an int8 model was cached and judged at start-up: '
                    f'{described["int8_model"]})')
        slower = _slower_at_startup(described)
        if slower is not None:
            return slower
    if config.backend not in ('auto', 'openvino', 'onnxruntime') or int8_runtime() is None:
        return 'off (no int8 runtime: pip install openvino nncf, or onnxruntime)'
    return None


def packaged_model(config: NodeConfig) -> bool:
    """Whether the node runs the packaged default model (``model.weights`` empty), whose
    calibration frames the conveyor generator makes."""
    return not config.model_weights


def _slower_at_startup(described: dict[str, Any]) -> str | None:
    """Why not, when start-up timed int8 and it was no faster than the precision it chose
    (on a CPU without VNNI it can be slower: then a switch would cost frames)."""
    timings = described.get('selection_ms') or {}
    current = f'{described.get("backend")}/{described.get("precision")}'
    int8 = {label: ms for label, ms in timings.items() if label.endswith('/int8')}
    if not int8 or not timings.get(current):
        return None
    label, int8_ms = min(int8.items(), key=lambda item: item[1])
    if int8_ms < timings[current]:
        return None
    return (f'off ({label} was timed at start-up at {int8_ms:.1f} ms against '
            f'{timings[current]:.1f} ms for {current}: not faster on this CPU)')


def conveyor_ready(segmenter: Any) -> ReadyCalibration:
    """The packaged model's calibration without a camera: conveyor frames at the network's
    size, built first for the size the engine warmed up at (its warm-up frame)."""
    from lw_refinenet_ros.data.calibration import conveyor_calibration
    from lw_refinenet_ros.engine.warmup import warmup_frame

    height, width = segmenter.engine_config.warmup_size
    return ReadyCalibration(make=conveyor_calibration, what='conveyor frames',
                            sample=lambda: warmup_frame(height, width))


def build_candidate(segmenter: Any, runtime: str, calibration: Any,
                    sample: np.ndarray, *, what: str = 'camera frames') -> Any:
    """The int8 :class:`Segmenter` of ``segmenter``'s model, warmed up on ``sample`` (RGB,
    the camera's size): the int8 model cached earlier for this network size when there is one
    (a camera whose size differs from ``warmup_size`` is not found at start-up, so this is
    where a restart finds it without calibrating again), else one calibrated on
    ``calibration`` (``what`` names its frames) into the runtime cache, keyed with the
    calibration's identity. Its ``int8_source`` says which.

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
                             else f'calibrated on {len(calibration.frames)} {what}')
    candidate.engine.int8_model = f'{runtime}: {candidate.int8_source}'
    return candidate


def live_int8_for(config: NodeConfig, segmenter: Any) -> tuple[LiveInt8 | None, str]:
    """The live int8 attempt this node makes (None: none) and its status in words; for the
    packaged model its build has started (background, low priority) when this returns."""
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
    ready = conveyor_ready(segmenter) if packaged_model(config) else None
    what = ready.what if ready is not None else 'camera frames'
    live = LiveInt8(settings, lambda calibration, sample: build_candidate(
        segmenter, str(runtime), calibration, sample, what=what), current=current, ready=ready)
    return live, live.status
