"""segmentation/objects and segmentation/markers: message round trip, markers, and the node
computing objects only while someone subscribes."""

from __future__ import annotations

import math
import time

import cv2
from lw_refinenet_ros.msg import SegmentedObjects
import numpy as np
import pytest
from rclpy.serialization import deserialize_message, serialize_message
from std_msgs.msg import Header
from visualization_msgs.msg import Marker, MarkerArray

from lw_refinenet_ros.objects.options import ObjectsConfig
from lw_refinenet_ros.objects.processor import ObjectProcessor
from lw_refinenet_ros.ros.conversions import array_to_image
from lw_refinenet_ros.ros.object_outputs import markers_message, objects_message
from lw_refinenet_ros.testing.fake_engine import FakeEngine
from lw_refinenet_ros.testing.fake_node import NodeHarness

NAMES = ('background', 'belt', 'nut')
COLORS = np.array([[0, 0, 0], [90, 90, 90], [255, 225, 25]], np.uint8)
K = [300.0, 0.0, 80.0, 0.0, 300.0, 60.0, 0.0, 0.0, 1.0]


def labels_at(x: int) -> np.ndarray:
    labels = np.ones((120, 160), np.uint8)
    cv2.circle(labels, (x, 60), 12, 2, -1)
    cv2.circle(labels, (x, 60), 4, 1, -1)          # the nut's bore
    labels[100:110, x - 40:x] = 2                   # a bolt riding along
    return labels


def header(stamp_s: float, frame_id: str = 'cam_optical') -> Header:
    msg = Header(frame_id=frame_id)
    msg.stamp.sec, msg.stamp.nanosec = int(stamp_s), int((stamp_s % 1) * 1e9)
    return msg


def processed_frame(**parameters):
    config = ObjectsConfig.from_mapping({'objects.tracking.confirm_frames': 2,
                                         'objects.contour_points': 8, **parameters})
    processor = ObjectProcessor(config, NAMES)
    for k in range(3):
        frame = processor.process(labels_at(60 + 3 * k), 10.0 + k / 10.0,
                                  np.full((120, 160), 0.9, np.float32), K)
    return frame


def test_objects_message_round_trip_keeps_every_field() -> None:
    frame = processed_frame(**{'objects.belt.calibration': 'plane',
                               'objects.pick_line.position_m': 0.2})
    msg = objects_message(frame, header(12.5), (160, 120))
    back = deserialize_message(serialize_message(msg), SegmentedObjects)
    assert back.header.frame_id == 'cam_optical' and back.header.stamp.sec == 12
    assert (back.width, back.height) == (160, 120) and back.metric_valid
    assert back.belt_velocity_valid and back.belt_velocity_x == pytest.approx(30.0, rel=0.1)
    assert len(back.objects) == 2
    for sent, report in zip(back.objects, frame.objects):
        obj = report.object
        assert sent.id == report.track_id and sent.tracked and sent.confirmed
        assert (sent.class_id, sent.class_name) == (2, 'nut')
        assert (sent.bbox.x_offset, sent.bbox.y_offset, sent.bbox.width,
                sent.bbox.height) == obj.bbox
        assert (sent.pick_x, sent.pick_y) == obj.pick
        assert sent.pixel_count == obj.pixel_count
        assert sent.score == pytest.approx(0.9)
        assert sent.hits == 3 and sent.age == pytest.approx(0.2, abs=1e-3)
        assert 3 <= len(sent.contour.points) <= 8
        assert sent.metric_valid and sent.position.z == pytest.approx(0.5)
        assert sent.time_to_pick_line == pytest.approx(report.time_to_pick_line, rel=1e-5)
    for sent in back.objects:   # 3 px per 0.1 s; at 0.5 m with f = 300 px, 1 px = 1/600 m
        assert sent.velocity_x == pytest.approx(30.0, rel=0.1)
        assert sent.velocity.x == pytest.approx(30.0 * 0.5 / 300.0, rel=0.1)


def test_untracked_objects_are_numbered_and_metric_fields_are_nan() -> None:
    frame = processed_frame(**{'objects.tracking.enabled': False})
    msg = objects_message(frame, header(1.0), (160, 120))
    assert [o.id for o in msg.objects] == [1, 2]
    assert not any(o.tracked or o.confirmed or o.metric_valid for o in msg.objects)
    assert math.isnan(msg.objects[0].position.x) and math.isnan(msg.objects[0].velocity_x)
    assert not msg.belt_velocity_valid and not msg.metric_valid


def test_markers_clear_then_draw_box_pick_and_id_per_object() -> None:
    frame = processed_frame(**{'objects.belt.calibration': 'plane'})
    markers = markers_message(frame, header(3.0), COLORS)
    assert markers.markers[0].action == Marker.DELETEALL
    drawn = markers.markers[1:]
    assert len(drawn) == 3 * len(frame.objects)
    assert {m.ns for m in drawn} == {'boxes', 'picks', 'ids'}
    ids = {m.id for m in drawn}
    assert ids == {r.track_id for r in frame.objects}
    pick = next(m for m in drawn if m.ns == 'picks' and m.id == frame.objects[0].track_id)
    # On the belt: the pick sphere sits where the metric position says.
    assert pick.pose.position.z == pytest.approx(frame.objects[0].position_m[2])
    assert pick.pose.position.x == pytest.approx(frame.objects[0].position_m[0])
    text = next(m for m in drawn if m.ns == 'ids' and m.id == frame.objects[0].track_id)
    assert text.text == f'nut #{frame.objects[0].track_id}'
    assert all(m.header.frame_id == 'cam_optical' for m in markers.markers)


def nut_image(x: int) -> np.ndarray:
    """A red disc (class red_part of the fake engine) on black."""
    image = np.zeros((48, 64, 3), np.uint8)
    cv2.circle(image, (x, 24), 8, (255, 0, 0), -1)
    return image


def stamped(image: np.ndarray) -> object:
    msg = array_to_image(image, Header(frame_id='conveyor_optical'), 'rgb8')
    now = time.time()
    msg.header.stamp.sec, msg.header.stamp.nanosec = int(now), int((now % 1) * 1e9)
    return msg


def test_node_publishes_objects_only_while_subscribed(ros_context) -> None:
    harness = NodeHarness(ros_context, FakeEngine(),
                          parameters={'objects.tracking.confirm_frames': 1})
    try:
        camera_objects = harness.node.pipeline.outputs.camera('').objects
        labels = harness.listen('segmentation/labels')
        publisher = harness.publisher('image')
        sent = stamped(nut_image(20))
        assert harness.spin_until(lambda: (publisher.publish(sent), bool(labels))[1])
        # Nobody listens to objects or markers: nothing was computed.
        assert camera_objects.last_frame is None and camera_objects.processor.tracker.tracks == []
        objects = harness.listen('segmentation/objects', SegmentedObjects)
        markers = harness.listen('segmentation/markers', MarkerArray)
        assert harness.spin_until(lambda: (publisher.publish(stamped(nut_image(22))),
                                           bool(objects) and bool(markers))[1], timeout=15)
        got = objects[-1]
        assert got.header.frame_id == 'conveyor_optical'
        assert [(o.class_name, o.tracked) for o in got.objects] == [('red_part', True)]
        # The disc's centre (x = 20 or 22: a frame sent before the subscription matched may
        # be the one that arrives).
        assert min(abs(got.objects[0].pick_x - x) for x in (20, 22)) <= 1
        assert abs(got.objects[0].pick_y - 24) <= 1
        assert markers[-1].markers[0].action == Marker.DELETEALL
        harness.unlisten('segmentation/objects')
        harness.unlisten('segmentation/markers')
        assert harness.spin_until(lambda: not any(camera_objects.subscribed()), timeout=10)
        labels.clear()
        assert harness.spin_until(lambda: (publisher.publish(stamped(nut_image(24))),
                                           len(labels) >= 2)[1], timeout=15)
        assert camera_objects.last_frame is None
    finally:
        harness.close()


def test_empty_frames_publish_an_empty_object_list(ros_context) -> None:
    harness = NodeHarness(ros_context, FakeEngine())
    try:
        objects = harness.listen('segmentation/objects', SegmentedObjects)
        publisher = harness.publisher('image')
        black = np.zeros((48, 64, 3), np.uint8)
        assert harness.spin_until(lambda: (publisher.publish(stamped(black)), bool(objects))[1],
                                  timeout=15)
        assert objects[-1].objects == [] and (objects[-1].width, objects[-1].height) == (64, 48)
    finally:
        harness.close()


def test_objects_enabled_false_stops_them_at_runtime(ros_context) -> None:
    from rclpy.parameter import Parameter

    harness = NodeHarness(ros_context, FakeEngine())
    try:
        objects = harness.listen('segmentation/objects', SegmentedObjects)
        publisher = harness.publisher('image')
        assert harness.spin_until(lambda: (publisher.publish(stamped(nut_image(20))),
                                           bool(objects))[1], timeout=15)
        result = harness.node.set_parameters([Parameter('objects.enabled', value=False)])
        assert result[0].successful
        labels = harness.listen('segmentation/labels')
        assert harness.spin_until(lambda: (publisher.publish(stamped(nut_image(20))),
                                           len(labels) >= 3)[1], timeout=15)
        count = len(objects)
        labels.clear()
        assert harness.spin_until(lambda: (publisher.publish(stamped(nut_image(20))),
                                           len(labels) >= 3)[1], timeout=15)
        assert len(objects) == count   # subscribed, but switched off
        camera_objects = harness.node.pipeline.outputs.camera('').objects
        assert not camera_objects.wants()
    finally:
        harness.close()


def test_detect_at_chooses_the_pixels_min_area_counts_in_the_node(ros_context) -> None:
    """A model run at half the camera's size: with objects.detect_at network (the default)
    a part of 29 camera pixels has about 7 on the network's grid, under min_area 12; with
    camera, set at runtime, it is an object again."""
    from rclpy.parameter import Parameter

    harness = NodeHarness(ros_context, FakeEngine(network_divisor=2),
                          parameters={'objects.min_area': 12})
    try:
        objects = harness.listen('segmentation/objects', SegmentedObjects)
        publisher = harness.publisher('image')
        image = np.zeros((48, 64, 3), np.uint8)
        cv2.circle(image, (30, 24), 3, (255, 0, 0), -1)
        assert harness.spin_until(lambda: (publisher.publish(stamped(image)),
                                           len(objects) >= 3)[1], timeout=15)
        assert all(msg.objects == [] for msg in objects)
        result = harness.node.set_parameters([Parameter('objects.detect_at', value='camera')])
        assert result[0].successful
        objects.clear()
        assert harness.spin_until(lambda: (publisher.publish(stamped(image)),
                                           len(objects) >= 3)[1], timeout=15)
        assert len(objects[-1].objects) == 1 and objects[-1].objects[0].pixel_count == 29
    finally:
        harness.close()


def parts_before_and_after(ros_context, image: np.ndarray, name: str,
                           value: object) -> tuple[int, int]:
    """Objects the node finds in ``image`` with the defaults, then after ``name`` is set to
    ``value`` on the running node."""
    from rclpy.parameter import Parameter

    harness = NodeHarness(ros_context, FakeEngine())
    try:
        objects = harness.listen('segmentation/objects', SegmentedObjects)
        publisher = harness.publisher('image')
        assert harness.spin_until(lambda: (publisher.publish(stamped(image)),
                                           len(objects) >= 2)[1], timeout=15)
        before = len(objects[-1].objects)
        result = harness.node.set_parameters([Parameter(name, value=value)])
        assert result[0].successful
        objects.clear()
        assert harness.spin_until(lambda: (publisher.publish(stamped(image)),
                                           len(objects) >= 3)[1], timeout=15)
        return before, len(objects[-1].objects)
    finally:
        harness.close()


@pytest.mark.parametrize('name, value', [
    # Only regions below 0.7 convex are tried for a split: the pair is about 0.78.
    ('objects.split_max_solidity', 0.7),
    # A part body is at least 20 px thick: neither disc (radii 15 and 13) is one.
    ('objects.split_min_body_radius', 20.0),
])
def test_split_settings_reach_the_detector_at_runtime(ros_context, name: str,
                                                      value: float) -> None:
    """Two touching red discs: two parts by default, one once the node is told ``name``."""
    image = np.zeros((60, 100, 3), np.uint8)
    cv2.circle(image, (30, 30), 15, (255, 0, 0), -1)
    cv2.circle(image, (58, 30), 13, (255, 0, 0), -1)
    image[29:31, 44:46] = (255, 0, 0)
    assert parts_before_and_after(ros_context, image, name, value) == (2, 1)


def test_one_hole_classes_reach_the_detector_at_runtime(ros_context) -> None:
    """Two overlapping red rings: one object while ``red_part`` is not a one-hole class (the
    fake engine's classes are none of the defaults), two once the node is told it is."""
    image = np.zeros((80, 110, 3), np.uint8)
    for x in (38, 62):
        cv2.circle(image, (x, 40), 18, (255, 0, 0), -1)
    for x in (38, 62):
        cv2.circle(image, (x, 40), 8, (0, 0, 0), -1)
    assert parts_before_and_after(ros_context, image, 'objects.one_hole_classes',
                                  ['red_part']) == (1, 2)
