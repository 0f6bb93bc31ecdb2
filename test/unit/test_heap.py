"""Frame-sized buffers stay in the heap once :func:`keep_freed_memory` ran: a loop that
allocates and frees the same multi-megabyte arrays stops faulting their pages back in, and a
user's own malloc settings are left alone."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

from lw_refinenet_ros.heap import ENV_VARIABLES

pytestmark = pytest.mark.skipif(platform.libc_ver()[0] != 'glibc',
                                reason='the thresholds are glibc mallopt parameters')

# A worker thread (the node's inference thread has its own malloc arena) allocates and frees
# eight 640x480 float32 planes at once (like a frame's logits), 40 times after a warm-up;
# prints the minor page faults of those 40 rounds and keep_freed_memory()'s answer.
_LOOP = """
import resource, sys, threading
import numpy as np
from lw_refinenet_ros.heap import keep_freed_memory, leave_to_glibc
if sys.argv[1] == 'leave':
    leave_to_glibc()
applied = keep_freed_memory() if sys.argv[1] in ('keep', 'leave') else None
faults = []
def frames():
    def one():
        planes = [np.ones((480, 640), np.float32) for _ in range(8)]
        del planes
    for _ in range(3):
        one()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(40):
        one()
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
thread = threading.Thread(target=frames)
thread.start()
thread.join()
print(faults[0], applied)
"""


def _run(mode: str, **env: str) -> tuple[int, str]:
    environment = {k: v for k, v in os.environ.items() if k not in ENV_VARIABLES}
    environment.update(env)
    out = subprocess.run([sys.executable, '-c', _LOOP, mode], env=environment, text=True,
                         capture_output=True, check=True, timeout=120).stdout.split()
    return int(out[0]), out[1]


def test_kept_buffers_are_not_faulted_in_again_each_frame() -> None:
    default_faults, _ = _run('default')
    kept_faults, applied = _run('keep')
    assert applied == 'True'
    # 40 rounds of 9.8 MB: with glibc's defaults the heap's top is trimmed and faulted back in
    # every round (thousands of faults a round).
    assert default_faults > 40 * 1000
    assert kept_faults < default_faults / 20


def test_a_user_setting_in_the_environment_wins() -> None:
    faults, applied = _run('keep', MALLOC_TRIM_THRESHOLD_='131072')
    assert applied == 'False'
    assert faults > 0


def test_a_process_left_to_glibc_keeps_glibcs_thresholds() -> None:
    """What the benchmarks' 'glibc default' variants rely on."""
    faults, applied = _run('leave')
    assert applied == 'False'
    assert faults > 40 * 1000
