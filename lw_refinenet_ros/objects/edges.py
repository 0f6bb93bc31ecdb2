"""Split overlapping parts of one class where the camera sees the upper part's edge.

A semantic label image cannot separate two bolts lying across each other: both are ``bolt``
and their union has no neck for :func:`~lw_refinenet_ros.objects.detect.split_regions` to
cut. The camera image can. Where one part lies on another, the upper part's rim and the
shadow it casts on the lower one draw a thin line darker than both surfaces around it. Such a
line is what this module looks for, inside the mask of one class only:

1. **Dark-line contrast** (:func:`dark_line_contrast`): a morphological closing removes dark
   lines narrower than its kernel; how much darker a pixel is than that closing, relative to
   it, is its contrast (0 on flat or bright structure, so a metal part's specular band or
   its shading gradient do not count).
2. **Seeds**: the mask, shrunk by a pixel so that the part's own outer rim drops out, minus
   the dark-line pixels, falls apart into the surfaces between lines. Surfaces of at least
   ``min_seed`` pixels seed one region each, and every other pixel joins the seed it reaches
   first through the mask.
3. **Boundary check**: two regions stay apart only if the pixels along their common boundary
   are, on average, a dark line (``boundary_contrast``); a boundary through plain surface
   (noise broke a thin ring of a nut in two, say) merges them back. Boundary pixels within
   ``hole_margin`` of one of the part's own holes do not count: a hole's rim is dark too, so
   a bracket's arm end beyond its bolt hole was cut off along the rim on either side of the
   hole (the commonest false split on the conveyor videos); only a line that continues
   across the part's surface away from the holes keeps two regions apart.

It is a rule about images, not about parts: a part with engraved or painted dark lines on
its surface can be cut along them. That is why it only runs on regions whose outline is not
convex (one part seen whole is nearly convex; two overlapping parts leave notches) and why
``objects.split_edges`` turns it off.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from lw_refinenet_ros.objects.geometry import as_uint8

_KERNEL = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (7, 7))
# Lines up to about 6 px wide (a rim plus a cast shadow at 320x240) are removed by the
# closing; the padding keeps the crop's border from inventing lines.
PAD = 4
_SMOOTH_SIGMA = 1.0
_DARK_OFFSET = 8.0  # grey levels: keeps the ratio finite on black surfaces
_SQUARE = np.ones((3, 3), np.uint8)  # one 8-connected pixel ring


@dataclass(frozen=True)
class EdgeSplitSettings:
    """Thresholds of the edge split.

    Attributes:
        line_contrast: A pixel this much darker than its closing (fraction) is on a line.
        boundary_contrast: Two regions stay apart when their boundary's mean contrast is at
            least this.
        min_boundary: Shorter boundaries (pixels) are merged regardless: a touch, not a line.
        hole_margin: Boundary pixels this close (pixels) to a hole of the part are its hole's
            rim, not a line between parts, and are not counted.
    """

    line_contrast: float = 0.10
    boundary_contrast: float = 0.15
    min_boundary: int = 4
    hole_margin: float = 3.5


def grey(image: np.ndarray) -> np.ndarray:
    """float32 brightness of an (H, W) or (H, W, C) image: the channel mean, which is the same
    for RGB and BGR, so callers need not say their channel order."""
    if image.ndim == 2:
        return image.astype(np.float32)
    mean = cv2.transform(image.astype(np.float32, copy=False), _mean_weights(image.shape[2]))
    return mean.reshape(image.shape[:2])


@lru_cache(maxsize=8)
def _mean_weights(channels: int) -> np.ndarray:
    """The (1, channels) float32 transform that averages the channels (made once)."""
    return np.full((1, channels), 1.0 / channels, np.float32)


def dark_line_contrast(brightness: np.ndarray) -> np.ndarray:
    """How much darker each pixel is than its surroundings, as a fraction (0 = not darker).

    Args:
        brightness: float32 (H, W) grey image (:func:`grey`).
    """
    smooth = cv2.GaussianBlur(brightness, (0, 0), _SMOOTH_SIGMA,
                              borderType=cv2.BORDER_REPLICATE)
    closed = cv2.morphologyEx(smooth, cv2.MORPH_CLOSE, _KERNEL, borderType=cv2.BORDER_REPLICATE)
    return (closed - smooth) / (closed + _DARK_OFFSET)


def grow_regions(regions: np.ndarray, inside: np.ndarray) -> np.ndarray:
    """Flood ``inside`` from the labelled seeds in ``regions`` (uint16, 0 = unassigned), one
    pixel ring per step: each pixel joins the seed it reaches first through ``inside``.
    Modifies and returns ``regions``."""
    todo = inside & (regions == 0)
    while todo.any():
        grown = cv2.dilate(regions, _SQUARE)
        reached = todo & (grown > 0)
        if not reached.any():
            break  # pixels no seed can reach through the mask
        regions[reached] = grown[reached]
        todo &= ~reached
    return regions


def _boundary_means(regions: np.ndarray, contrast: np.ndarray, count: int,
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every pair of 4-adjacent regions ``(a, b)``, a < b, as ``(keys, mean contrast,
    length)``: key ``a * (count + 1) + b``, the mean of the higher contrast of the two pixels
    across each boundary step, and the number of such steps."""
    pairs_a, pairs_b, values = [], [], []
    for a, b, ca, cb in ((regions[:, :-1], regions[:, 1:], contrast[:, :-1], contrast[:, 1:]),
                         (regions[:-1, :], regions[1:, :], contrast[:-1, :], contrast[1:, :])):
        touching = (a > 0) & (b > 0) & (a != b)
        pairs_a.append(a[touching].astype(np.int64))
        pairs_b.append(b[touching].astype(np.int64))
        values.append(np.maximum(ca[touching], cb[touching]))
    first, second = np.concatenate(pairs_a), np.concatenate(pairs_b)
    value = np.concatenate(values)
    key = np.minimum(first, second) * (count + 1) + np.maximum(first, second)
    keys, inverse = np.unique(key, return_inverse=True)
    length = np.bincount(inverse)
    mean = np.bincount(inverse, weights=value) / np.maximum(length, 1)
    return keys, mean, length


def seeded_regions(bodies: np.ndarray, mask: np.ndarray,
                   min_seed: int) -> tuple[np.ndarray, int] | None:
    """Part ids grown over ``mask`` from the connected ``bodies`` of at least ``min_seed`` px.

    Both splitters (dark lines here, a learned boundary in ``boundary.py``) find the surfaces
    between seams and let each big one claim the mask around it; smaller bodies (slivers,
    noise) seed nothing. Returns (uint16 ids 1..n per mask pixel, n), or None below two seeds.
    """
    count, components = cv2.connectedComponents(as_uint8(bodies), connectivity=4)
    if count < 3:
        return None
    areas = np.bincount(components.ravel(), minlength=count)
    seeds = np.flatnonzero(areas[1:] >= min_seed) + 1
    if len(seeds) < 2:
        return None
    lut = np.zeros(count, np.uint16)
    lut[seeds] = np.arange(1, len(seeds) + 1)
    return grow_regions(lut[components], mask), len(seeds)


def _away_from_holes(regions: np.ndarray, holes: np.ndarray | None,
                     margin: float) -> np.ndarray:
    """``regions`` with the pixels within ``margin`` of a hole set to 0 (not a boundary)."""
    if holes is None or not holes.any():
        return regions
    distance = cv2.distanceTransform((~holes).astype(np.uint8), cv2.DIST_L2, 3)
    return np.where(distance > margin, regions, 0).astype(regions.dtype)


def split_by_edges(contrast: np.ndarray, mask: np.ndarray, min_seed: int,
                   settings: EdgeSplitSettings = EdgeSplitSettings(),
                   holes: np.ndarray | None = None) -> np.ndarray | None:
    """Split one class region along the dark lines inside it.

    Args:
        contrast: (H, W) :func:`dark_line_contrast` of the region's crop.
        mask: bool (H, W) region.
        min_seed: Smallest seed, pixels: a surface between lines seeds a region only if it
            has this many pixels, so a sliver between a rim and a shadow is no part.
        settings: The thresholds.
        holes: Optional bool (H, W) holes of the region (inside its outline, not in it, e.g.
            a bracket's bolt holes); boundaries along their rims do not separate parts.

    Returns:
        uint16 region ids (1..n, n >= 2) per mask pixel, 0 outside; None when the image shows
        no line that separates parts.
    """
    inner = cv2.erode(as_uint8(mask), _SQUARE, borderValue=0) > 0
    surfaces = inner & (contrast < settings.line_contrast)
    if int(np.count_nonzero(surfaces)) < 2 * min_seed:
        return None
    seeded = seeded_regions(surfaces, mask, min_seed)
    if seeded is None:
        return None
    regions, n = seeded
    parent = list(range(n + 1))

    def root(index: int) -> int:
        while parent[index] != index:
            parent[index] = parent[parent[index]]
            index = parent[index]
        return index

    keys, mean, length = _boundary_means(regions, contrast, n)
    core = _away_from_holes(regions, holes, settings.hole_margin)
    if core is not regions:
        # Only the boundary away from the holes counts; a pair that touches only beside a
        # hole has none left (length 0) and merges.
        counted = _boundary_means(core, contrast, n)
        kept = {key: (value, size) for key, value, size in zip(*(a.tolist() for a in counted))}
        mean = np.array([kept.get(key, (0.0, 0))[0] for key in keys.tolist()])
        length = np.array([kept.get(key, (0.0, 0))[1] for key in keys.tolist()])
    for key, value, size in zip(keys.tolist(), mean.tolist(), length.tolist()):
        if value < settings.boundary_contrast or size < settings.min_boundary:
            low, high = root(key // (n + 1)), root(key % (n + 1))
            if low != high:
                parent[high] = low
    roots = sorted({root(index) for index in range(1, n + 1)})
    if len(roots) < 2:
        return None
    merged = np.zeros(n + 1, np.uint16)
    for index in range(1, n + 1):
        merged[index] = roots.index(root(index)) + 1
    return merged[regions]
