"""Training augmentation of the reference recipe (numpy + OpenCV; torch only at the end).

Order as in the reference v1 ``src/train.py``: random scale (image cubic, mask nearest),
pad to the crop size (image with the mean pixel, which normalises to 0; mask with 255),
random horizontal flip, random crop, ImageNet normalisation.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)
MEAN_PIXEL = tuple(float(v) for v in IMAGENET_MEAN * 255.0)  # (123.675, 116.28, 103.53)
IGNORE_INDEX = 255


def normalize(image: np.ndarray) -> np.ndarray:
    """RGB uint8 (H, W, 3) -> float32 CHW, ``(x / 255 - mean) / std``."""
    x = (image.astype(np.float32) / 255.0 - IMAGENET_MEAN) / IMAGENET_STD
    return np.ascontiguousarray(x.transpose(2, 0, 1))


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
    """

    crop_size: int = 500
    scale_min: float = 0.5
    scale_max: float = 2.0
    min_short_side: int = 350
    flip: bool = True

    def __call__(self, image: np.ndarray, labels: np.ndarray, rng: np.random.Generator
                 ) -> tuple[np.ndarray, np.ndarray]:
        """Returns (float32 (3, C, C) normalised image, int64 (C, C) labels)."""
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
        y = int(rng.integers(0, h - c + 1))
        x = int(rng.integers(0, w - c + 1))
        image = image[y:y + c, x:x + c]
        labels = labels[y:y + c, x:x + c]
        return normalize(image), np.ascontiguousarray(labels).astype(np.int64)
