"""Input QoS choices (best-effort default, reliable, auto-matched) and outputs that reach
reliable and best-effort subscribers alike."""

from __future__ import annotations

from conftest import spin_until
import numpy as np
import pytest
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter
from rclpy.qos import (
    QoSProfile,
    ReliabilityPolicy,
    qos_profile_sensor_data,
)
from sensor_msgs.msg import Image

from lw_refinenet_ros.ros.conversions import array_to_image
from lw_refinenet_ros.ros.node import SegmentationNode
from lw_refinenet_ros.ros.qos import input_qos
from lw_refinenet_ros.testing.fake_engine import FakeEngine
from lw_refinenet_ros.testing.fake_node import fake_factory

RELIABLE = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)


@pytest.fixture
def probe(ros_context):
    node = rclpy.create_node('qos_probe', context=ros_context)
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(node)
    yield node, executor
    executor.shutdown()
    node.destroy_node()


@pytest.mark.parametrize('publisher_qos,expected', [
    (None, ReliabilityPolicy.BEST_EFFORT),              # nobody yet: accept both kinds
    (qos_profile_sensor_data, ReliabilityPolicy.BEST_EFFORT),
    (RELIABLE, ReliabilityPolicy.RELIABLE),
])
def test_auto_matches_the_publisher(probe, publisher_qos, expected) -> None:
    node, executor = probe
    topic = f'auto_{expected.name.lower()}_{publisher_qos is None}/image'
    if publisher_qos is not None:
        node.create_publisher(Image, topic, publisher_qos)
        assert spin_until(executor, lambda: node.count_publishers(topic) == 1)
    profile = input_qos(node, topic, 'auto')
    assert profile.reliability == expected and profile.depth == 1


@pytest.mark.parametrize('mode,expected', [('best_effort', ReliabilityPolicy.BEST_EFFORT),
                                           ('reliable', ReliabilityPolicy.RELIABLE)])
def test_explicit_modes_keep_depth_one(probe, mode, expected) -> None:
    profile = input_qos(probe[0], 'image', mode)
    assert (profile.reliability, profile.depth) == (expected, 1)


def test_sensor_data_camera_in_and_both_kinds_of_subscriber_out(ros_context, probe) -> None:
    """The default node takes a best-effort camera; reliable and best-effort listeners (RViz
    defaults to reliable, many tools to best-effort) both receive its outputs."""
    probe_node, executor = probe
    node = SegmentationNode(engine_factory=fake_factory(FakeEngine()), context=ros_context,
                            namespace='qos_case')
    executor.add_node(node)
    try:
        camera = probe_node.create_publisher(Image, '/qos_case/image', qos_profile_sensor_data)
        reliable, best_effort = [], []
        probe_node.create_subscription(Image, '/qos_case/segmentation/labels', reliable.append,
                                       RELIABLE)
        probe_node.create_subscription(Image, '/qos_case/segmentation/labels',
                                       best_effort.append, qos_profile_sensor_data)
        frame = array_to_image(np.zeros((8, 8, 3), np.uint8), Image().header)
        assert spin_until(executor, lambda: (camera.publish(frame),
                                             bool(reliable) and bool(best_effort))[1], 10)
    finally:
        executor.remove_node(node)
        node.destroy_node()


def test_auto_node_subscribes_reliable_to_a_reliable_camera(ros_context, probe) -> None:
    probe_node, executor = probe
    probe_node.create_publisher(Image, '/auto_case/image', RELIABLE)
    assert spin_until(executor, lambda: probe_node.count_publishers('/auto_case/image') == 1)
    node = SegmentationNode(engine_factory=fake_factory(FakeEngine()), context=ros_context,
                            namespace='auto_case',
                            parameter_overrides=[Parameter('qos', value='auto')])
    try:
        infos = node.get_subscriptions_info_by_topic('/auto_case/image')
        assert [i.qos_profile.reliability for i in infos] == [ReliabilityPolicy.RELIABLE]
    finally:
        node.destroy_node()
