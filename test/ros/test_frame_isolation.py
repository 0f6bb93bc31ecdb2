"""One camera's bad frame fails that frame only.

Whatever goes wrong while decoding or converting a frame (the project's own errors, or an
exception from OpenCV) is counted as a failure of that frame, logged once per throttle period
as one line naming the camera and the cause, and never fails the other cameras' frames of the
same batch. Compressed images whose header declares too many pixels are refused unread.
"""

from __future__ import annotations

import time

import cv2
import numpy as np
from rclpy.parameter import Parameter
from sensor_msgs.msg import CompressedImage, Image

from lw_refinenet_ros.ros import inputs as pipeline_module
from lw_refinenet_ros.ros.conversions import array_to_image
from lw_refinenet_ros.scheduler import Frame
from lw_refinenet_ros.testing.fake_engine import FakeEngine
from lw_refinenet_ros.testing.fake_node import NodeHarness


def _frame(camera: str, message: object, sequence: int = 1) -> Frame:
    return Frame(camera, message, time.time(), time.monotonic(), sequence)


def _image(frame_id: str) -> Image:
    pixels = np.zeros((12, 16, 3), np.uint8)
    pixels[:, :8, 0] = 255
    message = array_to_image(pixels, Image().header)
    message.header.frame_id = frame_id
    return message


def _two_cameras(ros_context: object, engine: FakeEngine, **params: object) -> NodeHarness:
    parameters = [Parameter('cameras', value=['left', 'right'])]
    parameters += [Parameter(name, value=value) for name, value in params.items()]
    return NodeHarness(ros_context, engine, parameters=parameters)


def test_an_opencv_error_fails_only_that_cameras_frame(ros_context, monkeypatch, capfd) -> None:
    real = pipeline_module.image_to_rgb

    def decode(message: Image, limit: int) -> tuple[np.ndarray, str]:
        if message.header.frame_id == 'left':
            raise cv2.error('OpenCV(4.10) error: (-215:Assertion failed)\n  in cvtColor')
        return real(message, limit)

    monkeypatch.setattr(pipeline_module, 'image_to_rgb', decode)
    engine = FakeEngine()
    harness = _two_cameras(ros_context, engine)
    try:
        right_labels = harness.listen('right/segmentation/labels')
        pipeline = harness.node.pipeline.inference
        ok = pipeline._process([_frame('left', _image('left')), _frame('right', _image('right'))])
        assert ok == [False, True]
        assert len(engine.batches) == 1 and len(engine.batches[0]) == 1  # right only
        assert harness.spin_until(lambda: bool(right_labels))
        assert right_labels[0].header.frame_id == 'right'
        # A second bad frame inside the throttle period logs nothing more.
        assert pipeline._process([_frame('left', _image('left'), 2)]) == [False]
    finally:
        harness.close()
    logged = capfd.readouterr().err
    lines = [line for line in logged.splitlines() if 'bad frame from camera "left"' in line]
    assert len(lines) == 1, logged
    assert 'error: OpenCV(4.10) error: (-215:Assertion failed) in cvtColor' in lines[0]
    assert 'Traceback' not in logged


def test_counters_count_the_bad_frame_as_failed_and_the_good_one_as_processed(
        ros_context, monkeypatch) -> None:
    monkeypatch.setattr(pipeline_module, 'image_to_rgb', lambda message, limit: (
        (_ for _ in ()).throw(ZeroDivisionError('division by zero'))
        if message.header.frame_id == 'left' else (np.zeros((12, 16, 3), np.uint8), 'rgb')))
    harness = _two_cameras(ros_context, FakeEngine())
    try:
        left = harness.publisher('left/image')
        right = harness.publisher('right/image')
        labels = harness.listen('right/segmentation/labels')

        def both_sent() -> bool:
            left.publish(_image('left'))
            right.publish(_image('right'))
            return len(labels) >= 2 and harness.node.counters('left').failed >= 2
        assert harness.spin_until(both_sent, timeout=15)
        assert harness.node.counters('left').processed == 0
        assert harness.node.counters('right').failed == 0
    finally:
        harness.close()


def test_a_compressed_header_over_the_pixel_limit_is_refused_unread(
        ros_context, monkeypatch) -> None:
    calls: list[int] = []
    real = cv2.imdecode
    monkeypatch.setattr(cv2, 'imdecode', lambda data, flags: calls.append(len(data))
                        or real(data, flags))
    harness = NodeHarness(ros_context, FakeEngine(), parameters=[
        Parameter('input_type', value='compressed'), Parameter('max_image_pixels', value=10000),
        Parameter('log_throttle_s', value=0.0)])
    try:
        small = cv2.imencode('.png', np.zeros((50, 60, 3), np.uint8))[1].tobytes()
        # The same file with an IHDR that claims 60000 x 50000 pixels.
        huge = small[:16] + (60000).to_bytes(4, 'big') + (50000).to_bytes(4, 'big') + small[24:]
        pipeline = harness.node.pipeline.inference
        assert pipeline._process([_frame('', CompressedImage(format='png',
                                                                     data=huge))]) == [False]
        assert calls == []
        assert pipeline._process([_frame('', CompressedImage(format='png',
                                                                     data=small))]) == [True]
        assert calls == [len(small)]
    finally:
        harness.close()
