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


def test_counters_add_up_in_every_snapshot_under_concurrent_load() -> None:
    """Two camera threads flood the slots while the worker runs and a third thread samples
    snapshots: every snapshot satisfies the invariant, and per camera the processed frames
    are strictly increasing (newest first, nothing twice)."""
    seen: dict[str, list[int]] = {'a': [], 'b': []}

    def process(frames: list[Frame]) -> list[bool]:
        for frame in frames:
            seen[frame.source].append(frame.sequence)
        return [frame.sequence % 7 != 0 for frame in frames]  # some frames fail
    scheduler = LatestFrameScheduler(['a', 'b'], process)
    stop = threading.Event()
    broken: list[object] = []

    def camera(name: str) -> None:
        for index in range(3000):
            scheduler.submit(name, index)

    def sampler() -> None:
        while not stop.is_set():
            for source in ('a', 'b', None):
                c = scheduler.counters(source)
                # pending: per camera at most one frame in its slot plus one in flight.
                if c.received != c.processed + c.dropped + c.failed + c.pending or \
                        not 0 <= c.pending <= (4 if source is None else 2):
                    broken.append(c)
    threads = [threading.Thread(target=camera, args=(n,)) for n in ('a', 'b')]
    watcher = threading.Thread(target=sampler)
    scheduler.start()
    watcher.start()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    deadline = threading.Event()
    while scheduler.counters().pending and not deadline.wait(0.01):
        pass
    stop.set()
    watcher.join()
    assert scheduler.stop(timeout=2.0)
    assert not broken, broken[:3]
    for name, sequences in seen.items():
        assert sequences == sorted(set(sequences)), f'{name}: repeated or out of order'
        assert sequences[-1] == 3000, 'the last frame submitted was not processed'
    total = scheduler.counters()
    assert total.received == 6000 and total.pending == 0
    assert total.processed + total.failed == len(seen['a']) + len(seen['b'])


def test_policy_changes_apply_from_the_next_cycle() -> None:
    scheduler, batches, clock, stamp_clock, _ = make()
    scheduler.submit('cam', 'old', stamp=stamp_clock.now - 5)
    scheduler.set_config(SchedulerConfig(max_frame_age_ms=1000))
    assert scheduler.run_once(timeout=0) == 0 and scheduler.counters().dropped_too_old == 1
    scheduler.set_config(SchedulerConfig(max_frame_age_ms=0))  # 0 = off
    scheduler.submit('cam', 'old again', stamp=stamp_clock.now - 5)
    assert scheduler.run_once(timeout=0) == 1


def test_missing_outcomes_count_as_failed() -> None:
    scheduler = LatestFrameScheduler(['a', 'b'], lambda frames: [True])  # one answer for two
    scheduler.submit('a', 1)
    scheduler.submit('b', 2)
    assert scheduler.run_once(timeout=0) == 2
    assert (scheduler.counters('a').processed, scheduler.counters('b').failed) == (1, 1)


def test_stop_wakes_an_idle_worker_immediately() -> None:
    import time
    scheduler = LatestFrameScheduler(['cam'], lambda frames: [True])
    scheduler.start()
    started = time.monotonic()
    assert scheduler.stop(timeout=2.0)
    assert time.monotonic() - started < 0.5


def _feed_until(scheduler: LatestFrameScheduler, done, period_s: float = 0.01,
                limit_s: float = 10.0) -> bool:
    """Submit a frame every ``period_s`` from this thread until ``done()`` (False at the limit)."""
    import time
    end = time.monotonic() + limit_s
    sequence = 0
    while time.monotonic() < end:
        if done():
            return True
        sequence += 1
        scheduler.submit('cam', sequence)
        time.sleep(period_s)
    return done()


def _wait_for(condition, limit_s: float = 10.0) -> bool:
    import time
    end = time.monotonic() + limit_s
    while not condition() and time.monotonic() < end:
        time.sleep(0.01)
    return condition()


def test_the_worker_thread_keeps_running_under_a_rate_cap_and_when_it_is_lifted() -> None:
    # The worker waits without a deadline; a rate-limited frame used to kill it (None - float).
    scheduler = LatestFrameScheduler(['cam'], lambda frames: [True] * len(frames),
                                     SchedulerConfig(max_rate_hz=50))
    scheduler.start()
    try:
        assert _feed_until(scheduler, lambda: scheduler.counters().processed >= 5)
        assert scheduler.worker_crash() is None
        scheduler.set_config(SchedulerConfig(max_rate_hz=0))
        done_before = scheduler.counters().processed
        assert _feed_until(scheduler, lambda: scheduler.counters().processed >= done_before + 5)
        assert scheduler.worker_crash() is None
    finally:
        assert scheduler.stop(timeout=2.0)


def test_under_a_cap_frames_wait_in_the_slot_and_the_newest_is_taken() -> None:
    scheduler, batches, clock, *_ = make(config=SchedulerConfig(max_rate_hz=5))
    scheduler.submit('cam', 1)
    assert scheduler.run_once(timeout=0) == 1
    for value in (2, 3, 4):  # arrive within the 0.2 s period
        clock.now += 0.05
        scheduler.submit('cam', value)
        assert scheduler.run_once(timeout=0) == 0
    clock.now += 0.06
    assert scheduler.run_once(timeout=0) == 1
    assert [f.data for f in batches[-1]] == [4]
    assert scheduler.counters().dropped_overwritten == 2 and invariant_holds(scheduler)


def test_a_worker_that_raises_outside_process_is_reported_and_can_be_restarted() -> None:
    crashes = []
    processed = threading.Event()
    fail = {'on': True}

    def skipped(frame, reason):
        if fail['on']:
            raise RuntimeError('broken callback')
    scheduler = LatestFrameScheduler(['cam'], lambda frames: (processed.set(), [True])[1],
                                     SchedulerConfig(max_frame_age_ms=1),
                                     on_skipped=skipped, on_crash=crashes.append)
    scheduler.start()
    try:
        scheduler.submit('cam', 'old', stamp=1.0)  # decades old: skipped, the callback raises
        assert _wait_for(lambda: scheduler.worker_crash() is not None)
        crash = scheduler.worker_crash()
        assert crash.error == 'RuntimeError: broken callback'
        assert [c.error for c in crashes] == [crash.error]
        fail['on'] = False
        assert scheduler.restart() == crash
        assert scheduler.worker_crash() is None and scheduler.restart() is None
        scheduler.submit('cam', 'new')
        assert processed.wait(5.0)
    finally:
        assert scheduler.stop(timeout=2.0)


def test_a_stopped_worker_is_not_a_crash() -> None:
    scheduler = LatestFrameScheduler(['cam'], lambda frames: [True])
    scheduler.start()
    assert scheduler.stop(timeout=2.0)
    assert scheduler.worker_crash() is None and scheduler.restart() is None
