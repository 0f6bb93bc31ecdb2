"""Parts with one hole each (nuts, washers, gears): a region showing two holes is two parts.

Two washers lying on each other make one round label blob: no neck to cut, and no dark line
when they are blurred or of one colour. Their holes still show, one per washer.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from lw_refinenet_ros.errors import ConfigError
from lw_refinenet_ros.objects.bores import enclosed_holes, split_at_holes
from lw_refinenet_ros.objects.detect import (
    ONE_HOLE_PART,
    PART,
    SCENE,
    DetectorSettings,
    detect_objects,
    part_class_lut,
)
from lw_refinenet_ros.objects.options import ObjectsConfig
from lw_refinenet_ros.objects.processor import ObjectProcessor

NAMES = ('background', 'belt', 'washer', 'bolt')
BELT, WASHER, BOLT = 1, 2, 3
PARTS = part_class_lut(NAMES, ('background', 'belt'), ('washer',))
CENTRES = ((40, 40), (64, 46))


def washers(centres=CENTRES, outer: int = 18, bore: int = 8) -> np.ndarray:
    """Washers of one class drawn over each other, each with its bore showing the belt
    (the later one lies on top and covers the bore of the one beneath only if it reaches it)."""
    labels = np.full((90, 120), BELT, np.uint8)
    for x, y in centres:
        cv2.circle(labels, (x, y), outer, WASHER, -1)
    for x, y in centres:
        cv2.circle(labels, (x, y), bore, BELT, -1)
    return labels


def filled_outline(mask: np.ndarray) -> np.ndarray:
    """The region's outer outline, filled (as the detector passes it)."""
    filled = np.zeros(mask.shape, np.uint8)
    contours, _ = cv2.findContours(mask.view(np.uint8), cv2.RETR_EXTERNAL,
                                   cv2.CHAIN_APPROX_NONE)
    cv2.drawContours(filled, contours, -1, 1, cv2.FILLED)
    return filled.view(bool)


def test_the_lookup_says_what_each_class_is() -> None:
    lut = part_class_lut(NAMES, ('background', 'belt'), ('washer', 'gear'))
    assert lut.tolist() == [SCENE, SCENE, ONE_HOLE_PART, PART]
    # An ignored class is scene even when also named a one-hole class.
    assert part_class_lut(NAMES, ('washer',), ('washer',))[WASHER] == SCENE


def test_a_one_hole_class_id_beyond_the_model_is_refused() -> None:
    with pytest.raises(ConfigError, match='objects.one_hole_classes.*4 classes'):
        part_class_lut(NAMES, (), ('9',))


def test_two_overlapping_washers_are_two_parts_each_picked_on_its_own_ring() -> None:
    labels = washers()
    found = detect_objects(labels, PARTS, DetectorSettings(), image=None)
    assert len(found) == 2
    for obj, (cx, cy) in zip(sorted(found, key=lambda o: o.pick[0]), CENTRES):
        px, py = obj.pick
        assert labels[py, px] == WASHER
        assert np.hypot(px - cx, py - cy) < 18, 'the pick point lies on its own washer'


def test_without_the_hole_rule_the_pair_stays_one_object() -> None:
    """The premise: the blob has no neck (both rings are thinner than a part body)."""
    plain = part_class_lut(NAMES, ('background', 'belt'))
    assert len(detect_objects(washers(), plain, DetectorSettings())) == 1


def test_one_washer_is_one_part() -> None:
    assert len(detect_objects(washers(centres=((50, 45),)), PARTS, DetectorSettings())) == 1


def test_three_washers_in_a_row_are_three_parts() -> None:
    labels = washers(centres=((30, 45), (56, 45), (82, 45)))
    assert len(detect_objects(labels, PARTS, DetectorSettings())) == 3


def test_a_part_of_another_class_inside_the_outline_is_no_hole() -> None:
    """A bolt lying on a washer, inside its outline: the region has a second hole, but the
    bolt shows in it, not the belt."""
    labels = washers(centres=((50, 45),), outer=28, bore=7)
    labels[36:44, 58:70] = BOLT
    found = [o for o in detect_objects(labels, PARTS, DetectorSettings())
             if o.class_id == WASHER]
    assert len(found) == 1


def test_a_bore_cut_by_a_part_beneath_is_one_hole() -> None:
    """A washer beneath, seen through the upper one's bore, cuts the bore in two pieces
    2 px apart: still one hole, one part."""
    labels = washers(centres=((50, 45),), outer=20, bore=9)
    labels[44:46, 40:61] = WASHER
    mask = labels == WASHER
    holes = filled_outline(mask) & ~mask
    assert cv2.connectedComponents(holes.view(np.uint8), connectivity=4)[0] - 1 == 2
    assert split_at_holes(mask, holes, labels, PARTS == SCENE, 40, 6.0) is None
    assert split_at_holes(mask, holes, labels, PARTS == SCENE, 40, 0.0) is not None


def test_holes_far_smaller_than_a_bore_do_not_split() -> None:
    """Pockets of belt left between parts (or labels' specks) are not bores."""
    labels = washers(centres=((50, 45),), outer=24, bore=0)
    labels[40:43, 40:43] = BELT     # 9 px
    labels[48:51, 58:61] = BELT
    assert len(detect_objects(labels, PARTS, DetectorSettings(max_hole_area=4))) == 1


def test_the_split_gives_every_pixel_to_the_nearest_hole() -> None:
    labels = washers()
    mask = labels == WASHER
    regions = split_at_holes(mask, filled_outline(mask) & ~mask, labels, PARTS == SCENE, 40, 6.0)
    assert regions is not None and set(np.unique(regions)) == {0, 1, 2}
    assert np.array_equal(regions > 0, mask)
    ys, xs = np.nonzero(mask)
    near = [np.hypot(xs - cx, ys - cy) for cx, cy in CENTRES]
    nearest = np.argmin(near, axis=0) + 1
    clear = np.abs(near[0] - near[1]) > 2   # off the bisector (rounding aside)
    piece_of_first = regions[CENTRES[0][1], CENTRES[0][0] - 13]
    expected = np.where(nearest == 1, piece_of_first, 3 - piece_of_first)
    assert np.array_equal(regions[ys, xs][clear], expected[clear])


def test_the_setting_turns_it_off_in_the_processor() -> None:
    """``objects.one_hole_classes: []`` leaves the pair to the other rules (one object)."""
    confidence = np.full((90, 120), 0.9, np.float32)
    by_default = ObjectProcessor(ObjectsConfig.defaults(), NAMES)
    assert len(by_default.process(washers(), 0.0, confidence).objects) == 2
    off = ObjectProcessor(ObjectsConfig.from_mapping({'objects.one_hole_classes': []}), NAMES)
    assert len(off.process(washers(), 0.0, confidence).objects) == 1


def test_a_class_the_model_lacks_is_reported_once_not_silently_ignored() -> None:
    """A typo in a class list would do nothing; the defaults (conveyor names) stay quiet."""
    warnings: list[str] = []
    ObjectProcessor(ObjectsConfig.defaults(), ('background', 'aeroplane'), warnings.append)
    assert warnings == []
    config = ObjectsConfig.from_mapping({'objects.one_hole_classes': ['wahser', 'washer', '2']})
    processor = ObjectProcessor(config, NAMES, warnings.append)
    processor.configure(config)
    assert len(warnings) == 1
    assert "one_hole_classes names 'wahser'" in warnings[0] and 'washer' in warnings[0]


def test_a_bore_opened_by_a_part_lying_across_the_ring_still_counts() -> None:
    """A bolt lies across the left washer's ring, so its bore reaches the bolt, not closed
    in by the ring; with the bolt it is still closed in, and mostly by the washer."""
    labels = washers()
    labels[28:36, 0:28] = BOLT         # across the left washer's ring, into its bore
    plain = part_class_lut(NAMES, ('background', 'belt'))
    assert len([o for o in detect_objects(labels, plain, DetectorSettings())
                if o.class_id == WASHER]) == 1
    found = [o for o in detect_objects(labels, PARTS, DetectorSettings())
             if o.class_id == WASHER]
    assert len(found) == 2


def test_a_pocket_of_belt_between_a_part_and_another_is_no_bore(monkeypatch) -> None:
    """Belt closed in half by the region and half by a part beside it is a pocket between
    parts; belt closed in by the region alone is a bore."""
    from lw_refinenet_ros.objects import bores

    labels = np.full((40, 60), BELT, np.uint8)
    labels[5:35, 5:30] = WASHER
    labels[5:35, 30:55] = BOLT
    labels[15:25, 25:35] = BELT        # the pocket, across the two parts' edge
    labels[12:22, 10:18] = BELT        # the region's own bore
    mask = labels == WASHER
    assert enclosed_holes(mask, labels, PARTS == SCENE, 40) is None
    monkeypatch.setattr(bores, 'OPEN_BORE_RIM_SHARE', 0.3)
    holes = enclosed_holes(mask, labels, PARTS == SCENE, 40)
    assert holes is not None and holes[20, 30] and holes[16, 14]
