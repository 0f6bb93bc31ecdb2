"""``num_threads: -1`` (auto): time one thread against the runtime's default, keep the faster.

torch's pool is switched in place; OpenVINO and ONNX Runtime fix their threads when the network
is compiled, so a one-thread copy of the chosen backend is built (from the cache) and timed
against it, in interleaved rounds. The engine is driven through its public call and its
``backend`` attribute, so the timing covers whole frames (labels, confidence, statistics).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import Any

import numpy as np

from lw_refinenet_ros.engine.backends.base import BackendRequest
from lw_refinenet_ros.engine.startup import process_threads

_LOG = logging.getLogger(__name__)


def tune_threads(engine: Any, image: np.ndarray, model: Any,
                 request: BackendRequest | None) -> int:
    """Leave ``engine`` on the faster thread setting; that setting (0 = the runtime's default).

    Args:
        engine: The :class:`~lw_refinenet_ros.engine.inference.InferenceEngine` (called on
            ``image``; its ``backend`` is switched for a one-thread copy when that wins).
        image: The warm-up frame to time.
        model: The engine's model (a runtime's one-thread copy is built from it).
        request: The request the backend was built from (None only for torch backends).
    """
    import torch

    def frame_ms() -> float:
        begin = time.perf_counter()
        engine(image, 'rgb', want_confidence=True, want_stats=True)
        return (time.perf_counter() - begin) * 1e3

    timings: dict[int, list[float]] = {}
    if process_threads(engine.backend.name):
        default = torch.get_num_threads()
        for threads in sorted({1, default}):
            torch.set_num_threads(threads)
            engine(image, 'rgb', want_confidence=True, want_stats=True)  # settle the pool
            timings[threads] = [frame_ms()]
        best = min(timings, key=lambda t: timings[t][0])
        torch.set_num_threads(best)
    else:
        from lw_refinenet_ros.engine.backends import create_backend

        assert request is not None
        request = dataclasses.replace(request, precision=engine.backend.precision,
                                      num_threads=1)
        variants = {0: engine.backend,
                    1: create_backend(engine.backend.name, model, request)}
        for backend in variants.values():
            engine.backend = backend
            engine(image, 'rgb', want_confidence=False, want_stats=False)
        for _ in range(3):
            for threads, backend in variants.items():
                engine.backend = backend
                timings.setdefault(threads, []).append(frame_ms())
        best = min(timings, key=lambda t: float(np.median(timings[t])))
        engine.backend = variants[best]
    _LOG.info('num_threads=-1 (auto): %s ms per frame -> using %s',
              {k or 'default': round(float(np.median(v))) for k, v in timings.items()},
              f'{best} thread(s)' if best else "the runtime's default threads")
    return best
