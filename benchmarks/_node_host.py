#!/usr/bin/env python3
"""Start the real ``SegmentationNode`` for a benchmark, with its own or a fake engine.

Without ``--fake-engine-ms`` this is exactly the installed executable (``main()``); with it,
the node is built the way the tests build it (``engine_factory=`` injection) so that the
measured difference to the floor is the node's own overhead. ``--device`` is forwarded as
the node's ``device`` parameter. Everything after the known options is passed on as ROS
arguments (``--ros-args -p name:=value``).

Benchmarks otherwise never import ``lw_refinenet_ros.ros``; this host is the exception
because injecting an engine needs the node class.
"""

from __future__ import annotations

import argparse
import pathlib
import sys
from typing import Any

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

import _engines  # noqa: E402


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
    ros_args = _ros_args(args.device if args.fake_engine_ms is None else '', rest)
    from lw_refinenet_ros.ros import node as node_module
    if args.fake_engine_ms is None:
        sys.argv = [sys.argv[0], *ros_args]
        return int(node_module.main() or 0)

    import rclpy
    from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
    engine = _engines.FakeEngine(args.fake_engine_ms, num_classes=args.fake_classes)

    def factory(*_: Any, **__: Any) -> _engines.FakeEngine:
        return engine

    context = rclpy.Context()
    rclpy.init(args=[sys.argv[0], *ros_args], context=context)
    node = node_module.SegmentationNode(context=context, engine_factory=factory)
    executor = MultiThreadedExecutor(context=context)
    executor.add_node(node)
    try:
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        context.try_shutdown()
    return 0


if __name__ == '__main__':
    sys.exit(main())
