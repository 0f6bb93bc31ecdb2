#!/usr/bin/env python3
"""Live view overhead: does a connected Foxglove client slow the node, and how fast does the
client get the overlay?

Processes: the conveyor camera, the segmentation node (fake engine of a fixed latency, or the
real engine), ``lw-refinenet view`` for the camera's namespace, and this process: a ROS
monitor (subscribes to ``segmentation/stats`` for the node's own per-frame processing time and
to ``segmentation/overlay``, so the node draws the overlay in every phase and only the view's
presence differs; likewise ``segmentation/objects``) and a Foxglove WebSocket client.

Phases alternate, ``--rounds`` times: ``off`` (the view runs, no client connected, so it
subscribes to nothing) and ``on`` (a client subscribed to the camera image, overlay, colour
mask, labels, annotations and stats). Interleaving cancels most of the drift of a shared
machine. Per phase: the node's processing time (arrival -> publish, from its stats), the
rate at which the node published overlays (seen by the monitor) and the rate the client
received them.

    .venv/bin/python benchmarks/view_overhead.py --json docs/bench/view_overhead.json
"""

from __future__ import annotations

import asyncio
import os
import pathlib
import socket
import statistics
import sys
import tempfile
import threading
import time
from typing import Any

import _common
import _session

from lw_refinenet_ros.ros.topic_names import COLOR, IMAGE, LABELS, OBJECTS, OVERLAY, STATS
from lw_refinenet_ros.sizes import parse_size

NAMESPACE = '/view_bench'
WATCHED = (IMAGE, OVERLAY, COLOR, LABELS, 'segmentation/annotations', STATS)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return int(sock.getsockname()[1])


class _Monitor:
    """A ROS node in a background thread: per-frame processing times and overlay arrivals."""

    def __init__(self) -> None:
        from lw_refinenet_ros.msg import SegmentationStats, SegmentedObjects
        import rclpy
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import Image

        self._rclpy = rclpy
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node('view_bench_monitor', namespace=NAMESPACE,
                                      context=self.context)
        qos = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
        self.processing: list[tuple[float, float]] = []
        self.overlays: list[float] = []
        self.node.create_subscription(
            SegmentationStats, STATS,
            lambda m: self.processing.append((time.monotonic(), m.processing_latency_ms)), qos)
        self.node.create_subscription(
            Image, OVERLAY, lambda m: self.overlays.append(time.monotonic()),
            qos)
        # Objects too: the node computes them only while subscribed, and the client's
        # annotations need them; subscribed in every phase, only the view's presence differs.
        self.node.create_subscription(SegmentedObjects, OBJECTS,
                                      lambda m: None, qos)
        self._executor = SingleThreadedExecutor(context=self.context)
        self._executor.add_node(self.node)
        self._thread = threading.Thread(target=self._executor.spin, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._executor.shutdown()
        self._thread.join(timeout=5)
        self.node.destroy_node()
        self.context.try_shutdown()


async def _client_phase(url: str, seconds: float) -> list[float]:
    """Connect, subscribe to every image and annotation channel, return overlay arrivals."""
    from lw_refinenet_ros.testing.foxglove_client import FoxgloveClient

    overlay = f'{NAMESPACE}/segmentation/overlay'
    arrivals: list[float] = []
    # The client stands for the Foxglove app, which normally runs on the user's laptop: this
    # thread yields the CPU like the view does, so the phases differ by the view, not by the
    # benchmark's own WebSocket decoding.
    os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
    async with FoxgloveClient(url) as client:
        await client.subscribe(*(f'{NAMESPACE}/{t}' for t in WATCHED))
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            frames = await client.receive(lambda fs: len(fs) >= 1,
                                          timeout=max(0.01, end - time.monotonic()))
            now = time.monotonic()
            arrivals += [now for f in frames if f.topic == overlay]
    return arrivals


def _in_thread(function: Any) -> Any:
    """Run ``function`` in its own thread (which may renice itself) and return its value."""
    result: list[Any] = []
    thread = threading.Thread(target=lambda: result.append(function()), daemon=True)
    thread.start()
    thread.join()
    return result[0]


def _window(samples: list[Any], start: float, end: float) -> list[Any]:
    return [s for s in samples if start <= (s[0] if isinstance(s, tuple) else s) < end]


def _rate(times: list[float], start: float, end: float) -> float:
    return round(len(_window(times, start, end)) / (end - start), 2)


def run_engine(engine: str, args: Any, env: dict[str, str], port: int,
               folder: pathlib.Path) -> dict[str, Any]:
    size = args.size if engine == 'fake' else args.real_size
    width, height = parse_size(size, what='--size')
    extra = ['--ros-args', '-r', f'__ns:={NAMESPACE}', '-p', 'max_frame_age_ms:=1000.0']
    model = None
    if engine == 'real':
        weights, model = _session.real_model(args.weights, folder)
        extra += ['-p', f'model.weights:={weights}', '-p', f'num_threads:={args.num_threads}']
    node = _common.spawn(_session.node_command(engine, fake_ms=args.fake_engine_ms,
                                               device=args.device, extra=extra), env,
                         log_path=folder / f'node_{engine}.log')
    camera = _common.spawn(
        ['-c', 'import sys; from lw_refinenet_ros.demo.conveyor_camera import main; '
               'sys.exit(main())', '--ros-args', '-r', f'__ns:={NAMESPACE}',
         '-p', f'width:={width}', '-p', f'height:={height}', '-p', f'rate_hz:={args.rate}'],
        env, log_path=folder / f'camera_{engine}.log')
    view = _common.spawn(['-m', 'lw_refinenet_ros', 'view', '--cameras', NAMESPACE, '--port',
                          str(port), '--nice', str(args.view_nice)], env,
                         log_path=folder / f'view_{engine}.log')
    monitor = _Monitor()
    phases: list[dict[str, Any]] = []
    try:
        deadline = time.monotonic() + 180
        while not monitor.processing and time.monotonic() < deadline:
            time.sleep(0.2)
        if not monitor.processing:
            raise RuntimeError(f'the node published no stats; see {folder}')
        time.sleep(args.warmup)
        url = f'ws://127.0.0.1:{port}'
        for round_index in range(args.rounds):
            for phase in ('off', 'on'):
                start = time.monotonic()
                cpu_start = {name: _common.cpu_seconds(p.pid)
                             for name, p in (('view', view), ('node', node))}
                if phase == 'on':
                    arrivals = _in_thread(lambda: asyncio.run(_client_phase(url, args.phase_s)))
                else:
                    arrivals = []
                    time.sleep(args.phase_s)
                end = time.monotonic()
                used = {name: (_common.cpu_seconds(p.pid) or 0.0) - (cpu_start[name] or 0.0)
                        for name, p in (('view', view), ('node', node))}
                cpu = {name: round(100 * s / (end - start), 1) for name, s in used.items()}
                # CPU the node spent per frame it published: the work the view could add to
                # the node, far less sensitive to other jobs than wall-clock latency.
                published = len(_window(monitor.processing, start, end))
                # The first second after a switch is the view (un)subscribing: not counted.
                settled = start + 1.0
                times = [ms for _, ms in _window(monitor.processing, settled, end)]
                phases.append({
                    'round': round_index, 'phase': phase, 'seconds': round(end - settled, 2),
                    'frames': len(times),
                    'processing_ms': _common.percentiles(times),
                    'node_overlay_hz': _rate(monitor.overlays, settled, end),
                    'client_overlay_hz': _rate(arrivals, settled, end) if phase == 'on'
                    else None,
                    'cpu_pct_of_one_core': cpu,
                    'node_cpu_ms_per_frame': round(1e3 * used['node'] / published, 2)
                    if published else None,
                    'loadavg_1min': round(os.getloadavg()[0], 2)})
                print(f'{engine} round {round_index} {phase}: processing p50 '
                      f'{phases[-1]["processing_ms"]["p50"]} ms, node overlay '
                      f'{phases[-1]["node_overlay_hz"]} Hz, client overlay '
                      f'{phases[-1]["client_overlay_hz"]} Hz, cpu {cpu} %, node cpu/frame '
                      f'{phases[-1]["node_cpu_ms_per_frame"]} ms, load '
                      f'{phases[-1]["loadavg_1min"]}', file=sys.stderr, flush=True)
    finally:
        monitor.close()
        for process in (camera, view, node):
            _common.stop(process)

    def pooled(phase: str, key: str) -> float | None:
        values = [p['processing_ms'][key] for p in phases
                  if p['phase'] == phase and p['processing_ms'][key] is not None]
        return round(statistics.median(values), 3) if values else None

    def pooled_value(phase: str, key: str) -> float | None:
        values = [p[key] for p in phases if p['phase'] == phase and p[key] is not None]
        return round(statistics.median(values), 3) if values else None

    off50, on50 = pooled('off', 'p50'), pooled('on', 'p50')
    off_mean, on_mean = pooled('off', 'mean'), pooled('on', 'mean')
    # Each round's on/off ratio: the two phases of a round are seconds apart, so the machine's
    # load drifts less within a round than across the run.
    ratios = []
    for index in range(args.rounds):
        pair = {p['phase']: p['processing_ms']['p50'] for p in phases if p['round'] == index}
        if pair.get('off') and pair.get('on'):
            ratios.append(pair['on'] / pair['off'])
    cpu_ratios = []
    for index in range(args.rounds):
        pair = {p['phase']: p['node_cpu_ms_per_frame'] for p in phases if p['round'] == index}
        if pair.get('off') and pair.get('on'):
            cpu_ratios.append(pair['on'] / pair['off'])
    client = [p['client_overlay_hz'] for p in phases if p['phase'] == 'on']
    produced = [p['node_overlay_hz'] for p in phases if p['phase'] == 'on']
    return {
        'engine': engine, 'model': model,
        'fake_engine_ms': args.fake_engine_ms if engine == 'fake' else None,
        'size': size, 'rate_hz': args.rate, 'view_nice': args.view_nice,
        'processing_p50_ms': {'off': off50, 'on': on50,
                              'on_vs_off_pct': round(100 * (on50 / off50 - 1), 1)
                              if off50 and on50 else None},
        'paired_p50_ratio_pct': {
            'median': round(100 * (statistics.median(ratios) - 1), 1) if ratios else None,
            'per_round': [round(100 * (r - 1), 1) for r in ratios]},
        'node_cpu_ms_per_frame': {
            'off': pooled_value('off', 'node_cpu_ms_per_frame'),
            'on': pooled_value('on', 'node_cpu_ms_per_frame'),
            'paired_ratio_pct_median': round(100 * (statistics.median(cpu_ratios) - 1), 1)
            if cpu_ratios else None,
            'paired_ratio_pct_per_round': [round(100 * (r - 1), 1) for r in cpu_ratios]},
        'processing_mean_ms': {'off': off_mean, 'on': on_mean,
                               'on_vs_off_pct': round(100 * (on_mean / off_mean - 1), 1)
                               if off_mean and on_mean else None},
        'overlay_hz': {'node_published_median': statistics.median(produced),
                       'client_received_median': statistics.median(client),
                       'client_received_min': min(client)},
        'phases': phases,
    }


def main() -> int:
    parser = _common.base_parser(__doc__.splitlines()[0])
    _common.add_real_engine_arguments(parser)
    parser.add_argument('--engines', nargs='+', choices=('fake', 'real'),
                        default=['fake', 'real'])
    parser.add_argument('--fake-engine-ms', type=float, default=5.0,
                        help='fake engine latency (default 5: the node keeps up with 30 Hz)')
    parser.add_argument('--size', default='640x480',
                        help='camera size of the fake-engine run (default 640x480)')
    parser.add_argument('--real-size', default='320x240',
                        help="camera size of the real-engine run (default 320x240, the demo's: "
                             'real time on 2 CPU cores)')
    parser.add_argument('--rate', type=float, default=30.0, help='camera rate (default 30)')
    parser.add_argument('--view-nice', type=int, default=10,
                        help="the view's --nice (default 10, as `lw-refinenet view`)")
    parser.add_argument('--rounds', type=int, default=4)
    parser.add_argument('--phase-s', type=float, default=8.0)
    parser.add_argument('--warmup', type=float, default=3.0)
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.phase_s, args.warmup = 1, 4.0, 1.0
    profile = _common.shm_profile_path()[0] if args.profile == 'shm' else None
    domain = _common.pick_domain()
    env = _common.child_env(profile, domain)
    # This process is a ROS participant too: same domain and transport as the children.
    for key in ('ROS_DOMAIN_ID', 'FASTRTPS_DEFAULT_PROFILES_FILE',
                'ROS_AUTOMATIC_DISCOVERY_RANGE'):
        if key in env:
            os.environ[key] = env[key]
    result: dict[str, Any] = {'benchmark': 'view_overhead',
                              'command': ' '.join([sys.executable, *sys.argv]),
                              'machine_before': _common.machine_state(), 'runs': []}
    with tempfile.TemporaryDirectory(prefix='view_bench_') as folder:
        for engine in args.engines:
            result['runs'].append(run_engine(engine, args, env, _free_port(),
                                             pathlib.Path(folder)))
    result['machine_after'] = _common.machine_state()
    _common.write_json(args.json, result)
    return 0


if __name__ == '__main__':
    sys.exit(main())
