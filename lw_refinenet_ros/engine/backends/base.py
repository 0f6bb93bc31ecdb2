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

BACKEND_NAMES: tuple[str, ...] = ('torch', 'openvino', 'onnxruntime')
PRECISION_NAMES: tuple[str, ...] = ('fp32', 'fp16', 'bf16', 'int8')


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
