"""The demo's object scores: four streams paired by stamp, masks rebuilt from labels."""

from __future__ import annotations

import numpy as np
import pytest
from std_msgs.msg import Header

from lw_refinenet_ros.data.conveyor import CLASS_NAMES, ConveyorScene
from lw_refinenet_ros.demo.object_scoring import (
    ObjectStampScorer,
    full_areas_from_message,
    object_parameters,
    objects_from_message,
)
from lw_refinenet_ros.objects.options import ObjectsConfig
from lw_refinenet_ros.objects.processor import ObjectProcessor
from lw_refinenet_ros.ros.object_outputs import objects_message


def test_published_objects_score_like_the_detector_itself() -> None:
    scene = ConveyorScene(21, (160, 120))
    config = ObjectsConfig.from_mapping({'objects.contour_points': 48})
    processor = ObjectProcessor(config, CLASS_NAMES)
    live = ObjectStampScorer(len(CLASS_NAMES))
    frames = []
    for index in range(12):
        _, labels = scene.next_frame()
        instances = scene.render_instances()
        frame = processor.process(labels, index / 30.0)
        header = Header()
        header.stamp.sec, header.stamp.nanosec = 100, index * 1000
        msg = objects_message(frame, header, (160, 120))
        frames.append((index * 1000 + 100 * 10**9, labels, instances, msg))
    # The streams arrive in any order: objects first for some frames, truth first for others.
    for stamp, labels, instances, msg in frames:
        parts = [('objects', objects_from_message(msg)), ('labels', labels),
                 ('truth', labels), ('instances', instances)]
        for kind, value in (parts if stamp % 2 else parts[::-1]):
            live.add(kind, stamp, value)
    summary = live.summary(CLASS_NAMES)
    assert live.frames_scored == 12
    assert summary['precision'] >= 0.95 and summary['recall'] >= 0.9
    assert summary['pick_success'] == 1.0
    assert summary['track_frames'] > 0 and summary['id_switches'] == 0
    with pytest.raises(ValueError, match='kind'):
        live.add('stats', 0, None)


def test_incomplete_frames_are_not_scored() -> None:
    live = ObjectStampScorer(len(CLASS_NAMES))
    live.add('truth', 1, np.zeros((4, 4), np.uint8))
    live.add('labels', 1, np.zeros((4, 4), np.uint8))
    assert live.frames_scored == 0


def test_demo_parameters_put_the_pick_line_at_the_same_place_in_pixels_and_metres() -> None:
    args = object_parameters(320)
    values = dict(arg.split(':=') for arg in args[1::2])
    assert args[0::2] == ['-p'] * len(values)
    line_px = float(values['objects.pick_line.position_px'])
    line_m = float(values['objects.pick_line.position_m'])
    height = float(values['objects.belt.camera_height_m'])
    # The demo camera: fx = width, cx = (width - 1) / 2.
    assert line_m == pytest.approx((line_px - 159.5) / 320 * height, abs=1e-6)
    assert values['use_camera_info'] == 'true'


def test_the_parts_areas_add_pickable_scores_to_the_frames_they_reach_in_time() -> None:
    scene = ConveyorScene(31001, (160, 120), density=8.0)
    config = ObjectsConfig.from_mapping({'objects.contour_points': 48})
    processor = ObjectProcessor(config, CLASS_NAMES)
    live = ObjectStampScorer(len(CLASS_NAMES))
    for index in range(8):
        _, labels = scene.next_frame()
        instances, areas = scene.instances_and_areas()
        header = Header()
        header.stamp.sec = index
        msg = objects_message(processor.process(labels, index / 30.0), header, (160, 120))
        stamp = index * 10**9
        if index % 2 == 0:        # the camera's areas come before the node's output
            live.add('parts', stamp, areas)
        for kind, value in (('truth', labels), ('instances', instances), ('labels', labels),
                            ('objects', objects_from_message(msg))):
            live.add(kind, stamp, value)
    summary = live.summary(CLASS_NAMES)
    assert live.frames_scored == 8
    assert summary['pickable']['frames'] == 4
    assert summary['pickable']['recall'] >= summary['recall']
    assert summary['matching'] == 'one-to-one'


def test_the_camera_publishes_each_parts_unoccluded_area_at_the_density_asked(
        ros_context) -> None:
    import uuid

    from lw_refinenet_ros.msg import SegmentedObject, SegmentedObjects
    from rclpy.parameter import Parameter

    from lw_refinenet_ros.demo.conveyor_camera import ConveyorCameraNode

    def camera(density: float) -> ConveyorCameraNode:
        return ConveyorCameraNode(
            context=ros_context, namespace=f'/cam_{uuid.uuid4().hex[:8]}',
            parameter_overrides=[Parameter('seed', value=31001),
                                 Parameter('width', value=160), Parameter('height', value=120),
                                 Parameter('density', value=density),
                                 Parameter('loop_frames', value=0)])

    crowded, sparse = camera(8.0), camera(2.0)
    try:
        scene = ConveyorScene(31001, (160, 120), density=8.0)
        counts = {8.0: 0, 2.0: 0}
        for _ in range(5):
            _, _, instances, parts = crowded._frame()
            scene.next_frame()
            expected_instances, areas = scene.instances_and_areas()
            np.testing.assert_array_equal(instances, expected_instances)
            assert {i: a for i, (_, a) in parts.items()} == {
                i: a for i, a in areas.items() if a > 0}
            counts[8.0] += len(parts)
            counts[2.0] += len(sparse._frame()[3])
        assert counts[8.0] > 2 * counts[2.0]
    finally:
        crowded.destroy_node()
        sparse.destroy_node()
    # What the monitor reads back from the camera's ground_truth/objects message.
    msg = SegmentedObjects(objects=[SegmentedObject(id=7, class_id=3, pixel_count=420)])
    assert full_areas_from_message(msg) == {7: 420}
