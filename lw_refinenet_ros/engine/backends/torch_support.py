"""What the registry asks of the torch backend before building it: can it run on a device,
and which precisions are fast there. Kept apart from :mod:`.torch` (the backend itself) so
that these questions cost no model code."""

from __future__ import annotations

from lw_refinenet_ros.engine import backends


def _is_cuda(device: str) -> bool:
    return device == 'cuda' or device.startswith('cuda:')


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
