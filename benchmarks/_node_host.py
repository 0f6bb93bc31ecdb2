#!/usr/bin/env python3
"""Start the real ``SegmentationNode`` for a benchmark, with its own or a fake engine.

Without ``--fake-engine-ms`` this is exactly the installed executable (``main()``); with it,
it is the tests' fake node (:mod:`lw_refinenet_ros.testing.fake_node`: the real node with the
shared fake engine injected) so that the measured difference to the floor is the node's own
overhead. ``--device`` is forwarded as
the node's ``device`` parameter. Everything after the known options is passed on as ROS
arguments (``--ros-args -p name:=value``).

Benchmarks otherwise never import ``lw_refinenet_ros.ros``; this host is the exception
because injecting an engine needs the node class.
"""

from __future__ import annotations

import argparse
import sys


def _ros_args(device: str, rest: list[str]) -> list[str]:
    rest = list(rest)
    if '--ros-args' not in rest:
        rest.insert(0, '--ros-args')
    if device:
        rest += ['-p', f'device:={device}']
    return rest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--fake-engine-ms', type=float, default=None)
    parser.add_argument('--fake-classes', type=int, default=3)
    parser.add_argument('--device', default='')
    args, rest = parser.parse_known_args(argv)
    ros_args = [sys.argv[0], *_ros_args(args.device if args.fake_engine_ms is None else '',
                                        rest)]
    if args.fake_engine_ms is None:
        from lw_refinenet_ros.ros import node as node_module
        return int(node_module.main(ros_args) or 0)
    # The node's own run loop (init, executor, signal handling, shutdown), fake engine inside:
    # the same host the process tests use.
    from lw_refinenet_ros.testing import fake_node
    return fake_node.main(['--fake-engine-ms', str(args.fake_engine_ms), '--fake-classes',
                           str(args.fake_classes), '--rule', 'split', *ros_args[1:]])


if __name__ == '__main__':
    sys.exit(main())
