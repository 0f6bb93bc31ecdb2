"""The CPU post-processing runs its small matrix products on one BLAS thread.

OpenBLAS's idle threads spin between frames and took a core from the inference runtime on 2
cores (engine/blas_threads.py). Each case runs in a fresh interpreter: the limit is
process-wide and set once.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytest.importorskip('threadpoolctl')

_PROBE = """
import json
from threadpoolctl import threadpool_info
from lw_refinenet_ros.engine.postprocess import CpuPostprocessor
CpuPostprocessor(8)
from lw_refinenet_ros.engine.blas_threads import single_threaded_blas
print(json.dumps({'threads': [i['num_threads'] for i in threadpool_info()
                              if i['user_api'] == 'blas'],
                  'limited': single_threaded_blas()}))
"""


def _probe(**env: str) -> dict:
    clean = {k: v for k, v in os.environ.items()
             if k not in ('OPENBLAS_NUM_THREADS', 'OMP_NUM_THREADS')}
    done = subprocess.run([sys.executable, '-c', _PROBE], env={**clean, **env},
                          capture_output=True, text=True, timeout=120, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_building_a_cpu_postprocessor_leaves_every_blas_library_on_one_thread() -> None:
    answer = _probe()
    # OpenCV's bundled OpenBLAS (cv2.gemm, the band products) at least, and numpy's.
    assert answer['threads'] and set(answer['threads']) == {1}
    assert any('openblas' in name for name in answer['limited'])


def test_a_thread_count_the_user_set_is_kept() -> None:
    answer = _probe(OPENBLAS_NUM_THREADS='2')
    assert answer['limited'] == []
    assert set(answer['threads']) == {2}
