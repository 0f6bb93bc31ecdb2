"""OpenVINO backend: the network compiled for the CPU (or an Intel GPU) at fp32, bf16 or int8.

The model is built from the loaded checkpoint on first use: exported to ONNX, converted to
OpenVINO IR (``model.xml`` + ``model.bin``, kept at fp32: ``save_model`` would otherwise
compress the weights to fp16) and stored in the runtime cache. int8 is the same IR
quantized by NNCF on the user's calibration images (:mod:`lw_refinenet_ros.engine.quantize`)
and cached under the calibration set's hash as well.

Execution settings, chosen by measurement (docs/backends.md): static input shapes (one
compiled model per batch x height x width, compiled lazily), the LATENCY performance hint with
one stream, the thread count from the request, one reused infer request, and the input passed
without a copy (``share_inputs``). The output tensor is shared too and copied once into the
array the caller keeps. The precision is always set explicitly: OpenVINO's CPU default is bf16
on CPUs with bf16 units, which would silently change the labels of an "fp32" run.
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path
import time
from typing import Any

import numpy as np

from lw_refinenet_ros.engine.backends import check_batch
from lw_refinenet_ros.engine.backends.base import BackendRequest
from lw_refinenet_ros.engine.cache import ArtifactCache
from lw_refinenet_ros.engine.openvino_ir import IR_FILES, cached_ir, runtime_version
from lw_refinenet_ros.engine.quantize import Int8Calibration, cached_int8_ir, calibration_id
from lw_refinenet_ros.errors import ConfigError, EngineError

__all__ = ['IDLE_CALLS', 'IR_FILES', 'OpenVINOBackend', 'device_unavailable',
           'native_precisions', 'ov_device', 'runtime_version']

_LOG = logging.getLogger(__name__)

# Engine precision -> OpenVINO INFERENCE_PRECISION_HINT.
_PRECISION_HINTS = {'fp32': 'f32', 'bf16': 'bf16', 'fp16': 'f16', 'int8': 'f32'}
# OPTIMIZATION_CAPABILITIES entry that says the device runs a precision natively.
_CAPABILITY = {'fp32': 'FP32', 'bf16': 'BF16', 'fp16': 'FP16', 'int8': 'INT8'}


def ov_device(device: str) -> str:
    """Engine device name -> OpenVINO device name (``'cpu'`` -> ``'CPU'``, ``'GPU.1'`` kept).

    Raises:
        ConfigError: a CUDA device (OpenVINO does not run on NVIDIA GPUs).
    """
    if device in ('cpu', 'auto'):
        return 'CPU'
    if device.upper().startswith(('CPU', 'GPU', 'NPU')):
        return device.upper()
    raise ConfigError(f'OpenVINO cannot run on device {device!r} (it runs on Intel CPUs, GPUs '
                      f'and NPUs, not NVIDIA GPUs). Use backend "torch" or "onnxruntime" on CUDA.')


@functools.lru_cache(maxsize=1)
def _query_core() -> Any:
    """One Core for the questions asked before a backend is built (devices, capabilities):
    a new Core listing its devices costs 20-70 ms each time, and start-up asks several
    times. Backends compile on Cores of their own (their cache folder is a Core setting)."""
    import openvino

    return openvino.Core()


@functools.lru_cache(maxsize=None)
def _compile_core(compiled_cache: str) -> Any:
    """The process's one Core per compiled-blob folder ('' for none), never freed.

    OpenVINO's CPU plugin swaps the calling thread's alternate signal stack for one of its own
    while a Core lives and puts back, when the Core goes, the stack it found: two Cores freed
    in the order they were made leave the first one's freed stack registered (checked with
    sigaltstack(2)). The next signal handled on that thread (Ctrl-C, a child process's exit)
    then crashes the process with SIGSEGV. Cores that live as long as the process never hand
    back a dead stack; a Core is safe to share between threads.
    """
    import openvino

    core = openvino.Core()
    if compiled_cache:
        core.set_property({'CACHE_DIR': compiled_cache})
    return core


def device_unavailable(device: str) -> str | None:
    """None when OpenVINO is importable and sees ``device``, else why not."""
    try:
        import openvino  # noqa: F401 - only whether it imports
    except ImportError:
        return 'OpenVINO is not installed (pip install openvino).'
    try:
        name = ov_device(device)
    except ConfigError as error:
        return str(error)
    if name.split('.')[0] == 'CPU':  # OpenVINO always has its CPU plugin
        return None
    available = _query_core().available_devices
    if name in available or (name == 'GPU' and any(d.startswith('GPU') for d in available)):
        return None
    return f'OpenVINO sees no {name} device here (available: {", ".join(available)}).'


def native_precisions(device: str) -> tuple[str, ...]:
    """Precisions this device runs natively, from OpenVINO's OPTIMIZATION_CAPABILITIES."""
    capabilities = set(_query_core().get_property(ov_device(device),
                                                  'OPTIMIZATION_CAPABILITIES'))
    return tuple(p for p in ('fp32', 'bf16', 'fp16', 'int8') if _CAPABILITY[p] in capabilities)


IDLE_CALLS = 30
"""Inferences after which a compiled model for a much larger input is released."""


class OpenVINOBackend:
    """The network compiled by OpenVINO; see the module docstring.

    Args:
        model: The loaded torch model (exported on a cache miss, never modified).
        request: Precision, device, input size, threads, cache and calibration folders.

    Raises:
        ConfigError: precision not supported by the device; int8 with neither a calibration
            folder nor an int8 model in the cache.
        EngineError: conversion or compilation failed.
    """

    name = 'openvino'

    def __init__(self, model: Any, request: BackendRequest) -> None:

        from lw_refinenet_ros.engine.weights_card import weights_id_of

        self.precision = request.precision
        self.device = ov_device(request.device)
        self._request = request
        supported = native_precisions(request.device)
        if request.precision not in supported:
            raise ConfigError(
                f'OpenVINO on {self.device} does not run {request.precision} natively (this '
                f'device supports {", ".join(supported)}). Choose another precision, or '
                f'"auto".')
        self._cache = ArtifactCache(request.cache_dir)
        # OpenVINO's own cache of compiled blobs (keyed by it with the model, settings, device
        # and version): a restart loads instead of compiling.
        self._core = _compile_core(str(self._cache.root / 'openvino-compiled')
                                   if self._cache.persistent else '')
        self._weights_id = request.weights_id or weights_id_of(model)
        self._model = model
        self._int8 = request.precision == 'int8'
        self._calibration_id: str | None = None
        if self._int8 and request.calibration_dir is not None:
            self._calibration_id = calibration_id(Path(request.calibration_dir))
        elif self._int8 and isinstance(request.extra.get('calibration'), Int8Calibration):
            self._calibration_id = request.extra['calibration'].identity
        self._config = self._compile_config(request)
        self._compiled: dict[tuple[int, int, int], tuple[Any, Any]] = {}
        self._last_use: dict[tuple[int, int, int], int] = {}
        self._calls = 0
        self._ir_dirs: dict[tuple[int, int], Path] = {}
        height, width = request.input_size
        self._executable(1, height, width)

    @staticmethod
    def _compile_config(request: BackendRequest) -> dict[str, Any]:
        config: dict[str, Any] = {
            'PERFORMANCE_HINT': 'LATENCY',
            'NUM_STREAMS': '1',
            'INFERENCE_PRECISION_HINT': _PRECISION_HINTS[request.precision],
        }
        if request.num_threads:
            config['INFERENCE_NUM_THREADS'] = int(request.num_threads)
        config.update(request.extra.get('openvino_config', {}))
        return config

    def _ir_dir(self, height: int, width: int) -> Path:
        size = (height, width)
        folder = self._ir_dirs.get(size)
        if folder is not None:
            return folder
        if not self._int8:
            folder = cached_ir(self._model, self._request, self._cache, self._weights_id, size)
        else:
            try:
                folder = cached_int8_ir(self._model, self._request, self._cache,
                                        self._weights_id, size)
            except ConfigError as error:
                if not self._ir_dirs:
                    raise  # the start-up size: no int8 at all, refused with the reason
                # A later size (a camera that changed resolution) with no int8 model and
                # nothing to calibrate on: run it in fp32 rather than fail every frame.
                folder = cached_ir(self._model, self._request, self._cache, self._weights_id,
                                   size)
                _LOG.warning('no int8 model for a %dx%d network input: running that size on '
                             'the fp32 model (%s)', width, height, error)
        self._ir_dirs[size] = folder
        return folder

    def _executable(self, batch: int, height: int, width: int) -> tuple[Any, Any]:
        key = (batch, height, width)
        entry = self._compiled.get(key)
        if entry is not None:
            return entry
        folder = self._ir_dir(height, width)
        start = time.perf_counter()
        try:
            network = self._core.read_model(str(folder / IR_FILES[0]))
            network.reshape([batch, 3, height, width])
            compiled = self._core.compile_model(network, self.device, self._config)
        except Exception as error:  # OpenVINO raises RuntimeError subclasses of its own
            raise EngineError(f'OpenVINO could not compile the {self.precision} model for '
                              f'{batch}x3x{height}x{width} on {self.device}: {error}') from error
        entry = (compiled, compiled.create_infer_request())
        if len(self._compiled) >= 8:  # a camera uses one or two shapes; bound the memory
            self._forget(next(iter(self._compiled)))
        self._compiled[key] = entry
        _LOG.debug('OpenVINO compiled %s for %dx3x%dx%d in %.1f s', self.precision, batch,
                   height, width, time.perf_counter() - start)
        _LOG.debug('OpenVINO compile settings: %s', self._config)
        return entry

    def _forget(self, key: tuple[int, int, int]) -> None:
        self._compiled.pop(key, None)
        self._last_use.pop(key, None)

    def _release_idle(self, current: tuple[int, int, int]) -> None:
        """Drop compiled models for much larger inputs that have not been used for a while.

        Each input shape is compiled statically, with its buffers: after one 4096x4096 frame
        the process held 5.9 GB until it exited. A shape more than twice the current one's
        pixels that went ``IDLE_CALLS`` inferences unused is released; a camera that really
        alternates sizes keeps both compiled.
        """
        pixels = current[0] * current[1] * current[2]
        idle = [key for key, used in self._last_use.items()
                if key != current and self._calls - used > IDLE_CALLS
                and key[0] * key[1] * key[2] > 2 * pixels]
        for key in idle:
            _LOG.info('OpenVINO: releasing the %dx3x%dx%d model, unused for %d frames',
                      *key, self._calls - self._last_use[key])
            self._forget(key)

    def forward(self, batch: np.ndarray) -> np.ndarray:
        """(N, 3, h, w) float32 -> (N, K, ceil(h/4), ceil(w/4)) float32 logits (a new array)."""
        check_batch(batch)
        count, _, height, width = batch.shape
        key = (count, height, width)
        _, infer_request = self._executable(count, height, width)
        self._calls += 1
        self._last_use[key] = self._calls
        if len(self._last_use) > 1:
            self._release_idle(key)
        try:
            infer_request.infer({0: batch}, share_inputs=True, share_outputs=True)
            return np.array(infer_request.get_output_tensor(0).data, copy=True)
        except Exception as error:
            raise EngineError(f'OpenVINO inference failed: {error}') from error

    def describe(self) -> dict[str, Any]:
        """Backend, precision, device, runtime version, the compile settings and the input
        shapes compiled now."""
        info: dict[str, Any] = {'backend': self.name, 'precision': self.precision,
                                'device': self.device,
                                'runtime': f'openvino {runtime_version()}',
                                'config': {k: str(v) for k, v in self._config.items()},
                                'cache': str(self._cache.root) if self._cache.persistent
                                else None,
                                'compiled_inputs': [f'{n}x3x{h}x{w}'
                                                    for n, h, w in self._compiled]}
        if self._int8:
            info['calibration'] = (self._calibration_id[:12] if self._calibration_id
                                   else 'cached int8 model')
        return info

