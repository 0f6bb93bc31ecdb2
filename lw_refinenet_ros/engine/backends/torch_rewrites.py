"""Inference-only module rewrites that make eager PyTorch fast on the CPU, labels unchanged.

A profile of the default model (640x480, one thread, channels_last, BatchNorm folded) put
46 % of the forward pass in the CRP max-pooling and 42 % in ``_slow_conv2d_forward``:

* ``F.max_pool2d(kernel 5, stride 1, padding 2)`` on a channels_last tensor runs PyTorch's
  generic kernel that also computes argmax indices. A 5x5 max is a 5-wide max along the rows
  followed by a 5-tall max along the columns, and a 5-wide max is three pairwise maxima of
  shifted views (max of neighbours, of neighbouring pairs, then the fifth), i.e. 6
  vectorised elementwise passes instead of 25 comparisons per output, done in row bands
  that stay in cache. Maxima are exact, so the result is bit-identical.
* 1x1 convolutions with one thread go to PyTorch's THNN path (``_slow_conv2d_forward``):
  its heuristic sends 1x1 kernels there whenever torch runs single-threaded. oneDNN's
  convolution for the same shapes measured about 2x less CPU time, so the rewrite calls it
  directly (``aten::mkldnn_convolution``, what PyTorch itself uses with two threads). The
  sums are accumulated in another order: logits move by ~1e-5, labels do not (tested on
  the default model).

The model code itself keeps the plain operations (they are what ONNX export and the other
runtimes see); only the torch backend's private inference copy is rewritten.
"""

from __future__ import annotations

import torch
from torch import nn
import torch.nn.functional as F

from lw_refinenet_ros.model.layers import CRPBlock

_NEG_INF = float('-inf')


#: Rows pooled at a time: a band of a 256-channel decoder map stays in the CPU caches, where
#: the six elementwise passes are cheap; over a whole 120x160 map they would stream memory.
BAND_ROWS = 16


def _shifted_max5(x: torch.Tensor) -> torch.Tensor:
    """5x5 max with -inf padding from pairwise maxima of shifted views (one band)."""
    height, width = x.shape[-2:]
    padded = F.pad(x, (2, 2, 2, 2), value=_NEG_INF)
    wide = width + 4
    pairs = torch.maximum(padded[..., :, 0:wide - 1], padded[..., :, 1:wide])
    quads = torch.maximum(pairs[..., :, 0:wide - 3], pairs[..., :, 2:wide - 1])
    rows = torch.maximum(quads[..., :, 0:width], padded[..., :, 4:wide])
    tall = height + 4
    pairs = torch.maximum(rows[..., 0:tall - 1, :], rows[..., 1:tall, :])
    quads = torch.maximum(pairs[..., 0:tall - 3, :], pairs[..., 2:tall - 1, :])
    return torch.maximum(quads[..., 0:height, :], rows[..., 4:tall, :])


def max_pool5_same(x: torch.Tensor, band_rows: int = BAND_ROWS) -> torch.Tensor:
    """``F.max_pool2d(x, 5, stride=1, padding=2)``, bit for bit, from shifted maxima.

    Works in bands of ``band_rows`` output rows, each read with two rows of context above
    and below (the window's reach), so every output row sees exactly its 5x5 window.

    Args:
        x: (N, C, H, W) floating point, any memory format.
        band_rows: Output rows per band.

    Returns:
        (N, C, H, W) in ``x``'s memory format.
    """
    height = x.shape[-2]
    if height <= 2 * band_rows:
        return _shifted_max5(x)
    out = torch.empty_like(x)
    for top in range(0, height, band_rows):
        bottom = min(height, top + band_rows)
        first, last = max(0, top - 2), min(height, bottom + 2)
        band = _shifted_max5(x[..., first:last, :])
        out[..., top:bottom, :] = band[..., top - first:bottom - first, :]
    return out


class FastCRPBlock(nn.Module):
    """A :class:`~lw_refinenet_ros.model.layers.CRPBlock` with :func:`max_pool5_same`."""

    def __init__(self, block: CRPBlock) -> None:
        super().__init__()
        self.convs = nn.ModuleList(block.values())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) -> (N, C, H, W): the same chain as CRPBlock.forward."""
        # Multi-threaded, PyTorch's pooling kernel splits the work across threads in one
        # parallel region, where the banded passes would open one per small operation (and
        # measured slower on a shared CPU): the rewrite is for single-threaded inference.
        pool = max_pool5_same if torch.get_num_threads() == 1 else _native_pool5
        top = x
        for conv in self.convs:
            top = conv(pool(top))
            x = x + top
        return x


def _native_pool5(x: torch.Tensor) -> torch.Tensor:
    return F.max_pool2d(x, 5, stride=1, padding=2)


class PointwiseConv(nn.Module):
    """A 1x1 convolution sent to oneDNN, whatever PyTorch's thread-count heuristic says."""

    def __init__(self, conv: nn.Conv2d) -> None:
        super().__init__()
        self.conv = conv

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) -> (N, O, H, W); channels_last input stays channels_last."""
        conv = self.conv
        if x.device.type != 'cpu' or x.dtype not in (torch.float32, torch.bfloat16) \
                or not x.is_contiguous(memory_format=torch.channels_last):
            return conv(x)
        return torch.ops.aten.mkldnn_convolution(x, conv.weight, conv.bias, conv.padding,
                                                 conv.stride, conv.dilation, conv.groups)


def _is_pointwise(module: nn.Module) -> bool:
    return (type(module) is nn.Conv2d and module.kernel_size == (1, 1)
            and module.stride == (1, 1) and module.padding in ((0, 0), 'valid')
            and module.dilation == (1, 1) and module.groups == 1)


def rewrite_for_cpu(model: nn.Module) -> dict[str, int]:
    """Replace CRP blocks and 1x1 convolutions of ``model`` in place (inference only).

    Returns:
        How many modules of each kind were replaced (for ``describe()``).
    """
    counts = {'crp_blocks': 0, 'pointwise_convs': 0}
    # Pointwise convolutions first, so the CRP blocks built next hold the rewritten ones.
    for kind, wanted, make in (('pointwise_convs', _is_pointwise, PointwiseConv),
                               ('crp_blocks', _is_crp, FastCRPBlock)):
        for parent in list(model.modules()):
            for name, child in list(parent.named_children()):
                if wanted(child):
                    parent.register_module(name, make(child))
                    counts[kind] += 1
    return counts


def _is_crp(module: nn.Module) -> bool:
    return isinstance(module, CRPBlock)
