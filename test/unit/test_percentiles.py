"""One percentile definition for diagnostics, bench, demo and benchmarks."""

from __future__ import annotations

import math
from pathlib import Path
import sys

import numpy as np

from lw_refinenet_ros.percentiles import percentile, percentiles, summary


def test_linear_interpolation_between_ranks() -> None:
    values = [10.0, 20.0, 30.0, 40.0]
    assert percentile(values, 50) == 25.0          # nearest rank would say 20
    assert percentiles(values, (0, 100)) == [10.0, 40.0]
    assert percentile(values, 95) == np.percentile(values, 95)


def test_no_samples_and_missing_values() -> None:
    assert percentile([], 50) is None
    assert percentiles([None, float('nan')], (50, 95)) == [None, None]
    assert percentile([None, 3.0, float('nan')], 50) == 3.0
    assert summary([]) == {'n': 0, 'p50': None, 'p90': None, 'p95': None, 'p99': None,
                           'max': None, 'mean': None}


def test_summary_rounds_and_counts() -> None:
    result = summary([1.0, 2.0, 3.0, 4.0 + 1e-9], digits=2)
    assert result == {'n': 4, 'p50': 2.5, 'p90': 3.7, 'p95': 3.85, 'p99': 3.97, 'max': 4.0,
                      'mean': 2.5}


def test_every_tool_uses_the_same_definition() -> None:
    from lw_refinenet_ros.bench.timing import latency_summary as bench_percentiles
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / 'benchmarks'))
    try:
        import _common
    finally:
        sys.path.pop(0)
    values = [5.0, 1.0, 9.0, 7.0, 3.0, 11.0]
    expected = percentile(values, 95)
    assert _common.percentiles(values)['p95'] == round(expected, 3)
    assert math.isclose(bench_percentiles(values)['p95_ms'], expected)
