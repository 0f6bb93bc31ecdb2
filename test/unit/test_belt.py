"""Metric belt positions against a hand-computed camera; bad calibrations disable, not crash."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from lw_refinenet_ros.objects.belt import (
    BeltGeometry,
    CalibrationError,
    intrinsics_matrix,
    time_to_line,
)
from lw_refinenet_ros.objects.options import ObjectsConfig
from lw_refinenet_ros.objects.processor import ObjectProcessor

FX, FY, CX, CY = 400.0, 400.0, 160.0, 120.0
CX_INT = int(CX)
K_FLAT = [FX, 0.0, CX, 0.0, FY, CY, 0.0, 0.0, 1.0]
K = intrinsics_matrix(K_FLAT)
NAMES = ('background', 'belt', 'nut')


def test_straight_down_camera_maps_pixels_by_similar_triangles() -> None:
    geometry = BeltGeometry.from_plane(K, 0.8, 0.0)
    points = geometry.project(np.array([[CX, CY], [CX + FX, CY], [CX, CY - FY / 2]]))
    # A pixel fx to the right of the centre looks 45 degrees right: x = height.
    assert points == pytest.approx(np.array([[0, 0, 0.8], [0.8, 0, 0.8], [0, -0.4, 0.8]]))


def test_tilted_camera_against_hand_computed_rays() -> None:
    height, tilt = 0.6, 30.0
    geometry = BeltGeometry.from_plane(K, height, tilt)
    t = math.radians(tilt)
    # Principal ray (0, 0, 1): d . r = cos t, so the point is at depth h / cos t.
    # Ray of the pixel fy * tan t above the centre, r = (0, -tan t, 1):
    # d . r = cos t - sin t tan t = cos 2t / cos t.
    above = CY - FY * math.tan(t)
    points = geometry.project(np.array([[CX, CY], [CX, above]]))
    assert points[0] == pytest.approx([0, 0, height / math.cos(t)])
    scale = height * math.cos(t) / math.cos(2 * t)
    assert points[1] == pytest.approx([0, -math.tan(t) * scale, scale])
    # Every projected point lies on the plane d . P = h.
    normal = np.array([0, math.sin(t), math.cos(t)])
    assert points @ normal == pytest.approx([height, height])


def test_rays_above_the_horizon_miss_the_belt() -> None:
    geometry = BeltGeometry.from_plane(K, 0.5, 60.0)
    # Tilted 60 degrees, the horizon lies fy * tan(30 deg) above the centre.
    sky = geometry.project(np.array([[CX, CY - FY * math.tan(math.radians(31))]]))
    assert np.isnan(sky).all()


def test_homography_gives_the_same_points_as_the_plane_it_describes() -> None:
    height = 0.7
    # Straight-down camera: belt point (X, Y) is camera point (X, Y, h); pixels -> belt is
    # the inverse of K [e1 e2 (0, 0, h)].
    belt_to_pixels = K @ np.array([[1, 0, 0], [0, 1, 0], [0, 0, height]])
    homography = np.linalg.inv(belt_to_pixels)
    from_h = BeltGeometry.from_homography(K, (homography * 3.0).ravel())  # any scale
    from_plane = BeltGeometry.from_plane(K, height, 0.0)
    pixels = np.array([[10.0, 20.0], [300.0, 200.0], [CX, CY]])
    assert from_h.project(pixels) == pytest.approx(from_plane.project(pixels))


def test_homography_of_a_tilted_belt_from_four_points() -> None:
    height, tilt = 0.5, 20.0
    plane = BeltGeometry.from_plane(K, height, tilt)
    pixels = np.array([[20.0, 30.0], [300.0, 30.0], [300.0, 220.0], [20.0, 220.0]])
    points = plane.project(pixels)
    # Belt coordinates: X along camera x, Y along the belt's in-plane downward direction.
    t = math.radians(tilt)
    y_axis = np.array([0, math.cos(t), -math.sin(t)])
    belt_xy = np.stack([points[:, 0], points @ y_axis], axis=1)
    homography = cv2.getPerspectiveTransform(pixels.astype(np.float32),
                                             belt_xy.astype(np.float32))
    geometry = BeltGeometry.from_homography(K, homography.ravel())
    probe = np.array([[100.0, 100.0], [250.0, 180.0]])
    assert geometry.project(probe) == pytest.approx(plane.project(probe), abs=1e-4)


def test_velocity_is_the_derivative_of_the_projection() -> None:
    geometry = BeltGeometry.from_plane(K, 0.8, 0.0)
    velocity = geometry.velocity(np.array([[CX, CY]]), np.array([[FX, 0.0]]))
    # fx px/s at the centre is one radian per second: h m/s on the belt.
    assert velocity[0] == pytest.approx([0.8, 0.0, 0.0], abs=1e-6)


@pytest.mark.parametrize('height, tilt, message', [
    (0.0, 0.0, 'above the belt'), (-0.5, 0.0, 'above the belt'),
    (0.5, 90.0, 'cannot see'), (0.5, -120.0, 'cannot see')])
def test_impossible_planes_are_refused_with_the_reason(height, tilt, message) -> None:
    with pytest.raises(CalibrationError, match=message):
        BeltGeometry.from_plane(K, height, tilt)


def test_singular_and_mismatched_homographies_are_refused() -> None:
    with pytest.raises(CalibrationError, match='singular'):
        BeltGeometry.from_homography(K, [1, 2, 3, 2, 4, 6, 0, 0, 1])
    stretched = np.linalg.inv(K @ np.diag([1.0, 5.0, 0.5]))   # belt axes 1:5
    with pytest.raises(CalibrationError, match='does not fit'):
        BeltGeometry.from_homography(K, stretched.ravel())
    with pytest.raises(CalibrationError, match='uncalibrated'):
        intrinsics_matrix([0.0] * 9)


def test_time_to_line() -> None:
    positions = np.array([[0.0, 0.0], [2.0, 0.0], [0.0, 1.0], [np.nan, 0.0]])
    velocities = np.array([[0.5, 0.0], [0.5, 0.0], [0.0, 0.3], [1.0, 0.0]])
    seconds = time_to_line(positions, velocities, 0, 1.0)
    assert seconds[:2] == pytest.approx([2.0, -2.0])   # ahead, crossed two seconds ago
    assert np.isnan(seconds[2]) and np.isnan(seconds[3])  # not moving along x, unknown


def labels_with_a_nut(x: int) -> np.ndarray:
    labels = np.ones((240, 320), np.uint8)
    cv2.circle(labels, (x, 120), 12, 2, -1)
    return labels


def test_processor_reports_metres_velocity_and_pick_line_time() -> None:
    config = ObjectsConfig.from_mapping({
        'objects.belt.calibration': 'plane', 'objects.belt.camera_height_m': 0.8,
        'objects.pick_line.position_m': 0.4, 'objects.tracking.confirm_frames': 1})
    processor = ObjectProcessor(config, NAMES)
    for k in range(4):   # 4 px per frame at 10 Hz = 40 px/s = 0.08 m/s at 0.8 m, f = 400
        frame = processor.process(labels_with_a_nut(CX_INT + 4 * k), k / 10.0,
                                  camera_k=K_FLAT)
    (report,) = frame.objects
    assert frame.metric_valid and report.metric_valid
    x = (report.object.pick[0] - CX) * 0.8 / FX
    assert report.position_m == pytest.approx((x, 0.0, 0.8), abs=1e-6)
    assert report.velocity_m[0] == pytest.approx(0.08, rel=0.05)
    assert report.time_to_pick_line == pytest.approx((0.4 - x) / 0.08, rel=0.05)


def test_bad_calibration_warns_once_and_leaves_metric_fields_off() -> None:
    warnings: list[str] = []
    config = ObjectsConfig.from_mapping({'objects.belt.calibration': 'plane',
                                         'objects.belt.camera_height_m': -0.5})
    processor = ObjectProcessor(config, NAMES, warnings.append)
    for k in range(5):
        frame = processor.process(labels_with_a_nut(100 + k), k / 10.0, camera_k=K_FLAT)
        assert not frame.metric_valid
        assert not frame.objects[0].metric_valid
        assert math.isnan(frame.objects[0].position_m[0])
    assert len(warnings) == 1 and 'camera must be above the belt' in warnings[0]
    singular = ObjectsConfig.from_mapping({'objects.belt.calibration': 'homography',
                                           'objects.belt.homography': '1 2 3 2 4 6 0 0 1'})
    processor.configure(singular)
    processor.process(labels_with_a_nut(100), 1.0, camera_k=K_FLAT)
    processor.process(labels_with_a_nut(101), 1.1, camera_k=K_FLAT)
    assert len(warnings) == 2 and 'singular' in warnings[1]


def test_missing_camera_info_warns_once_then_recovers() -> None:
    warnings: list[str] = []
    config = ObjectsConfig.from_mapping({'objects.belt.calibration': 'plane'})
    processor = ObjectProcessor(config, NAMES, warnings.append)
    for k in range(3):
        assert not processor.process(labels_with_a_nut(100), k / 10.0).metric_valid
    assert len(warnings) == 1 and 'camera_info' in warnings[0]
    assert processor.process(labels_with_a_nut(100), 0.5, camera_k=K_FLAT).metric_valid


def test_pixel_pick_line_without_calibration() -> None:
    config = ObjectsConfig.from_mapping({'objects.pick_line.position_px': 200.0,
                                         'objects.tracking.confirm_frames': 1})
    processor = ObjectProcessor(config, NAMES)
    for k in range(4):
        frame = processor.process(labels_with_a_nut(100 + 5 * k), k / 10.0)
    (report,) = frame.objects
    assert not report.metric_valid
    assert report.velocity_px[0] == pytest.approx(50.0, rel=0.05)
    assert report.time_to_pick_line == pytest.approx((200.0 - report.object.pick[0]) / 50.0,
                                                     rel=0.05)


def test_empty_frame_gives_an_empty_list() -> None:
    processor = ObjectProcessor(ObjectsConfig.defaults(), NAMES)
    frame = processor.process(np.zeros((40, 60), np.uint8), 0.0)
    assert frame.objects == [] and frame.belt_velocity_px is None
