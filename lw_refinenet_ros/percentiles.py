"""Latency percentiles, computed one way everywhere (node diagnostics, ``lw-refinenet bench``,
the demo summary and ``benchmarks/``), so numbers from different tools can be compared.

The definition is numpy's default (linear interpolation between the two nearest ranks): with
few samples a nearest-rank p95 jumps from sample to sample, and two tools that disagreed on
the definition would report different p95s for the same run.
"""

from __future__ import annotations

import math
from typing import Iterable, Sequence

import numpy as np


def _clean(values: Iterable[float | None]) -> np.ndarray:
    """The finite samples (None and NaN dropped: a frame without a measurement)."""
    return np.array([v for v in values if v is not None and not math.isnan(v)], np.float64)


def percentiles(values: Iterable[float | None], qs: Sequence[float]) -> list[float | None]:
    """The ``qs``-th percentiles (0..100) of ``values``; None for each without samples."""
    data = _clean(values)
    if data.size == 0:
        return [None] * len(qs)
    return [float(v) for v in np.percentile(data, list(qs))]


def percentile(values: Iterable[float | None], q: float) -> float | None:
    """The ``q``-th percentile (0..100) of ``values``; None without samples."""
    return percentiles(values, [q])[0]


def summary(values: Iterable[float | None], qs: Sequence[float] = (50, 90, 95, 99),
            digits: int = 3) -> dict[str, float | int | None]:
    """``{'n', 'p50', ..., 'max', 'mean'}`` of ``values`` rounded to ``digits``; None entries
    when there is no sample (JSON-ready)."""
    data = _clean(values)
    keys = [f'p{q:g}' for q in qs]
    if data.size == 0:
        return {'n': 0, **dict.fromkeys(keys), 'max': None, 'mean': None}
    points = np.percentile(data, list(qs))
    return {'n': int(data.size), **{k: round(float(v), digits) for k, v in zip(keys, points)},
            'max': round(float(data.max()), digits), 'mean': round(float(data.mean()), digits)}
