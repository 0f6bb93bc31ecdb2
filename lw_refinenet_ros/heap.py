"""Keep freed frame-sized buffers in the process heap instead of handing them back to the OS.

Why: every frame allocates and frees the same few megabyte arrays (the float image, the
shrunk network input, logits, the label canvas, colour and overlay images, the stats'
histograms). glibc serves an allocation above its mmap threshold (128 KiB at first, raised
only as far as the largest block freed so far) with a fresh ``mmap``, frees it with ``munmap``
and trims the heap's top above 128 KiB: each frame then faults its pages back in, one 4 KiB
page at a time, zeroed by the kernel. In ``lw-refinenet demo --size 640x480`` ``perf`` put
38 % of the node's CPU in the kernel (page faults, zeroing, ``munmap``), and the node segmented
10-11.5 frames/s; with the buffers kept (then with 32 MiB thresholds), 17.8-20.5 frames/s in
the same window (docs/benchmarks.md, "The heap, one post-processing thread").

:func:`keep_freed_memory` sets both thresholds once per process (``mallopt``): blocks up to
4 MiB come from the heap, and up to 32 MiB of free space at its top is kept for the next
frame. ``benchmarks/heap_reuse.py`` at 640x480: 60 page faults per frame against 324 with
glibc's defaults; ``benchmarks/large_frames.py`` at 1080p: peak memory 474 MiB against 504.
Only on glibc; a process whose environment sets glibc's own malloc variables keeps them.

This replaces the node's earlier opposite setting (a fixed 1 MiB mmap threshold, which
returned every frame buffer to the OS): it saved 6-9 % of peak memory at 1080p, and it was
what made every 640x480 frame fault its buffers back in.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import platform
import threading

_LOG = logging.getLogger(__name__)
#: mallopt parameter numbers (glibc's malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
#: Blocks up to this size come from the heap: a 640x480 frame's buffers (the largest, the
#: float image, is 3.7 MB). Larger ones (1080p and up) are mapped and returned as glibc does:
#: with 32 MiB here the node's peak memory at 1080p grew from 504 to 798 MiB.
MMAP_THRESHOLD = 4 << 20
#: Free space at the heap's top kept for reuse: more than a 640x480 frame's buffers (about
#: 10-20 MB), so those stay; a larger frame's excess goes back to the OS.
TRIM_THRESHOLD = 32 << 20
#: The demo's recorder and camera: whole MCAP chunks and batches of camera-sized messages,
#: several MB each, which the 4 MiB threshold would map and unmap per chunk; their memory is
#: the demo's, not the node's (a loaded CI machine lost camera frames in the recording with
#: the node's thresholds).
STREAM_MMAP_THRESHOLD = 32 << 20
STREAM_TRIM_THRESHOLD = 64 << 20
#: Environment variables through which a user sets glibc's malloc themselves.
ENV_VARIABLES = ('MALLOC_MMAP_THRESHOLD_', 'MALLOC_TRIM_THRESHOLD_', 'GLIBC_TUNABLES')

_lock = threading.Lock()
_applied: bool | None = None


def keep_freed_memory(mmap_threshold: int = MMAP_THRESHOLD,
                      trim_threshold: int = TRIM_THRESHOLD) -> bool:
    """Raise glibc's mmap and trim thresholds for this process (once: the first call's
    values stay).

    Returns:
        Whether they are raised now: False on another C library, when the environment sets
        them, or when ``mallopt`` refuses.
    """
    global _applied
    with _lock:
        if _applied is None:
            _applied = _apply(mmap_threshold, trim_threshold)
        return _applied


def leave_to_glibc() -> None:
    """Make :func:`keep_freed_memory` change nothing in this process (for measuring glibc's
    own behaviour: ``benchmarks/heap_reuse.py``, ``benchmarks/large_frames.py
    --glibc-default``). Call it before anything builds a post-processor."""
    global _applied
    with _lock:
        if _applied is None:
            _applied = False


def _apply(mmap_threshold: int, trim_threshold: int) -> bool:
    if platform.system() != 'Linux' or platform.libc_ver()[0] != 'glibc':
        return False
    if any(os.environ.get(name) for name in ENV_VARIABLES):
        _LOG.debug('malloc thresholds left to the environment')
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library('c') or 'libc.so.6')
    except OSError as error:
        _LOG.debug('malloc thresholds left as they are: %s', error)
        return False
    applied = (libc.mallopt(_M_MMAP_THRESHOLD, mmap_threshold) == 1
               and libc.mallopt(_M_TRIM_THRESHOLD, trim_threshold) == 1)
    _LOG.debug('malloc thresholds raised: %s', applied)
    return applied
