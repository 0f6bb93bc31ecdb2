#!/usr/bin/env python3
"""Seconds from starting the real node's process to its first labels, cold and restarted.

A camera publishes a conveyor frame at 15 Hz from the moment the node is spawned; the time is
taken from ``Popen`` to the first ``segmentation/labels`` message. The first start uses an
empty cache folder (every runtime exported, compiled and timed: the cold start); the later
starts reuse that folder, as a node restarted on the same machine does. Default settings
otherwise (``backend: auto``, ``precision: auto``, the packaged model).

Each start also records the node process's CPU seconds (user + system) when its first labels
arrive, which other jobs on a shared machine disturb far less than the wall time, the second
its "segmenting with" line was logged (the node built; the rest is the first frame and its
delivery) and the load average before it started.

Usage: .venv/bin/python benchmarks/restart_time.py [--size 640x480] [--restarts 3] [--json F]
       [--fresh-camera] [--camera-age 5] [--fastdds-profile XML] [--param NAME:=VALUE ...]
"""

from __future__ import annotations

import os
import pathlib
import re
import statistics
import sys
import tempfile
import threading
import time
from typing import Sequence

import numpy as np
import rclpy
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from _common import (  # noqa: E402
    base_parser,
    child_env,
    cpu_seconds,
    machine_state,
    pick_domain,
    spawn,
    stop,
    write_json,
)

from lw_refinenet_ros.data.conveyor import render_conveyor_frame  # noqa: E402
from lw_refinenet_ros.ros.topic_names import IMAGE, LABELS  # noqa: E402
from lw_refinenet_ros.sizes import parse_size  # noqa: E402


def _image(frame: np.ndarray) -> Image:
    message = Image()
    message.height, message.width = frame.shape[:2]
    message.encoding = 'rgb8'
    message.step = frame.shape[1] * 3
    message.data = frame.tobytes()
    return message


_READY = re.compile(r'\[(\d+\.\d+)\] \[lw_refinenet\]: segmenting with')


class Camera:
    """The rest of the system: one participant that publishes the conveyor frame at 15 Hz
    while a node starts and listens for its labels.

    By default it lives across all starts, as the camera of a restarted node does: Fast DDS
    participants announce themselves every 3 s and a new one is only matched when the other
    side's announcement arrives, so a camera created just before the node (``--fresh-camera``,
    how this benchmark measured until 2026-12-07) adds that wait at a fixed phase to every
    start (about 3.3 s after the camera appeared, on the 2-core machine).
    """

    def __init__(self, size: tuple[int, int], domain_id: int) -> None:
        self.context = rclpy.Context()
        rclpy.init(context=self.context, domain_id=domain_id)
        self.node = rclpy.create_node('restart_bench', context=self.context)
        self.first = threading.Event()
        self.subscription = self.node.create_subscription(
            Image, '/' + LABELS, lambda _msg: self.first.set(), qos_profile_sensor_data)
        self.publisher = self.node.create_publisher(Image, '/' + IMAGE, qos_profile_sensor_data)
        self.message = _image(np.ascontiguousarray(render_conveyor_frame(7, size)[0]))
        self.executor = rclpy.executors.SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.shutdown(context=self.context)


def time_to_first_labels(camera: Camera, env: dict[str, str], timeout_s: float,
                         log: pathlib.Path,
                         params: Sequence[str] = ()) -> dict[str, float | None]:
    """Spawn the node (its output to ``log``), publish frames until its first labels:
    ``labels_s`` (inf: none), ``cpu_s`` (the node's CPU seconds then), ``ready_s`` (when it
    logged "segmenting with"; None if it did not), ``matched_s`` (when the camera first saw
    the node's image subscription: discovery done), ``load_1m`` before the start."""
    camera.first.clear()
    load = os.getloadavg()[0]
    started, started_wall = time.monotonic(), time.time()
    node_args = ['--ros-args', *[a for p in params for a in ('-p', p)]] if params else []
    process = spawn(['-m', 'lw_refinenet_ros.ros.node', *node_args], env, log_path=log)
    cpu = matched = None
    try:
        next_frame = started
        while not camera.first.is_set() and time.monotonic() - started < timeout_s:
            if matched is None and camera.publisher.get_subscription_count() > 0:
                matched = time.monotonic() - started
            if time.monotonic() >= next_frame:
                camera.message.header.stamp = camera.node.get_clock().now().to_msg()
                camera.publisher.publish(camera.message)
                next_frame += 1 / 15
            camera.executor.spin_once(timeout_sec=0.005)
        elapsed = time.monotonic() - started if camera.first.is_set() else float('inf')
        cpu = cpu_seconds(process.pid)
    finally:
        stop(process, timeout=10.0)
        if not camera.first.is_set():
            print(f'no labels within {timeout_s:.0f} s; the node said:\n'
                  + '\n'.join(log.read_text(errors='replace').splitlines()[-20:]))
    # The node's participant is gone: wait until the camera no longer sees its subscription,
    # so that the next start's match is the next node's.
    deadline = time.monotonic() + 10.0
    while camera.publisher.get_subscription_count() > 0 and time.monotonic() < deadline:
        camera.executor.spin_once(timeout_sec=0.05)
    ready = _READY.search(log.read_text(errors='replace'))
    return {'labels_s': elapsed, 'cpu_s': cpu, 'load_1m': round(load, 2),
            'ready_s': round(float(ready.group(1)) - started_wall, 3) if ready else None,
            'matched_s': round(matched, 3) if matched is not None else None}


def _line(run: dict[str, float | None]) -> str:
    ready = f', node built at {run["ready_s"]:.2f} s' if run['ready_s'] is not None else ''
    cpu = f', {run["cpu_s"]:.2f} s CPU' if run['cpu_s'] is not None else ''
    matched = f', discovered at {run["matched_s"]:.2f} s' if run['matched_s'] is not None \
        else ''
    return (f'{run["labels_s"]:.2f} s to the first labels{ready}{matched}{cpu} '
            f'(load {run["load_1m"]})')


def main(argv: list[str] | None = None) -> int:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument('--size', default='640x480', help='WIDTHxHEIGHT of the camera frames')
    parser.add_argument('--restarts', type=int, default=3)
    parser.add_argument('--timeout', type=float, default=600.0)
    parser.add_argument('--fresh-camera', action='store_true',
                        help='a new camera participant right before each start (see Camera)')
    parser.add_argument('--camera-age', type=float, default=5.0,
                        help='seconds the shared camera runs before the first start')
    parser.add_argument('--fastdds-profile', default=None,
                        help='Fast DDS XML profile for the camera and the node (default: none)')
    parser.add_argument('--param', action='append', default=[], metavar='NAME:=VALUE',
                        help='a node parameter, as ros2 run takes it (repeatable), e.g. '
                             'live_int8.enabled:=false')
    args = parser.parse_args(argv)
    width, height = parse_size(args.size)
    with tempfile.TemporaryDirectory(prefix='lwrf-restart-') as cache:
        env = child_env(args.fastdds_profile, pick_domain())
        if args.fastdds_profile:  # this process's camera participant uses it too
            os.environ['FASTRTPS_DEFAULT_PROFILES_FILE'] = args.fastdds_profile
        env['XDG_CACHE_HOME'] = cache
        # This process's own participant must discover the node's: same domain and range.
        os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = env['ROS_AUTOMATIC_DISCOVERY_RANGE']
        logs = pathlib.Path(cache)
        domain = int(env['ROS_DOMAIN_ID'])
        camera = None if args.fresh_camera else Camera((width, height), domain)

        def start(name: str) -> dict[str, float | None]:
            own = camera or Camera((width, height), domain)
            try:
                return time_to_first_labels(own, env, args.timeout, logs / f'{name}.log',
                                            args.param)
            finally:
                if own is not camera:
                    own.close()

        if camera is not None:
            time.sleep(args.camera_age)
        cold = start('cold')
        print(f'cold start (empty cache): {_line(cold)}', flush=True)
        warm = []
        for _ in range(args.restarts):
            warm.append(start(f'restart{len(warm)}'))
            print(f'restart: {_line(warm[-1])}', flush=True)
        if camera is not None:
            camera.close()
    times = [run['labels_s'] for run in warm]
    cpus = [run['cpu_s'] for run in warm if run['cpu_s'] is not None]
    write_json(args.json, {
        'benchmark': 'restart_time', 'machine': machine_state(), 'size': f'{width}x{height}',
        'cold_s': round(cold['labels_s'], 3), 'cold': cold,
        'restarts_s': [round(t, 3) for t in times], 'restarts': warm,
        'restart_median_s': round(statistics.median(times), 3) if times else None,
        'restart_median_cpu_s': round(statistics.median(cpus), 3) if cpus else None,
        'camera': 'fresh before each start' if args.fresh_camera else
        f'one for all starts, started {args.camera_age:g} s before the first',
        'fastdds_profile': args.fastdds_profile, 'params': args.param,
    })
    return 0


if __name__ == '__main__':
    sys.exit(main())
