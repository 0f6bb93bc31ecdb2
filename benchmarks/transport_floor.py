#!/usr/bin/env python3
"""Transport floor: camera-like publisher process -> bare subscriber process.

What a Python ROS 2 node cannot go below, whatever it computes: stamp -> callback latency of
rgb8 frames between two processes, paced like a camera, with Fast DDS's default transports and
with the 64 MB shared-memory profile (FASTRTPS_DEFAULT_PROFILES_FILE set in BOTH processes).
Both subscriber and publisher use the node's input QoS (best-effort, KeepLast 1) by default.

    .venv/bin/python benchmarks/transport_floor.py --json out.json --plot out.png
"""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys
import tempfile
import time
from typing import Any

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

import _common  # noqa: E402

SIZES = {'640x480': (640, 480), '1920x1080': (1920, 1080)}


def measure(width: int, height: int, profile: str | None, *, rate: float, duration: float,
            qos: str, depth: int, echo: bool = False, echo_size: tuple[int, int] = (320, 240),
            encoding: str = 'rgb8', monitor: Any = None) -> dict[str, Any]:
    """One camera -> sink run; returns latency percentiles and delivered %.

    With ``echo`` the sink republishes a label-sized mono8 image on ``echo`` and ``monitor``
    (an in-process subscriber with ``.records``) measures the round trip instead.
    """
    domain = _common.pick_domain() if monitor is None else monitor.domain
    env = _common.child_env(profile, domain)
    with tempfile.TemporaryDirectory() as tmp:
        sink_log = pathlib.Path(tmp, 'sink.json')
        cam_log = pathlib.Path(tmp, 'cam.json')
        sink_args = ['benchmarks/_roles.py', 'sink', '--qos', qos, '--depth', str(depth),
                     '--duration', str(duration + 60), '--log', str(sink_log)]
        if echo:
            sink_args += ['--echo', 'echo', '--echo-width', str(echo_size[0]),
                          '--echo-height', str(echo_size[1])]
        sink = _common.spawn(sink_args, env, stdout=subprocess.PIPE, text=True)
        camera = None
        try:
            if not _common.wait_for_line(sink, 'READY', 30):
                raise RuntimeError('the sink process did not start')
            if monitor is not None:
                monitor.reset()
            camera = _common.spawn(
                ['benchmarks/_roles.py', 'camera', '--width', str(width), '--height',
                 str(height), '--encoding', encoding, '--rate', str(rate), '--duration',
                 str(duration), '--qos', qos, '--depth', str(depth), '--log', str(cam_log)],
                env, stdout=subprocess.PIPE, text=True)
            camera.wait(timeout=duration + 60)
            time.sleep(0.5)  # let the last frames arrive
        finally:
            if camera is not None:
                _common.stop(camera)
            _common.stop(sink)
        cam = json.loads(cam_log.read_text())
        sent = set(cam['stamps_ns'])
        if monitor is not None:
            records = [r for r in monitor.snapshot('echo') if r[0] in sent]
        else:
            records = [tuple(r) for r in json.loads(sink_log.read_text())['records']
                       if r[0] in sent]
    latencies = [(recv - stamp) / 1e6 for stamp, recv in records]
    published = cam['published']
    return {
        'width': width, 'height': height, 'encoding': encoding,
        'profile': 'shm' if profile else 'default',
        'rate_hz': rate, 'published': published,
        'achieved_rate_hz': round(published / cam['elapsed_s'], 2) if cam['elapsed_s'] else 0,
        'delivered': len({r[0] for r in records}),
        'delivered_pct': round(100.0 * len({r[0] for r in records}) / max(1, published), 2),
        'latency_ms': _common.percentiles(latencies),
        'publish_call_ms': _common.percentiles(cam['publish_ms']),
        'series': [[round((s - records[0][0]) / 1e9, 4), round(lat, 3)]
                   for (s, _), lat in zip(records, latencies)] if records else [],
    }


def main(argv: list[str] | None = None) -> int:
    parser = _common.base_parser(__doc__.splitlines()[1])
    parser.add_argument('--sizes', nargs='+', default=list(SIZES), choices=list(SIZES))
    parser.add_argument('--rate', type=float, default=30.0)
    parser.add_argument('--duration', type=float, default=6.0, help='seconds per configuration')
    parser.add_argument('--qos', nargs='+', default=['best_effort', 'reliable'],
                        choices=('best_effort', 'reliable'),
                        help='best_effort runs use depth 1 (the node input), reliable depth 10')
    args = parser.parse_args(argv)
    duration = 2.0 if args.quick else args.duration
    shm, shm_origin = _common.shm_profile_path()
    result: dict[str, Any] = {
        'benchmark': 'transport_floor',
        'command': ' '.join([sys.executable, *sys.argv]),
        'machine_before': _common.machine_state(),
        'shm_profile': shm_origin,
        'qos': 'best_effort depth 1 / reliable depth 10 (both ends)',
        'runs': [],
    }
    for size in args.sizes:
        width, height = SIZES[size]
        for qos in args.qos:
            for profile in (None, shm):
                run = measure(width, height, profile, rate=args.rate, duration=duration,
                              qos=qos, depth=1 if qos == 'best_effort' else 10)
                run['qos'] = qos
                run['loadavg_1min'] = round(_common.machine_state()['loadavg_1_5_15'][0], 2)
                result['runs'].append(run)
                lat = run['latency_ms']
                print(f"{size} {qos:11s} {run['profile']:7s} delivered "
                      f"{run['delivered_pct']:6.2f} % p50 {lat['p50']} p95 {lat['p95']} "
                      f"max {lat['max']} ms (load {run['loadavg_1min']})", file=sys.stderr)
    result['machine_after'] = _common.machine_state()
    with _common.matplotlib_axes(args.plot) as axes:
        if axes is not None:
            ax = axes[0][0]
            for run in result['runs']:
                if run['series']:
                    xs, ys = zip(*run['series'])
                    ax.plot(xs, ys, '.', ms=3,
                            label=f"{run['width']}x{run['height']} {run['qos']} "
                                  f"{run['profile']}")
            ax.set_xlabel('time since first frame (s)')
            ax.set_ylabel('stamp -> callback latency (ms)')
            ax.set_yscale('log')
            ax.set_title(f'Transport floor, {args.rate:g} Hz rgb8, {result["qos"]} '
                         f'(load {result["machine_before"]["loadavg_1_5_15"][0]})')
            ax.legend()
    for run in result['runs']:
        run.pop('series')
    _common.write_json(args.json, result)
    return 0


if __name__ == '__main__':
    sys.exit(main())
