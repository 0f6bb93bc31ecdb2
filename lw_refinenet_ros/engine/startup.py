"""What the engine asks a backend for at start-up, the int8 it may offer, and the remembered
decision's subject: the pure parts of :class:`~lw_refinenet_ros.engine.inference.InferenceEngine`'s
start-up, kept apart from the engine's per-frame work.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any, Callable

from lw_refinenet_ros.engine.backends.base import BACKENDS, BackendRequest
from lw_refinenet_ros.engine.config import AUTO, EngineConfig
from lw_refinenet_ros.engine.quantize import Int8Calibration
from lw_refinenet_ros.errors import ConfigError, EngineError

_LOG = logging.getLogger(__name__)

Calibration = Int8Calibration | Callable[[tuple[int, int]], Int8Calibration]


def torch_options(config: EngineConfig) -> dict[str, Any]:
    """The torch backend's options from the engine config (the request's ``extra``)."""
    return {'channels_last': config.channels_last in (True, AUTO),
            'fold_batchnorm': config.fold_batchnorm, 'compile': config.compile is True,
            'compile_backend': config.compile_backend, 'cuda_graphs': config.cuda_graphs is True,
            'cudnn_benchmark': config.cudnn_benchmark, 'allow_tf32': config.allow_tf32}


def process_threads(name: str) -> bool:
    """Whether backend ``name`` runs on the process-wide torch thread pool (registry)."""
    spec = BACKENDS.get(name)
    return spec is not None and spec.process_threads


def backend_request(config: EngineConfig, device: str, size: tuple[int, int]) -> BackendRequest:
    """What every backend candidate is built for: precision, device, network input size."""
    threads = config.num_threads if config.num_threads > 0 else None
    return BackendRequest(
        precision='fp32' if config.precision == AUTO else config.precision,
        device=device, input_size=size, max_batch=config.max_batch,
        cache_dir=config.resolved_cache_dir(), num_threads=threads,
        calibration_dir=Path(config.calibration_dir).expanduser()
        if config.calibration_dir else None,
        extra=torch_options(config))


def int8_offer(config: EngineConfig, device: str, model: Any, request: BackendRequest,
               calibration: Calibration | None) -> tuple[tuple[str, ...], str | None]:
    """The backends whose int8 ``precision: auto`` may try, and where their models came from.

    Those are the backends with a calibrated model cached for these weights and size, after
    building the first available runtime's (OpenVINO, else ONNX Runtime QDQ) from
    ``calibration`` when none is. A failed build is said once and leaves the engine on the
    other precisions (nothing offered, no description).
    """
    from lw_refinenet_ros.engine.backends import backend_unavailable, native_precisions
    from lw_refinenet_ros.engine.cache import ArtifactCache
    from lw_refinenet_ros.engine.ort_quantize import find_qdq
    from lw_refinenet_ros.engine.quantize import find_int8

    if device != 'cpu':
        return (), None
    names = [name for name in ('openvino', 'onnxruntime')
             if config.backend in (AUTO, name)
             and backend_unavailable(name, device) is None
             and 'int8' in native_precisions(name, device)]
    cache = ArtifactCache(request.cache_dir)
    size, weights = request.input_size, request.weights_id

    def cached(name: str) -> Path | None:
        return find_int8(cache, request, weights, size) if name == 'openvino' \
            else find_qdq(cache, weights, size)

    found = {name: path for name in names if (path := cached(name)) is not None}
    if not found and names and calibration is not None:
        name = names[0]
        try:
            chosen = calibration(request.input_size) if callable(calibration) else calibration
            _LOG.info('int8: building the %s int8 model once from %d frames (%s); later '
                      'starts load it from the cache', name, len(chosen.frames),
                      chosen.source)
            found[name] = build_int8(name, model, request, chosen)
        except (ConfigError, EngineError, OSError) as error:
            _LOG.warning('int8 is not offered: building it failed (%s); running on the '
                         'other precisions.', error)
            return (), None
    described = ', '.join(f'{name}: {path.parent.name if path.is_file() else path.name}'
                          for name, path in found.items()) or None
    return tuple(found), described


def build_int8(name: str, model: Any, request: BackendRequest,
               calibration: Int8Calibration) -> Path:
    """Calibrate and cache backend ``name``'s int8 model; where it lies."""
    from lw_refinenet_ros.engine.quantize import prepare_int8

    if name == 'openvino':
        return prepare_int8(model, calibration, request.input_size, request.cache_dir,
                            weights_id=request.weights_id)
    from lw_refinenet_ros.engine.cache import ArtifactCache
    from lw_refinenet_ros.engine.ort_quantize import cached_qdq_model

    int8 = dataclasses.replace(request, precision='int8',
                               extra={**request.extra, 'calibration': calibration})
    return cached_qdq_model(model, int8, ArtifactCache(request.cache_dir),
                            request.weights_id, request.input_size)


def decision_subject(config: EngineConfig, device: str,
                     request: BackendRequest) -> dict[str, Any]:
    """What a remembered decision is for: weights, size and every option that can change
    the choice (the machine and software are added by the store)."""
    return {'weights': request.weights_id, 'size': list(request.input_size),
            'device': device, 'backend': config.backend,
            'precision': config.precision, 'num_threads': config.num_threads,
            'max_batch': config.max_batch, 'agreement_min': config.agreement_min,
            'fallback': config.backend_fallback, 'upsample': config.upsample,
            'calibration_dir': str(request.calibration_dir or ''),
            'options': {k: v for k, v in request.extra.items()
                        if isinstance(v, (bool, int, float, str, type(None)))}}
