"""ONNX Runtime backend: the exported network on the CPU, or on NVIDIA GPUs through the CUDA or
TensorRT execution providers (package ``onnxruntime-gpu``).

The ONNX file is exported from the loaded checkpoint on first use and cached (static height
and width, symbolic batch). On the CPU the graph is optimised once at the highest level
(``ORT_ENABLE_ALL``: constant folding, fusions, the NCHWc layout) and the optimised model is
cached as well, keyed by the ONNX Runtime version and the CPU (its layout choices are
CPU-specific); later starts load it with optimisation off. TensorRT keeps its engines in the
runtime cache (``tensorrt/`` under ``cache_dir``): building one takes minutes and is logged.
TensorRT gets an explicit shape profile for batch 1..``max_batch`` and builds at construction
(one run per end of the profile), never inside the first real frame.

ONNX Runtime quietly moves a session to the next provider in the list when one cannot load
(TensorRT -> CUDA -> CPU). A backend that asked for a GPU provider and got another is refused
with an :class:`~lw_refinenet_ros.errors.EngineError` naming both (:func:`check_providers`),
and GPU sessions run with ``disable_fallback()``, so a row or a node that says "tensorrt
fp16" runs TensorRT fp16.
"""

from __future__ import annotations

import importlib.metadata
import logging
from pathlib import Path
import time
from typing import Any

import numpy as np

from lw_refinenet_ros.engine.backends import check_batch, cpu_description
from lw_refinenet_ros.engine.backends.base import BackendRequest
from lw_refinenet_ros.engine.cache import ArtifactCache
from lw_refinenet_ros.engine.export import INPUT_NAME, export_identity
from lw_refinenet_ros.errors import ConfigError, EngineError

_LOG = logging.getLogger(__name__)

OPTIMIZED_FILE = 'model_optimized.onnx'
_CPU = 'CPUExecutionProvider'
_CUDA = 'CUDAExecutionProvider'
_TENSORRT = 'TensorrtExecutionProvider'
_GPU_PACKAGE = ('install onnxruntime-gpu (pip uninstall onnxruntime && pip install '
                'onnxruntime-gpu) with a matching CUDA')


def runtime_version() -> str:
    """The installed ONNX Runtime distribution's version (either CPU or GPU package)."""
    for dist in ('onnxruntime', 'onnxruntime-gpu'):
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    import onnxruntime

    return onnxruntime.__version__


def _is_cuda(device: str) -> bool:
    return device == 'cuda' or device.startswith('cuda:')


def _providers_available() -> list[str]:
    import onnxruntime

    return list(onnxruntime.get_available_providers())


def device_unavailable(device: str) -> str | None:
    """None when ONNX Runtime can run on ``device``, else the reason and the package."""
    if device in ('cpu', 'auto'):
        return None
    if not _is_cuda(device):
        return f'ONNX Runtime runs on "cpu" or "cuda[:N]", not {device!r}.'
    if _CUDA not in _providers_available():
        return f'this ONNX Runtime has no CUDA execution provider; {_GPU_PACKAGE}.'
    return None


def native_precisions(device: str) -> tuple[str, ...]:
    """fp32 and static int8 (QDQ, :mod:`...ort_quantize`) on the CPU; fp32 and fp16
    (through TensorRT) on NVIDIA GPUs."""
    if _is_cuda(device) and _TENSORRT in _providers_available():
        return ('fp32', 'fp16')
    return ('fp32',) if _is_cuda(device) else ('fp32', 'int8')


def _providers(request: BackendRequest, cache: ArtifactCache, weights_id: str,
               size: tuple[int, int]) -> list[Any]:
    """The execution providers (with options) for the request, best first."""
    if not _is_cuda(request.device):
        return [_CPU]
    device_id = int(request.device.split(':')[1]) if ':' in request.device else 0
    available = _providers_available()
    wanted = request.extra.get('ort_provider', 'auto')
    if wanted not in ('auto', 'cuda', 'tensorrt'):
        raise ConfigError(f'ort_provider must be "auto", "cuda" or "tensorrt", got {wanted!r}.')
    if wanted == 'tensorrt' and _TENSORRT not in available:
        raise ConfigError(f'the TensorRT execution provider is not available; {_GPU_PACKAGE} '
                          f'and TensorRT (pip install tensorrt), or use ort_provider "cuda".')
    providers: list[Any] = []
    if _TENSORRT in available and wanted in ('auto', 'tensorrt'):
        engines = cache.tool_folder('tensorrt', tensorrt_cache_parts(request, weights_id, size,
                                                                      device_id))
        _LOG.info('TensorRT builds its engine at start-up (minutes); cached in %s', engines)
        height, width = size
        shapes = {end: f'{INPUT_NAME}:{batch}x3x{height}x{width}'
                  for end, batch in (('min', 1), ('opt', 1), ('max', max(1, request.max_batch)))}
        providers.append((_TENSORRT, {'device_id': device_id,
                                      'trt_fp16_enable': request.precision == 'fp16',
                                      'trt_engine_cache_enable': True,
                                      'trt_engine_cache_path': str(engines),
                                      'trt_timing_cache_enable': True,
                                      'trt_timing_cache_path': str(engines),
                                      'trt_profile_min_shapes': shapes['min'],
                                      'trt_profile_opt_shapes': shapes['opt'],
                                      'trt_profile_max_shapes': shapes['max']}))
    providers.append((_CUDA, {'device_id': device_id}))
    return providers


def tensorrt_cache_parts(request: BackendRequest, weights_id: str, size: tuple[int, int],
                         device_id: int) -> dict[str, Any]:
    """Key of a TensorRT engine folder: TensorRT's engines are specific to its version and
    to the GPU model, besides everything an ONNX export depends on (an upgrade or another
    GPU must never load an old engine)."""
    try:
        trt_version = importlib.metadata.version('tensorrt')
    except importlib.metadata.PackageNotFoundError:
        trt_version = 'bundled with onnxruntime-gpu'
    try:
        import torch

        gpu = torch.cuda.get_device_name(device_id) if torch.cuda.is_available() else 'unknown'
    except (ImportError, RuntimeError, AssertionError):
        gpu = 'unknown'
    return {'artifact': 'tensorrt-engines', 'weights': weights_id, 'size': list(size),
            'precision': request.precision, 'max_batch': max(1, request.max_batch),
            'runtime': f'onnxruntime {runtime_version()}', 'tensorrt': trt_version,
            'gpu': gpu, **export_identity()}


def _provider_name(provider: Any) -> str:
    return provider[0] if isinstance(provider, tuple) else str(provider)


def check_providers(session: Any, requested: list[Any], device: str) -> list[str]:
    """The session's providers, best first, when the first is the one asked for.

    Raises:
        EngineError: ONNX Runtime put the session on another provider than the first one
            requested (it does so silently when a provider cannot load).
    """
    in_use = list(session.get_providers())
    wanted = _provider_name(requested[0])
    if not in_use or in_use[0] != wanted:
        raise EngineError(
            f'ONNX Runtime was asked for {wanted} on {device} but the session runs on '
            f'{", ".join(in_use) or "no provider"} (it falls back silently when a provider '
            f'cannot load: a missing CUDA/cuDNN/TensorRT library, or a CPU-only onnxruntime '
            f'package). Refusing to run under a wrong label; {_GPU_PACKAGE}, or use another '
            f'backend.')
    return in_use


class OnnxRuntimeBackend:
    """The network run by ONNX Runtime; see the module docstring.

    Args:
        model: The loaded torch model (exported on a cache miss, never modified).
        request: Precision, device, input size, threads and cache folder.

    Raises:
        ConfigError: a precision the chosen provider does not run (fp16 needs TensorRT; int8
            is built with NNCF for the OpenVINO backend).
        EngineError: export or session creation failed.
    """

    name = 'onnxruntime'

    def __init__(self, model: Any, request: BackendRequest) -> None:
        from lw_refinenet_ros.engine.weights_card import weights_id_of

        supported = native_precisions(request.device)
        if request.precision not in supported:
            hint = (' int8 runs on the CPU (QDQ) or with OpenVINO (backend "openvino").'
                    if request.precision == 'int8' else '')
            raise ConfigError(f'ONNX Runtime on {request.device} runs '
                              f'{" and ".join(supported)}, not {request.precision}.{hint}')
        self.precision = request.precision
        self.device = request.device if _is_cuda(request.device) else 'cpu'
        self._request = request
        self._model = model
        self._cache = ArtifactCache(request.cache_dir)
        self._weights_id = request.weights_id or weights_id_of(model)
        self._sessions: dict[tuple[int, int], Any] = {}
        self._provider_names: list[str] = []
        self._session(*request.input_size)

    def _options(self) -> Any:
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = int(self._request.num_threads or 0)
        options.inter_op_num_threads = 1
        options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
        # On a GPU, warnings stay visible: nodes placed on the CPU provider are logged there.
        options.log_severity_level = 2 if _is_cuda(self.device) else 3
        return options

    def _optimized_cpu_model(self, onnx_file: Path, size: tuple[int, int]) -> Path:
        import onnxruntime

        parts = {'artifact': 'onnxruntime-optimized', 'weights': self._weights_id,
                 'size': list(size), 'runtime': f'onnxruntime {runtime_version()}',
                 'level': 'all', 'cpu': cpu_description(), **export_identity()}

        def build(folder: Path) -> None:
            options = self._options()
            options.graph_optimization_level = \
                onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
            options.optimized_model_filepath = str(folder / OPTIMIZED_FILE)
            onnxruntime.InferenceSession(str(onnx_file), options, providers=[_CPU])

        folder = self._cache.get_or_build('onnxruntime', parts, (OPTIMIZED_FILE,), build,
                                          what=f'ONNX Runtime optimised model '
                                               f'{size[0]}x{size[1]}')
        return folder / OPTIMIZED_FILE

    def _session(self, height: int, width: int) -> Any:
        import onnxruntime

        from lw_refinenet_ros.engine.export import cached_onnx

        size = (height, width)
        session = self._sessions.get(size)
        if session is not None:
            return session
        onnx_file = cached_onnx(self._model, self._cache, self._weights_id, size) / 'model.onnx'
        providers = _providers(self._request, self._cache, self._weights_id, size)
        options = self._options()
        start = time.perf_counter()
        try:
            if providers == [_CPU] and self.precision == 'int8':
                # Static int8 (QDQ), quantized once and cached (engine/ort_quantize.py); the
                # QDQ pairs are fused into int8 kernels when the session optimises.
                from lw_refinenet_ros.engine.ort_quantize import cached_qdq_model

                path = cached_qdq_model(self._model, self._request, self._cache,
                                        self._weights_id, size)
                options.graph_optimization_level = \
                    onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
            elif providers == [_CPU]:
                path = self._optimized_cpu_model(onnx_file, size)
                options.graph_optimization_level = \
                    onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL
            else:
                path = onnx_file
                options.graph_optimization_level = \
                    onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
            session = onnxruntime.InferenceSession(str(path), options, providers=providers)
        except (ConfigError, EngineError):
            raise
        except Exception as error:  # ORT raises its own exception types
            raise EngineError(f'ONNX Runtime could not load the model for {height}x{width} '
                              f'on {self.device}: {error}') from error
        self._provider_names = check_providers(session, providers, self.device)
        if providers != [_CPU]:
            session.disable_fallback()  # a failing GPU run raises instead of moving to the CPU
            if self._provider_names[0] == _TENSORRT:
                self._build_tensorrt(session, size)
                trt = dict(providers[0][1])  # the engines are built: seal their folder
                self._cache.seal(Path(trt['trt_engine_cache_path']), tensorrt_cache_parts(
                    self._request, self._weights_id, size, int(trt['device_id'])))
        _LOG.debug('ONNX Runtime session for %dx%d ready in %.1f s (%s)', height, width,
                   time.perf_counter() - start, ', '.join(self._provider_names))
        if len(self._sessions) >= 4:
            self._sessions.pop(next(iter(self._sessions)))
        self._sessions[size] = session
        return session

    def _build_tensorrt(self, session: Any, size: tuple[int, int]) -> None:
        """Run both ends of the shape profile once, so TensorRT builds (or loads) its engine
        now rather than in the first frame (or inside a benchmark's timing loop)."""
        start = time.perf_counter()
        for batch in sorted({1, max(1, self._request.max_batch)}):
            zeros = np.zeros((batch, 3) + size, dtype=np.float32)
            try:
                session.run(['logits'], {INPUT_NAME: zeros})
            except Exception as error:
                raise EngineError(f'TensorRT could not build its engine for batch {batch} at '
                                  f'{size[0]}x{size[1]}: {error}') from error
        _LOG.info('TensorRT engine for %dx%d (batch 1..%d) ready in %.1f s', size[0], size[1],
                  max(1, self._request.max_batch), time.perf_counter() - start)

    def forward(self, batch: np.ndarray) -> np.ndarray:
        """(N, 3, h, w) float32 -> (N, K, ceil(h/4), ceil(w/4)) float32 logits (a new array)."""
        check_batch(batch)
        session = self._session(batch.shape[2], batch.shape[3])
        try:
            (logits,) = session.run(['logits'], {'image': batch})
        except Exception as error:
            raise EngineError(f'ONNX Runtime inference failed: {error}') from error
        return logits

    def describe(self) -> dict[str, Any]:
        """Backend, precision, device, runtime version and the providers in use."""
        return {'backend': self.name, 'precision': self.precision, 'device': self.device,
                'runtime': f'onnxruntime {runtime_version()}',
                'providers': self._provider_names,
                'provider': self._provider_names[0] if self._provider_names else None,
                'threads': self._request.num_threads or 'default',
                'cache': str(self._cache.root) if self._cache.persistent else None}
