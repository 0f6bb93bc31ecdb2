"""Diagnostics levels: a broken stream is ERROR, a hiccup WARN, a recovered one OK again."""

from __future__ import annotations

import pytest

from lw_refinenet_ros.ros.health import (
    CRASH_HOLD_S,
    ERROR,
    FAILING_ERROR_S,
    FIRST_FRAME_STALL_S,
    OK,
    STALL_ERROR_S,
    WARN,
    NodeFailure,
    StreamHealth,
    Verdict,
    WorkerSupervisor,
    stall_limit_s,
    worst,
)


class Clock:
    def __init__(self) -> None:
        self.now = 50.0

    def __call__(self) -> float:
        return self.now


class Stream:
    """Running totals of a camera sampled once per second, as the diagnostics timer does."""

    def __init__(self) -> None:
        self.clock = Clock()
        self.health = StreamHealth(clock=self.clock)
        self.arrived = self.processed = self.failed = 0

    def second(self, ok: int = 0, failed: int = 0, waiting: int = 0) -> Verdict:
        self.clock.now += 1.0
        self.arrived += ok + failed + waiting
        self.processed += ok
        self.failed += failed
        return self.health.update(self.arrived, self.processed, self.failed)


def test_a_camera_failing_every_frame_becomes_error_and_recovers_with_good_frames() -> None:
    stream = Stream()
    assert stream.second(ok=10).level == OK
    levels = [stream.second(failed=10).level for _ in range(6)]
    assert levels[0] == WARN and ERROR in levels
    first_error = levels.index(ERROR) + 1  # seconds after the failures began
    assert first_error <= FAILING_ERROR_S + 1
    verdict = stream.second(failed=10)
    assert verdict.level == ERROR and verdict.message.startswith('every frame failed for')
    assert stream.second(ok=10).level == OK  # one good period: below ERROR at once


def test_occasional_failures_are_a_warning_never_an_error() -> None:
    stream = Stream()
    levels = [stream.second(ok=9, failed=1).level for _ in range(20)]
    assert set(levels) == {WARN}
    assert stream.second(ok=10).level == OK
    assert stream.second(ok=10, failed=1).message == '1 frame(s) failed in the last 1 s'


def test_frames_arriving_with_nothing_processed_is_an_error_after_the_stall_limit() -> None:
    stream = Stream()
    stream.second(ok=5)
    levels = [stream.second(waiting=10).level for _ in range(int(STALL_ERROR_S) + 1)]
    assert levels[0] == OK and levels[-1] == ERROR
    assert 'no frame processed for' in stream.health.update(
        stream.arrived + 1, stream.processed, stream.failed).message
    assert stream.second(ok=1).level == OK


def test_no_frames_at_all_is_not_a_stall_and_ends_a_failing_spell() -> None:
    stream = Stream()
    for _ in range(5):
        stream.second(failed=3)
    assert stream.second().level == ERROR  # failing just now
    levels = [stream.second().level for _ in range(int(FAILING_ERROR_S) + 2)]
    assert levels[-1] == OK  # the camera went quiet: the transport status says so


def test_the_stall_limit_follows_slow_inferences_and_the_rate_cap() -> None:
    assert stall_limit_s(float('nan')) == FIRST_FRAME_STALL_S
    assert stall_limit_s(100.0) == STALL_ERROR_S
    assert stall_limit_s(4000.0) == pytest.approx(12.0)  # three 4 s inferences
    assert stall_limit_s(100.0, max_rate_hz=0.1) == pytest.approx(20.0)


def test_a_dead_worker_is_error_for_a_while_and_the_node_gives_up_when_it_keeps_dying() -> None:
    clock = Clock()
    supervisor = WorkerSupervisor(max_restarts=2, window_s=60.0, clock=clock)
    assert supervisor.verdict() == Verdict()

    class Crash:
        error = 'TypeError: boom'
    supervisor.restarted(Crash())
    verdict = supervisor.verdict()
    assert verdict.level == ERROR and 'TypeError: boom' in verdict.message
    clock.now += CRASH_HOLD_S + 1
    assert supervisor.verdict().level == OK
    supervisor.restarted(Crash())
    with pytest.raises(NodeFailure, match='died 3 times within 60 s'):
        supervisor.restarted(Crash())


def test_worst_keeps_the_most_severe() -> None:
    assert worst(Verdict(), Verdict(WARN, 'w'), Verdict(ERROR, 'e')).message == 'e'
    assert worst(Verdict(WARN, 'first'), Verdict(WARN, 'second')).message == 'first'
