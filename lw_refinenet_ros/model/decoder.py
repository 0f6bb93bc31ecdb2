"""Light-weight RefineNet decoders (CRP + fusion) for the ResNet and MobileNet-v2 encoders.

Attribute names are the reference's (``p_ims1d2_outl1_dimred``, ``mflow_conv_g1_pool``,
``crp4``, ...): they are the checkpoint format, so keeping them lets released and trained
files load key for key with no remap table. Attributes are created in the order of the
reference state dict.

Conventions (architecture spec, sections 2-4): every decoder convolution is a bias-free 1x1;
there is no BatchNorm; the only bias of the network is on the final 3x3 classifier; lateral
"dimred" and "adapt" 1x1s follow each other with no non-linearity (one linear map, but both
weights exist in the checkpoint); upsampling is bilinear ``align_corners=True`` to the skip
feature's exact size. Channel counts of the taps come from the encoder (``in_channels``).

Decoders build their modules in ``_build_decoder`` (called from ``__init__``) so that the
composed model in :mod:`.lwrefinenet` can own them at top level (flat reference keys).
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn
import torch.nn.functional as F

from lw_refinenet_ros.errors import ConfigError
from lw_refinenet_ros.model.layers import conv1x1, conv3x3, crp, upsample_like

#: Width of the decoder's fused features (and of the ResNet path after the first stage).
DECODER_CHANNELS = 256
#: The ResNet decoder's first stage (on l4) is wider.
RESNET_TOP_CHANNELS = 512
#: Dropout on l3 and l4 (ResNet only), active only in training.
RESNET_DROPOUT = 0.5


def _check_taps(in_channels: Sequence[int], expected: int, decoder: str) -> tuple[int, ...]:
    channels = tuple(int(c) for c in in_channels)
    if len(channels) != expected:
        raise ConfigError(f'{decoder} needs {expected} encoder taps, got in_channels='
                          f"{channels!r}; pass the encoder's out_channels.")
    return channels


def _check_classes(num_classes: int) -> int:
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ConfigError(f'num_classes must be a positive int, got {num_classes!r}.')
    return num_classes


class ResNetRefineDecoder(nn.Module):
    """Light-weight RefineNet decoder on ResNet taps ``[l1, l2, l3, l4]`` (strides 4..32)."""

    def __init__(self, in_channels: Sequence[int], num_classes: int) -> None:
        super().__init__()
        self._build_decoder(in_channels, num_classes)

    def _build_decoder(self, in_channels: Sequence[int], num_classes: int) -> None:
        c1, c2, c3, c4 = _check_taps(in_channels, 4, 'ResNetRefineDecoder')
        num_classes = _check_classes(num_classes)
        width, top = DECODER_CHANNELS, RESNET_TOP_CHANNELS
        self.dropout = nn.Dropout(p=RESNET_DROPOUT)
        # Stage 1, stride 32.
        self.p_ims1d2_outl1_dimred = conv1x1(c4, top)
        self.mflow_conv_g1_pool = crp(top)
        self.mflow_conv_g1_b3_joint_varout_dimred = conv1x1(top, width)
        # Stage 2, stride 16.
        self.p_ims1d2_outl2_dimred = conv1x1(c3, width)
        self.adapt_stage2_b2_joint_varout_dimred = conv1x1(width, width)
        self.mflow_conv_g2_pool = crp(width)
        self.mflow_conv_g2_b3_joint_varout_dimred = conv1x1(width, width)
        # Stage 3, stride 8.
        self.p_ims1d2_outl3_dimred = conv1x1(c2, width)
        self.adapt_stage3_b2_joint_varout_dimred = conv1x1(width, width)
        self.mflow_conv_g3_pool = crp(width)
        self.mflow_conv_g3_b3_joint_varout_dimred = conv1x1(width, width)
        # Stage 4, stride 4.
        self.p_ims1d2_outl4_dimred = conv1x1(c1, width)
        self.adapt_stage4_b2_joint_varout_dimred = conv1x1(width, width)
        self.mflow_conv_g4_pool = crp(width)
        self.clf_conv = conv3x3(width, num_classes, bias=True)

    def decode(self, features: Sequence[torch.Tensor]) -> torch.Tensor:
        """Fuse the taps into logits.

        Args:
            features: ``[l1, l2, l3, l4]`` with 256/512/1024/2048 channels (ResNet-50/101/152)
                at strides 4/8/16/32.

        Returns:
            Logits (N, K, *l1.shape[-2:]), i.e. (N, K, ceil(H/4), ceil(W/4)).
        """
        return self.clf_conv(self.decode_features(features))

    def decode_features(self, features: Sequence[torch.Tensor]) -> torch.Tensor:
        """The fused stride-4 features (N, 256, h, w) that the classifier reads (an optional
        boundary head reads them too, :mod:`.boundary`)."""
        l1, l2, l3, l4 = features
        l4 = self.dropout(l4)
        l3 = self.dropout(l3)

        x4 = F.relu(self.p_ims1d2_outl1_dimred(l4))
        x4 = self.mflow_conv_g1_pool(x4)
        x4 = self.mflow_conv_g1_b3_joint_varout_dimred(x4)
        x4 = upsample_like(x4, l3)

        x3 = self.adapt_stage2_b2_joint_varout_dimred(self.p_ims1d2_outl2_dimred(l3))
        x3 = F.relu(x3 + x4)
        x3 = self.mflow_conv_g2_pool(x3)
        x3 = self.mflow_conv_g2_b3_joint_varout_dimred(x3)
        x3 = upsample_like(x3, l2)

        x2 = self.adapt_stage3_b2_joint_varout_dimred(self.p_ims1d2_outl3_dimred(l2))
        x2 = F.relu(x2 + x3)
        x2 = self.mflow_conv_g3_pool(x2)
        x2 = self.mflow_conv_g3_b3_joint_varout_dimred(x2)
        x2 = upsample_like(x2, l1)

        x1 = self.adapt_stage4_b2_joint_varout_dimred(self.p_ims1d2_outl4_dimred(l1))
        x1 = F.relu(x1 + x2)
        return self.mflow_conv_g4_pool(x1)

    def forward(self, features: Sequence[torch.Tensor]) -> torch.Tensor:
        """Same as :meth:`decode`, for using the decoder on its own."""
        return self.decode(features)


class MobileNetV2RefineDecoder(nn.Module):
    """Light-weight RefineNet decoder on MobileNet-v2 taps ``[l3, l4, l5, l6, l7, l8]``.

    All fusions use ReLU6 (plain ReLU changes logits by up to 3.4, spec section 7).
    """

    def __init__(self, in_channels: Sequence[int], num_classes: int) -> None:
        super().__init__()
        self._build_decoder(in_channels, num_classes)

    def _build_decoder(self, in_channels: Sequence[int], num_classes: int) -> None:
        c3, c4, c5, c6, c7, c8 = _check_taps(in_channels, 6, 'MobileNetV2RefineDecoder')
        num_classes = _check_classes(num_classes)
        width = DECODER_CHANNELS
        self.conv8 = conv1x1(c8, width)
        self.conv7 = conv1x1(c7, width)
        self.conv6 = conv1x1(c6, width)
        self.conv5 = conv1x1(c5, width)
        self.conv4 = conv1x1(c4, width)
        self.conv3 = conv1x1(c3, width)
        self.crp4 = crp(width)
        self.crp3 = crp(width)
        self.crp2 = crp(width)
        self.crp1 = crp(width)
        self.conv_adapt4 = conv1x1(width, width)
        self.conv_adapt3 = conv1x1(width, width)
        self.conv_adapt2 = conv1x1(width, width)
        self.segm = conv3x3(width, num_classes, bias=True)

    def decode(self, features: Sequence[torch.Tensor]) -> torch.Tensor:
        """Fuse the taps into logits.

        Args:
            features: ``[l3, l4, l5, l6, l7, l8]`` (24/32/64/96/160/320 channels, strides
                4/8/16/16/32/32).

        Returns:
            Logits (N, K, *l3.shape[-2:]), i.e. (N, K, ceil(H/4), ceil(W/4)).
        """
        return self.segm(self.decode_features(features))

    def decode_features(self, features: Sequence[torch.Tensor]) -> torch.Tensor:
        """The fused stride-4 features (N, 256, h, w) that the classifier reads (an optional
        boundary head reads them too, :mod:`.boundary`)."""
        l3, l4, l5, l6, l7, l8 = features
        a = F.relu6(self.conv8(l8) + self.conv7(l7))
        a = self.conv_adapt4(self.crp4(a))
        a = upsample_like(a, l6)

        b = F.relu6(self.conv5(l5) + self.conv6(l6) + a)
        b = self.conv_adapt3(self.crp3(b))
        b = upsample_like(b, l4)

        c = F.relu6(b + self.conv4(l4))
        c = self.conv_adapt2(self.crp2(c))
        c = upsample_like(c, l3)

        d = F.relu6(self.conv3(l3) + c)
        return self.crp1(d)

    def forward(self, features: Sequence[torch.Tensor]) -> torch.Tensor:
        """Same as :meth:`decode`, for using the decoder on its own."""
        return self.decode(features)
