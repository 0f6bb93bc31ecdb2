"""The engine timed against the reference pipeline, and runtimes timed against each other.

Both build their engines through :class:`~lw_refinenet_ros.segmenter.Segmenter`, the path
every model-running command takes, and time whole frames (pre-processing, forward,
post-processing), interleaved so that a machine shared with other jobs slows every
candidate alike.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from lw_refinenet_ros.bench.timing import latency_summary, time_interleaved
from lw_refinenet_ros.engine.config import EngineConfig

if TYPE_CHECKING:
    import numpy as np


def bench_one(model, arch: str, config: EngineConfig, *, iters: int, warmup: int, seed: int,
              reference: bool) -> dict:
    """Time the engine built with ``config`` (at its ``warmup_size``) against the reference
    pipeline, interleaved; returns a JSON-ready dict."""
    import copy
    import time

    import numpy as np
    import torch

    from lw_refinenet_ros.reference_pipeline import reference_segment
    from lw_refinenet_ros.segmenter import Segmenter

    height, width = config.warmup_size
    image = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    ref_model = copy.deepcopy(model).eval()
    segmenter = Segmenter.from_model(copy.deepcopy(model), engine=config)
    engine = segmenter.engine

    def sync() -> None:
        if engine.device.startswith('cuda'):
            torch.cuda.synchronize()

    for _ in range(warmup if reference else 0):
        reference_segment(ref_model, image)
    engine_ms: list[float] = []
    ref_ms: list[float] = []
    stages: dict[str, list[float]] = {}
    labels = ref_labels = None
    for _ in range(iters):
        sync()
        start = time.perf_counter()
        result = segmenter.segment(image, 'rgb')
        sync()
        engine_ms.append((time.perf_counter() - start) * 1e3)
        labels = result.labels
        for key, value in result.timings.items():
            stages.setdefault(key, []).append(value)
        if reference:
            start = time.perf_counter()
            ref_labels = reference_segment(ref_model, image)
            ref_ms.append((time.perf_counter() - start) * 1e3)
    row = {
        'arch': arch, 'height': height, 'width': width, 'device': engine.device,
        'precision': config.precision, 'engine_settings': engine.describe(), 'iters': iters,
        'engine': latency_summary(engine_ms),
        'engine_stages_p50_ms': {k: float(np.median(v)) for k, v in stages.items()},
    }
    if reference:
        row['reference'] = latency_summary(ref_ms)
        row['speedup_p50'] = row['reference']['p50_ms'] / row['engine']['p50_ms']
        row['label_agreement_pct'] = float((labels == ref_labels).mean() * 100.0)
    return row


def backend_candidates(names: list[str], device: str, precisions: list[str] | None,
                       int8: bool) -> tuple[list[tuple[str, str]], dict[str, str]]:
    """(backend, precision) pairs to time, torch fp32 first, and the unavailable runtimes."""
    from lw_refinenet_ros.engine.backends import (
        BACKEND_NAMES,
        backend_unavailable,
        native_precisions,
    )
    from lw_refinenet_ros.errors import ConfigError

    wanted = list(BACKEND_NAMES) if 'all' in names else names
    unknown = sorted(set(wanted) - set(BACKEND_NAMES))
    if unknown:
        raise ConfigError(f'--backends: unknown {", ".join(unknown)}; expected "all" or '
                          f'{", ".join(BACKEND_NAMES)}.')
    pairs: list[tuple[str, str]] = [('torch', 'fp32')]
    missing: dict[str, str] = {}
    for name in wanted:
        reason = backend_unavailable(name, device)
        if reason is not None:
            missing[name] = reason
            continue
        native = native_precisions(name, device)
        chosen = precisions or [p for p in native if p != 'int8' or int8]
        pairs.extend((name, p) for p in chosen if (name, p) not in pairs)
    return pairs, missing


def compare_backends(model, base: EngineConfig, pairs: list[tuple[str, str]], *, iters: int,
                     warmup: int, seed: int, extra: dict | None = None) -> list[dict]:
    """Time the whole engine per (backend, precision) on one conveyor frame, interleaved.

    Args:
        base: The options every candidate shares: its ``device`` (not ``auto``),
            ``warmup_size`` (the frame's size), threads, cache and calibration folders.
            Each candidate replaces backend and precision, and runs without the agreement
            gate or fallback: agreement is what this measures, and a fallback would time
            torch under another name.
        extra: Name -> ``segment(rgb) -> labels`` callables timed in the same rounds (the
            bare OpenVINO script in benchmarks/backends.py).

    Returns:
        One JSON-ready row per candidate: p50/p95/mean ms, FPS, speed-up over torch fp32 and
        the share of labels equal to torch fp32's; rows that could not be built carry
        ``error`` instead.
    """
    import copy
    import dataclasses

    from lw_refinenet_ros.data.conveyor import frame_rng, render_conveyor_frame
    from lw_refinenet_ros.errors import LWRefineNetError
    from lw_refinenet_ros.segmenter import Segmenter

    height, width = base.warmup_size
    image = render_conveyor_frame(frame_rng(seed, 0), (width, height))[0]
    runners: dict[str, Callable[[np.ndarray], np.ndarray]] = {}
    rows: dict[str, dict] = {}
    for name, precision in pairs:
        label = f'{name}/{precision}'
        try:
            config = dataclasses.replace(base, backend=name, precision=precision,
                                         agreement_min=0.0, backend_fallback=False,
                                         warmup_iters=1)
            segmenter = Segmenter.from_model(copy.deepcopy(model), engine=config)
        except LWRefineNetError as error:
            rows[label] = {'backend': name, 'precision': precision, 'error': str(error)}
            continue
        runners[label] = (lambda s: lambda rgb: s.segment(rgb, 'rgb', want_confidence=False,
                                                           want_stats=False).labels)(segmenter)
        rows[label] = {'backend': name, 'precision': precision,
                       'engine_settings': segmenter.describe()}
    for label, segment in (extra or {}).items():
        runners[label] = segment
        rows[label] = {'backend': label, 'precision': ''}
    times, labels = time_interleaved(runners, image, iters=iters, warmup=warmup)
    reference = labels.get('torch/fp32')
    base_ms = latency_summary(times['torch/fp32'])['p50_ms'] if 'torch/fp32' in times \
        else None
    for label in runners:
        row = rows[label]
        row.update(height=height, width=width, iters=iters, **latency_summary(times[label]))
        if base_ms:
            row['speedup_vs_torch_fp32'] = base_ms / row['p50_ms']
        if reference is not None:
            row['label_agreement_pct'] = float((labels[label] == reference).mean() * 100.0)
    return list(rows.values())


def format_backend_table(rows: list[dict]) -> str:
    """Markdown table of :func:`compare_backends` rows."""
    lines = ['| size | backend | precision | p50 ms | p95 ms | FPS | x torch fp32 | labels = '
             'torch fp32 |', '|---|---|---|---:|---:|---:|---:|---:|']
    for row in rows:
        size = f'{row.get("width", "")}x{row.get("height", "")}'
        if 'error' in row:
            lines.append(f'| {size} | {row["backend"]} | {row["precision"]} | not built: '
                         f'{row["error"][:80]} | | | | |')
            continue
        lines.append(f'| {size} | {row["backend"]} | {row["precision"]} | {row["p50_ms"]:.1f} '
                     f'| {row["p95_ms"]:.1f} | {row["fps"]:.1f} | '
                     f'{row.get("speedup_vs_torch_fp32", float("nan")):.2f} | '
                     f'{row.get("label_agreement_pct", float("nan")):.2f} % |')
    return '\n'.join(lines)


