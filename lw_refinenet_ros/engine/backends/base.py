"""The contract between the engine and an inference runtime (no torch, no runtime imports).

A backend runs only the network: normalised NCHW float32 in, stride-4 logits out. Everything
before (colour order, normalisation, resizing to the network size) and after (upsampling,
argmax, confidence, statistics) is shared engine code, written once. That split is what lets
the engine compare every backend with the torch fp32 reference on the same input, and what
keeps a new runtime down to one small module.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

PRECISION_NAMES: tuple[str, ...] = ('fp32', 'fp16', 'bf16', 'int8')


@dataclasses.dataclass(frozen=True)
class BackendSpec:
    """One runtime in the registry: everything the engine needs to know before importing it.

    Attributes:
        name: The ``backend`` option's value.
        module: Module under ``lw_refinenet_ros.engine.backends`` holding the class and the
            two functions below (imported only when the backend is considered).
        class_name: The :class:`Backend` class in ``module``, built as ``cls(model,
            request)``.
        package: The pip package that provides the runtime (None: always present).
        precisions: Precisions it can run at all (which ones are fast on a device is the
            module's ``native_precisions(device)``; why it cannot run on a device, its
            ``device_unavailable(device)``).
        tensor_input: Declared capability: its instances have ``forward_tensor(batch)``, which
            takes and returns device tensors, so the whole frame can stay on a GPU.
        process_threads: Its thread count is the process-wide torch pool (switched in place)
            rather than fixed when the network is compiled.
        checks: Module holding ``device_unavailable`` and ``native_precisions`` when that is
            not ``module`` (so asking costs no import of the backend itself).
    """

    name: str
    module: str
    class_name: str
    package: str | None
    precisions: tuple[str, ...]
    tensor_input: bool = False
    process_threads: bool = False
    checks: str | None = None


#: The backend registry: adding a runtime is one entry here plus its module.
BACKENDS: dict[str, BackendSpec] = {spec.name: spec for spec in (
    BackendSpec('torch', 'torch', 'TorchBackend', None, ('fp32', 'fp16', 'bf16'),
                tensor_input=True, process_threads=True, checks='torch_support'),
    BackendSpec('openvino', 'openvino', 'OpenVINOBackend', 'openvino',
                ('fp32', 'fp16', 'bf16', 'int8')),
    BackendSpec('onnxruntime', 'onnxruntime', 'OnnxRuntimeBackend', 'onnxruntime',
                ('fp32', 'fp16', 'int8')),
)}
BACKEND_NAMES: tuple[str, ...] = tuple(BACKENDS)


def backend_spec(name: str) -> BackendSpec:
    """The registry entry of ``name``.

    Raises:
        ConfigError: ``name`` is not a registered backend (the message lists them).
    """
    from lw_refinenet_ros.errors import ConfigError

    spec = BACKENDS.get(name) if isinstance(name, str) else None
    if spec is None:
        raise ConfigError(f'Unknown backend {name!r}; expected one of '
                          f'{", ".join(BACKEND_NAMES)} or "auto".')
    return spec


def takes_device_tensors(backend: Any) -> bool:
    """Whether ``backend`` declared (in the registry) and has ``forward_tensor``."""
    spec = BACKENDS.get(getattr(backend, 'name', None))
    declared = spec.tensor_input if spec is not None else False
    return declared and callable(getattr(backend, 'forward_tensor', None))


@dataclasses.dataclass(frozen=True)
class BackendRequest:
    """Everything a runtime needs to build (or load from the cache) an executable network.

    Attributes:
        precision: One of :data:`PRECISION_NAMES`, already checked for this device.
        device: ``'cpu'``, ``'cuda'`` / ``'cuda:N'`` or a runtime's own device name
            (OpenVINO ``'GPU'``).
        input_size: ``(height, width)`` of the network input; runtimes that compile static
            shapes build one executable per size.
        max_batch: Largest batch the engine will send.
        cache_dir: Folder for built artefacts (None: do not cache).
        num_threads: CPU threads for the runtime; None = the runtime's default.
        calibration_dir: Folder of the user's images for int8 calibration (int8 only).
        weights_id: Hash of the loaded weights plus architecture: part of every cache key.
        extra: Backend-specific options by name (torch: channels_last, compile, ...).
    """

    precision: str = 'fp32'
    device: str = 'cpu'
    input_size: tuple[int, int] = (480, 640)
    max_batch: int = 1
    cache_dir: Path | None = None
    num_threads: int | None = None
    calibration_dir: Path | None = None
    weights_id: str = ''
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)


@runtime_checkable
class Backend(Protocol):
    """One built network on one device at one precision.

    ``forward`` takes a C-contiguous (N, 3, h, w) float32 array of normalised RGB and returns
    (N, K, ceil(h/4), ceil(w/4)) float32 logits as a numpy array the caller may keep. It
    raises :class:`~lw_refinenet_ros.errors.EngineError` on failure, never a runtime's own
    exception type. ``describe`` returns a small JSON-able dict for logs and /diagnostics
    (at least ``backend``, ``precision``, ``device``).
    """

    name: str
    precision: str
    device: str

    def forward(self, batch: np.ndarray) -> np.ndarray: ...

    def describe(self) -> dict[str, Any]: ...


@runtime_checkable
class TensorBackend(Backend, Protocol):
    """A backend with the ``tensor_input`` capability: ``forward_tensor`` takes a (N, 3, h,
    w) normalised tensor on its device and returns the logits tensor there (no copies)."""

    def forward_tensor(self, batch: Any) -> Any: ...
