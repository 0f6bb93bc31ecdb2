"""Inference-time BatchNorm folding (an optional speed-up for the engine).

In eval mode a BatchNorm after a convolution is an affine map per channel, so it can be folded
into the convolution's weight and bias: ``w' = w * g / sqrt(v + eps)``,
``b' = beta + (b - m) * g / sqrt(v + eps)``. The folded copy computes the same logits (to
float32 rounding) with one kernel fewer per conv. It is for inference only: its state dict no
longer has the reference layout and it must never be trained or saved as a checkpoint.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from lw_refinenet_ros.model.encoders import Bottleneck, ResNetEncoder


def _folded(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    if bn.running_mean is None or bn.running_var is None:
        raise ValueError('Cannot fold a BatchNorm without running statistics.')
    fused = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size,
                      stride=conv.stride, padding=conv.padding, dilation=conv.dilation,
                      groups=conv.groups, bias=True, padding_mode=conv.padding_mode)
    dtype = conv.weight.dtype
    with torch.no_grad():
        # float64 so that folding adds no rounding of its own.
        scale = bn.weight.double() / torch.sqrt(bn.running_var.double() + bn.eps)
        bias = conv.bias.double() if conv.bias is not None else torch.zeros_like(scale)
        fused.weight.copy_((conv.weight.double() * scale.reshape(-1, 1, 1, 1)).to(dtype))
        fused.bias.copy_((bn.bias.double() + (bias - bn.running_mean.double()) * scale)
                         .to(dtype))
    return fused.to(conv.weight.device)


def _named_pairs(module: nn.Module) -> list[tuple[str, str]]:
    if isinstance(module, nn.Sequential):
        names = list(module._modules)
        return [(a, b) for a, b in zip(names, names[1:])
                if isinstance(module._modules[a], nn.Conv2d)
                and isinstance(module._modules[b], nn.BatchNorm2d)]
    if isinstance(module, Bottleneck):
        return [('conv1', 'bn1'), ('conv2', 'bn2'), ('conv3', 'bn3')]
    if isinstance(module, ResNetEncoder):
        return [('conv1', 'bn1')]
    return []


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """Return an eval-mode copy of ``model`` with every conv -> BatchNorm pair folded.

    The input model is not modified. Each folded BatchNorm is replaced by ``nn.Identity`` in
    place, so module structure and ``forward`` stay the same.

    Args:
        model: An LW-RefineNet (or an encoder) in any mode.

    Returns:
        The folded copy, in eval mode with gradients disabled; outputs match the eval-mode
        original within ~1e-5.
    """
    folded = copy.deepcopy(model).eval()
    for module in list(folded.modules()):
        for conv_name, bn_name in _named_pairs(module):
            conv = getattr(module, conv_name)
            bn = getattr(module, bn_name)
            if not isinstance(conv, nn.Conv2d) or not isinstance(bn, nn.BatchNorm2d):
                continue
            setattr(module, conv_name, _folded(conv, bn))
            setattr(module, bn_name, nn.Identity())
    folded.requires_grad_(False)
    return folded
