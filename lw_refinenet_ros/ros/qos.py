"""Quality-of-service choices for camera input and segmentation output.

The most common "no output" complaint about segmentation nodes is a reliable subscription to a
best-effort camera, which receives nothing (docs/architecture.md §8, "No output").
Input is therefore best-effort by default, which connects to every publisher; outputs are
reliable, which both reliable (RViz default, rosbag) and best-effort subscribers accept.
"""

from __future__ import annotations

import logging

from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

_LOG = logging.getLogger(__name__)

OUTPUT_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=2,
                        reliability=ReliabilityPolicy.RELIABLE)
LATCHED_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1,
                         reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.TRANSIENT_LOCAL)


def input_qos(node: Node, topic: str, mode: str) -> QoSProfile:
    """The subscription QoS for camera input: always depth 1, so stale frames never queue.

    Args:
        node: The subscribing node (used to look up publishers for ``auto``).
        topic: The input topic, as the node will subscribe to it.
        mode: ``best_effort``, ``reliable`` or ``auto`` (reliable only when every publisher
            found right now is reliable; with none found, best-effort, which accepts both).
    """
    reliability = ReliabilityPolicy.BEST_EFFORT
    if mode == 'reliable':
        reliability = ReliabilityPolicy.RELIABLE
    elif mode == 'auto':
        resolved = node.resolve_topic_name(topic)
        publishers = node.get_publishers_info_by_topic(resolved)
        if publishers and all(info.qos_profile.reliability == ReliabilityPolicy.RELIABLE
                              for info in publishers):
            reliability = ReliabilityPolicy.RELIABLE
        node.get_logger().info(
            f'qos auto: {len(publishers)} publisher(s) on {resolved}; subscribing '
            f'{"reliable" if reliability == ReliabilityPolicy.RELIABLE else "best-effort"}')
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=reliability)
