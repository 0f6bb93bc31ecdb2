"""/diagnostics messages built directly (diagnostic_updater has no pip wheel).

One DiagnosticStatus per camera with the frame counters, rates and latency percentiles, so
that drops and failures are visible in rqt_runtime_monitor, Foxglove or a bag, and with what
the input subscription saw of the transport (lost frames, a matched publisher that delivers
nothing; lw_refinenet_ros/ros/transport.py), so that "no camera" and "frames lost on the way"
read differently. The level follows lw_refinenet_ros/ros/health.py: ERROR for a stream that is
broken (every frame failing, nothing processed while frames arrive, a dead worker), WARN for
occasional failures and transport trouble, OK otherwise. One more status reports the engine
(its runtime, a fallback taken at start-up, failing batches).
"""

from __future__ import annotations

from collections import deque
import threading
from typing import Iterable

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
import numpy as np

from lw_refinenet_ros.percentiles import percentiles
from lw_refinenet_ros.ros.health import ERROR, OK, WARN, Verdict
from lw_refinenet_ros.ros.transport import TransportHealth
from lw_refinenet_ros.scheduler import FrameCounters


class LatencyWindow:
    """The last ``size`` latencies in milliseconds, thread-safe, with percentiles."""

    def __init__(self, size: int = 512) -> None:
        self._values: deque[float] = deque(maxlen=size)
        self._lock = threading.Lock()

    def add(self, value_ms: float) -> None:
        with self._lock:
            self._values.append(value_ms)

    def percentiles(self, *qs: float) -> list[float]:
        """Percentiles (NaN when empty)."""
        with self._lock:
            values = np.fromiter(self._values, float)
        return [float('nan') if v is None else v for v in percentiles(values, qs)]


def _pairs(values: Iterable[tuple[str, object]]) -> list[KeyValue]:
    out = []
    for key, value in values:
        text = f'{value:.2f}' if isinstance(value, float) else str(value)
        out.append(KeyValue(key=key, value=text))
    return out


def camera_status(name: str, hardware_id: str, counters: FrameCounters,
                  previous: FrameCounters, period_s: float, latency: LatencyWindow,
                  inference: LatencyWindow, extra: dict[str, object],
                  transport: TransportHealth | None = None,
                  health: Verdict | None = None) -> DiagnosticStatus:
    """Status of one camera's pipeline.

    ``health`` (from :class:`~lw_refinenet_ros.ros.health.StreamHealth`) decides ERROR and
    WARN for failing frames; without it, frames failed during the last period are WARN. A
    transport problem (``transport``) is WARN; OK otherwise.
    """
    p50, p95, worst = latency.percentiles(50, 95, 100)
    i50, i95 = inference.percentiles(50, 95)
    new_failed = counters.failed - previous.failed
    rate_in = (counters.received - previous.received) / period_s
    rate_out = (counters.processed - previous.processed) / period_s
    transport = transport or TransportHealth()
    loss = transport.problem()
    if health is None:
        health = Verdict(WARN, f'{new_failed} frame(s) failed in the last {period_s:g} s') \
            if new_failed > 0 else Verdict()
    status = DiagnosticStatus(name=name, hardware_id=hardware_id)
    if health.level != OK:
        status.level = DiagnosticStatus.ERROR if health.level == ERROR else \
            DiagnosticStatus.WARN
        status.message = health.message or ''
    elif loss is not None:
        status.level = DiagnosticStatus.WARN
        status.message = loss
    elif counters.received == 0:
        status.level = DiagnosticStatus.OK
        status.message = ('waiting for images' if transport.publishers == 0 else
                          'waiting for the first image')
    else:
        status.level = DiagnosticStatus.OK
        status.message = f'{rate_out:.1f} Hz processed of {rate_in:.1f} Hz received'
    status.values = _pairs([
        ('received', counters.received), ('processed', counters.processed),
        ('dropped_overwritten', counters.dropped_overwritten),
        ('dropped_too_old', counters.dropped_too_old), ('failed', counters.failed),
        ('pending', counters.pending),
        ('input_rate_hz', rate_in), ('processed_rate_hz', rate_out),
        ('latency_p50_ms', p50), ('latency_p95_ms', p95), ('latency_max_ms', worst),
        ('inference_p50_ms', i50), ('inference_p95_ms', i95),
        ('publishers', transport.publishers), ('lost_in_transport', transport.lost_total),
        ('silent_for_s', transport.silent_s),
        *extra.items()])
    return status


def engine_status(name: str, hardware_id: str, health: Verdict,
                  values: dict[str, object]) -> DiagnosticStatus:
    """Status of the inference engine: ``health`` (failing batches, a fallback taken at
    start-up) with the engine's settings as values."""
    level = {OK: DiagnosticStatus.OK, WARN: DiagnosticStatus.WARN}.get(
        health.level, DiagnosticStatus.ERROR)
    return DiagnosticStatus(name=name, hardware_id=hardware_id, level=level,
                            message=health.message or 'running',
                            values=_pairs(values.items()))


def diagnostic_array(stamp: object, statuses: list[DiagnosticStatus]) -> DiagnosticArray:
    """Wrap statuses in a DiagnosticArray stamped ``stamp``."""
    message = DiagnosticArray()
    message.header.stamp = stamp
    message.status = statuses
    return message
