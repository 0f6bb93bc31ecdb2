"""Training augmentation of the reference recipe (numpy + OpenCV; torch only at the end).

Order as in the reference v1 ``src/train.py``: random scale (image cubic, mask nearest),
pad to the crop size (image with the mean pixel, which normalises to 0; mask with 255),
random horizontal flip, random crop, ImageNet normalisation.

Optionally first, at the camera's own resolution: :class:`PhotometricJitter` (exposure,
contrast, defocus, sensor noise). The paper's recipe has none; a model that has to run under
a real camera's lighting and focus changes needs it (the default conveyor model uses it).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from lw_refinenet_ros import constants
from lw_refinenet_ros.constants import IGNORE_INDEX

# float32 copies of the package's normalisation constants, shaped for an HWC image.
IMAGENET_MEAN = np.array(constants.IMAGENET_MEAN, np.float32)
IMAGENET_STD = np.array(constants.IMAGENET_STD, np.float32)
MEAN_PIXEL = tuple(float(v) for v in IMAGENET_MEAN * 255.0)  # (123.675, 116.28, 103.53)


def normalize(image: np.ndarray) -> np.ndarray:
    """RGB uint8 (H, W, 3) -> float32 CHW, ``(x / 255 - mean) / std``."""
    x = (image.astype(np.float32) / 255.0 - IMAGENET_MEAN) / IMAGENET_STD
    return np.ascontiguousarray(x.transpose(2, 0, 1))


@dataclass(frozen=True)
class PhotometricJitter:
    """Image-only camera changes, each applied independently with probability ``prob``.

    Applied before any resizing so that blur and noise are in camera pixels, the unit in
    which ``lw-refinenet eval --blur/--noise`` measures robustness.

    Attributes:
        brightness: (min, max) exposure gain, drawn log-uniformly so that x0.5 and x2 are
            equally likely; (1, 1) = off.
        contrast: (min, max) contrast factor around the image mean; (1, 1) = off.
        blur_sigma: Largest Gaussian defocus sigma in pixels (drawn uniformly); 0 = off.
        noise_sigma: Largest Gaussian sensor-noise sigma on the 0..255 scale; 0 = off.
        prob: Probability of each of the four effects.
    """

    brightness: tuple[float, float] = (1.0, 1.0)
    contrast: tuple[float, float] = (1.0, 1.0)
    blur_sigma: float = 0.0
    noise_sigma: float = 0.0
    prob: float = 0.5

    def __post_init__(self) -> None:
        for name in ('brightness', 'contrast'):
            low, high = getattr(self, name)
            if not 0 < low <= high:
                raise ValueError(f'{name} range must satisfy 0 < min <= max, got '
                                 f'({low}, {high}).')
        if self.blur_sigma < 0 or self.noise_sigma < 0:
            raise ValueError(f'blur_sigma and noise_sigma must be >= 0, got '
                             f'{self.blur_sigma}, {self.noise_sigma}.')
        if not 0 <= self.prob <= 1:
            raise ValueError(f'prob must be in [0, 1], got {self.prob}.')

    @property
    def enabled(self) -> bool:
        """False when every effect is off (the transform would be the identity)."""
        return self.prob > 0 and (self.brightness != (1.0, 1.0) or
                                  self.contrast != (1.0, 1.0) or
                                  self.blur_sigma > 0 or self.noise_sigma > 0)

    def __call__(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """RGB uint8 (H, W, 3) -> RGB uint8 of the same shape."""
        x = image.astype(np.float32)
        if self.brightness != (1.0, 1.0) and rng.random() < self.prob:
            low, high = np.log(self.brightness)
            x *= float(np.exp(rng.uniform(low, high)))
        if self.contrast != (1.0, 1.0) and rng.random() < self.prob:
            mean = float(x.mean())
            x = (x - mean) * rng.uniform(*self.contrast) + mean
        if self.blur_sigma > 0 and rng.random() < self.prob:
            x = cv2.GaussianBlur(x, (0, 0), rng.uniform(0.3, max(0.3, self.blur_sigma)))
        if self.noise_sigma > 0 and rng.random() < self.prob:
            sigma = rng.uniform(0.0, self.noise_sigma)
            x += rng.standard_normal(x.shape, dtype=np.float32) * np.float32(sigma)
        return np.clip(x, 0, 255).astype(np.uint8)


@dataclass(frozen=True)
class TrainTransform:
    """Random scale, pad, flip, crop, normalise.

    Attributes:
        crop_size: Square crop side (pixels).
        scale_min: Lower bound of the uniform random scale.
        scale_max: Upper bound.
        min_short_side: Raise the scale so the shorter side is at least this (0 = off; the
            reference uses 350 with its 500 px crops).
        flip: Random horizontal mirror.
        vflip: Random vertical mirror (a camera looking down on a belt: up/down are alike).
        photometric: Camera-change augmentation applied first (None = off, as in the paper).
    """

    crop_size: int = 500
    scale_min: float = 0.5
    scale_max: float = 2.0
    min_short_side: int = 350
    flip: bool = True
    photometric: PhotometricJitter | None = None
    vflip: bool = False

    def __call__(self, image: np.ndarray, labels: np.ndarray, rng: np.random.Generator
                 ) -> tuple[np.ndarray, np.ndarray]:
        """Returns (float32 (3, C, C) normalised image, int64 (C, C) labels)."""
        if self.photometric is not None and self.photometric.enabled:
            image = self.photometric(image, rng)
        h, w = labels.shape
        scale = rng.uniform(self.scale_min, self.scale_max)
        if self.min_short_side > 0:
            scale = max(scale, self.min_short_side / min(h, w))
        if abs(scale - 1.0) > 1e-3:
            nw, nh = max(1, int(round(w * scale))), max(1, int(round(h * scale)))
            image = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_CUBIC)
            labels = cv2.resize(labels, (nw, nh), interpolation=cv2.INTER_NEAREST)
            h, w = nh, nw
        c = self.crop_size
        if h < c or w < c:
            ph, pw = max(0, c - h), max(0, c - w)
            image = cv2.copyMakeBorder(image, 0, ph, 0, pw, cv2.BORDER_CONSTANT,
                                       value=tuple(int(round(v)) for v in MEAN_PIXEL))
            labels = cv2.copyMakeBorder(labels, 0, ph, 0, pw, cv2.BORDER_CONSTANT,
                                        value=IGNORE_INDEX)
            h, w = labels.shape
        if self.flip and rng.random() < 0.5:
            image = image[:, ::-1]
            labels = labels[:, ::-1]
        if self.vflip and rng.random() < 0.5:
            image = image[::-1]
            labels = labels[::-1]
        y = int(rng.integers(0, h - c + 1))
        x = int(rng.integers(0, w - c + 1))
        image = image[y:y + c, x:x + c]
        labels = labels[y:y + c, x:x + c]
        return normalize(image), np.ascontiguousarray(labels).astype(np.int64)
