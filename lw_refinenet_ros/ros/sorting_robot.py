"""Example: a sorting robot that decides which part to pick next from segmentation stats.

Copy this file to start your own consumer of the segmentation node. It shows the two things
every consumer needs:

1. ``segmentation/class_map`` is published once with TRANSIENT_LOCAL durability: subscribe
   with the same durability (and reliable) to receive it even when you start later.
2. ``segmentation/stats`` carries, per frame, one ClassStatistics entry per class present:
   pixel count, mean confidence, bounding box and centroid in input-image pixels. That is
   enough to act without decoding any image.

The picking rule (``choose_pick``) is deliberately simple: the belt moves toward +x, so the
part that leaves the camera's view first is the part class whose pixels reach furthest right;
among classes within ``tie_px`` of that edge the larger one wins. Belt and background are
never picked. Note that the stats aggregate all blobs of one class, so bbox/centroid span
every bolt in view; a real robot would split instances with connected components on
``segmentation/labels`` (e.g. ``cv2.connectedComponentsWithStats``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

from lw_refinenet_ros.msg import ClassMap, SegmentationStats

NOT_PARTS = ('background', 'belt')


@dataclass(frozen=True)
class Pick:
    """The robot's decision for one frame.

    Attributes:
        class_id: Label value of the chosen class.
        class_name: Its name.
        centroid: (x, y) in image pixels.
        bbox: (x, y, width, height) in image pixels.
        confidence: Mean model confidence over the class's pixels (NaN if not computed).
        pixel_count: Pixels of the class in the frame.
    """

    class_id: int
    class_name: str
    centroid: tuple[float, float]
    bbox: tuple[int, int, int, int]
    confidence: float
    pixel_count: int

    def describe(self) -> str:
        x, y, w, h = self.bbox
        return (f'pick {self.class_name} at ({self.centroid[0]:.0f}, {self.centroid[1]:.0f}) '
                f'bbox x={x} y={y} w={w} h={h}, {self.pixel_count} px, '
                f'confidence {self.confidence:.2f}')


def choose_pick(stats: SegmentationStats, names: Sequence[str] = (),
                ignore: Sequence[str] = NOT_PARTS, min_pixels: int = 40,
                tie_px: int = 8) -> Pick | None:
    """Choose the part to pick: the one nearest the belt's end (largest x), larger on ties.

    Args:
        stats: One frame's statistics.
        names: Class names by id from ClassMap; falls back to each entry's ``class_name``.
        ignore: Class names that are never picked (the belt and the background).
        min_pixels: Smaller regions are treated as noise.
        tie_px: Right edges closer than this count as equally near the end.

    Returns:
        The pick, or None when no part is in view.
    """
    candidates = []
    for entry in stats.classes:
        name = names[entry.class_id] if entry.class_id < len(names) else entry.class_name
        if name in ignore or entry.pixel_count < min_pixels:
            continue
        right_edge = entry.bbox.x_offset + entry.bbox.width
        candidates.append((right_edge, entry, name))
    if not candidates:
        return None
    furthest = max(edge for edge, _, _ in candidates)
    _, best, name = max(((e, c, n) for e, c, n in candidates if e >= furthest - tie_px),
                        key=lambda item: item[1].pixel_count)
    box = best.bbox
    return Pick(class_id=int(best.class_id), class_name=name,
                centroid=(float(best.centroid_x), float(best.centroid_y)),
                bbox=(int(box.x_offset), int(box.y_offset), int(box.width), int(box.height)),
                confidence=float(best.mean_confidence), pixel_count=int(best.pixel_count))


class SortingRobotNode(Node):
    """Logs which part to pick next, at most once per ``log_period_s``.

    Args:
        node_name: ROS node name.
        **kwargs: Forwarded to ``rclpy.node.Node`` (e.g. ``context=`` in tests).
    """

    def __init__(self, node_name: str = 'sorting_robot', **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        self.min_pixels = int(self.declare_parameter('min_pixels', 40).value)
        self.log_period_s = float(self.declare_parameter('log_period_s', 1.0).value)
        self.class_names: tuple[str, ...] = ()
        self.picks: list[Pick] = []  # every logged decision (the demo counts them)
        self._last_log_ns = 0
        latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self.create_subscription(ClassMap, 'segmentation/class_map', self._on_class_map, latched)
        self.create_subscription(SegmentationStats, 'segmentation/stats', self._on_stats, 10)

    def _on_class_map(self, msg: ClassMap) -> None:
        names = [''] * (max(msg.ids, default=-1) + 1)
        for class_id, name in zip(msg.ids, msg.names):
            names[class_id] = name
        self.class_names = tuple(names)
        self.get_logger().info(f'class map from {msg.model or "the model"}: {", ".join(names)}')

    def _on_stats(self, msg: SegmentationStats) -> None:
        now = self.get_clock().now().nanoseconds
        if now - self._last_log_ns < self.log_period_s * 1e9:
            return  # throttle: a robot arm cannot act on every frame anyway
        pick = choose_pick(msg, self.class_names, min_pixels=self.min_pixels)
        if pick is None:
            return
        self._last_log_ns = now
        self.picks.append(pick)
        self.get_logger().info(pick.describe())


def main(args: list[str] | None = None) -> None:
    """Entry point of ``sorting_robot_node``: spin until Ctrl-C or shutdown."""
    rclpy.init(args=args)
    node = None
    try:
        node = SortingRobotNode()
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()


if __name__ == '__main__':
    main()
