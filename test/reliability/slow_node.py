"""A segmentation node process whose engine takes seconds inside native code.

``python slow_node.py [--lifecycle] --busy-s 5 --ros-args ...`` runs the real entry loop
(:func:`lw_refinenet_ros.ros.runner.run_node`) around an engine that spends ``--busy-s``
seconds per call in torch matrix products (native code, GIL released, like a real CPU
inference; a ``time.sleep`` would not reproduce the abort at exit that a thread inside C++
code causes). It prints ``inference start`` / ``inference end`` so a test can send its signal
while an inference is running.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any, Sequence

import numpy as np
import torch

from lw_refinenet_ros.engine import SegmentationResult
from lw_refinenet_ros.palette import ClassMap
from lw_refinenet_ros.ros.pipeline import LoadedModel
from lw_refinenet_ros.ros.runner import run_node


class NativeBusyEngine:
    """Labels of zeros after ``busy_s`` seconds of matrix products per batch."""

    device = 'cpu'

    def __init__(self, busy_s: float) -> None:
        self.busy_s = busy_s

    def infer_batch(self, images: Sequence[np.ndarray], orders: Any = 'rgb', *,
                    want_confidence: bool = True, want_stats: bool = True) -> list[Any]:
        print('inference start', flush=True)
        matrix = torch.randn(1024, 1024)
        start = time.monotonic()
        while time.monotonic() - start < self.busy_s:
            matrix = torch.mm(matrix, matrix).clamp_(-1.0, 1.0)
        print('inference end', flush=True)
        return [SegmentationResult(np.zeros(image.shape[:2], np.uint8), None, None,
                                   {'total': self.busy_s * 1e3}) for image in images]


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv if argv is None else argv)
    ros_start = argv.index('--ros-args') if '--ros-args' in argv else len(argv)
    parser = argparse.ArgumentParser(prog='slow_node')
    parser.add_argument('--busy-s', type=float, default=5.0)
    parser.add_argument('--lifecycle', action='store_true')
    args = parser.parse_args(argv[1:ros_start])
    engine = NativeBusyEngine(args.busy_s)

    def factory(_config: Any) -> LoadedModel:
        return LoadedModel(engine, ClassMap.default(3), 'native busy engine')

    if args.lifecycle:
        from lw_refinenet_ros.ros.lifecycle_node import LifecycleSegmentationNode as NodeClass
    else:
        from lw_refinenet_ros.ros.node import SegmentationNode as NodeClass
    return run_node(lambda: NodeClass(engine_factory=factory), [argv[0], *argv[ros_start:]])


if __name__ == '__main__':
    sys.exit(main())
