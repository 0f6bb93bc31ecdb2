"""Encoders: ResNet-50/101/152 (torchvision v1.5 layout) and the reference MobileNet-v2.

Encoder contract (read by the decoders and by :mod:`.lwrefinenet`):

* ``encode(x)`` takes ``(N, 3, H, W)`` and returns the decoder taps as a list ordered from
  high to low resolution; the stride-``s`` tap is ``ceil(H/s) x ceil(W/s)`` for any H, W
  (every stride-2 layer has the padding that makes it a ceil).
* ``out_channels`` and ``reductions`` describe those taps, one entry each.
* ``encoder_module_names`` lists the top-level child modules that form the encoder, which is
  how a composed model tells encoder keys (ImageNet init, lower learning rate) from decoder
  keys.
* Submodule names are the checkpoint format: ResNet uses torchvision's names (``conv1``,
  ``bn1``, ``layer1``..``layer4`` with ``conv1..3``, ``bn1..3``, ``downsample.{0,1}``) so
  torchvision ImageNet files load with exact key checks; MobileNet-v2 uses the reference's
  ``layerN.i.output.{0,1,2}.{0,1}``.

Encoders build their modules in ``_build_encoder`` (called from ``__init__``) so that the
composed model in :mod:`.lwrefinenet` can add them to itself at top level: the reference
state dict is flat (``layer1.0.conv1.weight``, not ``encoder.layer1...``).
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from lw_refinenet_ros.errors import ConfigError
from lw_refinenet_ros.model.layers import batch_norm, conv1x1, conv3x3

#: Bottleneck blocks per stage (He et al. 2016; torchvision's resnet50/101/152).
RESNET_BLOCKS: dict[int, tuple[int, int, int, int]] = {
    50: (3, 4, 6, 3),
    101: (3, 4, 23, 3),
    152: (3, 8, 36, 3),
}

#: MobileNet-v2 inverted-residual stages ``layer2``..``layer8`` as (expansion t, channels c,
#: blocks n, first stride s), Sandler et al. 2018, table 2.
MBV2_STAGES: tuple[tuple[int, int, int, int], ...] = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)

#: Output channels of MobileNet-v2's stem (``layer1``).
MBV2_STEM_CHANNELS = 32


def _init_encoder_weights(module: nn.Module) -> None:
    # torchvision's ResNet/MobileNetV2 initialisation; it matters only when training from
    # scratch, which the spec warns against (ImageNet init is needed, issues #35/#38/#59).
    for child in module.modules():
        if isinstance(child, nn.Conv2d):
            nn.init.kaiming_normal_(child.weight, mode='fan_out', nonlinearity='relu')
        elif isinstance(child, nn.BatchNorm2d):
            nn.init.ones_(child.weight)
            nn.init.zeros_(child.bias)


class Bottleneck(nn.Module):
    """ResNet v1.5 bottleneck: 1x1 reduce, 3x3 (carrying the stride), 1x1 expand x4."""

    expansion: ClassVar[int] = 4

    def __init__(self, in_channels: int, width: int, *, stride: int = 1) -> None:
        super().__init__()
        out_channels = width * self.expansion
        self.conv1 = conv1x1(in_channels, width)
        self.bn1 = batch_norm(width)
        self.conv2 = conv3x3(width, width, stride=stride)
        self.bn2 = batch_norm(width)
        self.conv3 = conv1x1(width, out_channels)
        self.bn3 = batch_norm(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.downsample: nn.Module | None = None
        if stride != 1 or in_channels != out_channels:
            self.downsample = nn.Sequential(conv1x1(in_channels, out_channels, stride=stride),
                                            batch_norm(out_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, in, H, W) -> (N, 4*width, ceil(H/stride), ceil(W/stride))."""
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


def _resnet_stage(in_channels: int, width: int, blocks: int, stride: int) -> nn.Sequential:
    layers = [Bottleneck(in_channels, width, stride=stride)]
    layers += [Bottleneck(width * Bottleneck.expansion, width) for _ in range(blocks - 1)]
    return nn.Sequential(*layers)


class ResNetEncoder(nn.Module):
    """torchvision ResNet-50/101/152 (v1.5) without ``avgpool`` and ``fc``.

    Taps ``l1..l4`` = outputs of ``layer1..layer4``: 256/512/1024/2048 channels at strides
    4/8/16/32.
    """

    out_channels: ClassVar[tuple[int, ...]] = (256, 512, 1024, 2048)
    reductions: ClassVar[tuple[int, ...]] = (4, 8, 16, 32)
    encoder_module_names: ClassVar[tuple[str, ...]] = (
        'conv1', 'bn1', 'relu', 'maxpool', 'layer1', 'layer2', 'layer3', 'layer4')

    def __init__(self, depth: int) -> None:
        super().__init__()
        self._build_encoder(depth)

    def _build_encoder(self, depth: int) -> None:
        if depth not in RESNET_BLOCKS:
            raise ConfigError(f'ResNet depth {depth!r} is not supported; expected one of '
                              f'{sorted(RESNET_BLOCKS)}.')
        blocks = RESNET_BLOCKS[depth]
        self.depth = depth
        self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = batch_norm(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = _resnet_stage(64, 64, blocks[0], stride=1)
        self.layer2 = _resnet_stage(256, 128, blocks[1], stride=2)
        self.layer3 = _resnet_stage(512, 256, blocks[2], stride=2)
        self.layer4 = _resnet_stage(1024, 512, blocks[3], stride=2)
        for name in self.encoder_module_names:
            _init_encoder_weights(getattr(self, name))

    def encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        """(N, 3, H, W) -> [l1 (N,256,H/4), l2 (N,512,H/8), l3 (N,1024,H/16), l4 (N,2048,H/32)].

        Sizes are ceil(H/s) x ceil(W/s).
        """
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        l1 = self.layer1(x)
        l2 = self.layer2(l1)
        l3 = self.layer3(l2)
        l4 = self.layer4(l3)
        return [l1, l2, l3, l4]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Same as :meth:`encode`, for using the encoder on its own."""
        return self.encode(x)


class InvertedResidual(nn.Module):
    """MobileNet-v2 block as laid out by the reference: ``output`` = expand, depthwise, project.

    Unlike torchvision, the 1x1 expansion exists even for t = 1 (``layer2.0``), so the
    structure is always ``output.{0,1,2}.{0=conv,1=bn}``. The residual add happens only when
    the block keeps both channels and resolution.
    """

    def __init__(self, in_channels: int, out_channels: int, *, expansion: int,
                 stride: int) -> None:
        super().__init__()
        hidden = in_channels * expansion
        self.output = nn.Sequential(
            nn.Sequential(conv1x1(in_channels, hidden), batch_norm(hidden),
                          nn.ReLU6(inplace=True)),
            nn.Sequential(conv3x3(hidden, hidden, stride=stride, groups=hidden),
                          batch_norm(hidden), nn.ReLU6(inplace=True)),
            nn.Sequential(conv1x1(hidden, out_channels), batch_norm(out_channels)),
        )
        self.residual = in_channels == out_channels and stride == 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, in, H, W) -> (N, out, ceil(H/stride), ceil(W/stride))."""
        out = self.output(x)
        return x + out if self.residual else out


class MobileNetV2Encoder(nn.Module):
    """The reference's MobileNet-v2 (width 1.0): stem ``layer1`` and stages ``layer2..layer8``.

    Taps are the outputs of ``layer3..layer8``: 24/32/64/96/160/320 channels at strides
    4/8/16/16/32/32. The final 1x1 to 1280 channels and the classifier are not part of it.
    """

    out_channels: ClassVar[tuple[int, ...]] = (24, 32, 64, 96, 160, 320)
    reductions: ClassVar[tuple[int, ...]] = (4, 8, 16, 16, 32, 32)
    encoder_module_names: ClassVar[tuple[str, ...]] = tuple(
        f'layer{index}' for index in range(1, len(MBV2_STAGES) + 2))

    def __init__(self) -> None:
        super().__init__()
        self._build_encoder()

    def _build_encoder(self) -> None:
        self.layer1 = nn.Sequential(conv3x3(3, MBV2_STEM_CHANNELS, stride=2),
                                    batch_norm(MBV2_STEM_CHANNELS), nn.ReLU6(inplace=True))
        in_channels = MBV2_STEM_CHANNELS
        stages = []
        for expansion, channels, blocks, stride in MBV2_STAGES:
            stage = []
            for index in range(blocks):
                stage.append(InvertedResidual(in_channels, channels, expansion=expansion,
                                              stride=stride if index == 0 else 1))
                in_channels = channels
            stages.append(nn.Sequential(*stage))
        (self.layer2, self.layer3, self.layer4, self.layer5, self.layer6, self.layer7,
         self.layer8) = stages
        for name in self.encoder_module_names:
            _init_encoder_weights(getattr(self, name))

    def encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        """(N, 3, H, W) -> [l3, l4, l5, l6, l7, l8] at strides 4, 8, 16, 16, 32, 32 (ceil)."""
        x = self.layer2(self.layer1(x))
        l3 = self.layer3(x)
        l4 = self.layer4(l3)
        l5 = self.layer5(l4)
        l6 = self.layer6(l5)
        l7 = self.layer7(l6)
        l8 = self.layer8(l7)
        return [l3, l4, l5, l6, l7, l8]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Same as :meth:`encode`, for using the encoder on its own."""
        return self.encode(x)
