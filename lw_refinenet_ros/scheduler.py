"""Latest-frame scheduling: keep up with any camera rate by dropping frames, never by lagging.

Design (docs/architecture.md §8, "D done properly"): each camera has a
one-slot mailbox. The subscription callback only stores the newest frame in it; a frame that
is overwritten before the worker took it is counted as ``dropped_overwritten``. One worker
thread, woken by a condition variable (no polling delay), takes the newest frame of every
camera that has one, skips frames older than ``max_frame_age_ms`` (``dropped_too_old``), and
hands the rest to ``process`` in one call so that several cameras share one batched forward
pass. A taken frame leaves its slot, so no frame is ever processed twice, and every camera
with a pending frame is served in every cycle, which keeps several cameras fair under
overload.

This module knows nothing about torch or ROS: ``process`` is any callable, and the clocks are
injectable so that tests can drive time.

Stopping never waits for an inference longer than the caller allows: :meth:`stop` joins the
worker for ``timeout`` seconds and otherwise leaves it to finish its cycle on its own (it then
exits without taking another frame). A restarted scheduler's new worker first waits for such a
left-behind worker, so ``process`` never runs twice at once. :func:`busy_workers` lists the
worker threads still alive, so that a process can decide how to exit (a daemon thread inside
C++ code at interpreter exit aborts the process; see lw_refinenet_ros/ros/runner.py).

Two stages (``complete``): the worker runs ``process`` (decoding and the forward pass) and
hands its result to a second thread that runs ``complete`` (post-processing and publishing),
then takes the next frames. On a CPU the next frame's forward pass thus overlaps this frame's
outputs. The worker hands over a cycle only once the second thread has completed the previous
one, so at most one cycle is in each stage, frames stay in order and a frame's latency grows
by at most one stage's wait. A taken frame stays ``pending`` until it is complete. The second
thread belongs to its worker: the worker waits for it before it exits, so :meth:`stop` and
:func:`busy_workers` cover both.

The worker must never die silently: ``process`` errors only fail their frames, and anything
else that ends the thread is logged with its traceback, reported to ``on_crash`` and kept
(:meth:`LatestFrameScheduler.worker_crash`) until the owner restarts it
(:meth:`LatestFrameScheduler.restart`; the node does so from its diagnostics timer).

Counter invariant, at every instant (under the lock):
``received == processed + dropped_overwritten + dropped_too_old + failed + pending``, where
``pending`` is the number of frames waiting in slots or being processed right now.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from typing import Any, Callable, Sequence

from lw_refinenet_ros.errors import ConfigError

_LOG = logging.getLogger(__name__)

# Every worker thread started by any scheduler and not finished yet (see busy_workers).
_WORKERS: set[threading.Thread] = set()
_WORKERS_LOCK = threading.Lock()


def busy_workers() -> list[threading.Thread]:
    """Worker threads (of any scheduler) that are still alive, e.g. stopped mid-inference."""
    with _WORKERS_LOCK:
        alive = {thread for thread in _WORKERS if thread.is_alive()}
        _WORKERS.intersection_update(alive)
        return sorted(alive, key=lambda thread: thread.name)


@dataclasses.dataclass(frozen=True)
class SchedulerConfig:
    """Frame-dropping policy.

    Attributes:
        max_frame_age_ms: Skip a frame whose age (stamp clock now minus its stamp) exceeds
            this when the worker takes it; 0 disables the check. A frame too old to be useful
            (a conveyor has moved on) costs nothing this way.
        max_rate_hz: Start at most this many processing cycles per second; 0 = as fast as
            possible. Frames arriving in between still overwrite the slot (newest wins).
    """

    max_frame_age_ms: float = 0.0
    max_rate_hz: float = 0.0

    def __post_init__(self) -> None:
        for name in ('max_frame_age_ms', 'max_rate_hz'):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0 \
                    or value != value:
                raise ConfigError(f'{name} must be a number >= 0 (0 disables it), got '
                                  f'{value!r}.')


@dataclasses.dataclass(frozen=True)
class Frame:
    """One frame waiting in (or taken from) a camera's slot.

    Attributes:
        source: The camera it came from.
        data: Whatever the caller submitted (the ROS message, an array, ...).
        stamp: Capture time in seconds on the stamp clock (the header stamp); 0 if unknown.
        received: Arrival time in seconds on the monotonic clock.
        sequence: Per-source arrival number, starting at 1 (tests use it to check order).
    """

    source: str
    data: Any
    stamp: float
    received: float
    sequence: int


@dataclasses.dataclass(frozen=True)
class FrameCounters:
    """A consistent snapshot of one camera's (or all cameras') counters."""

    received: int = 0
    processed: int = 0
    dropped_overwritten: int = 0
    dropped_too_old: int = 0
    failed: int = 0
    pending: int = 0

    def __add__(self, other: FrameCounters) -> FrameCounters:
        return FrameCounters(*(getattr(self, f.name) + getattr(other, f.name)
                               for f in dataclasses.fields(self)))

    @property
    def dropped(self) -> int:
        """Frames never processed on purpose (overwritten or too old)."""
        return self.dropped_overwritten + self.dropped_too_old


@dataclasses.dataclass(frozen=True)
class WorkerCrash:
    """Why a worker thread ended without being stopped (a bug: it must never happen silently).

    Attributes:
        error: ``'<type>: <message>'`` of the exception that ended it.
        at: When, on the scheduler's monotonic clock.
    """

    error: str
    at: float


@dataclasses.dataclass
class _Counts:
    """One source's running counters (mutated under the scheduler's lock)."""

    received: int = 0
    processed: int = 0
    dropped_overwritten: int = 0
    dropped_too_old: int = 0
    failed: int = 0
    in_flight: int = 0

    def snapshot(self, waiting: bool) -> FrameCounters:
        """The counters, with ``pending`` = in flight + the frame waiting in the slot."""
        return FrameCounters(self.received, self.processed, self.dropped_overwritten,
                             self.dropped_too_old, self.failed, self.in_flight + waiting)

    def finished(self, ok: bool) -> None:
        """A frame in flight was processed (``ok``) or failed."""
        self.in_flight -= 1
        if ok:
            self.processed += 1
        else:
            self.failed += 1


def _check_sources(sources: Sequence[str]) -> tuple[str, ...]:
    if not sources:
        raise ConfigError('The scheduler needs at least one source.')
    if len(set(sources)) != len(sources):
        raise ConfigError(f'Source names must be unique, got {list(sources)}.')
    return tuple(sources)


class RateSchedule:
    """When the next cycle may start under ``max_rate_hz`` (not thread-safe: the scheduler
    calls it under its lock).

    The cap is a mean rate: a cycle that starts a little late (thread wake-up) keeps the
    schedule, one much later (no frame was waiting) starts a new one.
    """

    def __init__(self) -> None:
        self._last = float('-inf')

    def next_cycle(self, rate_hz: float) -> float:
        """The earliest time the next cycle may start (0 Hz: right after the last)."""
        return self._last + (1.0 / rate_hz if rate_hz > 0 else 0.0)

    def started(self, now: float, rate_hz: float) -> None:
        """A cycle starts at ``now``."""
        scheduled = self.next_cycle(rate_hz)
        late_ok = rate_hz > 0 and now - scheduled < 0.5 / rate_hz
        self._last = scheduled if late_ok else now


def frame_age_ms(frame: Frame, clock: Callable[[], float],
                 stamp_clock: Callable[[], float]) -> float:
    """Age of ``frame``: stamp clock now minus its stamp, or, for an unset stamp (0, which says
    nothing about its age), the time since it arrived."""
    if frame.stamp > 0:
        return (stamp_clock() - frame.stamp) * 1e3
    return (clock() - frame.received) * 1e3


# ``process`` receives the frames of one cycle and returns, per frame, True when it was
# processed and False when it failed. Raising counts every frame of the cycle as failed.
# With a ``complete`` stage, ``process`` returns what ``complete`` needs instead (its carry),
# and ``complete(frames, carry)`` returns the outcome per frame.
ProcessFn = Callable[[list[Frame]], Any]
CompleteFn = Callable[[list[Frame], Any], Sequence[bool]]


class _SecondStage:
    """The thread that completes a worker's cycles, one at a time, while the worker runs the
    next cycle's first stage.

    Args:
        complete: Completes one cycle (never raises: ``_Stages._completed``).
        name: The thread's name.
    """

    def __init__(self, complete: Callable[[list[Frame], Any], None],
                 name: str = 'lw_refinenet_outputs') -> None:
        self._complete = complete
        self._condition = threading.Condition()
        self._cycle: tuple[list[Frame], Any] | None = None
        self._busy = False
        self._closed = False
        self._ended = False
        #: Why the thread ended on its own ('<type>: <message>'), else ''.
        self.error = ''
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)

    def hand_over(self, frames: list[Frame], carry: Any) -> bool:
        """Wait until the previous cycle is complete, then hand this one over. False: the
        thread has ended (the caller must fail the frames)."""
        with self._condition:
            while (self._cycle is not None or self._busy) and not self._ended:
                self._condition.wait()
            if self._ended:
                return False
            self._cycle = (frames, carry)
            self._condition.notify_all()
            return True

    def start(self) -> _SecondStage:
        """Start the thread (listed by :func:`busy_workers`); returns self."""
        with _WORKERS_LOCK:
            _WORKERS.add(self.thread)
        self.thread.start()
        return self

    def end(self) -> None:
        """Complete the cycle handed over, then end the thread and wait for it."""
        with self._condition:
            self._closed = True
            self._condition.notify_all()
        self.thread.join()
        with _WORKERS_LOCK:
            _WORKERS.discard(self.thread)

    def _run(self) -> None:
        try:
            while True:
                with self._condition:
                    while self._cycle is None and not self._closed:
                        self._condition.wait()
                    if self._cycle is None:
                        return
                    (frames, carry), self._cycle = self._cycle, None
                    self._busy = True
                try:
                    self._complete(frames, carry)
                finally:
                    with self._condition:
                        self._busy = False
                        self._condition.notify_all()
        except BaseException as error:  # noqa: BLE001 - the worker reports it as its crash
            self.error = f'{type(error).__name__}: {" ".join(str(error).split())}'
            _LOG.error('the outputs thread died: %s', self.error, exc_info=error)
        finally:
            with self._condition:
                self._ended = True
                self._condition.notify_all()


class _Stages:
    """One cycle's frames through ``process`` and, when there is one, ``complete``: on the
    second thread while a worker runs, on the caller's thread without one (``run_once``).
    Every frame's outcome goes to ``settle`` once, whatever failed.
    """

    def __init__(self, process: ProcessFn, complete: CompleteFn | None,
                 settle: Callable[[list[Frame], Sequence[bool] | None], None]) -> None:
        self._process = process
        self._complete = complete
        self._settle = settle

    def second_stage(self) -> _SecondStage | None:
        """A started second thread for a new worker, or None (one stage)."""
        return None if self._complete is None else _SecondStage(self._completed).start()

    def run(self, frames: list[Frame], second: _SecondStage | None) -> None:
        """Process ``frames``; complete them now, or hand them to ``second``.

        Raises:
            RuntimeError: ``second`` has died (the frames are settled as failed first).
        """
        outcome: Sequence[bool] | None = None
        settled_later = False  # by _completed, here or on the second thread
        try:
            try:
                carry = self._process(frames)
            except Exception:  # noqa: BLE001 - a failing cycle must not kill the worker
                _LOG.exception('processing %d frame(s) failed', len(frames))
                return
            if self._complete is None:
                outcome = carry
            elif second is None:
                settled_later = True
                self._completed(frames, carry)
            elif second.hand_over(frames, carry):
                settled_later = True
            else:
                raise RuntimeError(f'the outputs thread died: {second.error or "it ended"}')
        finally:
            if not settled_later:
                self._settle(frames, outcome)

    def _completed(self, frames: list[Frame], carry: Any) -> None:
        outcome: Sequence[bool] | None = None
        try:
            outcome = self._complete(frames, carry)  # type: ignore[misc]
        except Exception:  # noqa: BLE001 - a failing cycle must not kill the thread
            _LOG.exception('completing %d frame(s) failed', len(frames))
        finally:
            self._settle(frames, outcome)


class LatestFrameScheduler:
    """One-slot-per-camera mailbox plus the single worker thread that consumes it."""

    def __init__(self, sources: Sequence[str], process: ProcessFn,
                 config: SchedulerConfig | None = None, *,
                 clock: Callable[[], float] = time.monotonic,
                 stamp_clock: Callable[[], float] = time.time,
                 on_skipped: Callable[[Frame, str], None] | None = None,
                 on_crash: Callable[[WorkerCrash], None] | None = None,
                 complete: CompleteFn | None = None) -> None:
        """Create the scheduler (the worker starts with :meth:`start`).

        Args:
            sources: Camera names; ``submit`` accepts only these.
            process: Called on the worker thread with the frames of one cycle.
            config: Dropping policy (changeable later with :meth:`set_config`).
            clock: Monotonic clock for arrival times and rate limiting.
            stamp_clock: Clock that frame stamps are compared with for the age limit (ROS
                header stamps are wall-clock time).
            on_skipped: Called (outside the lock) for each frame dropped as too old, with a
                reason, so the caller can log it.
            on_crash: Called on the dying worker thread when anything but ``process`` raised
                in it (``process`` errors only fail their frames); see :meth:`restart`.
            complete: The second stage, on its own thread (see the module docstring); None:
                ``process`` does all and returns the outcome. :meth:`run_once` runs both
                stages on the calling thread.
        """
        self._sources = _check_sources(sources)
        self._stages = _Stages(process, complete, self._settle)
        self._config = config or SchedulerConfig()
        self._clock = clock
        self._stamp_clock = stamp_clock
        self._on_skipped = on_skipped
        self._on_crash = on_crash
        self._crash: WorkerCrash | None = None
        self._condition = threading.Condition()
        self._slots: dict[str, Frame | None] = {s: None for s in self._sources}
        self._counts = {s: _Counts() for s in self._sources}
        self._sequence = dict.fromkeys(self._sources, 0)
        self._stopping = False
        self._schedule = RateSchedule()
        self._thread: threading.Thread | None = None
        # A worker left running by stop() (still inside process) and the generation of the
        # current worker: an older generation finishes its cycle and exits.
        self._left_behind: threading.Thread | None = None
        self._generation = 0

    @property
    def sources(self) -> tuple[str, ...]:
        """The camera names, in the order given."""
        return self._sources

    @property
    def config(self) -> SchedulerConfig:
        """The policy in force."""
        return self._config

    def set_config(self, config: SchedulerConfig) -> None:
        """Change the policy at runtime; the worker applies it from its next cycle."""
        with self._condition:
            self._config = config
            self._condition.notify_all()

    def submit(self, source: str, data: Any, stamp: float = 0.0) -> None:
        """Store a frame as the newest of ``source``; cheap, never blocks on processing."""
        now = self._clock()
        with self._condition:
            counts = self._counts[source]
            counts.received += 1
            self._sequence[source] += 1
            if self._slots[source] is not None:
                counts.dropped_overwritten += 1
            self._slots[source] = Frame(source, data, stamp, now, self._sequence[source])
            self._condition.notify()

    def counters(self, source: str | None = None) -> FrameCounters:
        """A consistent snapshot of one source's counters, or the sum over all sources."""
        with self._condition:
            total = FrameCounters()
            for name in self._sources if source is None else (source,):
                total = total + self._counts[name].snapshot(self._slots[name] is not None)
            return total

    # ------------------------------------------------------------------ worker side

    def _retired(self, generation: int | None) -> bool:
        # Under the lock: stop() was called, or a newer worker has replaced this one.
        return self._stopping or (generation is not None and generation != self._generation)

    def _take(self, timeout: float | None, generation: int | None = None
              ) -> tuple[list[Frame], list[tuple[Frame, str]]]:
        """Wait for frames (or stop) and take every slot's frame; returns (fresh, too_old)."""
        with self._condition:
            deadline = None if timeout is None else self._clock() + timeout
            while not self._retired(generation):
                # None: wait until notified (the worker); else at most until the deadline.
                wait = None if deadline is None else deadline - self._clock()
                if any(self._slots.values()):
                    # A frame is waiting: take it now, or when the rate cap allows.
                    until_cycle = self._schedule.next_cycle(self._config.max_rate_hz) - \
                        self._clock()
                    if until_cycle <= 0:
                        break
                    wait = until_cycle if wait is None else min(wait, until_cycle)
                if wait is not None and wait <= 0:
                    return [], []  # the caller's deadline passed
                self._condition.wait(wait)
            if self._retired(generation):
                return [], []
            now = self._clock()
            self._schedule.started(now, self._config.max_rate_hz)
            fresh, stale = [], []
            limit = self._config.max_frame_age_ms
            for source in self._sources:
                frame = self._slots[source]
                if frame is None:
                    continue
                self._slots[source] = None
                age = frame_age_ms(frame, self._clock, self._stamp_clock)
                if limit > 0 and age > limit:
                    self._counts[source].dropped_too_old += 1
                    stale.append((frame, f'{age:.0f} ms old > max_frame_age_ms {limit:g}'))
                else:
                    self._counts[source].in_flight += 1
                    fresh.append(frame)
            return fresh, stale

    def _settle(self, frames: list[Frame], outcome: Sequence[bool] | None) -> None:
        with self._condition:
            for index, frame in enumerate(frames):
                self._counts[frame.source].finished(
                    outcome is not None and index < len(outcome) and bool(outcome[index]))

    def run_once(self, timeout: float | None = None) -> int:
        """Run one cycle (both stages) on the calling thread; returns how many frames were
        handed over.

        The worker thread runs the same cycle in a loop; tests call this for determinism.
        """
        return self._cycle(timeout, None, None)

    def _cycle(self, timeout: float | None, generation: int | None,
               second: _SecondStage | None) -> int:
        frames, stale = self._take(timeout, generation)
        if self._on_skipped is not None:
            for frame, reason in stale:
                self._on_skipped(frame, reason)
        if frames:
            self._stages.run(frames, second)
        return len(frames)

    def _run(self, generation: int, previous: threading.Thread | None) -> None:
        second = None
        try:
            if previous is not None:
                # One cycle at a time: the engine behind ``process`` need not be re-entrant.
                previous.join()
            second = self._stages.second_stage()
            while True:
                with self._condition:
                    if self._retired(generation):
                        return
                self._cycle(None, generation, second)
        except BaseException as error:  # noqa: BLE001 - recorded and reported, never silent
            self._died(generation, error)
        finally:
            if second is not None:
                second.end()  # its cycle is complete before this worker counts as ended
            with _WORKERS_LOCK:
                _WORKERS.discard(threading.current_thread())

    def _died(self, generation: int, error: BaseException) -> None:
        crash = WorkerCrash(f'{type(error).__name__}: {" ".join(str(error).split())}',
                            self._clock())
        with self._condition:
            if generation == self._generation:
                self._crash = crash
        _report_crash(crash, error, self._on_crash)

    def worker_crash(self) -> WorkerCrash | None:
        """Why the running worker died, or None while it runs (or was stopped on purpose)."""
        with self._condition:
            thread = self._thread
            if thread is None or thread.is_alive():
                return None
            return self._crash or WorkerCrash('the worker thread ended without an error',
                                              self._clock())

    def restart(self) -> WorkerCrash | None:
        """Replace a dead worker with a new one; returns the crash replaced (None: alive)."""
        crash = self.worker_crash()
        if crash is None:
            return None
        with self._condition:
            self._thread = None
            self._crash = None
        self.start()
        return crash

    def start(self) -> None:
        """Start the worker thread (idempotent).

        After a :meth:`stop` that left a worker inside ``process``, the new worker starts
        taking frames once that cycle has ended.
        """
        with self._condition:
            if self._thread is not None:
                return
            self._stopping = False
            self._generation += 1
            previous = self._left_behind
            self._left_behind = None
            if previous is not None and not previous.is_alive():
                previous = None
            self._thread = threading.Thread(
                target=self._run, args=(self._generation, previous),
                name='lw_refinenet_worker', daemon=True)
            with _WORKERS_LOCK:
                _WORKERS.add(self._thread)
            self._thread.start()

    def stop(self, timeout: float = 2.0) -> bool:
        """Stop the worker; returns False if it is still busy after ``timeout`` seconds.

        A busy worker is not interrupted (an inference cannot be): it finishes its cycle,
        takes no further frame and exits. Frames still waiting in the slots stay counted as
        pending.
        """
        with self._condition:
            self._stopping = True
            self._condition.notify_all()
            thread, self._thread = self._thread, None
            if thread is not None:
                self._left_behind = thread
        if thread is None or thread is threading.current_thread():
            return True
        thread.join(timeout)
        return not thread.is_alive()

    def busy(self) -> bool:
        """True while a worker of this scheduler (current or left behind) is alive."""
        with self._condition:
            threads = (self._thread, self._left_behind)
        return any(thread is not None and thread.is_alive() for thread in threads)


def _report_crash(crash: WorkerCrash, error: BaseException,
                  on_crash: Callable[[WorkerCrash], None] | None) -> None:
    """Log a worker's death with its traceback and tell ``on_crash``."""
    _LOG.error('the frame worker thread died: %s', crash.error, exc_info=error)
    if on_crash is not None:
        try:
            on_crash(crash)
        except Exception:  # noqa: BLE001 - reporting must not hide the crash itself
            _LOG.exception('reporting the worker crash failed')
