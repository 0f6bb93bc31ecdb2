"""What the registry asks of the torch backend before building it: can it run on a device,
and which precisions are fast there. Kept apart from :mod:`.torch` (the backend itself) so
that these questions cost no model code."""

from __future__ import annotations

import glob
import importlib.metadata
import os
import sys

from lw_refinenet_ros.engine import backends

#: Device files a GPU that torch's ``cuda`` can use shows on Linux: NVIDIA's (desktop and
#: server driver; Jetson's ``nvmap``/``nvhost``/``nvgpu``), AMD's ROCm (``/dev/kfd``) and
#: WSL's (``/dev/dxg``).
_GPU_DEVICE_FILES = ('/dev/nvidia[0-9]*', '/proc/driver/nvidia', '/dev/nvmap', '/dev/nvhost-*',
                     '/dev/nvgpu', '/dev/kfd', '/dev/dxg')


def _is_cuda(device: str) -> bool:
    return device == 'cuda' or device.startswith('cuda:')


def cuda_possible() -> bool:
    """False when ``torch.cuda.is_available()`` is certainly False, found without importing
    torch (about 2 s of CPU on a small machine): torch is a CPU-only build (version
    ``+cpu``), or, on Linux, no GPU device file exists. True means "ask torch"."""
    if 'torch' in sys.modules:
        return True
    try:
        if importlib.metadata.version('torch').endswith('+cpu'):
            return False
    except importlib.metadata.PackageNotFoundError:
        pass
    if not sys.platform.startswith('linux'):
        return True
    return any(glob.glob(pattern) if '*' in pattern else os.path.exists(pattern)
               for pattern in _GPU_DEVICE_FILES)


def device_unavailable(device: str) -> str | None:
    """Why torch cannot run on ``device`` (None: it can)."""
    if _is_cuda(device):
        import torch

        if not torch.cuda.is_available():
            return ('this torch build has no CUDA support or no GPU is visible; install a '
                    'CUDA build of torch or use device "cpu".')
    return None


def native_precisions(device: str) -> tuple[str, ...]:
    """fp32, plus bf16 on CPUs with bf16 units; fp32/fp16 (and bf16 where supported) on
    CUDA. fp16 is not listed on a CPU: torch runs it there as fp32."""
    if _is_cuda(device):
        import torch

        return ('fp32', 'fp16', 'bf16') if torch.cuda.is_bf16_supported() else ('fp32', 'fp16')
    return ('fp32', 'bf16') if {'avx512_bf16', 'amx_bf16'} & backends.cpu_flags() else ('fp32',)
