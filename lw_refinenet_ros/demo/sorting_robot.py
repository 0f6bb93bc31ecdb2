"""Example: a sorting robot that picks each part once, when it reaches the robot.

Copy this file to start your own consumer of the segmentation node. It shows what a consumer
needs:

1. ``segmentation/class_map`` is published once with TRANSIENT_LOCAL durability: subscribe
   with the same durability (and reliable) to receive it even when you start later.
2. ``segmentation/objects`` carries one SegmentedObject per part: a persistent track id, a
   pick point guaranteed inside the part, and the predicted time at which the part crosses
   the pick line (set the node's ``objects.pick_line.*`` parameters, plus
   ``objects.belt.*`` and camera_info for metres).

The rule (:class:`PickPlanner`): a confirmed part is picked when its predicted crossing time
falls inside the robot's window ``[window_start_s, window_end_s]`` (the time the arm needs to
get there), and each track id is picked exactly once. Every decision is logged with its
reason. The older per-class rule (:func:`choose_pick`, on ``segmentation/stats``) stays for
consumers that only have statistics; it cannot tell two parts of one class apart.
"""

from __future__ import annotations

from dataclasses import dataclass
import math
from typing import Any, Sequence

from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

from lw_refinenet_ros.msg import ClassMap, SegmentationStats, SegmentedObjects
from lw_refinenet_ros.ros.conversions import stamp_seconds
from lw_refinenet_ros.ros.spinning import run_until_shutdown
from lw_refinenet_ros.ros.topic_names import CLASS_MAP, OBJECTS

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


@dataclass(frozen=True)
class ObjectPick:
    """One pick of one part (what the robot commits to).

    Attributes:
        track_id: The part's persistent id from segmentation/objects.
        class_name: Its class.
        pick: (x, y) pick point in image pixels.
        position_m: Pick point on the belt in the camera frame (metres), or None.
        time_to_line: Seconds until it crosses the pick line.
        score: Mean model confidence over the part.
        stamp: Header stamp (seconds) of the frame the decision came from.
    """

    track_id: int
    class_name: str
    pick: tuple[float, float]
    position_m: tuple[float, float, float] | None
    time_to_line: float
    score: float
    stamp: float

    def describe(self) -> str:
        where = f'({self.pick[0]:.0f}, {self.pick[1]:.0f}) px'
        if self.position_m is not None:
            x, y, z = self.position_m
            where += f' = ({x:.3f}, {y:.3f}, {z:.3f}) m'
        return (f'pick {self.class_name} #{self.track_id} at {where}: crosses the pick line '
                f'in {self.time_to_line:.2f} s, score {self.score:.2f}')


class PickPlanner:
    """Decides, frame by frame, which parts to pick; each track id at most once.

    Args:
        window_start_s: Earliest crossing time (from now) the arm can still reach.
        window_end_s: Latest crossing time worth committing to now.
        classes: Class names to pick; empty = every part.
        min_score: Parts the model is less sure about are left on the belt.
        forget_after_s: Picked ids are remembered this long (bounds memory).
    """

    def __init__(self, window_start_s: float = 0.0, window_end_s: float = 0.5,
                 classes: Sequence[str] = (), min_score: float = 0.0,
                 forget_after_s: float = 120.0) -> None:
        if not window_start_s <= window_end_s:
            raise ValueError(f'window_start_s ({window_start_s}) must not exceed window_end_s '
                             f'({window_end_s}).')
        self.window = (float(window_start_s), float(window_end_s))
        self.classes = frozenset(classes)
        self.min_score = float(min_score)
        self.forget_after_s = float(forget_after_s)
        self._picked: dict[int, float] = {}

    def already_picked(self, track_id: int) -> bool:
        """Whether this track was picked (and is still remembered)."""
        return track_id in self._picked

    def plan(self, msg: SegmentedObjects) -> tuple[list[ObjectPick], list[tuple[str, str]]]:
        """Picks for this frame, and why other parts were not picked (for the log).

        Returns:
            ``(picks, notes)``; notes are ``(kind, text)`` for parts skipped for a reason
            worth a log line (``untracked``, ``no_time``: a configuration problem;
            ``score``: a decision), not for parts that are simply not there yet.
        """
        stamp = stamp_seconds(msg.header.stamp)
        self._picked = {k: v for k, v in self._picked.items()
                        if stamp - v <= self.forget_after_s}
        picks: list[ObjectPick] = []
        notes: list[tuple[str, str]] = []
        start, end = self.window
        for obj in msg.objects:
            if self.classes and obj.class_name not in self.classes:
                continue
            if not obj.tracked:
                notes.append(('untracked', f'{obj.class_name} at ({obj.pick_x:.0f}, '
                                           f'{obj.pick_y:.0f}) has no track id (objects.tracking'
                                           f'.enabled is false): cannot pick it exactly once'))
                continue
            if not obj.confirmed or obj.id in self._picked:
                continue
            if math.isnan(obj.time_to_pick_line):
                notes.append(('no_time', f'{obj.class_name} #{obj.id} has no pick-line time: '
                                         f'set objects.pick_line.position_px (or a belt '
                                         f'calibration and objects.pick_line.position_m) on '
                                         f'the segmentation node'))
                continue
            if not start <= obj.time_to_pick_line <= end:
                continue
            if obj.score < self.min_score:
                notes.append(('score', f'{obj.class_name} #{obj.id} left on the belt: score '
                                       f'{obj.score:.2f} < {self.min_score:.2f}'))
                self._picked[obj.id] = stamp  # decided: do not reconsider every frame
                continue
            position = ((obj.position.x, obj.position.y, obj.position.z)
                        if obj.metric_valid else None)
            picks.append(ObjectPick(int(obj.id), obj.class_name, (obj.pick_x, obj.pick_y),
                                    position, float(obj.time_to_pick_line), float(obj.score),
                                    stamp))
            self._picked[obj.id] = stamp
        return picks, notes


class SortingRobotNode(Node):
    """Picks each part once, when its crossing of the pick line falls in the arm's window.

    Args:
        node_name: ROS node name.
        **kwargs: Forwarded to ``rclpy.node.Node`` (e.g. ``context=`` in tests).
    """

    def __init__(self, node_name: str = 'sorting_robot', **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        window_start = float(self.declare_parameter('window_start_s', 0.0).value)
        window_end = float(self.declare_parameter('window_end_s', 0.5).value)
        classes = list(self.declare_parameter('classes', ['']).value or [])
        min_score = float(self.declare_parameter('min_score', 0.0).value)
        self.planner = PickPlanner(window_start, window_end, [c for c in classes if c],
                                   min_score)
        self.class_names: tuple[str, ...] = ()
        self.picks: list[ObjectPick] = []  # every pick made (the demo counts them)
        self._noted: set[str] = set()
        latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self.create_subscription(ClassMap, CLASS_MAP, self._on_class_map, latched)
        self.create_subscription(SegmentedObjects, OBJECTS, self._on_objects, 10)

    def _on_class_map(self, msg: ClassMap) -> None:
        names = [''] * (max(msg.ids, default=-1) + 1)
        for class_id, name in zip(msg.ids, msg.names):
            names[class_id] = name
        self.class_names = tuple(names)
        self.get_logger().info(f'class map from {msg.model or "the model"}: {", ".join(names)}')

    def _on_objects(self, msg: SegmentedObjects) -> None:
        picks, notes = self.planner.plan(msg)
        for pick in picks:
            self.picks.append(pick)
            start, end = self.planner.window
            self.get_logger().info(f'{pick.describe()} (window {start:g}..{end:g} s)')
        for kind, note in notes:
            if kind == 'score':
                self.get_logger().info(note)  # once per part: the planner remembers it
            elif kind not in self._noted:
                self._noted.add(kind)  # a configuration problem: say it once
                self.get_logger().warning(note)


def main(args: list[str] | None = None) -> None:
    """Entry point of ``sorting_robot_node``: spin until Ctrl-C or shutdown."""
    run_until_shutdown(SortingRobotNode, args)


if __name__ == '__main__':
    main()
