"""The demo's object scores: four streams paired by stamp, masks rebuilt from labels."""

from __future__ import annotations

import numpy as np
import pytest
from std_msgs.msg import Header

from lw_refinenet_ros.data.conveyor import CLASS_NAMES, ConveyorScene
from lw_refinenet_ros.demo.object_scoring import (
    ObjectStampScorer,
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
