"""Parts found on the network's grid and reported in camera pixels (``objects.detect_at``).

A 640x480 camera on a model run at 320x240 gives labels with no detail finer than the
network's grid, and parts twice as large in camera pixels as the detector's pixel settings
were made for. The detector then samples every second pixel, finds the parts there with the
same settings, and scales them back.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from lw_refinenet_ros.data.conveyor import CLASS_NAMES, ConveyorScene
from lw_refinenet_ros.objects.detect import (
    DetectorSettings,
    detect_objects,
    detection_step,
    part_class_lut,
)
from lw_refinenet_ros.objects.options import ObjectsConfig
from lw_refinenet_ros.objects.processor import ObjectProcessor

NAMES = ('background', 'belt', 'bolt', 'nut')
PARTS = part_class_lut(NAMES, ('background', 'belt'))
BELT, BOLT, NUT = 1, 2, 3


def doubled(labels: np.ndarray) -> np.ndarray:
    """The same scene seen by a camera with twice the resolution."""
    return cv2.resize(labels, (labels.shape[1] * 2, labels.shape[0] * 2),
                      interpolation=cv2.INTER_NEAREST)


@pytest.mark.parametrize(('labels', 'network', 'step'), [
    ((480, 640), (240, 320), 2),
    ((1080, 1920), (180, 320), 6),
    ((500, 700), (240, 320), 2),      # not a whole multiple: the whole part of it
    ((240, 320), (240, 320), 1),
    ((240, 320), (480, 640), 1),      # a network larger than the camera: camera pixels
    ((480, 640), (0, 0), 1),          # unknown network size
    ((480, 640), None, 1),
])
def test_the_step_is_the_whole_factor_from_network_to_camera(labels, network, step) -> None:
    assert detection_step(labels, network) == step
    assert detection_step(labels, network, 'camera') == 1


def test_a_doubled_frame_on_the_grid_gives_the_same_parts_in_camera_pixels() -> None:
    small = np.zeros((60, 80), np.uint8)
    small[5:55] = BELT
    small[10:20, 10:30] = BOLT
    small[30:42, 50:62] = BOLT
    small[30:40, 10:20] = NUT
    small[34:36, 14:16] = BELT          # a nut's bore: a real hole
    expected = detect_objects(small, PARTS, DetectorSettings())
    found = detect_objects(doubled(small), PARTS, DetectorSettings(), step=2)
    assert [o.class_id for o in found] == [o.class_id for o in expected]
    for camera, grid in zip(found, expected):
        assert camera.bbox == tuple(2 * v for v in grid.bbox)
        assert camera.pixel_count == 4 * grid.pixel_count
        assert camera.centroid == pytest.approx((2 * grid.centroid[0] + 0.5,
                                                 2 * grid.centroid[1] + 0.5))
        assert camera.major_length == pytest.approx(2 * grid.major_length)
        assert camera.clearance == pytest.approx(2 * grid.clearance)
        assert camera.orientation == pytest.approx(grid.orientation)
        # The pick point is a camera pixel of the part, away from the nut's bore.
        x, y, w, h = camera.bbox
        assert camera.mask.shape == (h, w)
        assert camera.mask[camera.pick[1] - y, camera.pick[0] - x]


def test_pinholes_filled_on_the_grid_stay_filled_in_camera_pixels() -> None:
    labels = np.full((80, 80), BELT, np.uint8)
    labels[20:40, 20:40] = NUT
    labels[30:32, 30:32] = BELT         # a pinhole of 4 camera pixels, 1 on the grid
    (obj,) = detect_objects(labels, PARTS, DetectorSettings(max_hole_area=2, min_area=40),
                            step=2)
    assert obj.pixel_count == 400 and obj.mask.all()


def test_masks_follow_the_camera_labels_not_the_grid_blocks() -> None:
    labels = np.full((80, 80), BELT, np.uint8)
    labels[20:51, 20:51] = NUT          # 31 x 31: odd edges fall between grid samples
    (obj,) = detect_objects(labels, PARTS, DetectorSettings(), step=2)
    x, y, w, h = obj.bbox
    assert (x, y, w, h) == (20, 20, 31, 31)
    assert obj.pixel_count == 31 * 31
    assert (labels[y:y + h, x:x + w][obj.mask] == NUT).all()


def test_pixel_settings_count_the_grid_pixels() -> None:
    labels = np.full((60, 80), BELT, np.uint8)
    labels[10:16, 10:16] = NUT          # 36 camera pixels, 9 on the grid
    assert len(detect_objects(labels, PARTS, DetectorSettings(min_area=20))) == 1
    assert detect_objects(labels, PARTS, DetectorSettings(min_area=20), step=2) == []


def test_touching_parts_split_alike_on_the_grid_and_at_the_network_size() -> None:
    small = np.full((60, 90), BELT, np.uint8)
    cv2.circle(small, (25, 30), 12, NUT, -1)
    cv2.circle(small, (62, 30), 12, NUT, -1)
    small[29:32, 25:62] = NUT                  # two discs joined by a narrow bar
    expected = detect_objects(small, PARTS, DetectorSettings())
    found = detect_objects(doubled(small), PARTS, DetectorSettings(), step=2)
    assert len(expected) == len(found) == 2
    assert [o.bbox for o in found] == [tuple(2 * v for v in o.bbox) for o in expected]


def test_the_processor_uses_the_grid_only_when_told_the_network_size() -> None:
    scene = ConveyorScene(7, (640, 480), density=6)
    for _ in range(40):
        image, truth = scene.next_frame()
    network = ObjectProcessor(ObjectsConfig.defaults(), CLASS_NAMES)
    camera = ObjectProcessor(ObjectsConfig.from_mapping({'objects.detect_at': 'camera'}),
                             CLASS_NAMES)
    on_grid = network.process(truth, 0.0, image=image, network_size=(240, 320)).objects
    plain = network.process(truth, 1.0, image=image).objects
    at_camera = camera.process(truth, 0.0, image=image, network_size=(240, 320)).objects
    assert [r.object.bbox for r in plain] == [r.object.bbox for r in at_camera]
    assert on_grid and len(on_grid) <= len(plain) + 2
    for report in on_grid:
        obj = report.object
        x, y, w, h = obj.bbox
        assert (truth[y:y + h, x:x + w][obj.mask] == obj.class_id).all()
        assert truth[obj.pick[1], obj.pick[0]] == obj.class_id


def test_detect_at_accepts_only_network_or_camera() -> None:
    with pytest.raises(Exception, match='detect_at'):
        ObjectsConfig.from_mapping({'objects.detect_at': 'half'})
