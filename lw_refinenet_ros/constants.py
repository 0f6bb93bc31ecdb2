"""Numbers the whole package agrees on, defined once (no torch, no ROS).

The normalisation is the ImageNet statistics the encoders were pre-trained with; training,
the engine, the reference pipeline and the exporters must all use these exact values or the
labels drift. ``IGNORE_INDEX`` marks pixels that count neither as right nor wrong (the VOC
convention, also written by the conveyor generator for ambiguous edges). ``ARCHES`` lives here
rather than in the model package so that the configuration can list it without importing torch.
"""

from __future__ import annotations

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)
IGNORE_INDEX = 255
OUTPUT_STRIDE = 4

#: Architectures the model package builds, in the order the CLI lists them.
ARCHES: tuple[str, ...] = ('mbv2', 'resnet50', 'resnet101', 'resnet152')
