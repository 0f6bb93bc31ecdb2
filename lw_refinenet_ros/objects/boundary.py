"""Split one class region along the network's learned part boundaries.

A model with the part-boundary output (lw_refinenet_ros/model/boundary.py) says, per
stride-4 cell, how likely the cell lies where one part of a class meets another. Where it
does, the detector uses that instead of the hand-made rules (the mask's necks and the
image's dark lines, :mod:`.edges`), which fail where two parts touch without a neck or
motion blur washes the dark line out:

1. **Gate**: a region is looked at only if some cell over its box reaches ``threshold``
   (a max over a few dozen cells, so a frame of single parts costs next to nothing);
2. **Seeds**: the region's pixels whose (bilinearly interpolated) boundary probability is
   below ``threshold`` fall apart into the parts' bodies; bodies of at least ``min_seed``
   pixels seed one part each;
3. **Growth**: every other pixel of the region joins the seed it reaches first through the
   region (:func:`~.edges.grow_regions`), so the seam pixels are shared out and no pixel is
   lost.

numpy + OpenCV only: the map arrives as numbers from the engine's result.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from lw_refinenet_ros.objects.edges import seeded_regions


def check_boundary(boundary: np.ndarray | None, shape: tuple[int, int]) -> None:
    """Refuse a boundary map that cannot belong to a frame of ``shape`` (height, width).

    Raises:
        ValueError: Not a 2-D float map, larger than the frame, or of another aspect than
            the frame's stride grid (it must cover the frame at one common stride).
    """
    if boundary is None:
        return
    if not isinstance(boundary, np.ndarray) or boundary.ndim != 2 \
            or boundary.dtype.kind != 'f':
        raise ValueError(f"boundary must be a 2-D float probability map at the network's "
                         f'stride, got {getattr(boundary, "shape", type(boundary))} '
                         f'{getattr(boundary, "dtype", "")}; pass result.boundary as it comes.')
    rows, cols = boundary.shape
    height, width = shape
    if rows > height or cols > width or rows < 1 or cols < 1:
        raise ValueError(f'boundary map {boundary.shape} does not fit labels {shape}; pass '
                         f'the map of the same frame.')
    # One stride for both axes (ceil at the borders): each side's cell size must agree.
    stride_y, stride_x = height / rows, width / cols
    if not math.isclose(stride_y, stride_x, rel_tol=0.15):
        raise ValueError(f'boundary map {boundary.shape} has another aspect than labels '
                         f'{shape}; pass the map of the same frame.')


class BoundaryMap:
    """A frame's part-boundary probability, read per region box (in label pixels).

    Args:
        boundary: (h, w) float probability at the network's stride.
        shape: (height, width) of the labels.
    """

    def __init__(self, boundary: np.ndarray, shape: tuple[int, int]) -> None:
        self._map = np.ascontiguousarray(boundary, dtype=np.float32)
        self._scale_y = boundary.shape[0] / shape[0]
        self._scale_x = boundary.shape[1] / shape[1]

    def peak(self, box: tuple[int, int, int, int]) -> float:
        """Highest cell value over the cells a box (x, y, w, h) touches."""
        x, y, w, h = box
        r0, c0 = int(y * self._scale_y), int(x * self._scale_x)
        r1 = max(r0 + 1, math.ceil((y + h) * self._scale_y))
        c1 = max(c0 + 1, math.ceil((x + w) * self._scale_x))
        return float(self._map[r0:r1, c0:c1].max())

    def crop(self, box: tuple[int, int, int, int]) -> np.ndarray:
        """(h, w) probability at the box's pixels, bilinear between cell centres."""
        x, y, w, h = box
        cols = (np.arange(x, x + w, dtype=np.float32) + 0.5) * self._scale_x - 0.5
        rows = (np.arange(y, y + h, dtype=np.float32) + 0.5) * self._scale_y - 0.5
        map_x = np.ascontiguousarray(np.broadcast_to(cols[None, :], (h, w)))
        map_y = np.ascontiguousarray(np.broadcast_to(rows[:, None], (h, w)))
        return cv2.remap(self._map, map_x, map_y, cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_REPLICATE)


def split_by_boundary(probability: np.ndarray, mask: np.ndarray, threshold: float,
                      min_seed: int) -> np.ndarray | None:
    """Split one region where the boundary probability is high.

    Args:
        probability: (H, W) boundary probability over the region's crop.
        mask: bool (H, W) region.
        threshold: Pixels at or above it are seam, not body.
        min_seed: Smallest body that seeds a part, pixels.

    Returns:
        uint16 part ids (1..n, n >= 2) per mask pixel, 0 outside; None when the seams do not
        cut the region into two bodies of ``min_seed`` pixels.
    """
    seeded = seeded_regions(mask & (probability < threshold), mask, min_seed)
    return None if seeded is None else seeded[0]
