"""Objects from hand-made label images: components, specks, pinholes, splits, borders."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from lw_refinenet_ros.errors import ConfigError
from lw_refinenet_ros.objects.detect import (
    DetectorSettings,
    detect_objects,
    part_class_lut,
    split_regions,
)
from lw_refinenet_ros.objects.geometry import outline, pick_point, principal_axes
from lw_refinenet_ros.objects.options import OBJECT_PARAMETERS, ObjectsConfig, parse_homography

NAMES = ('background', 'belt', 'bolt', 'nut')
PARTS = part_class_lut(NAMES, ('background', 'belt'))
BELT, BOLT, NUT = 1, 2, 3


def blank(height: int = 60, width: int = 80) -> np.ndarray:
    labels = np.zeros((height, width), np.uint8)
    labels[5:55] = BELT
    return labels


def detect(labels: np.ndarray, **settings) -> list:
    # The hand-made parts here are small (100-700 px), so their smallest object is 40 px;
    # the default (160, for conveyor parts) has its own test below.
    return detect_objects(labels, PARTS, DetectorSettings(**{'min_area': 40, **settings}))


def test_empty_and_all_background_frames_give_no_objects() -> None:
    assert detect(np.zeros((40, 50), np.uint8)) == []
    assert detect(blank()) == []


def test_one_object_per_component_with_exact_box_count_and_centroid() -> None:
    labels = blank()
    labels[10:20, 10:30] = BOLT          # 10 x 20 = 200 px
    labels[30:42, 50:62] = BOLT          # 12 x 12 = 144 px
    labels[30:40, 10:20] = NUT           # 100 px
    objects = detect(labels)
    assert [(o.class_id, o.bbox, o.pixel_count) for o in objects] == [
        (BOLT, (10, 10, 20, 10), 200), (BOLT, (50, 30, 12, 12), 144),
        (NUT, (10, 30, 10, 10), 100)]
    first = objects[0]
    assert first.centroid == pytest.approx((19.5, 14.5))
    assert first.mask.shape == (10, 20) and first.mask.all()
    assert not first.touches_border
    assert math.isnan(first.score)


def test_specks_below_min_area_are_dropped() -> None:
    labels = blank()
    labels[10:13, 10:13] = NUT            # 9 px speck
    labels[30:40, 30:40] = NUT            # 100 px part
    objects = detect(labels, min_area=20)
    assert [o.pixel_count for o in objects] == [100]
    assert len(detect(labels, min_area=5)) == 2


def test_pinholes_are_filled_but_real_holes_stay() -> None:
    labels = blank()
    labels[10:30, 10:30] = NUT
    labels[15, 15] = BELT                 # pinhole: 1 px
    labels[20:26, 20:26] = BELT           # bore: 36 px
    (obj,) = detect(labels, max_hole_area=8)
    assert obj.pixel_count == 400 - 36
    (unfilled,) = detect(labels, max_hole_area=0)
    assert unfilled.pixel_count == 400 - 36 - 1


def test_pick_point_is_inside_a_ring_and_farthest_from_its_edge() -> None:
    labels = blank(80, 80)
    cv2.circle(labels, (40, 40), 25, NUT, -1)
    cv2.circle(labels, (40, 40), 11, BELT, -1)   # the nut's bore: the centroid lies in it
    (obj,) = detect(labels)
    px, py = obj.pick
    assert labels[py, px] == NUT
    assert obj.centroid == pytest.approx((40, 40), abs=0.5)
    # The ring is 14 px wide: the best point sits mid-ring, about 7 px from both edges.
    assert 17 <= math.hypot(px - 40, py - 40) <= 19
    assert obj.clearance == pytest.approx(7.0, abs=1.0)


def test_touching_parts_of_one_class_are_split_at_the_neck() -> None:
    labels = blank(60, 100)
    cv2.circle(labels, (30, 30), 15, NUT, -1)
    cv2.circle(labels, (58, 30), 13, NUT, -1)      # overlaps the first by 0 px: a 2 px neck
    labels[29:31, 44:46] = NUT
    split = detect(labels)
    assert len(split) == 2
    left, right = sorted(split, key=lambda o: o.centroid[0])
    assert left.centroid[0] == pytest.approx(30, abs=1.5)
    assert right.centroid[0] == pytest.approx(58, abs=1.5)
    # No pixel is lost or shared by the split.
    assert left.pixel_count + right.pixel_count == int((labels == NUT).sum())
    assert len(detect(labels, split_touching=False)) == 1


def test_a_bolt_head_and_shaft_stay_one_part() -> None:
    labels = blank(60, 100)
    cv2.circle(labels, (25, 30), 12, BOLT, -1)     # head
    labels[25:36, 25:80] = BOLT                    # shaft as wide as the path to the head
    assert len(detect(labels)) == 1


def test_a_fragment_cut_off_by_a_part_lying_across_is_no_object_by_default() -> None:
    # A 14 px wide bar of one class, crossed near its end by a bar of another: the end that
    # shows beyond it (10 x 14 = 140 px) is under the default min_area (160), the rest is
    # a part.
    labels = blank(60, 100)
    labels[20:34, 10:80] = NUT
    labels[10:50, 60:70] = BOLT
    nuts = [o for o in detect_objects(labels, PARTS, DetectorSettings()) if o.class_id == NUT]
    assert [o.pixel_count for o in nuts] == [50 * 14]
    assert sorted(o.pixel_count for o in detect(labels) if o.class_id == NUT) == [140, 700]


def test_a_springs_coils_stay_one_part() -> None:
    # A spring's labels: a zig-zag of coils about 7 px in radius joined by necks narrow
    # enough to split. A coil is no part body: a region whose thickest point is under
    # split_min_body_radius (8) is not split at its necks (without that rule, before
    # 2026-12-08, the spring was cut into its four coils).
    labels = blank(60, 100)
    for k in range(4):
        cv2.circle(labels, (20 + 13 * k, 30 + (3 if k % 2 else -3)), 7, BOLT, -1)
    assert len(detect(labels)) == 1
    assert len(detect(labels, split_min_body_radius=6.0)) == 4


def test_deeply_overlapping_parts_stay_merged() -> None:
    labels = blank(60, 100)
    cv2.circle(labels, (40, 30), 15, NUT, -1)
    cv2.circle(labels, (52, 30), 15, NUT, -1)      # wide neck: the mask does not allow it
    assert len(detect(labels)) == 1


def test_split_regions_returns_none_for_one_blob() -> None:
    mask = np.zeros((40, 40), np.uint8)
    cv2.circle(mask, (20, 20), 12, 1, -1)
    assert split_regions(mask, 4.0, 0.4) is None


def test_parts_cut_by_the_image_border_are_flagged() -> None:
    labels = blank()
    labels[20:30, 0:10] = BOLT
    labels[20:30, 40:50] = BOLT
    edge, inner = detect(labels)
    assert edge.touches_border and not inner.touches_border


def test_background_and_belt_are_never_objects() -> None:
    labels = np.full((30, 30), BELT, np.uint8)
    labels[:5] = 0
    assert detect(labels) == []


def test_score_is_the_mean_confidence_over_the_part() -> None:
    labels = blank()
    labels[10:20, 10:20] = NUT
    confidence = np.full(labels.shape, 0.2, np.float32)
    confidence[10:20, 10:15] = 0.9
    (obj,) = detect_objects(labels, PARTS, DetectorSettings(min_score=0.0, min_area=40),
                            confidence)
    assert obj.score == pytest.approx(0.55)
    with pytest.raises(ValueError, match='confidence has shape'):
        detect_objects(labels, PARTS, DetectorSettings(), confidence[:5])


def test_labels_must_be_two_dimensional() -> None:
    with pytest.raises(ValueError, match='2-D'):
        detect_objects(np.zeros((4, 4, 3), np.uint8), PARTS, DetectorSettings())


def test_uint16_labels_and_ids_beyond_the_class_table() -> None:
    labels = np.zeros((30, 30), np.uint16)
    labels[5:15, 5:15] = NUT
    labels[20:28, 20:28] = 300                     # not a class of this model: ignored
    assert [o.class_id for o in detect(labels)] == [NUT]


def test_principal_axes_of_a_rotated_bar() -> None:
    mask = np.zeros((100, 100), np.uint8)
    box = cv2.boxPoints(((50, 50), (60, 10), 30.0))
    cv2.fillPoly(mask, [np.round(box).astype(np.int32)], 1)
    axes = principal_axes(mask)
    assert math.degrees(axes.orientation) == pytest.approx(30.0, abs=2.0)
    # Equivalent ellipse of a w x h bar: full lengths 2w/sqrt(3) and 2h/sqrt(3).
    assert axes.major_length == pytest.approx(60 * 2 / math.sqrt(3), rel=0.05)
    assert axes.minor_length == pytest.approx(10 * 2 / math.sqrt(3), rel=0.15)
    assert axes.centroid == pytest.approx((50, 50), abs=0.7)


def test_pick_point_of_an_empty_mask_and_outline_limits() -> None:
    assert pick_point(np.zeros((5, 5), bool)) == ((-1, -1), 0.0)
    mask = np.zeros((50, 50), np.uint8)
    cv2.circle(mask, (25, 25), 20, 1, -1)
    assert outline(mask, 0).shape == (0, 2)
    points = outline(mask, 12)
    assert 3 <= len(points) <= 12
    assert np.all((points >= 0) & (points < 50))


def test_contour_is_in_image_coordinates_when_requested() -> None:
    labels = blank()
    labels[10:20, 30:50] = BOLT
    (obj,) = detect(labels, contour_points=8)
    assert obj.contour.shape[1] == 2 and len(obj.contour) <= 8
    assert obj.contour[:, 0].min() == 30 and obj.contour[:, 0].max() == 49


def test_ignore_list_takes_names_and_ids() -> None:
    assert part_class_lut(NAMES, ('background', 'belt', 'gear')).tolist() == [
        False, False, True, True]
    assert part_class_lut(NAMES, ('0', '3')).tolist() == [False, True, True, False]
    with pytest.raises(ConfigError, match='not a class id'):
        part_class_lut(NAMES, ('9',))


def test_objects_config_validates_and_names_the_parameter() -> None:
    defaults = ObjectsConfig.defaults()
    assert defaults.enabled and defaults.belt_calibration == 'none'
    assert {spec.name for spec in OBJECT_PARAMETERS} >= {
        'objects.min_area', 'objects.split_touching', 'objects.belt.homography',
        'objects.pick_line.axis'}
    assert all(spec.name.startswith('objects.') and spec.description
               for spec in OBJECT_PARAMETERS)
    config = ObjectsConfig.from_mapping({'objects.min_area': 10, 'node_param': 1})
    assert config.min_area == 10
    with pytest.raises(ConfigError, match='objects.min_areaa'):
        ObjectsConfig.from_mapping({'objects.min_areaa': 1})
    with pytest.raises(ConfigError, match='objects.min_area'):
        ObjectsConfig.from_mapping({'objects.min_area': 0})
    with pytest.raises(ConfigError, match='nine'):
        ObjectsConfig.from_mapping({'objects.belt.homography': '1 2 3'})


def test_homography_text_forms() -> None:
    assert parse_homography('') == ()
    assert parse_homography('[1, 0, 0; 0, 1, 0; 0, 0, 1]') == (1, 0, 0, 0, 1, 0, 0, 0, 1)
    with pytest.raises(ConfigError, match='nine numbers'):
        parse_homography('1 0 0 0 1 0 0 0 x')


def test_split_max_solidity_decides_which_regions_are_tried_for_a_split() -> None:
    """Two touching discs are about 0.78 convex: split under the default 0.92, taken as one
    part when only regions below 0.7 are tried."""
    labels = blank(60, 100)
    cv2.circle(labels, (30, 30), 15, NUT, -1)
    cv2.circle(labels, (58, 30), 13, NUT, -1)
    labels[29:31, 44:46] = NUT
    assert len(detect(labels)) == 2
    assert len(detect(labels, split_max_solidity=0.7)) == 1
