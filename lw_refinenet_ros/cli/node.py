"""``lw-refinenet node``: run the ROS 2 segmentation node from the pip install."""

from __future__ import annotations

import argparse

HELP = 'run the ROS 2 segmentation node (everything from --ros-args on goes to ROS)'


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--lifecycle', action='store_true',
                        help='run the managed (lifecycle) variant')
    parser.add_argument('ros_args', nargs=argparse.REMAINDER,
                        help='ROS arguments, e.g. --ros-args -p device:=cpu -r image:=/cam')


def run(args: argparse.Namespace) -> int:
    # Only the leading '--' separates our options from ROS's; later ones are ROS values.
    ros_args = list(args.ros_args[1:] if args.ros_args[:1] == ['--'] else args.ros_args)
    if args.lifecycle:
        from lw_refinenet_ros.ros.lifecycle_node import main
    else:
        from lw_refinenet_ros.ros.node import main
    return main(['lw-refinenet-node', *ros_args])
