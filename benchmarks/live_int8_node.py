"""The node on the packaged model switching to its conveyor int8: seconds from the process
start, and frames per second before and after the switch.

Starts the real node (``lw_refinenet_ros.ros.node``, the packaged model, ``precision: auto``,
the CPU, every other parameter at its default) and the demo's conveyor camera (30 Hz) as
processes, twice on one runtime cache folder: the first start builds everything (the fp32
runtime model and the int8 model from the conveyor generator's frames), the second finds
both cached. For each start it reads from the node's log the seconds from the process start
to "segmenting with" (first labels possible) and to "now segmenting with ... int8" (the
switch), and from /diagnostics the frames the node processed per second before the switch
and over ``--after`` seconds after it. The cache folder is a fresh temporary one unless
``--cache`` names one.

Usage::

    .venv/bin/python benchmarks/live_int8_node.py [--size 320x240] [--after 20] [--starts 2]
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
import re
import tempfile
import time
from typing import Any

from diagnostic_msgs.msg import DiagnosticArray
import rclpy
import rclpy.executors
from rclpy.qos import qos_profile_system_default

from lw_refinenet_ros.demo import supervisor
from lw_refinenet_ros.sizes import parse_size_hw

NAMESPACE = '/live_int8_bench'
STAMP = re.compile(r'\[(?:INFO|WARN)\] \[(\d+\.\d+)\]')


def log_time(path: Path, marker: str) -> float | None:
    """Wall-clock time (epoch seconds) of the first log line holding ``marker``."""
    for line in path.read_text(errors='replace').splitlines():
        if marker in line:
            match = STAMP.search(line)
            if match:
                return float(match.group(1))
    return None


def processed_rate(samples: list[tuple[float, int]], begin: float, end: float) -> float | None:
    """Frames processed per second between two wall-clock times, from (time, counter)."""
    inside = [(t, n) for t, n in samples if begin <= t <= end]
    if len(inside) < 2 or inside[-1][0] <= inside[0][0]:
        return None
    return (inside[-1][1] - inside[0][1]) / (inside[-1][0] - inside[0][0])


def one_start(context: Any, cache: Path, size: tuple[int, int], after_s: float,
              timeout_s: float, logs: Path, index: int) -> dict[str, Any]:
    height, width = size
    samples: list[tuple[float, int]] = []
    status: dict[str, str] = {}

    def on_diagnostics(message: DiagnosticArray) -> None:
        for item in message.status:
            if not item.name.startswith(NAMESPACE):
                continue
            values = {value.key: value.value for value in item.values}
            if 'processed' in values:
                samples.append((time.time(), int(values['processed'])))
            if 'int8_live' in values:
                status['int8_live'] = values['int8_live']

    node = rclpy.create_node('live_int8_bench', context=context)
    node.create_subscription(DiagnosticArray, '/diagnostics', on_diagnostics,
                             qos_profile_system_default)
    executor = rclpy.executors.SingleThreadedExecutor(context=context)
    executor.add_node(node)
    ns = ['-r', f'__ns:={NAMESPACE}']
    node_log, camera_log = logs / f'node_{index}.log', logs / f'camera_{index}.log'
    started = time.time()
    segmenter = supervisor.start(supervisor.module_main_argv(
        'lw_refinenet_ros.ros.node', ['--ros-args', *ns, '-p', f'cache_dir:={cache}',
                                      '-p', 'max_frame_age_ms:=500.0']), log_path=node_log)
    camera = supervisor.start(supervisor.module_main_argv(
        'lw_refinenet_ros.demo.conveyor_camera',
        ['--ros-args', *ns, '-p', f'width:={width}', '-p', f'height:={height}',
         '-p', 'rate_hz:=30.0']), log_path=camera_log)
    switched = None
    try:
        deadline = started + timeout_s
        while time.time() < deadline and segmenter.poll() is None:
            executor.spin_once(timeout_sec=0.2)
            if switched is None:
                switched = log_time(node_log, 'now segmenting with')
                if switched is not None:
                    deadline = time.time() + after_s
            if status.get('int8_live', '').startswith(('int8 not used', 'int8 not built',
                                                        'off')):
                break
    finally:
        for child in (camera, segmenter):
            supervisor.stop(child, timeout_s=8.0)
        node.destroy_node()
    ready = log_time(node_log, 'segmenting with')
    result: dict[str, Any] = {
        'ready_s': None if ready is None else round(ready - started, 1),
        'switch_s': None if switched is None else round(switched - started, 1),
        'int8_live': status.get('int8_live'),
    }
    if ready is not None:
        end = switched if switched is not None else time.time()
        before = processed_rate(samples, ready + 3.0, end)
        result['fps_before'] = None if before is None else round(before, 1)
    if switched is not None:
        later = processed_rate(samples, switched + 2.0, switched + after_s)
        result['fps_after'] = None if later is None else round(later, 1)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--size', default='320x240', help='WIDTHxHEIGHT of the camera')
    parser.add_argument('--after', type=float, default=20.0,
                        help='seconds to keep running after the switch')
    parser.add_argument('--starts', type=int, default=2)
    parser.add_argument('--timeout', type=float, default=600.0,
                        help='longest wait for the switch per start')
    parser.add_argument('--cache', default='', help='runtime cache folder (default: fresh)')
    args = parser.parse_args()
    cache = Path(args.cache or tempfile.mkdtemp(prefix='live-int8-bench-'))
    logs = Path(tempfile.mkdtemp(prefix='live-int8-bench-logs-'))
    context = rclpy.Context()
    rclpy.init(context=context)
    try:
        starts = [one_start(context, cache, parse_size_hw(args.size), args.after, args.timeout,
                            logs, index) for index in range(args.starts)]
    finally:
        rclpy.shutdown(context=context)
    print(json.dumps({'size': args.size, 'cache': str(cache), 'logs': str(logs),
                      'load_average': os.getloadavg(), 'starts': starts}, indent=1))


if __name__ == '__main__':
    main()
