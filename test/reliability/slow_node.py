"""A segmentation node process whose engine takes seconds inside native code.

``python slow_node.py [--lifecycle] --busy-s 5 --ros-args ...`` runs the real entry loop
(:func:`lw_refinenet_ros.ros.runner.run_node`) around the shared fake engine
(:mod:`lw_refinenet_ros.testing`) spending ``--busy-s`` seconds per call in torch matrix
products (native code, GIL released, like a real CPU inference; a ``time.sleep`` would not
reproduce the abort at exit that a thread inside C++ code causes). It prints ``inference
start`` / ``inference end`` so a test can send its signal while an inference is running.
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from lw_refinenet_ros.testing import fake_node


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv if argv is None else argv)
    ros_start = argv.index('--ros-args') if '--ros-args' in argv else len(argv)
    parser = argparse.ArgumentParser(prog='slow_node')
    parser.add_argument('--busy-s', type=float, default=5.0)
    parser.add_argument('--lifecycle', action='store_true')
    args = parser.parse_args(argv[1:ros_start])
    return fake_node.main(['--fake-engine-ms', str(args.busy_s * 1e3), '--busy', 'native',
                           '--announce', *(['--lifecycle'] if args.lifecycle else []),
                           *argv[ros_start:]])


if __name__ == '__main__':
    sys.exit(main())
