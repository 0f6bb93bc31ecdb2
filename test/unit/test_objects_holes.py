"""A part's own holes do not cut it: the neck and edge splits around bolt holes.

On the conveyor videos the commonest false split was a bracket cut at a bolt hole: the
neck rule, run on the hole-filled mask, took the ring of material around a hole for a round
body, and the edge rule took the hole's dark rim for the line between two parts.
"""

from __future__ import annotations

import cv2
import numpy as np

from lw_refinenet_ros.objects.detect import DetectorSettings, detect_objects, part_class_lut
from lw_refinenet_ros.objects.edges import split_by_edges

NAMES = ('background', 'belt', 'bracket')
PARTS = part_class_lut(NAMES, ('background', 'belt'))
BELT, BRACKET = 1, 2


def bracket_ends_with_holes() -> np.ndarray:
    """A bracket seen with both arm ends (each around its bolt hole) and a narrow elbow:
    filled, the two ends are round bodies joined by a neck."""
    labels = np.full((70, 90), BELT, np.uint8)
    labels[10:30, 10:30] = BRACKET          # one arm's end
    labels[40:60, 50:70] = BRACKET          # the other arm's end
    cv2.line(labels, (29, 29), (50, 40), BRACKET, 5)   # the elbow, narrow in the labels
    cv2.circle(labels, (20, 20), 6, BELT, -1)          # bolt holes
    cv2.circle(labels, (60, 50), 6, BELT, -1)
    return labels


def test_the_ring_around_a_bolt_hole_is_no_body_to_split_off() -> None:
    labels = bracket_ends_with_holes()
    objects = detect_objects(labels, PARTS, DetectorSettings())
    assert len(objects) == 1
    assert objects[0].pixel_count == int((labels == BRACKET).sum())


def test_two_solid_parts_at_a_neck_are_still_two() -> None:
    labels = bracket_ends_with_holes()
    labels[10:30, 10:30] = BRACKET          # no holes: two bodies joined by a thin neck
    labels[40:60, 50:70] = BRACKET
    assert len(detect_objects(labels, PARTS, DetectorSettings())) == 2


def arm_with_rimmed_hole() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A bracket's arm (12 px thick) with a bolt hole near its end, and the image's dark-line
    contrast: the hole's dark rim, as wide as the arm (the belt shows through the hole and the
    blur spreads it). Returns (mask, contrast, holes)."""
    mask = np.zeros((32, 100), bool)
    mask[10:22, 10:90] = True
    cv2.circle(mask.view(np.uint8), (80, 16), 3, 0, -1)
    holes = np.zeros_like(mask)
    cv2.circle(holes.view(np.uint8), (80, 16), 3, 1, -1)
    contrast = np.zeros(mask.shape, np.float32)
    cv2.circle(contrast, (80, 16), 5, 0.4, 2)
    return mask, contrast, holes


def test_a_dark_hole_rim_does_not_cut_an_arm_end_off() -> None:
    mask, contrast, holes = arm_with_rimmed_hole()
    assert split_by_edges(contrast, mask, 20, holes=holes) is None


def test_without_its_holes_the_rim_cuts_the_arm_end_off() -> None:
    # What the hole margin prevents: the rim alone separates the arm's end.
    mask, contrast, _ = arm_with_rimmed_hole()
    regions = split_by_edges(contrast, mask, 20)
    assert regions is not None and int(regions.max()) == 2
    assert regions[16, 30] != regions[16, 88]


def test_a_dark_line_across_the_part_away_from_holes_still_splits() -> None:
    mask, contrast, holes = arm_with_rimmed_hole()
    contrast[:, 44:46] = 0.4                 # another part's rim and shadow across the arm
    regions = split_by_edges(contrast, mask, 20, holes=holes)
    assert regions is not None
    left, middle = regions[16, 30], regions[16, 60]
    assert left > 0 and middle > 0 and left != middle
    assert regions[16, 60] == regions[16, 88]   # the end stays with its arm
