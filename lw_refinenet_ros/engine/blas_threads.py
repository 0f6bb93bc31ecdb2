"""One BLAS thread for the small matrix products of each frame's post-processing.

Why: the band interpolation's GEMM (:mod:`~lw_refinenet_ros.engine.bands`, ``cv2.gemm``) runs
in the OpenBLAS that OpenCV bundles, and the objects' few products in numpy's. OpenBLAS
splits even these products (a few hundred thousand multiply-adds) over every core and then
keeps its idle threads spinning in ``sched_yield``. On a 2-core machine that spinning took the
second core from the inference runtime: the demo node's 320x240 frame (OpenVINO int8, one
inference thread) cost 35 ms of CPU for 17.6 ms of wall time, and 17.6 ms of CPU with one
BLAS thread, no slower (docs/benchmarks.md, "A CPU with AVX512-BF16 and VNNI"). In the demo
the node's CPU went largely to the kernel's scheduler (``perf``: ``sched_yield`` and task
switches).

The limit is process-wide (BLAS libraries keep one thread count), set once when the first
CPU post-processor is built; a process that asked for its own count through
``OPENBLAS_NUM_THREADS`` (or ``OMP_NUM_THREADS``) keeps it.
"""

from __future__ import annotations

import logging
import os
import threading

_LOG = logging.getLogger(__name__)
_ENV_VARIABLES = ('OPENBLAS_NUM_THREADS', 'OMP_NUM_THREADS')
_lock = threading.Lock()
_applied: list[str] | None = None


def single_threaded_blas() -> list[str]:
    """Limit every BLAS library loaded in this process to one thread (once per process).

    Returns the libraries limited (file names), empty when the environment sets a count, when
    none is loaded, or when ``threadpoolctl`` is missing (then nothing changes)."""
    global _applied
    with _lock:
        if _applied is not None:
            return _applied
        _applied = []
        if any(os.environ.get(name) for name in _ENV_VARIABLES):
            return _applied
        try:
            import cv2  # noqa: F401 - loads OpenCV's bundled OpenBLAS, the one cv2.gemm uses
            from threadpoolctl import threadpool_info, threadpool_limits
        except ImportError as error:
            _LOG.debug('BLAS threads left as they are: %s', error)
            return _applied
        threadpool_limits(limits=1, user_api='blas')
        _applied = sorted(os.path.basename(info['filepath']) for info in threadpool_info()
                          if info['user_api'] == 'blas' and info['num_threads'] == 1)
        _LOG.debug('one BLAS thread in %s', ', '.join(_applied) or 'no library')
        return _applied
