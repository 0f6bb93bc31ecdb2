"""TransportMonitor: loss counts and silent-publisher detection, on a driven clock."""

from __future__ import annotations

import types

import pytest

pytest.importorskip('rclpy')

from lw_refinenet_ros.ros.diagnostics import LatencyWindow, camera_status  # noqa: E402
from lw_refinenet_ros.ros.transport import (  # noqa: E402
    LOSS_FIX,
    SILENCE_S,
    TransportHealth,
    TransportMonitor,
)
from lw_refinenet_ros.scheduler import FrameCounters  # noqa: E402


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def lost(total: int) -> types.SimpleNamespace:
    return types.SimpleNamespace(total_count=total, total_count_change=1)


def matched(current: int) -> types.SimpleNamespace:
    return types.SimpleNamespace(current_count=current, total_count=current)


def test_lost_frames_are_reported_once_per_period_with_the_share_lost() -> None:
    clock = Clock()
    monitor = TransportMonitor(clock=clock)
    monitor.report(publishers=1)
    for _ in range(3):
        monitor.note_message()
    monitor._on_message_lost(lost(5))
    monitor._on_message_lost(lost(9))
    health = monitor.report(publishers=1)
    assert (health.lost_new, health.lost_total, health.received_new) == (9, 9, 3)
    assert health.problem() == '9 of 12 frame(s) lost in transport since the last report ' \
                               '(9 in total)'
    # Nothing new: no problem, the total stays visible.
    monitor.note_message()
    health = monitor.report(publishers=1)
    assert (health.lost_new, health.lost_total, health.problem()) == (0, 9, None)


def test_a_matched_publisher_that_delivers_nothing_becomes_silent_after_the_limit() -> None:
    clock = Clock()
    monitor = TransportMonitor(clock=clock)
    assert monitor.report(publishers=0).problem() is None
    monitor._on_matched(matched(1))
    clock.now += SILENCE_S - 0.5
    assert monitor.report(publishers=1).problem() is None
    clock.now += 1.0
    health = monitor.report(publishers=1)
    assert health.silent
    assert 'no frame for 4 s' in health.problem()
    assert health.transport_suspected  # it never delivered: the transport is the suspect
    assert 'lost in transport' in health.problem()
    # A frame arrives: healthy again; the publisher goes away: never silent.
    monitor.note_message()
    assert monitor.report(publishers=1).problem() is None
    clock.now += 60
    gone = monitor.report(publishers=0)
    assert not gone.silent and not gone.transport_suspected
    assert gone.problem() == 'no publisher any more (last frame 60 s ago): the camera ' \
                             'stopped or died'


def test_a_camera_that_delivered_and_went_quiet_is_not_blamed_on_the_transport() -> None:
    clock = Clock()
    monitor = TransportMonitor(clock=clock)
    monitor.report(publishers=1)
    monitor.note_message()
    clock.now += SILENCE_S + 1  # killed: its publisher stays matched until the lease ends
    health = monitor.report(publishers=1)
    assert health.silent and not health.transport_suspected
    assert 'stopped sending or died' in health.problem()
    assert 'transport' not in health.problem()


def test_no_publisher_is_not_silence_and_a_new_publisher_gets_the_full_period() -> None:
    clock = Clock()
    monitor = TransportMonitor(clock=clock)
    clock.now += 100  # a long time without any publisher
    health = monitor.report(publishers=1)  # one appears now
    assert not health.silent and health.silent_s == 0.0
    clock.now += SILENCE_S + 0.1
    assert monitor.report(publishers=1).silent


def test_a_slow_but_regular_camera_is_not_called_silent_between_its_frames() -> None:
    clock = Clock()
    monitor = TransportMonitor(clock=clock)
    monitor.report(publishers=1)
    for _ in range(5):  # a triggered camera: one frame every 2 s
        monitor.note_message()
        clock.now += 2.0
    clock.now += 4.0  # 6 s since the last frame: 3 of its intervals
    assert not monitor.report(publishers=1).silent
    clock.now += 15.0  # 21 s: more than ten intervals
    assert monitor.report(publishers=1).silent


def test_the_diagnostic_status_warns_with_the_loss_and_shows_the_counts() -> None:
    counters = FrameCounters(received=10, processed=10)
    args = ('cam', 'node', counters, FrameCounters(), 1.0, LatencyWindow(), LatencyWindow(), {})
    healthy = camera_status(*args, TransportHealth(publishers=1, received_new=10))
    assert healthy.level == healthy.OK
    lossy = camera_status(*args, TransportHealth(publishers=1, lost_total=30, lost_new=30,
                                                 received_new=10))
    assert lossy.level == lossy.WARN
    assert lossy.message.startswith('30 of 40 frame(s) lost in transport')
    values = {pair.key: pair.value for pair in lossy.values}
    assert values['lost_in_transport'] == '30' and values['publishers'] == '1'
    assert 'fastdds_shm.xml' in LOSS_FIX and 'reliable' in LOSS_FIX and 'compressed' in LOSS_FIX
