"""The detector with and without the learned part-boundary map, on hand-made label images of
touching and crossed parts of one class (the map is drawn by hand at stride 4)."""

from __future__ import annotations

import numpy as np
import pytest

from lw_refinenet_ros.objects.boundary import BoundaryMap, split_by_boundary
from lw_refinenet_ros.objects.detect import DetectorSettings, detect_objects, part_class_lut
from lw_refinenet_ros.objects.options import ObjectsConfig
from lw_refinenet_ros.objects.processor import ObjectProcessor

NAMES = ('background', 'belt', 'bolt')
PARTS = part_class_lut(NAMES, ('background', 'belt'))
BELT, BOLT = 1, 2


def touching() -> tuple[np.ndarray, np.ndarray]:
    """Two bolts side by side (a convex union, no neck) and the map of their seam."""
    labels = np.full((64, 96), BELT, np.uint8)
    labels[16:48, 16:48] = BOLT
    labels[16:48, 48:80] = BOLT
    boundary = np.zeros((16, 24), np.float32)
    boundary[3:13, 11:13] = 1.0  # cells over columns 44..51 along the contact at 48, and past it
    return labels, boundary


def crossed() -> tuple[np.ndarray, np.ndarray]:
    """A bolt lying across another (a plus sign) and the map along the upper one's edges
    where it covers the lower one."""
    labels = np.full((96, 96), BELT, np.uint8)
    labels[40:56, 8:88] = BOLT    # the lower bolt, horizontal
    labels[8:88, 40:56] = BOLT    # the upper bolt, vertical, over it
    boundary = np.zeros((24, 24), np.float32)
    boundary[9:15, 9:11] = 1.0    # left edge of the upper bolt over the lower one
    boundary[9:15, 13:15] = 1.0   # right edge
    return labels, boundary


def detect(labels: np.ndarray, boundary: np.ndarray | None, **settings) -> list:
    return detect_objects(labels, PARTS, DetectorSettings(**settings), boundary=boundary)


def test_with_the_map_two_touching_parts_of_one_class_are_two_objects() -> None:
    labels, boundary = touching()
    objects = detect(labels, boundary)
    assert len(objects) == 2
    left, right = sorted(objects, key=lambda o: o.bbox[0])
    # Every pixel is shared out, and the cut lies at the contact (column 48) within a pixel.
    assert left.pixel_count + right.pixel_count == 32 * 64
    assert abs(left.bbox[0] + left.bbox[2] - 48) <= 1 and abs(right.bbox[0] - 48) <= 1
    assert left.pick[0] < 48 <= right.pick[0]


def test_without_the_map_the_rules_see_one_part_as_before() -> None:
    labels, boundary = touching()
    assert len(detect(labels, None)) == 1
    # A threshold of 1 ignores the map: exactly the objects of the rules.
    ignored = detect(labels, boundary, split_boundary_threshold=1.0)
    rules = detect(labels, None)
    assert [(o.bbox, o.pixel_count, o.pick) for o in ignored] == [
        (o.bbox, o.pixel_count, o.pick) for o in rules]


def test_crossed_parts_give_the_upper_part_and_both_visible_ends_of_the_lower() -> None:
    labels, boundary = crossed()
    objects = detect(labels, boundary)
    boxes = sorted(o.bbox for o in objects)
    assert len(objects) == 3
    upper = max(objects, key=lambda o: o.bbox[3])
    assert upper.bbox[1] == 8 and upper.bbox[3] == 80 and 40 <= upper.pick[0] < 56
    ends = [o for o in objects if o is not upper]
    assert all(o.bbox[3] == 16 for o in ends), boxes
    assert sorted(o.pick[0] < 40 for o in ends) == [False, True]


def test_a_low_map_keeps_a_region_whole_even_where_the_rules_would_cut() -> None:
    labels, _ = crossed()
    quiet = np.full((24, 24), 0.1, np.float32)
    assert len(detect(labels, quiet)) == 1


def test_seams_that_do_not_cut_the_region_split_nothing() -> None:
    mask = np.ones((20, 20), bool)
    probability = np.zeros((20, 20), np.float32)
    probability[5:15, 10] = 0.9  # a seam that stops inside the part
    assert split_by_boundary(probability, mask, 0.5, 10) is None
    probability[:, 10] = 0.9     # now it cuts across
    regions = split_by_boundary(probability, mask, 0.5, 10)
    assert regions is not None and set(np.unique(regions)) == {1, 2}
    assert (regions > 0).all()   # the seam's pixels are shared out, none lost


def test_the_map_is_read_at_label_pixels_between_cell_centres() -> None:
    cells = np.zeros((4, 4), np.float32)
    cells[1, 2] = 1.0
    seams = BoundaryMap(cells, (16, 16))
    assert seams.peak((8, 4, 4, 4)) == 1.0 and seams.peak((0, 0, 4, 4)) == 0.0
    crop = seams.crop((0, 0, 16, 16))
    assert crop.shape == (16, 16)
    assert crop[5:7, 9:11].min() > 0.5 and crop.argmax() // 16 in (5, 6)


@pytest.mark.parametrize('boundary, message', [
    (np.zeros((16, 24, 1), np.float32), '2-D float'),
    (np.zeros((16, 24), np.uint8), '2-D float'),
    (np.zeros((128, 24), np.float32), 'does not fit'),
    (np.zeros((4, 24), np.float32), 'another aspect'),
])
def test_a_malformed_map_is_refused_with_a_clear_error(boundary, message) -> None:
    labels, _ = touching()
    with pytest.raises(ValueError, match=message):
        detect(labels, boundary)


def test_the_processor_passes_the_map_on() -> None:
    labels, boundary = touching()
    processor = ObjectProcessor(ObjectsConfig.defaults(), NAMES)
    assert len(processor.process(labels, 0.0, boundary=boundary).objects) == 2
    processor = ObjectProcessor(ObjectsConfig.defaults(), NAMES)
    assert len(processor.process(labels, 0.0).objects) == 1
