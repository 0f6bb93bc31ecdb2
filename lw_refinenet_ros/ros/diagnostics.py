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
from typing import Any, Iterable

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
import numpy as np

from lw_refinenet_ros.percentiles import percentiles
from lw_refinenet_ros.ros.health import (
    ERROR,
    OK,
    WARN,
    StreamHealth,
    Verdict,
    stall_limit_s,
    worst,
)
from lw_refinenet_ros.ros.topics import DIAGNOSTICS, DIAGNOSTICS_TYPE
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


class DiagnosticsReporter:
    """The /diagnostics timer of the node: one status for the engine, one per camera.

    Each tick also lets the inference restart a dead worker (:meth:`Inference.supervise`), so
    the check runs on the executor thread, independent of the worker it watches.

    Args:
        node: The node (its timer and publisher).
        period_s: ``diagnostics_period_s``.
        inputs: The node's :class:`~.inputs.Inputs` (transport health).
        inference: The node's :class:`~.inference.Inference` (counters, worker, engine).
        outputs: The node's :class:`~.outputs.Outputs` (latency windows).
        max_rate_hz: Returns the rate cap in force (the stall limit follows it).
    """

    def __init__(self, node: Any, period_s: float, inputs: Any, inference: Any,
                 outputs: Any, max_rate_hz: Any) -> None:
        self._node = node
        self._period_s = period_s
        self._inputs = inputs
        self._inference = inference
        self._outputs = outputs
        self._max_rate_hz = max_rate_hz
        self._health = {name: StreamHealth() for name in inputs.names}
        self._previous = {name: FrameCounters() for name in inputs.names}
        self._publisher = node.create_publisher(DIAGNOSTICS_TYPE, DIAGNOSTICS, 10)
        self._timer = node.create_timer(period_s, self.publish)

    def _stall_limit(self) -> float:
        p95s = [self._outputs.camera(name).inference.percentiles(95)[0]
                for name in self._inputs.names]
        finished = [value for value in p95s if value == value]
        return stall_limit_s(max(finished) if finished else float('nan'),
                             self._max_rate_hz())

    def publish(self) -> None:
        """Publish one DiagnosticArray (and restart a dead worker first)."""
        worker = self._inference.supervise()
        node_name = self._node.get_fully_qualified_name()
        stall_limit = self._stall_limit()
        engine = self._inference.engine_values()
        statuses = [engine_status(f'{node_name}: engine', node_name,
                                  self._inference.engine_verdict(stall_limit), engine)]
        extra = {'model': engine['model'], 'backend': engine['backend']}
        for name in self._inputs.names:
            counters = self._inference.counters(name)
            transport = self._inputs.transport_health(name)
            health = self._health[name].update(counters.received, counters.processed,
                                               counters.failed, stall_limit)
            if self._inputs.camera(name).subscription is None:
                health = Verdict()  # inactive (lifecycle): nothing is expected to flow
            outputs = self._outputs.camera(name)
            label = f' ({name})' if name else ''
            statuses.append(camera_status(
                f'{node_name}: segmentation{label}', node_name, counters, self._previous[name],
                self._period_s, outputs.latency, outputs.inference, extra, transport,
                worst(worker, health)))
            self._previous[name] = counters
        self._publisher.publish(diagnostic_array(self._node.get_clock().now().to_msg(),
                                                 statuses))

    def destroy(self) -> None:
        """Stop the timer and remove the publisher."""
        self._node.destroy_timer(self._timer)
        self._node.destroy_publisher(self._publisher)
