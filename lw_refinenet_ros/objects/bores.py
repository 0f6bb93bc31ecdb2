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
"""

from __future__ import annotations

import cv2
import numpy as np


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
    ids = labels[on_holes].astype(np.intp)
    scene = np.ones(ids.shape, bool)
    known = ids < scene_classes.size
    scene[known] = scene_classes[ids[known]]
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
