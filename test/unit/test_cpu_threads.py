"""The CPU post-processing runs on one thread: its BLAS products and OpenCV calls leave the
cores to the inference runtime.

OpenBLAS's and OpenCV's idle pool threads spin between frames and took a core from the
runtime on 2 cores (engine/cpu_threads.py). Each case runs in a fresh interpreter: the limits
are process-wide and set once.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from lw_refinenet_ros.engine.cpu_threads import BLAS_ENV_VARIABLES, OPENCV_ENV_VARIABLE

pytest.importorskip('threadpoolctl')

_PROBE = """
import json
import cv2
from threadpoolctl import threadpool_info
from lw_refinenet_ros.engine.postprocess import CpuPostprocessor
CpuPostprocessor(8)
from lw_refinenet_ros.engine.cpu_threads import one_postprocessing_thread
limits = one_postprocessing_thread()
print(json.dumps({'threads': [i['num_threads'] for i in threadpool_info()
                              if i['user_api'] == 'blas'],
                  'limited': list(limits.blas), 'opencv_limited': limits.opencv,
                  'opencv_threads': cv2.getNumThreads()}))
"""


def _probe(**env: str) -> dict:
    clean = {k: v for k, v in os.environ.items()
             if k not in (*BLAS_ENV_VARIABLES, OPENCV_ENV_VARIABLE)}
    done = subprocess.run([sys.executable, '-c', _PROBE], env={**clean, **env},
                          capture_output=True, text=True, timeout=120, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_building_a_cpu_postprocessor_leaves_blas_and_opencv_on_one_thread() -> None:
    answer = _probe()
    # OpenCV's bundled OpenBLAS (cv2.gemm, the band products) at least, and numpy's.
    assert answer['threads'] and set(answer['threads']) == {1}
    assert any('openblas' in name for name in answer['limited'])
    assert answer['opencv_limited'] is True and answer['opencv_threads'] == 1


def test_a_blas_thread_count_the_user_set_is_kept() -> None:
    answer = _probe(OPENBLAS_NUM_THREADS='2')
    assert answer['limited'] == []
    assert set(answer['threads']) == {2}
    assert answer['opencv_threads'] == 1


def test_an_opencv_thread_count_the_user_set_is_kept() -> None:
    answer = _probe(OPENCV_FOR_THREADS_NUM='2')
    assert answer['opencv_limited'] is False
    assert answer['opencv_threads'] == 2
    assert set(answer['threads']) == {1}
