"""The reference-notebook inference pipeline, written plainly (see docs/engine.md).

This is the yardstick the engine is tested and benchmarked against: float64 numpy
preprocessing, an fp32 eager forward, OpenCV ``INTER_CUBIC`` resize of the HWC logits and a
numpy argmax. It is deliberately unoptimised; use :class:`~lw_refinenet_ros.engine.
InferenceEngine` for real work.
"""

from __future__ import annotations

import numpy as np

from lw_refinenet_ros import constants

# float64 on purpose: the yardstick normalises in double precision.
IMAGENET_MEAN = np.array(constants.IMAGENET_MEAN, np.float64)
IMAGENET_STD = np.array(constants.IMAGENET_STD, np.float64)

# The OpenCV 5 Python binding resizes at most 128 channels per call (measured: 129 fails).
_CV_MAX_CHANNELS = 128


def reference_preprocess(image_rgb: np.ndarray) -> np.ndarray:
    """``(img / 255 - mean) / std`` in float64, HWC -> 1xCxHxW float32."""
    x = (image_rgb / 255.0 - IMAGENET_MEAN) / IMAGENET_STD
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None]).astype(np.float32)


def reference_logits(model: object, image_rgb: np.ndarray) -> np.ndarray:
    """Full-resolution (H, W, K) float32 logits: fp32 forward, then cv2 bicubic resize."""
    import cv2
    import torch

    height, width = image_rgb.shape[:2]
    x = torch.from_numpy(reference_preprocess(image_rgb))
    with torch.no_grad():
        out = model(x)[0].float().numpy()  # (K, h, w)
    hwc = np.ascontiguousarray(out.transpose(1, 2, 0))
    parts = []
    for start in range(0, hwc.shape[2], _CV_MAX_CHANNELS):
        chunk = np.ascontiguousarray(hwc[:, :, start:start + _CV_MAX_CHANNELS])
        resized = cv2.resize(chunk, (width, height), interpolation=cv2.INTER_CUBIC)
        parts.append(resized.reshape(height, width, -1))
    return np.concatenate(parts, axis=2) if len(parts) > 1 else parts[0]


def reference_segment(model: object, image_rgb: np.ndarray) -> np.ndarray:
    """Labels (H, W) of an RGB uint8 image, exactly as the reference notebooks compute them.

    Args:
        model: An eval-mode LW-RefineNet (fp32, CPU) returning stride-4 logits.
        image_rgb: (H, W, 3) uint8 RGB.

    Returns:
        uint8 labels, or uint16 when K > 256.
    """
    logits = reference_logits(model, image_rgb)
    labels = logits.argmax(axis=2)
    return labels.astype(np.uint8 if logits.shape[2] <= 256 else np.uint16)
