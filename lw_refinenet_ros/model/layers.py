"""Small building blocks shared by the encoders and decoders.

Light-Weight RefineNet (Nekrasov, Shen, Reid, BMVC 2018, arXiv 1810.03272) replaces every 3x3
convolution of RefineNet's chained residual pooling and fusion blocks by a 1x1 and drops the
residual convolution units. What is left is a handful of 1x1 convolutions without bias, the
light-weight CRP block below, and bilinear upsampling with ``align_corners=True``.
"""

from __future__ import annotations

import torch
from torch import nn
import torch.nn.functional as F

#: Stages per CRP block; the reference and the state-dict layout have exactly four.
CRP_STAGES = 4

#: Every BatchNorm of the network uses PyTorch's default eps; 1e-3 (Keras/TF habit) would
#: silently shift logits by up to 0.1 (architecture spec, section 7).
BN_EPS = 1e-5


def conv1x1(in_channels: int, out_channels: int, *, stride: int = 1,
            bias: bool = False) -> nn.Conv2d:
    """Return a 1x1 convolution; bias-free by default as everywhere in this network."""
    return nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=stride, padding=0,
                     bias=bias)


def conv3x3(in_channels: int, out_channels: int, *, stride: int = 1, groups: int = 1,
            bias: bool = False) -> nn.Conv2d:
    """Return a 3x3 convolution with padding 1, so stride 2 maps H to ceil(H/2)."""
    return nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=stride, padding=1,
                     groups=groups, bias=bias)


def batch_norm(channels: int) -> nn.BatchNorm2d:
    """Return the network's only normalisation layer (affine, running stats, eps 1e-5)."""
    return nn.BatchNorm2d(channels, eps=BN_EPS)


def upsample_like(x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
    """Bilinearly resize ``x`` to the exact spatial size of ``skip``.

    The reference resizes to the skip feature's size (never a blind x2, which would be off by
    one for odd sizes) with ``align_corners=True``; ``align_corners=False`` changes logits by
    up to 1.3 (architecture spec, section 7).

    Args:
        x: Coarser map (N, C, h, w).
        skip: Finer feature (N, *, H, W) whose size is copied.

    Returns:
        (N, C, H, W).
    """
    return F.interpolate(x, size=skip.shape[-2:], mode='bilinear', align_corners=True)


class CRPBlock(nn.ModuleDict):
    """Light-weight chained residual pooling: C -> C channels, exactly :data:`CRP_STAGES` stages.

    With ``x`` the running sum and ``t = x``, each stage computes ``t = conv1x1(maxpool5x5(t))``
    and ``x = x + t``. The chain is sequential: each stage pools the previous stage's ``t``,
    not the block input (pooling the input changes logits by 6-36, spec section 7). No ReLU,
    BN or bias inside.

    Why a ``ModuleDict``: the reference names the stage convolutions ``1_outvar_dimred`` ...
    ``4_outvar_dimred``. Those names start with a digit, so they cannot be attributes; a
    ``ModuleDict`` registers them under exactly those keys (in order) without ``setattr``, and
    the state dict reads ``<block>.1_outvar_dimred.weight`` with no remapping.
    """

    def __init__(self, channels: int, num_stages: int = CRP_STAGES) -> None:
        super().__init__({f'{stage}_outvar_dimred': conv1x1(channels, channels)
                          for stage in range(1, num_stages + 1)})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the chain.

        Args:
            x: (N, C, H, W).

        Returns:
            (N, C, H, W), same size (the pool has stride 1 and padding 2, padding acting as -inf).
        """
        top = x
        for conv in self.values():
            top = conv(F.max_pool2d(top, kernel_size=5, stride=1, padding=2))
            x = x + top
        return x


def crp(channels: int) -> nn.Sequential:
    """Return a CRP block wrapped in a one-element ``Sequential``.

    The wrapper exists only for the checkpoint format: the reference builds each CRP as a
    Sequential, hence the ``.0.`` in keys like ``crp4.0.1_outvar_dimred.weight``.
    """
    return nn.Sequential(CRPBlock(channels))
