"""Child processes for the benchmarks: a camera-like publisher and a bare subscriber.

Run as ``python benchmarks/_roles.py camera|sink|monitor ...`` by the benchmark scripts only.

* ``camera`` publishes ``sensor_msgs/Image`` frames paced at a fixed rate on an absolute
  schedule (so a slow ``publish()`` does not stretch the period), best-effort like a camera
  driver. The stamp is taken right before the message is filled, as a driver stamps at capture,
  so stamp -> callback latency includes the copy into the message and the ``publish()`` call.
  It prints ``READY`` once a subscriber is matched and writes a JSON log of what it sent.
* ``monitor`` subscribes to a node's outputs and records stamp -> arrival per output, plus
  the last ``/diagnostics`` values (what ros2_benchmark's monitor node does).
* ``sink`` subscribes like the node does (best-effort, KeepLast 1 by default) and records the
  stamp -> callback latency of each frame; with ``--echo`` it republishes a small mono8 image
  carrying the same header (the size of a label image), so the benchmark can measure the
  round trip a segmentation node without computation would have: the transport floor.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time

import numpy as np
import rclpy
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.signals import SignalHandlerOptions
from sensor_msgs.msg import CompressedImage, Image

from lw_refinenet_ros.ros.topic_names import IMAGE

CHANNELS = {'rgb8': 3, 'bgr8': 3, 'mono8': 1, 'rgba8': 4, 'bgra8': 4}


def qos(kind: str, depth: int) -> QoSProfile:
    reliability = (ReliabilityPolicy.RELIABLE if kind == 'reliable'
                   else ReliabilityPolicy.BEST_EFFORT)
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth, reliability=reliability)


def _frames(width: int, height: int, encoding: str, variants: int = 4,
            conveyor_seed: int = -1, density: float = 6.0) -> list[bytes]:
    """A few different frames (noise + a moving bar), built before timing starts; with a
    ``conveyor_seed`` >= 0, three seconds of the conveyor generator's belt (parts to find)."""
    if conveyor_seed >= 0:
        from lw_refinenet_ros.data.conveyor import ConveyorScene
        if encoding not in ('rgb8', 'bgr8'):
            raise SystemExit('--conveyor-seed needs rgb8 or bgr8')
        scene = ConveyorScene(conveyor_seed, (width, height), density=density)
        images = [scene.next_frame()[0] for _ in range(90)]
        return [(image[:, :, ::-1] if encoding == 'bgr8' else image).tobytes()
                for image in images]
    rng = np.random.default_rng(0)
    channels = CHANNELS[encoding]
    frames = []
    for index in range(variants):
        image = rng.integers(0, 255, size=(height, width, channels), dtype=np.uint8)
        x = (index * width) // variants
        image[:, x:x + max(1, width // 8)] = 255
        frames.append(image.tobytes())
    return frames


def _stop_on_signals() -> threading.Event:
    """SIGINT/SIGTERM end the spin loop, so the log is always written (no rclpy handler)."""
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    return stop


def _init() -> rclpy.Context:
    context = rclpy.Context()
    rclpy.init(context=context, signal_handler_options=SignalHandlerOptions.NO)
    return context


def run_camera(args: argparse.Namespace) -> int:
    stop = _stop_on_signals()
    context = _init()
    node = rclpy.create_node('bench_camera', context=context)
    publisher = node.create_publisher(Image, args.topic, qos(args.qos, args.depth))
    frames = _frames(args.width, args.height, args.encoding,
                     conveyor_seed=args.conveyor_seed, density=args.density)
    step = args.width * CHANNELS[args.encoding]
    deadline = time.monotonic() + args.match_timeout
    while publisher.get_subscription_count() < args.wait_subs and not stop.is_set():
        if time.monotonic() > deadline:
            print('NO_SUBSCRIBER', flush=True)
            break
        time.sleep(0.02)
    print('READY', flush=True)
    time.sleep(args.settle)
    log: dict = {'stamps_ns': [], 'publish_ms': [], 'rate_hz': args.rate}
    period = 1.0 / args.rate if args.rate > 0 else 0.0
    start = time.monotonic()
    end = start + args.duration
    index = 0
    try:
        while not stop.is_set():
            due = start + index * period
            now = time.monotonic()
            if due >= end or (args.count and index >= args.count):
                break
            if due > now:
                time.sleep(due - now)
            message = Image()
            stamp = time.time_ns()
            message.header.stamp.sec, message.header.stamp.nanosec = divmod(stamp, 10**9)
            message.header.frame_id = args.frame_id
            message.height, message.width = args.height, args.width
            message.encoding = args.encoding
            message.step = step
            message.data = frames[index % len(frames)]
            before = time.perf_counter()
            publisher.publish(message)
            log['publish_ms'].append((time.perf_counter() - before) * 1e3)
            log['stamps_ns'].append(stamp)
            index += 1
    except KeyboardInterrupt:
        pass
    log['elapsed_s'] = time.monotonic() - start
    log['published'] = index
    if args.log:
        with open(args.log, 'w', encoding='utf-8') as handle:
            json.dump(log, handle)
    print(f'DONE {index}', flush=True)
    node.destroy_node()
    context.try_shutdown()
    return 0


def run_sink(args: argparse.Namespace) -> int:
    stop = _stop_on_signals()
    context = _init()
    node = rclpy.create_node('bench_sink', context=context)
    records: list[tuple[int, int]] = []
    echo = None
    echo_bytes = b''
    if args.echo:
        echo = node.create_publisher(Image, args.echo, qos('reliable', 10))
        echo_bytes = bytes(args.echo_width * args.echo_height)

    def on_image(message: Image) -> None:
        now = time.time_ns()
        stamp = message.header.stamp.sec * 10**9 + message.header.stamp.nanosec
        records.append((stamp, now))
        if echo is not None:
            # What a node without computation does: read the pixels, publish a label-sized
            # mono8 image with the input header.
            np.frombuffer(message.data, dtype=np.uint8)
            out = Image(header=message.header, height=args.echo_height, width=args.echo_width,
                        encoding='mono8', step=args.echo_width)
            out.data = echo_bytes
            echo.publish(out)

    def on_compressed(message: CompressedImage) -> None:
        now = time.time_ns()
        stamp = message.header.stamp.sec * 10**9 + message.header.stamp.nanosec
        records.append((stamp, now))

    if args.compressed:
        node.create_subscription(CompressedImage, args.topic, on_compressed,
                                 qos(args.qos, args.depth))
    else:
        node.create_subscription(Image, args.topic, on_image, qos(args.qos, args.depth))
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    print('READY', flush=True)
    end = time.monotonic() + args.duration
    try:
        while not stop.is_set() and context.ok() and time.monotonic() < end:
            executor.spin_once(timeout_sec=0.05)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    if args.log:
        with open(args.log, 'w', encoding='utf-8') as handle:
            json.dump({'records': records}, handle)
    node.destroy_node()
    context.try_shutdown()
    return 0


def _diagnostic_values(message: object) -> dict[str, dict[str, str]]:
    return {status.name: {kv.key: kv.value for kv in status.values}
            for status in message.status}


def run_monitor(args: argparse.Namespace) -> int:
    """Record stamp -> arrival of each output; ``--topics name:topic:kind`` (kind image,
    stats, objects, diag). Writes {name: [[stamp_ns, recv_ns, extra...], ...],
    'diagnostics': last}."""
    from diagnostic_msgs.msg import DiagnosticArray
    from lw_refinenet_ros.msg import SegmentationStats, SegmentedObjects
    stop = _stop_on_signals()
    context = _init()
    node = rclpy.create_node('bench_monitor', context=context)
    records: dict[str, list] = {}
    last_diagnostics: dict = {}
    # Best-effort with a deep queue: compatible with reliable and best-effort publishers and
    # never the reason a result is lost (results are small and arrive at <= inference rate).
    monitor_qos = qos('best_effort', 100)

    def on_message(name: str, kind: str):
        def callback(message: object) -> None:
            now = time.time_ns()
            if kind == 'diag':
                last_diagnostics.update(_diagnostic_values(message))
                records[name].append([now, now])
                return
            stamp = message.header.stamp.sec * 10**9 + message.header.stamp.nanosec
            row = [stamp, now]
            if kind == 'stats':
                row += [message.frame_age_ms, message.processing_latency_ms]
            records[name].append(row)
        return callback

    types = {'image': Image, 'stats': SegmentationStats, 'objects': SegmentedObjects,
             'diag': DiagnosticArray}
    for spec in args.topics:
        name, topic, kind = spec.split(':')
        records[name] = []
        node.create_subscription(types[kind], topic, on_message(name, kind),
                                 qos('reliable', 10) if kind == 'diag' else monitor_qos)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    print('READY', flush=True)
    end = time.monotonic() + args.duration

    def dump() -> None:
        with open(args.log, 'w', encoding='utf-8') as handle:
            json.dump({'records': records, 'diagnostics': last_diagnostics}, handle)

    flush_every = args.flush_every
    next_flush = time.monotonic() + flush_every if flush_every else float('inf')
    try:
        while not stop.is_set() and context.ok() and time.monotonic() < end:
            executor.spin_once(timeout_sec=0.05)
            if time.monotonic() >= next_flush and args.log:
                dump()
                next_flush = time.monotonic() + flush_every
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    if args.log:
        dump()
    node.destroy_node()
    context.try_shutdown()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('role', choices=('camera', 'sink', 'monitor'))
    parser.add_argument('--topic', default=IMAGE)
    parser.add_argument('--width', type=int, default=640)
    parser.add_argument('--height', type=int, default=480)
    parser.add_argument('--encoding', default='rgb8', choices=sorted(CHANNELS))
    parser.add_argument('--rate', type=float, default=30.0, help='Hz; 0 = as fast as possible')
    parser.add_argument('--duration', type=float, default=5.0, help='seconds of publishing')
    parser.add_argument('--count', type=int, default=0, help='stop after this many frames')
    parser.add_argument('--qos', default='best_effort', choices=('best_effort', 'reliable'))
    parser.add_argument('--depth', type=int, default=1)
    parser.add_argument('--wait-subs', type=int, default=1)
    parser.add_argument('--match-timeout', type=float, default=20.0)
    parser.add_argument('--settle', type=float, default=1.0,
                        help='seconds between matching and the first frame (discovery)')
    parser.add_argument('--frame-id', default='bench_camera')
    parser.add_argument('--conveyor-seed', type=int, default=-1,
                        help='camera: conveyor frames of this seed (default: noise frames)')
    parser.add_argument('--density', type=float, default=6.0,
                        help='camera: parts per 320 px of belt with --conveyor-seed')
    parser.add_argument('--log', default='')
    parser.add_argument('--echo', default='', help='sink: republish a mono8 image here')
    parser.add_argument('--echo-width', type=int, default=320)
    parser.add_argument('--echo-height', type=int, default=240)
    parser.add_argument('--compressed', action='store_true')
    parser.add_argument('--topics', nargs='*', default=[], help='monitor: name:topic:kind')
    parser.add_argument('--flush-every', type=float, default=0.0,
                        help='monitor: also write the log every N seconds')
    args = parser.parse_args(argv)
    roles = {'camera': run_camera, 'sink': run_sink, 'monitor': run_monitor}
    return roles[args.role](args)


if __name__ == '__main__':
    sys.exit(main())
