"""The example sorting robot: picks each part once from objects; the stats rule still works."""

from __future__ import annotations

import math
import uuid

from conftest import spin_until
from lw_refinenet_ros.msg import (
    ClassMap,
    ClassStatistics,
    SegmentationStats,
    SegmentedObject,
    SegmentedObjects,
)
import pytest
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import RegionOfInterest

from lw_refinenet_ros.demo.sorting_robot import PickPlanner, SortingRobotNode, choose_pick

NAMES = ('background', 'belt', 'bolt', 'nut', 'washer', 'gear', 'bracket', 'spring')


def _entry(class_id: int, pixels: int, box: tuple[int, int, int, int],
           confidence: float = 0.9) -> ClassStatistics:
    x, y, w, h = box
    return ClassStatistics(class_id=class_id, class_name=NAMES[class_id], pixel_count=pixels,
                           area_fraction=pixels / (320 * 240), mean_confidence=confidence,
                           bbox=RegionOfInterest(x_offset=x, y_offset=y, width=w, height=h),
                           centroid_x=x + w / 2, centroid_y=y + h / 2)


def _stats() -> SegmentationStats:
    return SegmentationStats(height=240, width=320, num_classes=8, classes=[
        _entry(0, 20000, (0, 0, 320, 240)),     # background reaches the right edge: ignored
        _entry(1, 40000, (0, 30, 320, 180)),    # belt too
        _entry(2, 900, (10, 40, 190, 60)),      # bolt: right edge 200
        _entry(3, 300, (250, 100, 40, 30)),     # nut: right edge 290, small
        _entry(5, 800, (240, 60, 45, 50), confidence=0.75),  # gear: edge 285 (tie), larger
        _entry(7, 12, (300, 10, 19, 2)),        # spring: furthest right but only 12 px (noise)
    ])


def test_picks_the_larger_part_among_those_nearest_the_belt_end():
    pick = choose_pick(_stats(), NAMES)
    assert pick is not None
    assert (pick.class_id, pick.class_name) == (5, 'gear')
    assert pick.bbox == (240, 60, 45, 50)
    assert pick.centroid == (262.5, 85.0)
    assert pick.pixel_count == 800 and math.isclose(pick.confidence, 0.75, rel_tol=1e-6)
    assert pick.describe().startswith('pick gear at (262, 85) bbox x=240 y=60 w=45 h=50')


def test_tie_and_noise_thresholds():
    # Without the tie tolerance the nut (edge 290) beats the gear (edge 285).
    assert choose_pick(_stats(), NAMES, tie_px=0).class_name == 'nut'
    # With no noise threshold the 12-pixel spring at the very edge wins.
    assert choose_pick(_stats(), NAMES, min_pixels=1).class_name == 'spring'


def test_nothing_to_pick_on_an_empty_belt():
    empty = SegmentationStats(classes=[_entry(0, 20000, (0, 0, 320, 240)),
                                       _entry(1, 50000, (0, 30, 320, 180))])
    assert choose_pick(empty, NAMES) is None


def test_class_map_names_win_over_stats_names():
    stats = SegmentationStats(classes=[_entry(2, 500, (100, 100, 20, 20))])
    stats.classes[0].class_name = 'stale'
    assert choose_pick(stats, NAMES).class_name == 'bolt'
    assert choose_pick(stats, ()).class_name == 'stale'
    renamed = list(NAMES)
    renamed[2] = 'belt'  # a model whose class 2 is belt: never picked
    assert choose_pick(stats, renamed) is None


def _object(track_id: int, time_to_line: float, class_id: int = 3, confirmed: bool = True,
            score: float = 0.9, tracked: bool = True) -> SegmentedObject:
    obj = SegmentedObject(id=track_id, class_id=class_id, class_name=NAMES[class_id],
                          score=score, pixel_count=400, pick_x=100.0 + track_id,
                          pick_y=120.0, tracked=tracked, confirmed=confirmed,
                          time_to_pick_line=time_to_line)
    obj.bbox = RegionOfInterest(x_offset=90, y_offset=110, width=20, height=20)
    return obj


def _objects(stamp_s: float, *objects: SegmentedObject) -> SegmentedObjects:
    msg = SegmentedObjects(height=240, width=320, objects=list(objects))
    msg.header.stamp.sec = int(stamp_s)
    msg.header.stamp.nanosec = int((stamp_s % 1) * 1e9)
    return msg


def test_planner_picks_a_part_once_when_it_enters_the_window():
    planner = PickPlanner(window_start_s=0.0, window_end_s=0.5)
    # Part 4 approaches the line: 1.2 s, 0.8 s, 0.4 s (pick), 0.1 s, then crossed.
    picked = []
    for frame, t in enumerate((1.2, 0.8, 0.4, 0.1, -0.2)):
        picks, _ = planner.plan(_objects(frame * 0.4, _object(4, t), _object(5, t + 2.0)))
        picked += [(frame, p.track_id) for p in picks]
    assert picked == [(2, 4)]
    assert planner.already_picked(4) and not planner.already_picked(5)


def test_planner_never_picks_a_part_twice_even_when_it_reenters_the_window():
    planner = PickPlanner(0.0, 0.5)
    times = (0.4, 0.3, 0.45, 0.2, 0.35)   # e.g. a belt that slows down and jitters
    counts = [len(planner.plan(_objects(k * 0.1, _object(9, t)))[0])
              for k, t in enumerate(times)]
    assert counts == [1, 0, 0, 0, 0]


def test_planner_skips_tentative_untracked_and_unsure_parts_and_says_why():
    planner = PickPlanner(0.0, 0.5, min_score=0.8)
    picks, notes = planner.plan(_objects(
        1.0, _object(1, 0.2, confirmed=False), _object(2, 0.2, tracked=False),
        _object(3, float('nan')), _object(6, 0.2, score=0.5), _object(7, 0.2)))
    assert [p.track_id for p in picks] == [7]
    kinds = [kind for kind, _ in notes]
    assert kinds == ['untracked', 'no_time', 'score']
    assert 'objects.pick_line' in notes[1][1]
    # The unsure part is decided once, not re-reported every frame.
    assert planner.plan(_objects(1.1, _object(6, 0.1, score=0.5)))[1] == []


def test_planner_filters_classes_and_checks_its_window():
    planner = PickPlanner(0.0, 1.0, classes=('gear',))
    picks, _ = planner.plan(_objects(0.0, _object(1, 0.5, class_id=3),
                                     _object(2, 0.5, class_id=5)))
    assert [p.class_name for p in picks] == ['gear']
    assert picks[0].describe().startswith('pick gear #2 at (102, 120) px: crosses the pick '
                                          'line in 0.50 s')
    with pytest.raises(ValueError, match='window_start_s'):
        PickPlanner(1.0, 0.5)


def test_node_picks_each_part_once_from_objects(ros_context):
    namespace = f'/robot_{uuid.uuid4().hex[:8]}'
    robot = SortingRobotNode(context=ros_context, namespace=namespace)
    source = Node('objects_source', context=ros_context, namespace=namespace)
    latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.TRANSIENT_LOCAL)
    map_pub = source.create_publisher(ClassMap, 'segmentation/class_map', latched)
    objects_pub = source.create_publisher(SegmentedObjects, 'segmentation/objects', 10)
    # Published before anyone listens: transient local still delivers it.
    map_pub.publish(ClassMap(ids=list(range(8)), names=list(NAMES), model='test'))
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(robot)
    executor.add_node(source)
    assert spin_until(executor, lambda: robot.class_names == NAMES, timeout=5.0)

    def publish_until_pick() -> bool:
        objects_pub.publish(_objects(5.0, _object(3, 0.3, class_id=5)))
        return bool(robot.picks)

    assert spin_until(executor, publish_until_pick, timeout=5.0)
    for _ in range(5):  # the same part, still in the window: never picked again
        objects_pub.publish(_objects(5.1, _object(3, 0.2, class_id=5)))
    spin_until(executor, lambda: False, timeout=0.3)
    assert [(p.track_id, p.class_name) for p in robot.picks] == [(3, 'gear')]
