"""The latest-frame scheduler: newest frame wins, nothing twice, counters always add up."""

from __future__ import annotations

import threading

import pytest

from lw_refinenet_ros.errors import ConfigError
from lw_refinenet_ros.scheduler import Frame, LatestFrameScheduler, SchedulerConfig


class FakeClock:
    def __init__(self, start: float = 100.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


def make(sources=('cam',), config=None, outcome=True):
    clock = FakeClock()
    stamp_clock = FakeClock(1000.0)
    batches: list[list[Frame]] = []

    def process(frames: list[Frame]) -> list[bool]:
        batches.append(frames)
        if isinstance(outcome, Exception):
            raise outcome
        return [outcome] * len(frames)
    skipped: list[tuple[Frame, str]] = []
    scheduler = LatestFrameScheduler(list(sources), process, config, clock=clock,
                                     stamp_clock=stamp_clock,
                                     on_skipped=lambda f, r: skipped.append((f, r)))
    return scheduler, batches, clock, stamp_clock, skipped


def invariant_holds(scheduler: LatestFrameScheduler) -> bool:
    c = scheduler.counters()
    return c.received == c.processed + c.dropped_overwritten + c.dropped_too_old + c.failed + \
        c.pending


def test_the_newest_frame_wins_and_overwritten_frames_count_as_dropped() -> None:
    scheduler, batches, *_ = make()
    for value in range(5):
        scheduler.submit('cam', value, stamp=0)
    assert scheduler.counters().pending == 1 and invariant_holds(scheduler)
    assert scheduler.run_once(timeout=0) == 1
    assert [f.data for f in batches[0]] == [4]
    counters = scheduler.counters()
    assert (counters.received, counters.processed, counters.dropped_overwritten) == (5, 1, 4)
    assert invariant_holds(scheduler)


def test_a_frame_is_never_processed_twice() -> None:
    scheduler, batches, *_ = make()
    scheduler.submit('cam', 'a')
    assert scheduler.run_once(timeout=0) == 1
    assert scheduler.run_once(timeout=0) == 0  # nothing new: nothing processed
    assert len(batches) == 1


def test_frames_older_than_the_age_limit_are_skipped() -> None:
    scheduler, batches, clock, stamp_clock, skipped = make(
        config=SchedulerConfig(max_frame_age_ms=100))
    scheduler.submit('cam', 'old', stamp=stamp_clock.now - 0.5)
    assert scheduler.run_once(timeout=0) == 0
    assert scheduler.counters().dropped_too_old == 1 and not batches
    assert 'max_frame_age_ms' in skipped[0][1]
    scheduler.submit('cam', 'fresh', stamp=stamp_clock.now - 0.05)
    assert scheduler.run_once(timeout=0) == 1 and batches[0][0].data == 'fresh'
    assert invariant_holds(scheduler)


def test_an_unset_stamp_falls_back_to_the_arrival_time() -> None:
    scheduler, batches, clock, *_ = make(config=SchedulerConfig(max_frame_age_ms=100))
    scheduler.submit('cam', 'unstamped', stamp=0)
    clock.now += 0.05
    assert scheduler.run_once(timeout=0) == 1
    scheduler.submit('cam', 'waited too long', stamp=0)
    clock.now += 0.5
    assert scheduler.run_once(timeout=0) == 0
    assert scheduler.counters().dropped_too_old == 1


def test_failures_are_counted_per_frame() -> None:
    scheduler, batches, *_ = make(outcome=False)
    scheduler.submit('cam', 1)
    scheduler.run_once(timeout=0)
    assert scheduler.counters().failed == 1
    raising, _, *_ = make(outcome=RuntimeError('engine died'))
    raising.submit('cam', 1)
    raising.run_once(timeout=0)
    assert raising.counters().failed == 1 and invariant_holds(raising)


def test_every_camera_with_a_frame_is_served_in_one_batch() -> None:
    scheduler, batches, *_ = make(sources=('left', 'right', 'top'))
    scheduler.submit('left', 'L1')
    scheduler.submit('right', 'R1')
    scheduler.submit('left', 'L2')
    assert scheduler.run_once(timeout=0) == 2
    assert [(f.source, f.data) for f in batches[0]] == [('left', 'L2'), ('right', 'R1')]
    assert scheduler.counters('left').dropped_overwritten == 1
    assert scheduler.counters('top').received == 0


def test_rate_limit_delays_the_next_cycle() -> None:
    scheduler, batches, clock, *_ = make(config=SchedulerConfig(max_rate_hz=10))
    scheduler.submit('cam', 1)
    assert scheduler.run_once(timeout=0) == 1
    scheduler.submit('cam', 2)
    clock.now += 0.05  # half a period later: not yet
    assert scheduler.run_once(timeout=0) == 0
    clock.now += 0.06
    assert scheduler.run_once(timeout=0) == 1


def test_the_worker_thread_wakes_on_submit_and_stops_promptly() -> None:
    processed = threading.Event()
    scheduler = LatestFrameScheduler(['cam'], lambda frames: (processed.set(), [True])[1])
    scheduler.start()
    try:
        scheduler.submit('cam', 'x')
        assert processed.wait(2.0)
    finally:
        assert scheduler.stop(timeout=2.0)
    assert scheduler.counters().processed == 1


def test_invalid_policies_and_sources_are_refused() -> None:
    with pytest.raises(ConfigError, match='max_frame_age_ms'):
        SchedulerConfig(max_frame_age_ms=-1)
    with pytest.raises(ConfigError, match='unique'):
        LatestFrameScheduler(['a', 'a'], lambda frames: [])
