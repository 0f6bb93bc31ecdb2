"""The ``lw-refinenet`` command line: one entry point, one module per subcommand.

Each subcommand lives in ``lw_refinenet_ros.cli.<module>`` and exposes ``HELP`` (one line),
``add_arguments(parser)`` and ``run(args) -> int``. Subcommand modules import torch and other
heavy packages inside ``run`` so that ``lw-refinenet --help`` stays instant.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from typing import Sequence

from lw_refinenet_ros import __version__
from lw_refinenet_ros.errors import LWRefineNetError

# Subcommand name -> module under lw_refinenet_ros.cli, in the order --help lists them.
_COMMANDS: tuple[tuple[str, str], ...] = (
    ('train', 'train'),
    ('train-boundary', 'train_boundary'),
    ('eval', 'evaluate'),
    ('make-dataset', 'make_dataset'),
    ('data', 'data'),
    ('segment', 'segment'),
    ('export', 'export'),
    ('quantize', 'quantize'),
    ('bench', 'bench'),
    ('demo', 'demo'),
    ('node', 'node'),
    ('view', 'view'),
)


def build_parser() -> argparse.ArgumentParser:
    """Build the top-level parser with every registered subcommand."""
    parser = argparse.ArgumentParser(
        prog='lw-refinenet',
        description='Light-Weight RefineNet semantic segmentation: run, train, evaluate, '
                    'benchmark and serve it as a ROS 2 node.')
    parser.add_argument('--version', action='version', version=f'%(prog)s {__version__}')
    parser.add_argument('-v', '--verbose', action='store_true', help='log debug messages')
    subparsers = parser.add_subparsers(dest='command', metavar='COMMAND')
    for name, module_name in _COMMANDS:
        module = importlib.import_module(f'lw_refinenet_ros.cli.{module_name}')
        sub = subparsers.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(sub)
        sub.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit code."""
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    # ROS convention: everything from --ros-args on belongs to ROS, so `lw-refinenet node
    # --ros-args -p device:=cpu` works like `ros2 run` without a separating '--'.
    ros_args: list[str] = []
    if '--ros-args' in argv and '--' not in argv[:argv.index('--ros-args')]:
        split = argv.index('--ros-args')
        argv, ros_args = argv[:split], argv[split:]
    args = parser.parse_args(argv)
    if ros_args:
        if args.command != 'node':
            parser.error(f'--ros-args is only accepted by `lw-refinenet node`, not by '
                         f'`{args.command}`.')
        args.ros_args = [*args.ros_args, *ros_args]
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format='%(levelname)s %(name)s: %(message)s')
    if getattr(args, '_run', None) is None:
        parser.print_help()
        return 0
    try:
        return int(args._run(args) or 0)
    except LWRefineNetError as error:
        # Expected failures (bad config, bad checkpoint, bad input) end with the reason, not a
        # traceback: the message already says what was wrong and what to do.
        print(f'lw-refinenet {args.command}: error: {error}', file=sys.stderr)
        return 2
