"""The scheduler's second stage: a frame's outputs are completed on another thread while the
worker runs the next frame's forward pass; one cycle per stage, in order, counted until done."""

from __future__ import annotations

import threading
import time

from lw_refinenet_ros.scheduler import Frame, LatestFrameScheduler, busy_workers

WAIT_S = 5.0


def _wait_for(condition, timeout: float = WAIT_S) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.005)
    return False


def _invariant_holds(scheduler: LatestFrameScheduler) -> bool:
    c = scheduler.counters()
    return c.received == c.processed + c.dropped_overwritten + c.dropped_too_old + c.failed + \
        c.pending


class Recorder:
    """Both stages, recording which thread ran what and in which order."""

    def __init__(self) -> None:
        self.events: list[tuple[str, object, str]] = []
        self.lock = threading.Lock()

    def note(self, stage: str, frames: list[Frame]) -> None:
        with self.lock:
            for frame in frames:
                self.events.append((stage, frame.data, threading.current_thread().name))

    def process(self, frames: list[Frame]) -> list[object]:
        self.note('forward', frames)
        return [f'carry of {frame.data}' for frame in frames]

    def complete(self, frames: list[Frame], carry: list[object]) -> list[bool]:
        assert carry == [f'carry of {frame.data}' for frame in frames]
        self.note('publish', frames)
        return [True] * len(frames)


def test_run_once_runs_both_stages_on_the_calling_thread() -> None:
    recorder = Recorder()
    scheduler = LatestFrameScheduler(['cam'], recorder.process, complete=recorder.complete)
    scheduler.submit('cam', 'a')
    assert scheduler.run_once(timeout=0) == 1
    me = threading.current_thread().name
    assert recorder.events == [('forward', 'a', me), ('publish', 'a', me)]
    counters = scheduler.counters()
    assert (counters.processed, counters.pending) == (1, 0)


def test_the_next_forward_pass_runs_while_the_previous_frame_is_published() -> None:
    """Frame b's forward pass starts while frame a is still being published: the publish of
    a waits (bounded) until it sees b's forward pass begin."""
    second_forward = threading.Event()
    overlapped = []
    forwards = []

    def process(frames: list[Frame]) -> object:
        forwards.append(frames[0].data)
        if len(forwards) == 2:
            second_forward.set()
        return frames[0].data

    def complete(frames: list[Frame], carry: object) -> list[bool]:
        if carry == 'a':
            scheduler.submit('cam', 'b')
            overlapped.append(second_forward.wait(WAIT_S))
        return [True]

    scheduler = LatestFrameScheduler(['cam'], process, complete=complete)
    scheduler.start()
    try:
        scheduler.submit('cam', 'a')
        assert _wait_for(lambda: scheduler.counters().processed == 2)
    finally:
        assert scheduler.stop(timeout=WAIT_S)
    assert overlapped == [True] and forwards == ['a', 'b']


def test_a_cycle_is_handed_over_only_when_the_previous_one_is_complete() -> None:
    """One cycle per stage: publishes never overlap, keep the frames' order, and each runs
    on the second thread, not on the worker."""
    recorder = Recorder()
    publishing = threading.Lock()
    overlaps = []

    def slow_complete(frames: list[Frame], carry: list[object]) -> list[bool]:
        if not publishing.acquire(blocking=False):
            overlaps.append(frames[0].data)
            return [False]
        try:
            time.sleep(0.01)
            return recorder.complete(frames, carry)
        finally:
            publishing.release()

    scheduler = LatestFrameScheduler(['cam'], recorder.process, complete=slow_complete)
    scheduler.start()
    try:
        for value in range(40):
            scheduler.submit('cam', value)
            time.sleep(0.002)
            assert _invariant_holds(scheduler)
        assert _wait_for(lambda: scheduler.counters().pending == 0)
    finally:
        assert scheduler.stop(timeout=WAIT_S)
    published = [data for stage, data, _ in recorder.events if stage == 'publish']
    forwarded = [data for stage, data, _ in recorder.events if stage == 'forward']
    assert not overlaps and published == sorted(published) and published == forwarded
    assert {name for stage, _, name in recorder.events if stage == 'publish'} == \
        {'lw_refinenet_outputs'}
    assert {name for stage, _, name in recorder.events if stage == 'forward'} == \
        {'lw_refinenet_worker'}
    counters = scheduler.counters()
    assert counters.processed == len(published) and _invariant_holds(scheduler)


def test_a_frame_is_pending_until_its_outputs_are_complete() -> None:
    release = threading.Event()
    entered = threading.Event()

    def complete(frames: list[Frame], carry: object) -> list[bool]:
        entered.set()
        assert release.wait(WAIT_S)
        return [True]

    scheduler = LatestFrameScheduler(['cam'], lambda frames: None, complete=complete)
    scheduler.start()
    try:
        scheduler.submit('cam', 'a')
        assert entered.wait(WAIT_S)
        counters = scheduler.counters()
        assert (counters.processed, counters.pending) == (0, 1) and _invariant_holds(scheduler)
        release.set()
        assert _wait_for(lambda: scheduler.counters().processed == 1)
    finally:
        release.set()
        assert scheduler.stop(timeout=WAIT_S)


def test_failures_in_either_stage_fail_their_frames_and_the_stream_goes_on() -> None:
    calls = []

    def process(frames: list[Frame]) -> object:
        if frames[0].data == 'bad forward':
            raise RuntimeError('forward pass failed')
        return frames[0].data

    def complete(frames: list[Frame], carry: object) -> list[bool]:
        calls.append(carry)
        if carry == 'bad publish':
            raise RuntimeError('publish failed')
        return [True]

    scheduler = LatestFrameScheduler(['cam'], process, complete=complete)
    scheduler.start()
    try:
        for value in ('bad forward', 'bad publish', 'good'):
            scheduler.submit('cam', value)
            assert _wait_for(lambda: scheduler.counters().pending == 0)
    finally:
        assert scheduler.stop(timeout=WAIT_S)
    counters = scheduler.counters()
    assert (counters.processed, counters.failed) == (1, 2) and _invariant_holds(scheduler)
    assert calls == ['bad publish', 'good'], 'a failed forward pass is never published'


def test_stop_completes_the_cycle_handed_over_and_leaves_no_thread_behind() -> None:
    forwarded = threading.Event()
    published = []

    def process(frames: list[Frame]) -> object:
        forwarded.set()
        return frames[0].data

    def complete(frames: list[Frame], carry: object) -> list[bool]:
        time.sleep(0.05)
        published.append(carry)
        return [True]

    scheduler = LatestFrameScheduler(['cam'], process, complete=complete)
    scheduler.start()
    scheduler.submit('cam', 'last')
    assert forwarded.wait(WAIT_S)
    assert scheduler.stop(timeout=WAIT_S)  # returns once the publish of 'last' is done
    assert published == ['last'] and scheduler.counters().processed == 1
    assert not scheduler.busy()
    assert not [t for t in busy_workers() if t.name == 'lw_refinenet_outputs']


class _Fatal(BaseException):
    """Escapes ``except Exception``: ends the second thread as a bug would."""


def test_a_second_thread_that_dies_ends_the_worker_as_a_crash_and_a_restart_recovers() -> None:
    crashes = []
    fatal = {'on': True}

    def complete(frames: list[Frame], carry: object) -> list[bool]:
        if fatal['on']:
            raise _Fatal('outputs thread ended')
        return [True]

    scheduler = LatestFrameScheduler(['cam'], lambda frames: None, complete=complete,
                                     on_crash=crashes.append)
    scheduler.start()
    try:
        scheduler.submit('cam', 'a')
        assert _wait_for(lambda: scheduler.counters().failed == 1)
        scheduler.submit('cam', 'b')  # the worker finds the second thread gone
        assert _wait_for(lambda: scheduler.worker_crash() is not None)
        assert scheduler.worker_crash().error == \
            'RuntimeError: the outputs thread died: _Fatal: outputs thread ended'
        assert len(crashes) == 1
        counters = scheduler.counters()
        assert (counters.failed, counters.pending) == (2, 0) and _invariant_holds(scheduler)
        fatal['on'] = False
        assert scheduler.restart() is not None
        scheduler.submit('cam', 'c')
        assert _wait_for(lambda: scheduler.counters().processed == 1)
    finally:
        assert scheduler.stop(timeout=WAIT_S)


def test_a_forward_pass_that_kills_the_worker_still_settles_its_frames() -> None:
    def process(frames: list[Frame]) -> object:
        raise _Fatal('worker ended')

    scheduler = LatestFrameScheduler(['cam'], process, complete=lambda frames, carry: [True])
    scheduler.start()
    try:
        scheduler.submit('cam', 'a')
        assert _wait_for(lambda: scheduler.worker_crash() is not None)
        counters = scheduler.counters()
        assert (counters.failed, counters.pending) == (1, 0) and _invariant_holds(scheduler)
    finally:
        assert scheduler.stop(timeout=WAIT_S)
