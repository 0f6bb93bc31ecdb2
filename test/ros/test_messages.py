"""The generated messages are real ROS 2 types: they publish and subscribe between nodes."""

from __future__ import annotations

from conftest import spin_until
from lw_refinenet_ros.msg import ClassMap, ClassStatistics, SegmentationStats
import pytest
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from std_msgs.msg import ColorRGBA


def _stats_message() -> SegmentationStats:
    message = SegmentationStats()
    message.header.frame_id = 'camera_optical'
    message.header.stamp.sec = 12
    message.header.stamp.nanosec = 345
    message.height, message.width, message.num_classes = 48, 64, 7
    bolt = ClassStatistics(class_id=2, class_name='bolt', pixel_count=30, area_fraction=30 / 3072,
                           mean_confidence=0.9, centroid_x=10.5, centroid_y=4.0)
    bolt.bbox.x_offset, bolt.bbox.y_offset, bolt.bbox.width, bolt.bbox.height = 8, 2, 6, 5
    message.classes = [bolt]
    message.processing_latency_ms = 3.5
    message.frame_age_ms = 7.25
    return message


def test_segmentation_stats_round_trip_between_two_nodes(ros_context) -> None:
    publisher_node = rclpy.create_node('stats_publisher', context=ros_context)
    subscriber_node = rclpy.create_node('stats_subscriber', context=ros_context)
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(publisher_node)
    executor.add_node(subscriber_node)
    received: list[SegmentationStats] = []
    publisher = publisher_node.create_publisher(SegmentationStats, 'test_msgs/stats', 10)
    subscriber_node.create_subscription(SegmentationStats, 'test_msgs/stats', received.append, 10)
    sent = _stats_message()

    def delivered() -> bool:
        if not received:
            publisher.publish(sent)  # keep publishing until discovery completes
        return bool(received)

    try:
        assert spin_until(executor, delivered, timeout=10.0)
        got = received[0]
        assert got.header.frame_id == 'camera_optical'
        assert (got.header.stamp.sec, got.header.stamp.nanosec) == (12, 345)
        assert (got.height, got.width, got.num_classes) == (48, 64, 7)
        assert got.classes[0].class_name == 'bolt'
        assert got.classes[0].bbox.width == 6
        assert got.classes[0].centroid_x == pytest.approx(10.5)
        assert got.frame_age_ms == pytest.approx(7.25)
    finally:
        executor.shutdown()
        publisher_node.destroy_node()
        subscriber_node.destroy_node()


def test_class_map_reaches_a_late_subscriber_with_transient_local(ros_context) -> None:
    latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.TRANSIENT_LOCAL)
    publisher_node = rclpy.create_node('map_publisher', context=ros_context)
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(publisher_node)
    publisher = publisher_node.create_publisher(ClassMap, 'test_msgs/class_map', latched)
    class_map = ClassMap(ids=[0, 1, 2], names=['background', 'belt', 'bolt'], model='mbv2')
    class_map.colors = [ColorRGBA(r=0.0, g=0.0, b=0.0, a=1.0),
                        ColorRGBA(r=0.5, g=0.5, b=0.5, a=1.0),
                        ColorRGBA(r=1.0, g=0.0, b=0.0, a=1.0)]
    publisher.publish(class_map)  # published once, before anyone subscribes

    subscriber_node = rclpy.create_node('late_map_subscriber', context=ros_context)
    executor.add_node(subscriber_node)
    received: list[ClassMap] = []
    subscriber_node.create_subscription(ClassMap, 'test_msgs/class_map', received.append, latched)
    try:
        assert spin_until(executor, lambda: bool(received), timeout=10.0)
        assert list(received[0].names) == ['background', 'belt', 'bolt']
        assert list(received[0].ids) == [0, 1, 2]
        assert received[0].colors[2].r == pytest.approx(1.0)
        assert len(received) == 1
    finally:
        executor.shutdown()
        publisher_node.destroy_node()
        subscriber_node.destroy_node()
