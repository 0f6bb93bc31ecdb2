"""A stand-in segmentation node that works, then exits with code 3 when stopped: the demo must
report it (and exit non-zero) instead of calling the run clean.

The node is the tests' fake node (the real node around the conveyor colour rule engine), spun
here with plain rclpy: the node's own process entry ends a signalled process with exit code 0
by design, which is exactly what this stand-in must not do.
"""

from __future__ import annotations

import sys

import rclpy
from rclpy.executors import ExternalShutdownException

from lw_refinenet_ros.ros.node import SegmentationNode
from lw_refinenet_ros.testing.fake_node import fake_factory, rule_engine


def main() -> int:
    rclpy.init(args=sys.argv)
    engine, class_map = rule_engine('conveyor')
    node = SegmentationNode(engine_factory=fake_factory(engine, class_map))
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return 3
