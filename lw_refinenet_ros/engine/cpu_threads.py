"""One thread for each frame's post-processing: the cores belong to the inference runtime.

Why: the post-processing's libraries each keep a thread pool of their own, sized to every
core, and their idle threads spin between calls:

* **BLAS.** The band interpolation's GEMM (:mod:`~lw_refinenet_ros.engine.bands`,
  ``cv2.gemm``) runs in the OpenBLAS that OpenCV bundles, and the objects' few products in
  numpy's. OpenBLAS splits even these products (a few hundred thousand multiply-adds) over
  every core and keeps its idle threads spinning in ``sched_yield``. On a 2-core machine the
  demo node's 320x240 frame (OpenVINO int8, one inference thread) cost 35 ms of CPU for
  17.6 ms of wall time, and 17.6 ms with one BLAS thread, no slower.
* **OpenCV.** Its ``parallel_for`` splits the LUTs, colour merges, resizes and connected
  components of a frame over its own pool. In ``lw-refinenet demo --size 640x480`` the node
  segmented 3-14 % more frames with OpenCV on one thread, in three alternating rounds.

(docs/benchmarks.md, "A CPU with AVX512-BF16 and VNNI" and "One post-processing thread".)
Both limits are process-wide, set once when the first CPU post-processor is built; a process
that asked for its own counts keeps them (``OPENBLAS_NUM_THREADS`` or ``OMP_NUM_THREADS`` for
BLAS, ``OPENCV_FOR_THREADS_NUM`` for OpenCV).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading

_LOG = logging.getLogger(__name__)
BLAS_ENV_VARIABLES = ('OPENBLAS_NUM_THREADS', 'OMP_NUM_THREADS')
OPENCV_ENV_VARIABLE = 'OPENCV_FOR_THREADS_NUM'


@dataclasses.dataclass(frozen=True)
class ThreadLimits:
    """What :func:`one_postprocessing_thread` limited.

    Attributes:
        blas: File names of the BLAS libraries now on one thread (empty: none changed).
        opencv: Whether OpenCV's own pool is now one thread.
    """

    blas: tuple[str, ...] = ()
    opencv: bool = False


_lock = threading.Lock()
_applied: ThreadLimits | None = None


def one_postprocessing_thread() -> ThreadLimits:
    """Limit every loaded BLAS library and OpenCV to one thread (once per process)."""
    global _applied
    with _lock:
        if _applied is None:
            _applied = ThreadLimits(blas=_limit_blas(), opencv=_limit_opencv())
        return _applied


def _limit_blas() -> tuple[str, ...]:
    if any(os.environ.get(name) for name in BLAS_ENV_VARIABLES):
        return ()
    try:
        import cv2  # noqa: F401 - loads OpenCV's bundled OpenBLAS, the one cv2.gemm uses
        from threadpoolctl import threadpool_info, threadpool_limits
    except ImportError as error:
        _LOG.debug('BLAS threads left as they are: %s', error)
        return ()
    threadpool_limits(limits=1, user_api='blas')
    limited = tuple(sorted(os.path.basename(info['filepath']) for info in threadpool_info()
                           if info['user_api'] == 'blas' and info['num_threads'] == 1))
    _LOG.debug('one BLAS thread in %s', ', '.join(limited) or 'no library')
    return limited


def _limit_opencv() -> bool:
    if os.environ.get(OPENCV_ENV_VARIABLE):
        return False
    import cv2

    cv2.setNumThreads(1)
    return cv2.getNumThreads() == 1
