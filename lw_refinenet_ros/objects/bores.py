"""Parts with one hole each: a region that shows two such holes is two parts.

A nut, a washer and a gear each have one hole through them (the bore, the shaft hole), and
the belt shows through it. Two of them of one class lying on each other give one label
region, and often no neck for :func:`~lw_refinenet_ros.objects.detect.split_regions` to cut
(two washers overlapping make a round blob) and no dark line for the edge split (blur, or
two parts of one colour). Their holes still show: a region of such a class with two holes
holds two parts, each around its own hole. Every pixel of the region goes to the hole
nearest to it.

Not every hole of a region is a part's hole:

* a part of the same class beneath, seen through the bore, cuts the bore into pieces a few
  pixels apart; holes closer than ``merge_gap`` are one hole (on the validation videos the
  pieces of one bore were at most 2.2 px apart, two parts' holes at least 8.8 px);
* a hole in which another part shows (a nut lying on a gear) is not the region's own: at
  least half of a hole's pixels must be scene (belt, background);
* a pocket of belt left between two parts, or a pinhole the labels left, is far smaller
  than a bore: a hole must be at least ``min_area`` pixels and at least half the largest
  one.

A bore can also be open: where another part lies across a washer's ring, the labels cut the
ring, and the belt in the bore reaches the other part instead of being closed in by the ring.
:func:`enclosed_holes` finds such bores: belt closed in by the region together with the parts
around it, and bordered mostly (:data:`OPEN_BORE_RIM_SHARE`) by the region itself, which tells
a bore from a pocket of belt between a gear's teeth and a bracket.
"""

from __future__ import annotations

import cv2
import numpy as np

#: An enclosed patch of belt is a bore when at least this share of the pixels around it is
#: the region's own (a pocket between a gear's teeth and a bracket is about half; chosen on
#: the validation videos: 0.5 cut single gears at such pockets, 0.8 found almost no bores).
OPEN_BORE_RIM_SHARE = 0.7
_RING = np.ones((3, 3), np.uint8)


def _is_scene(labels: np.ndarray, scene_classes: np.ndarray) -> np.ndarray:
    """bool: which pixels of ``labels`` are scene (ids beyond the lookup count as scene)."""
    if labels.dtype == np.uint8 and scene_classes.size <= 256:
        lookup = np.ones(256, bool)  # one gather, the common case of 8-bit labels
        lookup[:scene_classes.size] = scene_classes
        return lookup[labels]
    out = np.ones(labels.shape, bool)
    known = labels < scene_classes.size
    out[known] = scene_classes[labels[known]]
    return out


def enclosed_holes(mask: np.ndarray, labels: np.ndarray, scene_classes: np.ndarray,
                   min_area: int) -> np.ndarray | None:
    """The region's bores, open ones included: scene pixels of the crop that do not reach
    its border (other parts and the region close them in) and that the region itself
    borders for at least :data:`OPEN_BORE_RIM_SHARE` of their rim.

    Args:
        mask: bool (H, W), the region's pixels.
        labels: (H, W) class ids of the region's crop.
        scene_classes: bool lookup by class id, True for the classes that are no part.
        min_area: Smallest hole :func:`split_at_holes` counts; patches under half of it
            are not looked at (the two halves of a bore cut by a part beneath are each
            about half).

    Returns:
        bool (H, W) holes, or None when fewer than two (one hole splits nothing).
    """
    scene = _is_scene(labels, scene_classes)
    if not np.any(~scene & ~mask):
        return None  # no other part to close a bore in: only the region's own holes
    count, components, stats, _ = cv2.connectedComponentsWithStats(
        scene.view(np.uint8), connectivity=4)
    height, width = mask.shape
    x, y, w, h, area = (stats[1:, i] for i in range(5))
    # Not reaching the crop's border (the belt around the parts), and large enough to count.
    inner = np.nonzero((x > 0) & (y > 0) & (x + w < width) & (y + h < height)
                       & (2 * area >= min_area))[0] + 1
    if inner.size < 2:
        return None
    holes = np.zeros(mask.shape, bool)
    for k in inner:
        x, y, w, h = stats[k, :4]
        x0, y0 = max(x - 1, 0), max(y - 1, 0)
        patch = components[y0:y + h + 1, x0:x + w + 1] == k
        rim = cv2.dilate(patch.view(np.uint8), _RING).view(bool) & ~patch
        own = np.count_nonzero(rim & mask[y0:y + h + 1, x0:x + w + 1])
        if own >= OPEN_BORE_RIM_SHARE * np.count_nonzero(rim):
            holes[y0:y + h + 1, x0:x + w + 1] |= patch
    return holes if cv2.connectedComponents(holes.view(np.uint8))[0] > 2 else None


def split_at_holes(mask: np.ndarray, holes: np.ndarray, labels: np.ndarray,
                   scene_classes: np.ndarray, min_area: int,
                   merge_gap: float) -> np.ndarray | None:
    """The parts in one region of a one-hole class, one per hole it shows.

    Args:
        mask: bool (H, W), the region's pixels (pinholes filled).
        holes: bool (H, W), the pixels inside the region's outline that are not its class.
        labels: (H, W) class ids of the region's crop.
        scene_classes: bool lookup by class id, True for the classes that are no part (belt,
            background); ids beyond it count as scene.
        min_area: Smallest hole that counts, in pixels.
        merge_gap: Holes less than this many pixels apart are one hole.

    Returns:
        int32 (H, W): part 1..N on ``mask``, 0 elsewhere; None when fewer than two holes
        count (the region is left to the other rules).
    """
    count, components, stats, _ = cv2.connectedComponentsWithStats(
        holes.view(np.uint8), connectivity=4)
    # Cheap refusal first: nearly every region of these classes has its one bore.
    if count < 3 or np.count_nonzero(stats[1:, cv2.CC_STAT_AREA] * 2 >= min_area) < 2:
        return None
    radius = max(int(np.ceil(merge_gap / 2.0)), 0)
    grown = holes.view(np.uint8)
    if radius:
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1,) * 2)
        grown = cv2.dilate(grown, kernel)
    groups, group_of = cv2.connectedComponents(grown, connectivity=8)
    group_of = np.where(holes, group_of, 0)
    area = np.bincount(group_of.ravel(), minlength=groups)
    on_holes = group_of > 0
    scene = _is_scene(labels[on_holes], scene_classes)
    own = np.bincount(group_of[on_holes][scene], minlength=groups)
    area[0] = own[0] = 0
    qualified = (area >= min_area) & (2 * own >= area)
    if np.count_nonzero(qualified) < 2:
        return None
    qualified &= 2 * area >= area[qualified].max()
    kept = np.nonzero(qualified)[0]
    if kept.size < 2:
        return None
    index = np.zeros(groups, np.int32)
    index[kept] = np.arange(1, kept.size + 1, dtype=np.int32)
    bore = index[group_of]  # 1..N on the kept holes' pixels, 0 elsewhere
    _, nearest = cv2.distanceTransformWithLabels(
        (bore == 0).view(np.uint8), cv2.DIST_L2, 5, labelType=cv2.DIST_LABEL_CCOMP)
    # Each labelled zero-component lies inside one kept hole (a hole cut in pieces by a part
    # beneath has several): map the transform's labels to the holes' numbers.
    lut = np.zeros(int(nearest.max()) + 1, np.int32)
    on_bore = bore > 0
    lut[nearest[on_bore]] = bore[on_bore]
    return np.where(mask, lut[nearest], 0).astype(np.int32)
