"""The synthetic conveyor camera: image + ground truth with one header, at the set rate."""

from __future__ import annotations

import uuid

from conftest import spin_until
import numpy as np
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image

from lw_refinenet_ros.data.conveyor import NUM_CLASSES
from lw_refinenet_ros.demo.conveyor_camera import FRAME_ID, ConveyorCameraNode


def _namespace() -> str:
    # Unique per test: other suites on this machine may share the DDS domain.
    return f'/cam_{uuid.uuid4().hex[:8]}'


def _camera(ctx, namespace: str, **params) -> ConveyorCameraNode:
    overrides = [Parameter(k, value=v) for k, v in params.items()]
    return ConveyorCameraNode(context=ctx, namespace=namespace, parameter_overrides=overrides)


class _Sink:
    """Collects camera output in a separate node (as a consumer would)."""

    def __init__(self, ctx, namespace: str) -> None:
        self.node = Node('camera_sink', context=ctx, namespace=namespace)
        self.images: list[Image] = []
        self.truth: list[Image] = []
        self.infos: list[CameraInfo] = []
        qos = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
        self.node.create_subscription(Image, 'image', self.images.append, qos)
        self.node.create_subscription(Image, 'ground_truth/labels', self.truth.append, qos)
        self.node.create_subscription(CameraInfo, 'camera_info', self.infos.append, qos)


def test_publishes_image_and_truth_with_equal_headers_at_rate(ros_context):
    rate = 20.0
    ns = _namespace()
    camera = _camera(ros_context, ns, width=64, height=48, rate_hz=rate, loop_frames=8,
                     wait_for_subscribers=1)
    sink = _Sink(ros_context, ns)
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(camera)
    executor.add_node(sink.node)
    assert spin_until(executor, lambda: len(sink.truth) >= 25 and len(sink.images) >= 25,
                      timeout=10.0)

    truth_by_stamp = {(m.header.stamp.sec, m.header.stamp.nanosec): m for m in sink.truth}
    for image in sink.images[:20]:
        key = (image.header.stamp.sec, image.header.stamp.nanosec)
        assert key in truth_by_stamp, 'every image has ground truth with the same stamp'
        truth = truth_by_stamp[key]
        assert image.header.frame_id == truth.header.frame_id == FRAME_ID
        assert (image.encoding, image.width, image.height, image.step) == ('rgb8', 64, 48, 192)
        assert (truth.encoding, truth.width, truth.height, truth.step) == ('mono8', 64, 48, 64)
        labels = np.frombuffer(truth.data, np.uint8)
        assert labels.size == 64 * 48 and labels.max() < NUM_CLASSES
    # Stamps are unique (the demo pairs on them) and spaced at the configured rate.
    stamps = sorted(s + n * 1e-9 for s, n in truth_by_stamp)
    assert len(stamps) == len(sink.truth)
    measured = (len(stamps) - 1) / (stamps[-1] - stamps[0])
    assert 0.6 * rate < measured < 1.25 * rate
    assert sink.infos and sink.infos[0].width == 64 and sink.infos[0].k[0] == 64.0
    # The cached loop replays the same frames: frame 8 repeats frame 0.
    assert bytes(sink.images[8].data) == bytes(sink.images[0].data)
    assert camera.frames_published >= len(sink.images)


def test_waits_for_subscribers_before_publishing(ros_context):
    ns = _namespace()
    camera = _camera(ros_context, ns, width=32, height=32, rate_hz=50.0, wait_for_subscribers=1)
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(camera)
    spin_until(executor, lambda: False, timeout=0.3)
    assert camera.frames_published == 0
    sink = _Sink(ros_context, ns)
    executor.add_node(sink.node)
    assert spin_until(executor, lambda: len(sink.images) >= 3, timeout=5.0)


def test_live_rendering_without_loop(ros_context):
    ns = _namespace()
    camera = _camera(ros_context, ns, width=48, height=32, rate_hz=50.0, loop_frames=0)
    sink = _Sink(ros_context, ns)
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(camera)
    executor.add_node(sink.node)
    assert spin_until(executor, lambda: len(sink.images) >= 3, timeout=5.0)
    assert camera.loop_seconds == float('inf')


def test_instances_mark_every_part_pixel_and_get_new_ids_each_loop_pass(ros_context):
    ns = _namespace()
    camera = _camera(ros_context, ns, width=96, height=72, rate_hz=50.0, loop_frames=4,
                     seed=3)
    sink = _Sink(ros_context, ns)
    instances: list[Image] = []
    qos = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
    sink.node.create_subscription(Image, 'ground_truth/instances', instances.append, qos)
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(camera)
    executor.add_node(sink.node)
    assert spin_until(executor, lambda: len(instances) >= 9 and len(sink.truth) >= 9,
                      timeout=10.0)
    truth_by_stamp = {(m.header.stamp.sec, m.header.stamp.nanosec): m for m in sink.truth}
    ids = []
    for message in instances[:9]:
        assert (message.encoding, message.step) == ('mono16', 96 * 2)
        parts = np.frombuffer(bytes(message.data), '<u2').reshape(72, 96)
        labels = np.frombuffer(bytes(truth_by_stamp[(message.header.stamp.sec,
                                                     message.header.stamp.nanosec)].data),
                               np.uint8).reshape(72, 96)
        # A part pixel has an id, a belt or floor pixel none (classes 0 and 1).
        assert np.array_equal(parts > 0, labels >= 2)
        ids.append(set(np.unique(parts[parts > 0]).tolist()))
    assert ids[0], 'seed 3 has parts in view'
    # Frame 4 replays frame 0 with new ids: a tracker must see new parts, not old ones.
    assert len(ids[4]) == len(ids[0]) and not ids[4] & ids[0]
