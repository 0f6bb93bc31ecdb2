#!/usr/bin/env python3
"""The naive segmentation node the overload benchmark compares against (design C).

What many hobby and research nodes do (docs/architecture.md §8, design C):
a reliable depth-10 subscription and inference inside the subscription callback, on the
executor thread. When the camera is faster than inference, frames queue in the middleware
and every result is up to ten inference periods old. Same engine, same outputs (labels +
stats with the input header) as the real node, so the only difference is the design.

    .venv/bin/python benchmarks/naive_node.py [--fake-engine-ms 50] [--device cpu]
"""

from __future__ import annotations

import argparse
import pathlib
import signal
import sys
import threading
import time

import numpy as np
import rclpy
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.signals import SignalHandlerOptions
from sensor_msgs.msg import Image

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

import _engines  # noqa: E402

from lw_refinenet_ros.ros.topic_names import IMAGE, LABELS, STATS  # noqa: E402


class NaiveNode:
    """Subscription callback = convert + infer + publish; no dropping, no worker thread."""

    def __init__(self, engine: object, context: rclpy.Context, depth: int = 10) -> None:
        from lw_refinenet_ros.msg import ClassStatistics, SegmentationStats
        self._stats_types = (ClassStatistics, SegmentationStats)
        self.engine = engine
        self.node = rclpy.create_node('naive_segmentation', context=context)
        qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth,
                         reliability=ReliabilityPolicy.RELIABLE)
        self.labels = self.node.create_publisher(Image, LABELS, 10)
        self.stats = self.node.create_publisher(SegmentationStats, STATS, 10)
        self.node.create_subscription(Image, IMAGE, self._on_image, qos)
        self.processed = 0

    def _on_image(self, message: Image) -> None:
        arrived = time.monotonic()
        channels = 3 if message.encoding in ('rgb8', 'bgr8') else 1
        image = np.frombuffer(message.data, dtype=np.uint8).reshape(
            message.height, message.step)[:, : message.width * channels].reshape(
            message.height, message.width, channels)
        order = 'bgr' if message.encoding == 'bgr8' else 'rgb'
        result = self.engine(image, order, want_confidence=True, want_stats=True)
        labels = np.ascontiguousarray(result.labels, dtype=np.uint8)
        out = Image(header=message.header, height=labels.shape[0], width=labels.shape[1],
                    encoding='mono8', step=labels.shape[1])
        out.data = labels.tobytes()
        self.labels.publish(out)
        class_stat_type, stats_type = self._stats_types
        stats = stats_type(header=message.header, height=message.height, width=message.width,
                           num_classes=self.engine.num_classes)
        for item in result.stats or ():
            entry = class_stat_type(class_id=item.class_id, class_name=str(item.class_id),
                                    pixel_count=item.pixel_count,
                                    area_fraction=item.area_fraction,
                                    mean_confidence=item.mean_confidence)
            stats.classes.append(entry)
        now = time.time_ns()
        stamp = message.header.stamp.sec * 10**9 + message.header.stamp.nanosec
        stats.frame_age_ms = (now - stamp) / 1e6
        stats.processing_latency_ms = (time.monotonic() - arrived) * 1e3
        self.stats.publish(stats)
        self.processed += 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument('--fake-engine-ms', type=float, default=None,
                        help='use a fixed-latency fake engine instead of the real one')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--weights', default=None)
    parser.add_argument('--depth', type=int, default=10)
    parser.add_argument('--num-threads', type=int, default=None,
                        help='torch CPU threads (the node parameter of the same meaning)')
    args = parser.parse_args(argv)
    if args.fake_engine_ms is not None:
        engine = _engines.fake_engine(args.fake_engine_ms)
    else:
        engine = _engines.build_real_engine(device=args.device, weights=args.weights,
                                            num_threads=args.num_threads or None)
    # Own signal handling: with a non-default context, rclpy's SIGINT handler did not wake an
    # idle executor (the process hung until SIGKILL), which would blame the naive design for a
    # harness problem. The flag is checked between callbacks, as rclpy would.
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    context = rclpy.Context()
    rclpy.init(context=context, signal_handler_options=SignalHandlerOptions.NO)
    naive = NaiveNode(engine, context, depth=args.depth)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(naive.node)
    print('READY', flush=True)
    try:
        while not stop.is_set() and context.ok():
            executor.spin_once(timeout_sec=0.1)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        naive.node.destroy_node()
        context.try_shutdown()
    return 0


if __name__ == '__main__':
    sys.exit(main())
