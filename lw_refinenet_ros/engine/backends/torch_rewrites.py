"""Inference-only module rewrites that make eager PyTorch fast on the CPU, labels unchanged.

A profile of the default model (640x480, one thread, channels_last, BatchNorm folded) put
46 % of the forward pass in the CRP max-pooling and 42 % in ``_slow_conv2d_forward``:

* ``F.max_pool2d(kernel 5, stride 1, padding 2)`` on a channels_last tensor runs PyTorch's
  generic kernel that also computes argmax indices. A 5x5 max is a 5-wide max along the rows
  followed by a 5-tall max along the columns, and a 5-wide max is ``max(max(a, b), max(c, d))``
  style pairwise maxima of shifted views (4 elementwise maxima per direction instead of 25
  comparisons per output). Maxima are exact, so the result is bit-identical.
* 1x1 convolutions with one thread go to PyTorch's THNN path (its oneDNN heuristic sends 1x1
  kernels there single-threaded), which on NHWC tensors pays for layout handling. On a
  channels_last tensor a 1x1 convolution is a matrix product over the channel axis: one
  ``F.linear`` on the (N, H, W, C) view, with the same GEMM and the same sums.

The model code itself keeps the plain operations (they are what ONNX export and the other
runtimes see); only the torch backend's private inference copy is rewritten.
"""

from __future__ import annotations

import torch
from torch import nn
import torch.nn.functional as F

from lw_refinenet_ros.model.layers import CRPBlock

_NEG_INF = float('-inf')


def max_pool5_same(x: torch.Tensor) -> torch.Tensor:
    """``F.max_pool2d(x, 5, stride=1, padding=2)``, bit for bit, from shifted maxima.

    Args:
        x: (N, C, H, W) floating point, any memory format.

    Returns:
        (N, C, H, W) in the memory format of the elementwise results (channels_last in,
        channels_last out).
    """
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


class FastCRPBlock(nn.Module):
    """A :class:`~lw_refinenet_ros.model.layers.CRPBlock` with :func:`max_pool5_same`."""

    def __init__(self, block: CRPBlock) -> None:
        super().__init__()
        self.convs = nn.ModuleList(block.values())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) -> (N, C, H, W): the same chain as CRPBlock.forward."""
        top = x
        for conv in self.convs:
            top = conv(max_pool5_same(top))
            x = x + top
        return x


class PointwiseConv(nn.Module):
    """A 1x1, stride-1, ungrouped convolution computed as a matrix product on NHWC data."""

    def __init__(self, conv: nn.Conv2d) -> None:
        super().__init__()
        self.weight = nn.Parameter(conv.weight.detach()[:, :, 0, 0].clone(),
                                   requires_grad=False)
        self.bias = None if conv.bias is None else nn.Parameter(conv.bias.detach().clone(),
                                                                requires_grad=False)
        self.conv = conv

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) -> (N, O, H, W); channels_last input stays channels_last."""
        if not x.is_contiguous(memory_format=torch.channels_last) or x.dim() != 4:
            return self.conv(x)
        return F.linear(x.permute(0, 2, 3, 1), self.weight, self.bias).permute(0, 3, 1, 2)


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
