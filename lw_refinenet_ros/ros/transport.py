"""Frames lost before they reach the node: middleware loss counts and silent publishers.

A best-effort camera stream between two processes on the default Fast DDS transports loses
most large frames silently (UDP fragments of a 6 MB 1080p frame overflow the socket buffer;
measured: 1 of 167 frames arrived). Without this module /diagnostics could not tell "no
camera" from "frames lost in transport". Two signals, per input subscription:

* **message lost**: the middleware's count of samples it knows it lost (rclpy
  ``SubscriptionEventCallbacks(message_lost=...)``; Fast DDS reports a best-effort sample as
  lost when a later one arrives first or its fragments never complete);
* **silence**: a publisher is matched but no frame arrived for ``silence_s`` seconds (loss the
  middleware cannot see, e.g. every frame lost, or a stalled camera driver). A camera that
  has been delivering slowly (a triggered camera, a 1 Hz stream) gets ten of its usual
  intervals before it counts as silent, so it does not warn between frames.

Either one turns the camera's diagnostic status to WARN. Only what points at the transport
gets :data:`LOSS_FIX` as the advice (:attr:`TransportHealth.transport_suspected`): loss the
middleware reported, or a matched publisher that never delivered a frame. A camera that did
deliver and then went quiet, or whose publisher is gone, most likely stopped or died, and is
reported as that.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from typing import Any, Callable

from rclpy.event_handler import SubscriptionEventCallbacks

# After this long with a publisher matched and nothing received, say so (the /diagnostics
# period adds at most one period: reported within 5 s with the default 1 s period).
SILENCE_S = 3.0
# A stream that has been delivering is silent after this many of its usual intervals (if
# that is longer than SILENCE_S).
SILENCE_INTERVALS = 10.0

LOSS_FIX = ('run the camera and this node with the shared-memory Fast DDS profile '
            '(FASTRTPS_DEFAULT_PROFILES_FILE=<share>/lw_refinenet_ros/config/fastdds_shm.xml, '
            'or use_shm:=true on the launch files), make the camera publisher reliable, or '
            'subscribe to compressed images (parameter input_type:=compressed)')


@dataclasses.dataclass(frozen=True)
class TransportHealth:
    """What one input subscription saw during the last reporting period.

    Attributes:
        publishers: Publishers matched with the subscription right now.
        lost_total: Frames the middleware reported lost since start.
        lost_new: Of those, reported during the last period.
        received_new: Frames that did arrive during the last period.
        silent_s: Seconds without a frame while a publisher was matched (0 when none is).
        silence_limit_s: The silence that counts as a problem.
        received_total: Frames that arrived since the subscription was made.
        since_last_s: Seconds since the last frame arrived (0 before the first).
    """

    publishers: int = 0
    lost_total: int = 0
    lost_new: int = 0
    received_new: int = 0
    silent_s: float = 0.0
    silence_limit_s: float = SILENCE_S
    received_total: int = 0
    since_last_s: float = 0.0

    @property
    def silent(self) -> bool:
        """A publisher is there but nothing has arrived for too long."""
        return self.publishers > 0 and self.silent_s >= self.silence_limit_s

    def problem(self) -> str | None:
        """One line describing the loss, or None when the transport looks fine."""
        if self.lost_new > 0:
            sent = self.lost_new + self.received_new
            return (f'{self.lost_new} of {sent} frame(s) lost in transport since the last '
                    f'report ({self.lost_total} in total)')
        if self.silent and self.received_total == 0:
            return (f'{self.publishers} publisher(s) matched but no frame for '
                    f'{self.silent_s:.0f} s: its frames are lost in transport, or the camera '
                    f'has not started sending')
        if self.silent:
            return (f'{self.publishers} publisher(s) matched but no frame for '
                    f'{self.silent_s:.0f} s: the camera stopped sending or died (a dead '
                    f'publisher stays matched until its lease runs out)')
        if self.publishers == 0 and self.received_total > 0:
            return (f'no publisher any more (last frame {self.since_last_s:.0f} s ago): the '
                    f'camera stopped or died')
        return None

    @property
    def transport_suspected(self) -> bool:
        """Whether :meth:`problem` points at the transport, so :data:`LOSS_FIX` is the
        advice: loss the middleware reported, or a publisher that never delivered."""
        return self.lost_new > 0 or (self.silent and self.received_total == 0)


class TransportMonitor:
    """Loss and silence accounting for one input subscription (thread-safe)."""

    def __init__(self, silence_s: float = SILENCE_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._silence_s = silence_s
        self._clock = clock
        self._lock = threading.Lock()
        self._lost_total = 0
        self._lost_reported = 0
        self._received = 0
        self._received_reported = 0
        self._last_activity = clock()
        self._last_message: float | None = None
        self._interval_s = 0.0  # running mean of the time between frames
        self._publishers = 0

    def event_callbacks(self) -> SubscriptionEventCallbacks:
        """Callbacks to pass as ``event_callbacks`` when creating the subscription."""
        return SubscriptionEventCallbacks(message_lost=self._on_message_lost,
                                          matched=self._on_matched)

    def note_message(self) -> None:
        """A frame arrived (call from the subscription callback; cheap)."""
        with self._lock:
            now = self._clock()
            self._received += 1
            if self._last_message is not None:
                gap = now - self._last_message
                self._interval_s = gap if not self._interval_s else (
                    0.9 * self._interval_s + 0.1 * gap)
            self._last_message = now
            self._last_activity = now

    def _on_message_lost(self, info: Any) -> None:
        with self._lock:
            self._lost_total = max(self._lost_total, int(info.total_count))

    def _on_matched(self, info: Any) -> None:
        with self._lock:
            if int(info.current_count) > self._publishers:
                # A new publisher gets the full silence period before it counts as silent.
                self._last_activity = self._clock()
            self._publishers = int(info.current_count)

    def report(self, publishers: int | None = None) -> TransportHealth:
        """Health since the previous report; ``publishers`` overrides the matched count."""
        with self._lock:
            if publishers is not None:
                if publishers > self._publishers:
                    self._last_activity = self._clock()
                self._publishers = publishers
            count = self._publishers
            health = TransportHealth(
                publishers=count, lost_total=self._lost_total,
                lost_new=self._lost_total - self._lost_reported,
                received_new=self._received - self._received_reported,
                silent_s=self._clock() - self._last_activity if count > 0 else 0.0,
                silence_limit_s=max(self._silence_s, SILENCE_INTERVALS * self._interval_s),
                received_total=self._received,
                since_last_s=0.0 if self._last_message is None
                else self._clock() - self._last_message)
            self._lost_reported = self._lost_total
            self._received_reported = self._received
            return health
