"""``lw-refinenet view``: serve the segmentation node's outputs to Foxglove, live.

A separate process: it subscribes (best-effort, depth 1, only to what a Foxglove client
watches) to one or more cameras' ``segmentation/*`` topics and serves them over the Foxglove
WebSocket protocol. Open https://app.foxglove.dev (or the desktop app), *Open connection*,
``ws://127.0.0.1:8765``, and import ``config/foxglove_layout.json``. See docs/view.md.
"""

from __future__ import annotations

import argparse
import os
import sys

HELP = 'serve the segmentation images, objects and stats to Foxglove over a WebSocket (live view)'


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``lw-refinenet view``."""
    parser.add_argument('--cameras', nargs='+', default=['/'], metavar='NAMESPACE',
                        help='camera namespaces whose segmentation/* topics are served, e.g. '
                             '/conveyor_demo or /left /right (default /: the plain topic '
                             'names of the default launch)')
    parser.add_argument('--image-topic', default='',
                        help='camera image topic when it is not <namespace>/image, e.g. '
                             '/camera/image_raw (one camera only)')
    parser.add_argument('--address', default='127.0.0.1',
                        help='address to bind (default 127.0.0.1: this machine only; 0.0.0.0 '
                             'serves the network, without authentication)')
    parser.add_argument('--port', type=int, default=8765, help='TCP port (default 8765)')
    parser.add_argument('--max-width', type=int, default=640,
                        help='downscale wider images to this width before compressing '
                             '(default 640; 0 = full size)')
    parser.add_argument('--jpeg-quality', type=int, default=80,
                        help='JPEG quality of the camera image and overlay, 1-100 (default 80)')
    parser.add_argument('--nice', type=int, default=10,
                        help='lower the CPU priority of the view by this much (default 10; 0 '
                             'keeps it): on a busy machine the node gets the CPU first')
    parser.add_argument('--write-layout', default=None, metavar='FILE',
                        help='write the Foxglove layout for these --cameras to FILE and exit')


def run(args: argparse.Namespace) -> int:
    """Serve until Ctrl-C; 2 (with the reason) when the port is taken or an option is bad."""
    # ROS and the Foxglove SDK load here so that `lw-refinenet --help` stays instant.
    from lw_refinenet_ros.view.server import ViewConfig

    config = ViewConfig(cameras=tuple(args.cameras), image_topic=args.image_topic,
                        address=args.address, port=args.port, max_width=args.max_width,
                        jpeg_quality=args.jpeg_quality)
    if args.write_layout:
        from lw_refinenet_ros.view.layout import write_layout

        path = write_layout(args.write_layout, config.cameras, config.image_topic)
        print(f'wrote the Foxglove layout for {", ".join(config.cameras)} to {path}')
        return 0

    if args.nice > 0:
        # Before any thread starts (server, DDS, encoder): threads inherit the niceness, so
        # the whole view yields the CPU to the segmentation node when both want it.
        os.nice(args.nice)
    from lw_refinenet_ros.view.bridge import serve

    def ready(server: object) -> None:
        print(f'lw-refinenet view: serving {", ".join(config.cameras)} on {server.url} '
              f'(Foxglove: Open connection -> Foxglove WebSocket -> {server.url}; '
              f'or open {server.app_url()})', flush=True)

    return serve(config, [sys.argv[0]], on_ready=ready)
