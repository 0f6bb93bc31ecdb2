"""RF-LW-ResNet-50/101/152 and RF-LW-MobileNet-v2 (Nekrasov et al., BMVC 2018).

Why inheritance instead of ``self.encoder`` / ``self.decoder`` children: the reference state
dict (and every released or trained checkpoint) is flat, e.g. ``layer1.0.conv1.weight`` next
to ``p_ims1d2_outl1_dimred.weight``. A concrete model therefore *is* its encoder and its
decoder: it runs the encoder's ``_build_encoder`` and the decoder's ``_build_decoder`` in its
own ``__init__``, so both sets of submodules are registered on the model itself, in reference
order, and ``state_dict()`` matches ``lwrf_state_dict_layout.json`` key for key, shape for
shape and in order, without any remap table. ``forward`` comes from :class:`LWRefineNet`,
``encode`` from the encoder class and ``decode`` from the decoder class (method resolution
order: model, LWRefineNet, encoder, decoder).

The model returns stride-4 logits; softmax and upsampling to the image belong to the engine.
"""

from __future__ import annotations

from typing import Callable, ClassVar, Iterator

import torch
from torch import nn

from lw_refinenet_ros.constants import ARCHES
from lw_refinenet_ros.constants import OUTPUT_STRIDE as OUTPUT_STRIDE  # re-exported
from lw_refinenet_ros.errors import ConfigError
from lw_refinenet_ros.model.boundary import BoundaryHead
from lw_refinenet_ros.model.decoder import MobileNetV2RefineDecoder, ResNetRefineDecoder
from lw_refinenet_ros.model.encoders import MobileNetV2Encoder, ResNetEncoder


class LWRefineNet(nn.Module):
    """Base class of the composed models: ``forward(x) = decode(encode(x))``.

    Attributes:
        arch: One of :data:`ARCHES`.
        num_classes: K, the number of classes.
        classifier_name: Name of the final 3x3 classifier (``clf_conv`` or ``segm``).
        boundary: The optional part-boundary head (:mod:`.boundary`), or None.
    """

    arch: str
    num_classes: int
    boundary: BoundaryHead | None
    classifier_name: ClassVar[str]
    encoder_module_names: ClassVar[tuple[str, ...]]
    encode: Callable[[torch.Tensor], list[torch.Tensor]]
    decode: Callable[[list[torch.Tensor]], torch.Tensor]
    decode_features: Callable[[list[torch.Tensor]], torch.Tensor]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Segment a batch.

        Args:
            x: ImageNet-normalised RGB, (N, 3, H, W), any H and W.

        Returns:
            Logits (N, K, ceil(H/4), ceil(W/4)); with the boundary head, (N, K + 1, ...)
            whose last channel is the part-boundary logit.
        """
        if self.boundary is None:
            return self.decode(self.encode(x))
        fused = self.decode_features(self.encode(x))
        classifier = getattr(self, self.classifier_name)
        return torch.cat([classifier(fused), self.boundary(fused)], dim=1)

    @property
    def boundary_channel(self) -> bool:
        """Whether the output carries the part-boundary channel after the K class logits."""
        return self.boundary is not None

    @property
    def output_channels(self) -> int:
        """Channels of the output: K, plus one with the boundary head."""
        return self.num_classes + int(self.boundary is not None)

    def add_boundary_head(self) -> BoundaryHead:
        """Give the model a fresh (untrained: "no seam") boundary head; returns it."""
        self.boundary = BoundaryHead()
        return self.boundary

    def is_encoder_key(self, key: str) -> bool:
        """Whether a state-dict key (or parameter name) belongs to the encoder."""
        return key.split('.', 1)[0] in self.encoder_module_names

    def encoder_state_keys(self) -> list[str]:
        """State-dict keys of the encoder, in order (what an ImageNet init fills)."""
        return [key for key in self.state_dict() if self.is_encoder_key(key)]

    def encoder_parameters(self) -> Iterator[nn.Parameter]:
        """Encoder parameters (the reference trains them with a 10x lower learning rate)."""
        return (p for name, p in self.named_parameters() if self.is_encoder_key(name))

    def decoder_parameters(self) -> Iterator[nn.Parameter]:
        """Decoder and classifier parameters."""
        return (p for name, p in self.named_parameters() if not self.is_encoder_key(name))

    def extra_repr(self) -> str:
        return (f'arch={self.arch!r}, num_classes={self.num_classes}'
                + (', boundary_channel=True' if self.boundary is not None else ''))


class LWRefineNetResNet(LWRefineNet, ResNetEncoder, ResNetRefineDecoder):
    """RF-LW-ResNet-50/101/152: torchvision ResNet encoder + light-weight RefineNet decoder."""

    classifier_name: ClassVar[str] = 'clf_conv'

    def __init__(self, depth: int, num_classes: int) -> None:
        nn.Module.__init__(self)
        self._build_encoder(depth)
        self._build_decoder(self.out_channels, num_classes)
        self.arch = f'resnet{depth}'
        self.num_classes = num_classes
        self.boundary = None


class LWRefineNetMobileNetV2(LWRefineNet, MobileNetV2Encoder, MobileNetV2RefineDecoder):
    """RF-LW-MobileNet-v2: the reference MobileNet-v2 encoder + ReLU6 RefineNet decoder."""

    classifier_name: ClassVar[str] = 'segm'

    def __init__(self, num_classes: int) -> None:
        nn.Module.__init__(self)
        self._build_encoder()
        self._build_decoder(self.out_channels, num_classes)
        self.arch = 'mbv2'
        self.num_classes = num_classes
        self.boundary = None


def lwrefinenet_mbv2(*, num_classes: int) -> LWRefineNetMobileNetV2:
    """RF-LW-MobileNet-v2 (3,284,565 parameters for K = 21) with fresh weights."""
    return LWRefineNetMobileNetV2(num_classes)


def lwrefinenet_resnet50(*, num_classes: int) -> LWRefineNetResNet:
    """RF-LW-ResNet-50 (27,357,525 parameters for K = 21) with fresh weights."""
    return LWRefineNetResNet(50, num_classes)


def lwrefinenet_resnet101(*, num_classes: int) -> LWRefineNetResNet:
    """RF-LW-ResNet-101 (46,349,653 parameters for K = 21) with fresh weights."""
    return LWRefineNetResNet(101, num_classes)


def lwrefinenet_resnet152(*, num_classes: int) -> LWRefineNetResNet:
    """RF-LW-ResNet-152 (61,993,301 parameters for K = 21) with fresh weights."""
    return LWRefineNetResNet(152, num_classes)


def build_model(arch: str, num_classes: int, *, boundary: bool = False) -> LWRefineNet:
    """Build an architecture by name with fresh (untrained) weights.

    Args:
        arch: One of :data:`ARCHES` (``'mbv2'``, ``'resnet50'``, ``'resnet101'``,
            ``'resnet152'``).
        num_classes: K >= 1. Other than 21 adds ``(K - 21) * 2305`` parameters.
        boundary: Add the part-boundary head (:mod:`.boundary`; output channel K).

    Returns:
        The model in training mode, float32, on the CPU.

    Raises:
        ConfigError: Unknown ``arch`` or invalid ``num_classes``.
    """
    builders = {'mbv2': lwrefinenet_mbv2, 'resnet50': lwrefinenet_resnet50,
                'resnet101': lwrefinenet_resnet101, 'resnet152': lwrefinenet_resnet152}
    if arch in builders:
        model = builders[arch](num_classes=num_classes)
        if boundary:
            model.add_boundary_head()
        return model
    raise ConfigError(f'Unknown architecture {arch!r}; expected one of {", ".join(ARCHES)}.')
