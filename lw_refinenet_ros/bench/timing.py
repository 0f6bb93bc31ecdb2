"""Timing helpers shared by ``lw-refinenet bench`` and the benchmarks: percentiles of frame
times, interleaved timing of several runners, and the metadata every result file carries."""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Mapping

if TYPE_CHECKING:
    import numpy as np


def latency_summary(values: list[float]) -> dict[str, float]:
    """p50/p95/mean milliseconds and FPS (1000 / mean) of per-frame times, with the
    percentile definition every tool of this package uses."""
    import numpy as np

    from lw_refinenet_ros.percentiles import percentiles

    array = np.asarray(values, dtype=np.float64)
    p50, p95 = percentiles(array, (50, 95))
    return {'p50_ms': p50, 'p95_ms': p95,
            'mean_ms': float(array.mean()), 'fps': float(1000.0 / array.mean())}


def time_interleaved(runners: Mapping[str, Callable[[np.ndarray], np.ndarray]],
                     image: np.ndarray, *, iters: int, warmup: int,
                     sync: Callable[[], None] | None = None
                     ) -> tuple[dict[str, list[float]], dict[str, np.ndarray]]:
    """Time ``runner(image) -> labels`` for each runner, one frame each per round, so that
    load from other jobs slows every runner alike.

    Args:
        sync: Called before each timed frame (``torch.cuda.synchronize`` on a GPU).

    Returns:
        Per runner, the milliseconds of its ``iters`` timed frames (the first ``warmup``
        rounds are not timed) and its labels from the last round.
    """
    import time

    times: dict[str, list[float]] = {name: [] for name in runners}
    labels: dict[str, np.ndarray] = {}
    for round_index in range(warmup + iters):
        for name, segment in runners.items():
            if sync is not None:
                sync()
            start = time.perf_counter()
            labels[name] = segment(image)
            if round_index >= warmup:
                times[name].append((time.perf_counter() - start) * 1e3)
    return times, labels


def bench_metadata(weights: str | None, seed: int = 0) -> dict:
    """Date, versions, the CPU (model name and ISA flags) and the load, for every JSON;
    ``weights`` None: random weights from ``seed``."""
    import datetime
    import os
    import platform

    import torch

    from lw_refinenet_ros.engine.backends import cpu_description

    meta = {
        'date': datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'),
        'cpu': cpu_description(), 'cpu_count': os.cpu_count(),
        'load_average': list(os.getloadavg()) if hasattr(os, 'getloadavg') else None,
        'torch': torch.__version__, 'python': platform.python_version(),
        'torch_threads': torch.get_num_threads(),
        'cuda': torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        'weights': weights or f'random (seed {seed})',
    }
    for package in ('openvino', 'onnxruntime', 'nncf'):
        try:
            from importlib.metadata import version

            meta[package] = version(package)
        except Exception:
            meta[package] = None
    return meta


