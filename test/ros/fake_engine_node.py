"""The real ``run_node`` entry loop with a fake engine, for subprocess tests of start-up and
signal handling without torch (``python fake_engine_node.py --ros-args ...``)."""

from __future__ import annotations

import os
import sys

from node_fakes import FakeEngine, fake_factory

from lw_refinenet_ros.ros.node import SegmentationNode, run_node


def main() -> int:
    engine = FakeEngine(delay_s=float(os.environ.get('FAKE_ENGINE_DELAY_S', '0')))
    return run_node(lambda: SegmentationNode(engine_factory=fake_factory(engine)), sys.argv)


if __name__ == '__main__':
    sys.exit(main())
