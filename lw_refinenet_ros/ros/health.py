"""Health levels for /diagnostics: "broken" must read differently from "busy" (REP-107).

A monitoring stack sees one level per status: OK, WARN or ERROR. A camera whose frames fail
now and then is WARN; one whose every frame has failed for a few seconds, or whose frames
arrive while nothing gets processed, is ERROR, so an alarm can tell a broken stream from a
hiccup. :class:`StreamHealth` turns counters sampled once per diagnostics period into that
level; it serves each camera (frames) and the engine (batches) alike. No ROS here, so the
rules are testable with a fake clock; docs/node.md lists the levels.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Callable

# REP-107 levels, equal to diagnostic_msgs/DiagnosticStatus OK, WARN and ERROR.
OK, WARN, ERROR = 0, 1, 2

# Every frame failing for this long (with no frame processed) is ERROR.
FAILING_ERROR_S = 3.0
# Frames arriving for this long with none processed or failed is ERROR (unless one inference
# usually takes longer: the limit grows to STALL_INFERENCES of them).
STALL_ERROR_S = 5.0
STALL_INFERENCES = 3.0
# Before any inference has finished (a runtime may still be building for a new frame size),
# the stall limit is this.
FIRST_FRAME_STALL_S = 30.0


@dataclasses.dataclass(frozen=True)
class Verdict:
    """A level and the one line that explains it (None: nothing to say, all well)."""

    level: int = OK
    message: str | None = None


def stall_limit_s(inference_p95_ms: float, max_rate_hz: float = 0.0) -> float:
    """How long frames may arrive without one processed before that is an ERROR.

    Args:
        inference_p95_ms: Recent 95th-percentile inference time (NaN: none finished yet).
        max_rate_hz: The rate cap (a frame may legitimately wait for the next cycle).
    """
    if inference_p95_ms != inference_p95_ms:  # NaN: no inference has finished yet
        limit = FIRST_FRAME_STALL_S
    else:
        limit = max(STALL_ERROR_S, STALL_INFERENCES * inference_p95_ms / 1e3)
    if max_rate_hz > 0:
        limit = max(limit, 2.0 / max_rate_hz)
    return limit


class StreamHealth:
    """The level of one stream (a camera's frames, the engine's batches) over time.

    Call :meth:`update` once per diagnostics period with the stream's running totals.

    Args:
        unit: What one item is, for the messages ('frame', 'batch').
        clock: Monotonic clock (tests pass a fake one).
    """

    def __init__(self, unit: str = 'frame', clock: Callable[[], float] = time.monotonic
                 ) -> None:
        self._unit = unit
        self._clock = clock
        self._previous = (0, 0, 0)
        self._sampled_at: float | None = None
        self._failing_since: float | None = None
        self._last_failure = float('-inf')
        self._stalled_since: float | None = None

    def update(self, arrived: int, processed: int, failed: int,
               stall_limit: float = STALL_ERROR_S) -> Verdict:
        """The level after the newest sample of the running totals.

        Args:
            arrived: Items that came in so far (received frames, batches attempted).
            processed: Items that succeeded so far.
            failed: Items that failed so far.
            stall_limit: Seconds of arrivals with nothing finished that make an ERROR
                (see :func:`stall_limit_s`).
        """
        now = self._clock()
        since = now if self._sampled_at is None else self._sampled_at
        new_in, new_ok, new_failed = (current - before for current, before in zip(
            (arrived, processed, failed), self._previous))
        self._previous, self._sampled_at = (arrived, processed, failed), now
        if new_ok > 0:
            self._failing_since = self._stalled_since = None
        if new_failed > 0:
            self._last_failure = now
            if new_ok == 0 and self._failing_since is None:
                self._failing_since = since  # the failures began within the last period
        elif self._failing_since is not None and now - self._last_failure > FAILING_ERROR_S:
            self._failing_since = None  # no more failures (nor successes): nothing arrives
        if new_in > 0 and new_ok == 0 and new_failed == 0:
            if self._stalled_since is None:
                self._stalled_since = since
        elif new_ok or new_failed or new_in == 0:
            self._stalled_since = None
        if self._failing_since is not None and now - self._failing_since >= FAILING_ERROR_S:
            return Verdict(ERROR, f'every {self._unit} failed for the last '
                                  f'{now - self._failing_since:.0f} s')
        if self._stalled_since is not None and now - self._stalled_since >= stall_limit:
            return Verdict(ERROR, f'no {self._unit} processed for '
                                  f'{now - self._stalled_since:.0f} s while they arrive')
        if new_failed > 0:
            period = now - since
            return Verdict(WARN, f'{new_failed} {self._unit}(s) failed in the last '
                                 f'{period:.3g} s' if period > 0 else
                                 f'{new_failed} {self._unit}(s) failed')
        return Verdict()


def worst(*verdicts: Verdict) -> Verdict:
    """The most severe verdict (the first of equals)."""
    return max(verdicts, key=lambda verdict: verdict.level)


class NodeFailure(Exception):
    """The node can no longer do its job (its worker keeps dying): the process must end with
    a non-zero status instead of living on without segmenting."""


# A worker that died is restarted; more than this many deaths within WORKER_WINDOW_S end the
# process (the cause is not transient: a bug, a broken runtime).
MAX_WORKER_RESTARTS = 3
WORKER_WINDOW_S = 60.0
# A restarted worker keeps the status at ERROR this long, so every monitor sees it.
CRASH_HOLD_S = 10.0


class WorkerSupervisor:
    """Bookkeeping of worker deaths: restart budget, and the ERROR verdict after one.

    Args:
        max_restarts: Deaths within ``window_s`` that are still restarted.
        window_s: The window those are counted in.
        clock: Monotonic clock.
    """

    def __init__(self, max_restarts: int = MAX_WORKER_RESTARTS,
                 window_s: float = WORKER_WINDOW_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._max_restarts = max_restarts
        self.window_s = window_s
        self._clock = clock
        self._deaths: list[float] = []
        self._last_error = ''
        self.total_restarts = 0

    @property
    def recent_restarts(self) -> int:
        """Restarts within the window."""
        return len(self._deaths)

    def restarted(self, crash: object) -> None:
        """Record a death (``crash`` has ``.error``) whose worker is being restarted.

        Raises:
            NodeFailure: More than ``max_restarts`` deaths within the window.
        """
        now = self._clock()
        self._deaths = [t for t in self._deaths if now - t < self.window_s] + [now]
        self._last_error = str(getattr(crash, 'error', crash))
        self.total_restarts += 1
        if len(self._deaths) > self._max_restarts:
            raise NodeFailure(f'the frame worker thread died {len(self._deaths)} times within '
                              f'{self.window_s:g} s (last: {self._last_error}); exiting')

    def verdict(self) -> Verdict:
        """ERROR for CRASH_HOLD_S after a death, else OK."""
        if self._deaths and self._clock() - self._deaths[-1] < CRASH_HOLD_S:
            return Verdict(ERROR, f'the frame worker thread died ({self._last_error}) and was '
                                  f'restarted')
        return Verdict()
