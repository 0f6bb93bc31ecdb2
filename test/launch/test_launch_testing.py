"""Real ``launch_testing`` proof-of-life for the three segmentation launch files.

launch, launch_ros and launch_testing have no pip wheels (docs/architecture.md §7), so
this module skips in the pip venv and runs in a full ROS 2 install (``colcon test``): each
launch file starts the node, a frame goes in, labels must come out, and every process must
exit 0 when launch shuts it down with SIGINT.
"""

from __future__ import annotations

import os
from pathlib import Path
import time
import unittest

import pytest

pytest.importorskip('launch_ros')
launch_testing = pytest.importorskip('launch_testing')
if not hasattr(launch_testing, 'parametrize'):
    pytest.skip('the "launch" on sys.path is not ROS 2 launch_testing', allow_module_level=True)

FORMATS = ('segmentation.launch.py', 'segmentation.launch.xml', 'segmentation.launch.yaml')
IMAGE_TOPIC = f'/launch_testing_{os.getpid()}/image_raw'
OUTPUT_DEADLINE_S = 60.0


def _launch_dir() -> Path:
    """The installed launch files (what ``ros2 launch`` uses), else the source tree's."""
    try:
        from ament_index_python.packages import get_package_share_directory
        return Path(get_package_share_directory('lw_refinenet_ros')) / 'launch'
    except (ImportError, LookupError, OSError):
        return Path(__file__).resolve().parents[2] / 'launch'


@pytest.mark.launch_test
@launch_testing.parametrize('launch_file', FORMATS)
def generate_test_description(launch_file: str):  # noqa: ANN201 (launch_testing's contract)
    from launch import LaunchDescription
    from launch.actions import IncludeLaunchDescription
    from launch.launch_description_sources import AnyLaunchDescriptionSource
    import launch_testing.actions

    include = IncludeLaunchDescription(
        AnyLaunchDescriptionSource(str(_launch_dir() / launch_file)),
        launch_arguments={'image_topic': IMAGE_TOPIC, 'device': 'cpu'}.items())
    return LaunchDescription([include, launch_testing.actions.ReadyToTest()])


class TestSegmentationOutput(unittest.TestCase):

    def test_labels_arrive_for_published_image(self, launch_file: str) -> None:
        import rclpy
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import Image

        context = rclpy.Context()
        rclpy.init(context=context)
        try:
            node = rclpy.create_node('launch_testing_probe', context=context)
            executor = SingleThreadedExecutor(context=context)
            executor.add_node(node)
            received = []
            publisher = node.create_publisher(Image, IMAGE_TOPIC, 1)
            node.create_subscription(
                Image, '/segmentation/labels', received.append,
                QoSProfile(depth=5, reliability=ReliabilityPolicy.BEST_EFFORT))
            frame = Image(height=48, width=64, encoding='rgb8', step=64 * 3)
            frame.data = bytes(48 * 64 * 3)
            deadline = time.monotonic() + OUTPUT_DEADLINE_S
            while not received and time.monotonic() < deadline:
                frame.header.stamp = node.get_clock().now().to_msg()
                publisher.publish(frame)
                executor.spin_once(timeout_sec=0.2)
            self.assertTrue(received, f'{launch_file}: no segmentation/labels')
            self.assertEqual((received[0].height, received[0].width), (48, 64))
        finally:
            context.try_shutdown()


@launch_testing.post_shutdown_test()
class TestCleanShutdown(unittest.TestCase):

    def test_exit_codes(self, proc_info) -> None:  # noqa: ANN001 (injected by launch_testing)
        import launch_testing.asserts

        launch_testing.asserts.assertExitCodes(proc_info)  # SIGINT from launch must give 0
