"""Geometry of one part's mask: pick point, principal axes, outline (numpy + OpenCV).

Every function takes a small boolean or uint8 mask cropped to the part's bounding box; the
caller adds the crop's offset. Pixel centres lie at integer coordinates, as in
``segmentation/stats``.
"""

from __future__ import annotations

from dataclasses import dataclass
import math

import cv2
import numpy as np


def as_uint8(mask: np.ndarray) -> np.ndarray:
    """``mask`` as uint8 for OpenCV: a bool mask is viewed (no copy: the detector calls this
    a few times per part per frame), other masks converted only when needed."""
    return mask.view(np.uint8) if mask.dtype == bool else mask.astype(np.uint8, copy=False)


@dataclass(frozen=True)
class Axes:
    """Second-moment shape of a mask, as its equivalent ellipse.

    Attributes:
        centroid: (x, y) mean pixel position in the crop.
        orientation: Angle of the major axis from the image x axis toward +y (down), radians
            in (-pi/2, pi/2].
        major_length: Full length of the equivalent ellipse's major axis, pixels.
        minor_length: Full length of its minor axis, pixels (the width a parallel gripper
            closes on).
    """

    centroid: tuple[float, float]
    orientation: float
    major_length: float
    minor_length: float


def principal_axes(mask: np.ndarray) -> Axes:
    """Centroid, orientation and axis lengths from the mask's second moments.

    The equivalent ellipse (same area and second moments) has semi-axes ``2 * sqrt(lambda)``
    for the eigenvalues ``lambda`` of the covariance, so a w x h rectangle gives full lengths
    of about ``w * 2 / sqrt(3)`` and ``h * 2 / sqrt(3)``.
    """
    moments = cv2.moments(as_uint8(mask), binaryImage=True)
    area = moments['m00']
    if area <= 0:
        return Axes((math.nan, math.nan), 0.0, 0.0, 0.0)
    cx, cy = moments['m10'] / area, moments['m01'] / area
    a, b, c = moments['mu20'] / area, moments['mu11'] / area, moments['mu02'] / area
    spread = math.sqrt(max(0.0, 4.0 * b * b + (a - c) ** 2))
    major = 4.0 * math.sqrt(max(0.0, (a + c + spread) / 2.0))
    minor = 4.0 * math.sqrt(max(0.0, (a + c - spread) / 2.0))
    angle = 0.5 * math.atan2(2.0 * b, a - c)
    if angle <= -math.pi / 2:
        angle += math.pi
    return Axes((cx, cy), angle, major, minor)


def clearance_map(mask: np.ndarray) -> np.ndarray:
    """Distance (pixels) from each mask pixel to the nearest non-mask pixel (float32).

    The crop is padded by one pixel so that its own border counts as edge: a part cut by the
    image border has an edge there as far as a gripper is concerned.
    """
    padded = cv2.copyMakeBorder(as_uint8(mask), 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0)
    return cv2.distanceTransform(padded, cv2.DIST_L2, cv2.DIST_MASK_5)[1:-1, 1:-1]


def pick_point(mask: np.ndarray, centroid: tuple[float, float] | None = None,
               distance: np.ndarray | None = None) -> tuple[tuple[int, int], float]:
    """The mask pixel farthest from the part's edge (where a suction cup seals best).

    Ties (a ring, a bar) go to the candidate nearest the centroid, so the point is stable
    from frame to frame. The returned pixel always belongs to the mask. ``distance`` is the
    mask's :func:`clearance_map` when the caller already has it.

    Returns:
        ``((x, y), clearance)``: the pixel in crop coordinates and its distance to the edge;
        ``((-1, -1), 0.0)`` for an empty mask.
    """
    if distance is None:
        distance = clearance_map(mask)
    # minMaxLoc: the same max as numpy's, several times cheaper on a crop's view
    best = cv2.minMaxLoc(distance)[1] if distance.size else 0.0
    if best <= 0.0:
        return (-1, -1), 0.0
    ys, xs = np.nonzero(distance >= best - 1e-3)
    if xs.size > 1 and centroid is not None:
        index = int(np.argmin((xs - centroid[0]) ** 2 + (ys - centroid[1]) ** 2))
    else:
        index = 0
    return (int(xs[index]), int(ys[index])), best


def outline(mask: np.ndarray, max_points: int) -> np.ndarray:
    """The outer outline of the mask, simplified to at most ``max_points`` vertices.

    Returns:
        float32 (N, 2) (x, y) vertices in crop coordinates; (0, 2) when empty or not wanted.
    """
    if max_points <= 0:
        return np.zeros((0, 2), np.float32)
    contours, _ = cv2.findContours(as_uint8(mask), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    if not contours:
        return np.zeros((0, 2), np.float32)
    contour = max(contours, key=cv2.contourArea)
    epsilon = 0.5
    while len(contour) > max_points and epsilon < 1e6:
        contour = cv2.approxPolyDP(contour, epsilon, True)
        epsilon *= 1.5
    return contour.reshape(-1, 2)[:max_points].astype(np.float32)
