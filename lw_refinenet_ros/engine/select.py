"""Choosing the backend and precision at start-up: measured, and gated on label agreement.

The fastest runtime differs between machines (AMX or only AVX2, an Intel or NVIDIA GPU), so
``backend='auto'`` does not consult a table: it builds every runtime available here at every
precision the device runs natively, times each on the warm-up image, and keeps the fastest.
Speed never buys wrong labels: every candidate's labels on the warm-up image are compared with
torch fp32 (the reference), and a reduced precision is only chosen automatically when at least
:data:`AUTO_REDUCED_AGREEMENT` of the pixels agree. An explicitly requested backend passes the
same gate with ``agreement_min``; below it start-up stops with the measured figure, or, with
``fallback``, runs torch fp32 and says why.

A decision made here is remembered (:mod:`.decisions`): a start whose machine, software,
weights, size and request match builds only the remembered runtime and times nothing. When
timing is needed, candidates within :data:`~.decisions.TIE_RATIO` of the fastest keep the
previous choice.

Start-up time is spent in three phases, each logged with its duration so a user can see why
start-up takes what it takes: building each candidate (ONNX export and runtime conversion on a
cache miss, loading from the cache and compiling on a hit), one forward pass per candidate for
its labels, and timing. Timing runs one interleaved round for every candidate; only those
within :data:`PRUNE_RATIO` of the fastest get more rounds, and none when a single one is left.
"""

from __future__ import annotations

import dataclasses
import logging
import statistics
import time
from typing import Any, Callable

import numpy as np

from lw_refinenet_ros.engine.backends import (
    BACKEND_NAMES,
    PRECISION_NAMES,
    Backend,
    BackendRequest,
    backend_unavailable,
    create_backend,
    native_precisions,
)
from lw_refinenet_ros.engine.decisions import TIE_RATIO, Decision, keep_previous
from lw_refinenet_ros.errors import ConfigError, EngineError

_LOG = logging.getLogger(__name__)

AUTO = 'auto'
REFERENCE = ('torch', 'fp32')
#: Reduced precisions (bf16, fp16, int8) are chosen automatically only above this agreement.
AUTO_REDUCED_AGREEMENT = 0.995
#: Timed forward passes per candidate (interleaved rounds; the median is kept).
TIMING_ROUNDS = 3
#: After the first round, only candidates within this factor of the fastest are timed again.
PRUNE_RATIO = 1.5

Timer = Callable[[Backend, np.ndarray], float]


@dataclasses.dataclass
class Selection:
    """The backend to run, and why.

    Attributes:
        backend: The built backend.
        reason: One line naming the candidates, their times and agreement, and the choice.
        agreement: Fraction of warm-up pixels whose label equals torch fp32's (None when the
            reference itself was chosen without comparison).
        timings_ms: Median warm-up forward time per candidate (``'openvino/bf16'``).
        phases_s: Seconds spent per start-up phase: ``'reference'`` (torch fp32 built and
            run once), ``'build'`` (the other candidates built and run once for their
            labels) and ``'timing'``.
    """

    backend: Backend
    reason: str
    agreement: float | None
    timings_ms: dict[str, float]
    phases_s: dict[str, float] = dataclasses.field(default_factory=dict)
    remembered: bool = False


def _time_forward(backend: Backend, batch: np.ndarray) -> float:
    start = time.perf_counter()
    backend.forward(batch)
    return (time.perf_counter() - start) * 1e3


def _label(name: str, precision: str) -> str:
    return f'{name}/{precision}'


def _candidates(backend: str, precision: str, device: str, fallback: bool,
                skipped: dict[str, str], offer_int8: tuple[str, ...] = ()
                ) -> list[tuple[str, str]]:
    """(backend, precision) pairs to try, the reference first."""
    if backend != AUTO and backend not in BACKEND_NAMES:
        raise ConfigError(f'Unknown backend {backend!r}; expected "auto" or one of '
                          f'{", ".join(BACKEND_NAMES)}.')
    if precision != AUTO and precision not in PRECISION_NAMES:
        raise ConfigError(f'Unknown precision {precision!r}; expected "auto" or one of '
                          f'{", ".join(PRECISION_NAMES)}.')
    names = BACKEND_NAMES if backend == AUTO else (backend,)
    pairs: list[tuple[str, str]] = []
    for name in names:
        reason = backend_unavailable(name, device)
        if reason is not None:
            if backend != AUTO and not fallback:
                raise ConfigError(f'backend {name!r} cannot run on {device!r}: {reason}')
            skipped[name] = reason
            continue
        if precision != AUTO:
            pairs.append((name, precision))
            continue
        # int8 needs a calibrated model: offered only where one exists (offer_int8).
        pairs.extend((name, p) for p in native_precisions(name, device)
                     if p != 'int8' or name in offer_int8)
    return pairs


def select_backend(model: Any, *, backend: str, precision: str, request: BackendRequest,
                   warmup_batch: np.ndarray, labels_of: Callable[[np.ndarray], np.ndarray],
                   agreement_min: float, fallback: bool,
                   timer: Timer | None = None,
                   engine_call: EngineCall | None = None,
                   remembered: Decision | None = None,
                   previous: Decision | None = None,
                   offer_int8: tuple[str, ...] = ()) -> Selection:
    """Build, compare and choose the backend; see the module docstring.

    Args:
        model: The loaded torch model (every backend is built from it).
        backend: ``'auto'`` or a backend name.
        precision: ``'auto'`` or a precision name.
        request: Device, sizes, threads, cache and calibration folders (its precision is
            replaced per candidate).
        warmup_batch: (N, 3, h, w) normalised float32 warm-up input (a realistic frame: an
            empty image agrees trivially).
        labels_of: Full-resolution labels of one logits array (the engine's postprocess).
        agreement_min: Smallest label agreement with torch fp32 accepted for an explicitly
            requested backend/precision (0..1).
        fallback: Below the gate, or if the requested runtime is missing or fails to build,
            run torch fp32 with a warning instead of stopping (configuration mistakes such as
            an unsupported precision still stop).
        timer: ``timer(backend, batch) -> ms`` for one forward pass (tests inject fakes).
        engine_call: On CUDA, ``engine_call(backend)`` runs one whole engine call through a
            candidate, and candidates are timed with it instead of their forward pass
            (see :func:`whole_call_timer`).
        remembered: The stored decision for exactly this machine, software and request:
            only its runtime is built (nothing timed, no reference); if that fails, the
            selection runs as usual.
        previous: The last decision for these weights and request on any machine: kept when
            its time ties with the fastest (within :data:`~.decisions.TIE_RATIO`).
        offer_int8: Backends whose int8 is a candidate with ``precision='auto'`` too (the
            caller found or built their calibrated int8 models); int8 passes the
            reduced-precision gate.

    Raises:
        ConfigError: unknown names, a missing runtime (without fallback) or an unsupported
            precision.
        EngineError: the requested backend is below the agreement gate (and no fallback).
    """
    if not 0.0 <= agreement_min <= 1.0:
        raise ConfigError(f'agreement_min must be within [0, 1], got {agreement_min!r}.')
    if timer is None and engine_call is not None and _is_cuda(request.device):
        timer = whole_call_timer(engine_call)
    timer = timer or _time_forward
    skipped: dict[str, str] = {}
    pairs = _candidates(backend, precision, request.device, fallback, skipped, offer_int8)
    explicit = backend != AUTO and precision != AUTO
    if remembered is not None:
        chosen = _remembered(model, request, remembered, pairs)
        if chosen is not None:
            return _chosen(chosen)
    return _measured(model, backend=backend, precision=precision, request=request,
                     warmup_batch=warmup_batch, labels_of=labels_of,
                     agreement_min=agreement_min, fallback=fallback, timer=timer,
                     previous=previous, pairs=pairs, skipped=skipped, explicit=explicit)


def remembered_selection(model: Any, *, backend: str, precision: str,
                         request: BackendRequest, decision: Decision, fallback: bool,
                         offer_int8: tuple[str, ...] = ()) -> Selection | None:
    """The remembered decision's runtime, built alone, or None when the selection must run.

    What :func:`select_backend` does first with ``remembered``, for a caller that has no
    warm-up frame yet: drawing one (and running anything on it) is then only needed when
    this returns None (the remembered runtime is no longer a candidate, or failed to build).

    Raises:
        ConfigError: As :func:`select_backend` (unknown names, a missing runtime).
    """
    pairs = _candidates(backend, precision, request.device, fallback, {}, offer_int8)
    chosen = _remembered(model, request, decision, pairs)
    return _chosen(chosen) if chosen is not None else None


def _measured(model: Any, *, backend: str, precision: str, request: BackendRequest,
              warmup_batch: np.ndarray, labels_of: Callable[[np.ndarray], np.ndarray],
              agreement_min: float, fallback: bool, timer: Timer,
              previous: Decision | None, pairs: list[tuple[str, str]],
              skipped: dict[str, str], explicit: bool) -> Selection:
    """The selection by building, comparing and timing the candidates (no remembered
    decision applies); see the module docstring."""
    phases: dict[str, float] = {}
    began = time.perf_counter()
    reference = create_backend('torch', model, dataclasses.replace(request, precision='fp32'))
    if pairs == [REFERENCE]:
        return _chosen(Selection(reference, 'torch/fp32 requested (the reference)', 1.0, {}))
    if not pairs:  # the requested runtime is missing and fallback is allowed
        reason = '; '.join(f'{name}: {why}' for name, why in skipped.items())
        _LOG.warning('backend %s is not available (%s); falling back to torch fp32 '
                     '(backend_fallback).', backend, reason)
        return _chosen(Selection(reference, f'torch/fp32 (fallback: {reason})', 1.0, {}))
    reference_labels = labels_of(reference.forward(warmup_batch))
    phases['reference'] = time.perf_counter() - began
    _LOG.debug('backend candidate torch/fp32 (the reference): built and run once in %.1f s',
               phases['reference'])

    began = time.perf_counter()
    built: dict[tuple[str, str], Backend] = {}
    setup_s: dict[tuple[str, str], float] = {}
    agreement: dict[tuple[str, str], float] = {}
    failed: dict[tuple[str, str], str] = {}
    for pair in pairs:
        if pair == REFERENCE:
            built[pair], agreement[pair] = reference, 1.0
            continue
        try:
            start = time.perf_counter()
            candidate = create_backend(pair[0], model,
                                       dataclasses.replace(request, precision=pair[1]))
            ready = time.perf_counter()
            labels = labels_of(candidate.forward(warmup_batch))
        except (ConfigError, EngineError) as error:
            if explicit and not (fallback and isinstance(error, EngineError)):
                raise
            failed[pair] = str(error)
            _LOG.warning('backend %s is not usable: %s', _label(*pair), error)
            continue
        actual = (pair[0], str(getattr(candidate, 'precision', pair[1])))
        if actual != pair:  # e.g. torch fp16 on a CPU runs fp32: named for what it runs
            _LOG.warning('backend %s runs as %s on %s', _label(*pair), _label(*actual),
                         request.device)
            if actual in built or actual in pairs:
                continue
            pair = actual
        built[pair] = candidate
        agreement[pair] = float(np.mean(labels == reference_labels))
        setup_s[pair] = time.perf_counter() - start
        _LOG.debug('backend candidate %s: ready in %.1f s (runtime model from the cache or '
                   'built, then compiled), first forward %.0f ms, labels %.2f%% equal to torch '
                   'fp32', _label(*pair), ready - start, (time.perf_counter() - ready) * 1e3,
                   agreement[pair] * 100.0)
    phases['build'] = time.perf_counter() - began

    began = time.perf_counter()
    timings = _time_candidates(built, warmup_batch, timer)
    phases['timing'] = time.perf_counter() - began
    _log_phases(phases, setup_s, timings)
    medians = {pair: statistics.median(values) for pair, values in timings.items() if values}
    timings_ms = {_label(*pair): value for pair, value in medians.items()}

    def gate(pair: tuple[str, str]) -> float:
        if precision == AUTO and pair[1] in ('bf16', 'fp16', 'int8'):
            return max(agreement_min, AUTO_REDUCED_AGREEMENT)
        return agreement_min

    passing = [pair for pair in built if agreement[pair] >= gate(pair)]
    summary = _summary(built, agreement, medians, failed, skipped, gate)
    if passing:
        best = min(passing, key=lambda pair: medians.get(pair, 0.0))
        how = 'fastest passing the agreement gate' if len(built) > 1 else 'requested'
        kept = keep_previous({_label(*p): medians[p] for p in passing if p in medians},
                             _label(*best), previous.label if previous else None)
        if kept != _label(*best):
            best = next(p for p in passing if _label(*p) == kept)
            how = (f'the previous choice, within {TIE_RATIO - 1:.0%} of the fastest, passing '
                   f'the agreement gate')
        reason = f'{_label(*best)} ({how}); {summary}'
        return _chosen(Selection(built[best], reason, agreement[best], timings_ms, phases))

    # Nothing passed: only possible when a backend (or precision) was named explicitly.
    worst = ', '.join(f'{_label(*pair)} {agreement[pair]:.2%}' for pair in built)
    message = (f'the requested {backend}/{precision} gives labels that agree with torch fp32 '
               f'on only {worst or "none"} of the warm-up pixels, below agreement_min '
               f'{agreement_min:.2%}')
    if failed:
        message += '; failed: ' + '; '.join(f'{_label(*p)}: {r}' for p, r in failed.items())
    if not fallback:
        raise EngineError(f'{message}. Choose another backend or precision (or "auto"), lower '
                          f'agreement_min if the difference is acceptable, or set '
                          f'backend_fallback to run torch fp32 instead.')
    _LOG.warning('%s; falling back to torch fp32 (backend_fallback).', message)
    return _chosen(Selection(reference, f'torch/fp32 (fallback: {message})', 1.0, timings_ms,
                             phases))


def _remembered(model: Any, request: BackendRequest, decision: Decision,
                pairs: list[tuple[str, str]]) -> Selection | None:
    """Build only the remembered runtime; None (and a log line) when it is no longer a
    candidate or fails to build."""
    pair = (decision.backend, decision.precision)
    if pair not in pairs:
        _LOG.info('the remembered backend %s is not a candidate now; choosing again',
                  decision.label)
        return None
    began = time.perf_counter()
    try:
        backend = create_backend(pair[0], model, dataclasses.replace(request,
                                                                      precision=pair[1]))
    except (ConfigError, EngineError) as error:
        _LOG.warning('the remembered backend %s failed to build (%s); choosing again',
                     decision.label, error)
        return None
    when = time.strftime('%Y-%m-%d %H:%M', time.localtime(decision.created))
    agreement = '' if decision.agreement is None else \
        f', labels {decision.agreement:.2%} equal to torch fp32'
    reason = (f'{decision.label} (remembered from {when} for this CPU, runtime versions, '
              f'weights and size{agreement}; nothing timed)')
    return Selection(backend, reason, decision.agreement, dict(decision.timings_ms),
                     {'remembered': time.perf_counter() - began}, remembered=True)


def _time_candidates(built: dict[tuple[str, str], Backend], batch: np.ndarray,
                     timer: Timer) -> dict[tuple[str, str], list[float]]:
    """Forward times per candidate (ms), in interleaved rounds so that load slows all alike.

    Every candidate is timed once; only those within :data:`PRUNE_RATIO` of the fastest are
    timed again, and the rounds stop as soon as one candidate is left (start-up time).
    A single candidate is not timed: there is nothing to choose between.
    """
    timings: dict[tuple[str, str], list[float]] = {pair: [] for pair in built}
    contenders = list(built) if len(built) > 1 else []
    for _ in range(TIMING_ROUNDS):
        if not contenders:
            break
        for pair in contenders:
            timings[pair].append(float(timer(built[pair], batch)))
        best = min(min(values) for values in timings.values() if values)
        contenders = [p for p in contenders if min(timings[p]) <= PRUNE_RATIO * best]
        if len(contenders) == 1:
            break
    return timings


def _log_phases(phases: dict[str, float], setup_s: dict[tuple[str, str], float],
                timings: dict[tuple[str, str], list[float]]) -> None:
    """One INFO line saying where start-up time went (details per candidate at DEBUG; the
    cache logs every runtime model it has to build, so a warm start shows no such line)."""
    setups = ', '.join(f'{_label(*pair)} {seconds:.1f} s' for pair, seconds in setup_s.items())
    counts = ', '.join(f'{_label(*pair)} x{len(values)}' for pair, values in timings.items()
                       if values)
    _LOG.info('backend selection took %.1f s: torch/fp32 reference %.1f s; the other '
              'candidates loaded or built, compiled and run once %.1f s (%s); timing %.1f s '
              '(%s)', sum(phases.values()), phases['reference'], phases['build'],
              setups or 'none', phases['timing'], counts or 'not needed')


def _summary(built: dict[tuple[str, str], Backend], agreement: dict[tuple[str, str], float],
             medians: dict[tuple[str, str], float], failed: dict[tuple[str, str], str],
             skipped: dict[str, str], gate: Callable[[tuple[str, str]], float]) -> str:
    parts = []
    for pair in sorted(built, key=lambda p: medians.get(p, 0.0)):
        time_text = f'{medians[pair]:.1f} ms, ' if pair in medians else ''
        verdict = '' if agreement[pair] >= gate(pair) else f' < gate {gate(pair):.1%}'
        parts.append(f'{_label(*pair)} {time_text}labels {agreement[pair]:.2%}{verdict}')
    text = 'candidates: ' + '; '.join(parts)
    if failed:
        text += ' | failed: ' + '; '.join(f'{_label(*p)} ({r})' for p, r in failed.items())
    if skipped:
        text += ' | unavailable: ' + '; '.join(f'{n} ({r})' for n, r in skipped.items())
    return text


def _chosen(selection: Selection) -> Selection:
    _LOG.info('backend: %s', selection.reason)
    return selection


# --------------------------------------------------------------------------------- CUDA
# On a GPU the torch backend keeps the whole frame on the device (upload of the uint8 image,
# normalisation, forward, upsampling, argmax, statistics), while every other runtime's pre- and
# post-processing runs on the CPU: several milliseconds beside a 1-3 ms forward pass. Timing
# the forward pass alone would favour them, so on CUDA the engine passes ``engine_call`` and
# each candidate is timed through the whole engine call, as the node will run it.

EngineCall = Callable[[Backend], None]


def _is_cuda(device: str) -> bool:
    return device == 'cuda' or device.startswith('cuda:')


def whole_call_timer(engine_call: EngineCall) -> Timer:
    """A :data:`Timer` measuring ``engine_call(backend)`` (its result is on the host, so
    the time includes every device stage); each backend gets one untimed call first, so that
    one-time costs of the whole-call path do not prune it after the first round."""
    warmed: set[int] = set()

    def timer(backend: Backend, batch: np.ndarray) -> float:
        if id(backend) not in warmed:
            engine_call(backend)
            warmed.add(id(backend))
        start = time.perf_counter()
        engine_call(backend)
        return (time.perf_counter() - start) * 1e3

    return timer
