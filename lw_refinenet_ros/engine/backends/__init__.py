"""Inference backends: the runtimes that execute the network, behind one interface.

See :mod:`lw_refinenet_ros.engine.backends.base` for the contract. Each runtime lives in its
own module and is imported only when asked for, so that a missing optional runtime costs
nothing until someone selects it. This module is the registry: which runtimes exist, whether
one can run here (and, if not, which package to install), which precisions a device runs
natively, and the one place that builds a backend by name.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import platform
from typing import Any

import numpy as np

from lw_refinenet_ros.engine.backends.base import (
    BACKEND_NAMES,
    BACKENDS,
    PRECISION_NAMES,
    Backend,
    BackendRequest,
    BackendSpec,
    TensorBackend,
    backend_spec,
    takes_device_tensors,
)
from lw_refinenet_ros.errors import ConfigError, EngineError

__all__ = ['BACKENDS', 'BACKEND_NAMES', 'PRECISION_NAMES', 'Backend', 'BackendRequest',
           'BackendSpec', 'TensorBackend', 'backend_spec', 'backend_unavailable', 'check_batch',
           'cpu_description', 'cpu_flags', 'create_backend', 'native_precisions',
           'takes_device_tensors']
# CPU flags (Linux /proc/cpuinfo names) that matter for reduced precision.
_ISA_FLAGS = ('avx2', 'avx512f', 'avx512_vnni', 'avx_vnni', 'avx512_bf16', 'avx512_fp16',
              'amx_bf16', 'amx_int8', 'amx_fp16')


@functools.lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags (Linux); empty where /proc/cpuinfo does not exist."""
    try:
        with open('/proc/cpuinfo', encoding='utf-8') as handle:
            for line in handle:
                if line.startswith('flags'):
                    return frozenset(line.split(':', 1)[1].split())
    except OSError:
        pass
    return frozenset()


@functools.lru_cache(maxsize=1)
def cpu_description() -> str:
    """CPU model name plus the ISA flags that decide bf16/int8 speed, for every table."""
    name = platform.processor() or platform.machine()
    try:
        with open('/proc/cpuinfo', encoding='utf-8') as handle:
            for line in handle:
                if line.startswith('model name'):
                    name = line.split(':', 1)[1].strip()
                    break
    except OSError:
        pass
    flags = [flag for flag in _ISA_FLAGS if flag in cpu_flags()]
    return f'{name} ({" ".join(flags) if flags else "no AVX2/AVX-512 flags seen"})'


def _is_cuda(device: str) -> bool:
    return device == 'cuda' or device.startswith('cuda:')


def _module(spec: BackendSpec, checks: bool = False) -> Any:
    name = spec.checks if checks and spec.checks else spec.module
    return importlib.import_module(f'{__name__}.{name}')


def backend_unavailable(name: str, device: str) -> str | None:
    """None when backend ``name`` can run on ``device`` here, else the reason and the fix.

    Cheap enough to call at start-up for every backend: it imports the runtime (not torch
    for the other runtimes) but builds nothing.

    Raises:
        ConfigError: ``name`` is not a registered backend.
    """
    spec = backend_spec(name)
    if spec.package is not None and importlib.util.find_spec(spec.package) is None:
        return f'{spec.package} is not installed (pip install {spec.package}).'
    return _module(spec, checks=True).device_unavailable(device)


def native_precisions(name: str, device: str) -> tuple[str, ...]:
    """Precisions backend ``name`` runs natively (fast) on ``device``, fp32 first.

    int8 is listed where the hardware runs it, though it is only used when a calibrated
    model exists or is asked for.

    Raises:
        ConfigError: ``name`` is not a registered backend.
    """
    return tuple(_module(backend_spec(name), checks=True).native_precisions(device))


def create_backend(name: str, model: Any, request: BackendRequest) -> Backend:
    """Build backend ``name`` for ``model`` as ``request`` says.

    Raises:
        ConfigError: unknown backend or precision, or the runtime is missing (the message
            names the package to install).
        EngineError: the runtime failed to build or compile the network.
    """
    spec = backend_spec(name)
    if request.precision not in PRECISION_NAMES:
        raise ConfigError(f'Unknown precision {request.precision!r}; expected one of '
                          f'{", ".join(PRECISION_NAMES)} or "auto".')
    if request.precision not in spec.precisions:
        others = ' or '.join(f'"{n}"' for n, s in BACKENDS.items()
                             if request.precision in s.precisions)
        raise ConfigError(f'backend {name!r} does not run {request.precision} (it runs '
                          f'{", ".join(spec.precisions)}); {request.precision} runs on backend '
                          f'{others}.')
    reason = backend_unavailable(name, request.device)
    if reason is not None:
        raise ConfigError(f'backend {name!r} cannot run on {request.device!r}: {reason}')
    return getattr(_module(spec), spec.class_name)(model, request)


def check_batch(batch: Any) -> None:
    """Raise EngineError unless ``batch`` is a C-contiguous (N, 3, h, w) float32 array."""
    if not isinstance(batch, np.ndarray) or batch.dtype != np.float32 or batch.ndim != 4 \
            or batch.shape[1] != 3 or not batch.flags.c_contiguous or batch.shape[0] < 1:
        what = (f'{batch.dtype} array of shape {batch.shape}'
                if isinstance(batch, np.ndarray) else type(batch).__name__)
        raise EngineError(f'a backend takes a C-contiguous (N, 3, h, w) float32 array, got '
                          f'{what}.')
