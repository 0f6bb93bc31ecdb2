"""The part-boundary target: the seams between touching or overlapping parts of one class.

The boundary head (lw_refinenet_ros/model/boundary.py) learns, per stride-4 cell, whether
one part of a class meets another part of the *same* class there: where two bolts touch or
one lies across the other. Class labels never show these seams (both sides are ``bolt``); the
instance ground truth does (the conveyor generator knows every part it drew, data/instances.py
reads it from files). Edges between different classes, or between a part and the belt, are
not seams: the labels already separate those.

A pixel is on a seam when a different instance of its class lies within ``radius`` pixels; a
cell is positive when any of its 4x4 pixels is. numpy + OpenCV, no torch.
"""

from __future__ import annotations

import cv2
import numpy as np

from lw_refinenet_ros.constants import OUTPUT_STRIDE

#: Seam half-width in image pixels: a seam pixel has another part of its class this close.
SEAM_RADIUS = 2


def seam_pixels(labels: np.ndarray, instances: np.ndarray, radius: int = SEAM_RADIUS,
                ) -> np.ndarray:
    """bool (H, W): part pixels with a different instance of the same class within
    ``radius`` pixels (a square window).

    Args:
        labels: (H, W) class ids.
        instances: (H, W) part ids, 0 where no part lies (same size as ``labels``).
        radius: Half-width of the window, >= 1.

    Raises:
        ValueError: Different shapes, not 2-D, or ``radius`` < 1.
    """
    if labels.ndim != 2 or labels.shape != instances.shape:
        raise ValueError(f'labels {labels.shape} and instances {instances.shape} must be the '
                         f'same (H, W) image.')
    if radius < 1:
        raise ValueError(f'radius must be at least 1 pixel, got {radius}.')
    kernel = np.ones((2 * radius + 1, 2 * radius + 1), np.uint8)
    ids = instances.astype(np.int32)
    seams = np.zeros(labels.shape, bool)
    for class_id in np.unique(labels[ids > 0]):
        own = (labels == class_id) & (ids > 0)
        part_ids = np.where(own, ids, 0).astype(np.float32)
        # The largest and the smallest id of this class around each pixel: a pixel sees
        # another part of its class when either differs from its own id.
        highest = cv2.dilate(part_ids, kernel, borderType=cv2.BORDER_CONSTANT, borderValue=0)
        lowest = cv2.erode(np.where(own, part_ids, np.float32(np.inf)), kernel,
                           borderType=cv2.BORDER_CONSTANT, borderValue=float(np.inf))
        seams |= own & ((highest != part_ids) | (lowest != part_ids))
    return seams


def boundary_target(labels: np.ndarray, instances: np.ndarray, radius: int = SEAM_RADIUS,
                    ) -> np.ndarray:
    """float32 (ceil(H/4), ceil(W/4)) target of the boundary head: 1 where the stride-4 cell
    holds a seam pixel (:func:`seam_pixels`), else 0; the cell grid is the network's."""
    seams = seam_pixels(labels, instances, radius)
    height, width = seams.shape
    rows, cols = -(-height // OUTPUT_STRIDE), -(-width // OUTPUT_STRIDE)
    padded = np.zeros((rows * OUTPUT_STRIDE, cols * OUTPUT_STRIDE), bool)
    padded[:height, :width] = seams
    cells = padded.reshape(rows, OUTPUT_STRIDE, cols, OUTPUT_STRIDE).any(axis=(1, 3))
    return cells.astype(np.float32)
