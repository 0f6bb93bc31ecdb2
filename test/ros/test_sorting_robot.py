"""The example sorting robot picks the part nearest the belt's end from hand-made stats."""

from __future__ import annotations

import math
import uuid

from conftest import spin_until
import pytest

rclpy = pytest.importorskip('rclpy')

from lw_refinenet_ros.msg import ClassMap, ClassStatistics, SegmentationStats  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.node import Node  # noqa: E402
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy  # noqa: E402
from sensor_msgs.msg import RegionOfInterest  # noqa: E402

from lw_refinenet_ros.ros.sorting_robot import SortingRobotNode, choose_pick  # noqa: E402

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


def test_node_logs_throttled_picks_from_topics(ros_context):
    namespace = f'/robot_{uuid.uuid4().hex[:8]}'
    robot = SortingRobotNode(context=ros_context, namespace=namespace)
    source = Node('stats_source', context=ros_context, namespace=namespace)
    latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.TRANSIENT_LOCAL)
    map_pub = source.create_publisher(ClassMap, 'segmentation/class_map', latched)
    stats_pub = source.create_publisher(SegmentationStats, 'segmentation/stats', 10)
    # Published before anyone listens: transient local still delivers it.
    map_pub.publish(ClassMap(ids=list(range(8)), names=list(NAMES), model='test'))
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(robot)
    executor.add_node(source)
    assert spin_until(executor, lambda: robot.class_names == NAMES, timeout=5.0)

    def publish_until_pick() -> bool:
        stats_pub.publish(_stats())
        return bool(robot.picks)

    assert spin_until(executor, publish_until_pick, timeout=5.0)
    for _ in range(5):  # within log_period_s of the first pick: throttled
        stats_pub.publish(_stats())
    spin_until(executor, lambda: False, timeout=0.3)
    assert len(robot.picks) == 1
    assert robot.picks[0].class_name == 'gear'
