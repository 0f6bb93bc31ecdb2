#!/usr/bin/env python3
"""Overload: a camera faster than inference, our node against the naive node, same run.

The camera publishes paced frames (reliable depth 10, so that the naive node's reliable
subscription can connect) faster than the engine can segment them. Our node keeps one frame
slot and drops the rest (counted in /diagnostics); the naive node (benchmarks/naive_node.py:
reliable depth 10, inference in the callback) lets frames queue in the middleware. For every
published result the monitor records its age (arrival - camera stamp). Latency must stay
flat for our node; the naive node's grows until its queue is full and stays ~depth x
inference time behind. Both use the same engine (real by default, or ``--fake-engine-ms``).

    .venv/bin/python benchmarks/overload.py --json out.json --plot out.png
"""

from __future__ import annotations

import pathlib
import sys
import tempfile
from typing import Any

import _common
import _session


def run_one(kind: str, args: Any, profile: str | None) -> dict[str, Any]:
    fake = args.fake_engine_ms or 0.0
    if kind == 'ours':
        extra = list(args.node_args)
        if not fake:
            extra = _session.node_engine_args(args.weights, args.num_threads) + [
                a for a in extra if a != '--ros-args']
        argv = _session.node_command('fake' if fake else 'real', fake_ms=fake,
                                     device=args.device, extra=extra)
    else:
        extra = ['--num-threads', str(args.num_threads), '--weights', args.weights]
        argv = _session.node_command('naive', fake_ms=fake, device=args.device, extra=extra)
    session = _session.Session(argv, profile=profile, name=kind)
    out: dict[str, Any] = {'node': kind}
    try:
        session.camera(width=args.width, height=args.height, rate=2, duration=args.warmup,
                       qos='reliable', depth=10, settle=1.0, label='warm-up')
        session.drain(2.0)
        run = session.camera(width=args.width, height=args.height, rate=args.rate,
                             duration=args.duration, qos='reliable', depth=10,
                             label=f'{args.rate} Hz')
        session.drain(args.drain)
    except RuntimeError as error:
        out['error'] = str(error)
        print(f'{kind}: {error}', file=sys.stderr)
        run = None
    finally:
        data = session.close()
    out['shutdown'] = session.exit
    out['diagnostics_at_end'] = data.get('diagnostics', {})
    if run is None:
        return out
    records = data['records']
    summary = _session.summarize(run, records)
    sent = set(run['stamps_ns'])
    t0 = run['stamps_ns'][0]
    labels = sorted({r[0]: r for r in records.get('labels', []) if r[0] in sent}.values(),
                    key=lambda r: r[1])
    out['summary'] = summary
    out['published_frames'] = run['published']
    out['results'] = len(labels)
    out['dropped_or_never_processed'] = run['published'] - len(labels)
    # One point per published result: (arrival time since the first frame, age in ms).
    out['series'] = [[round((r[1] - t0) / 1e9, 4), round((r[1] - r[0]) / 1e6, 2)]
                     for r in labels]
    ages = [point[1] for point in out['series']]
    third = max(1, len(ages) // 3)
    out['age_first_third_ms'] = _common.percentiles(ages[:third])
    out['age_last_third_ms'] = _common.percentiles(ages[-third:])
    # The naive node keeps working through its queue after the camera stops: the stale tail.
    end = run['stamps_ns'][-1]
    out['results_after_camera_stopped'] = sum(1 for r in labels if r[1] > end + 50e6)
    stats = [r for r in records.get('stats', []) if r[0] in sent]
    if stats and len(stats[0]) > 2:
        out['node_reported_frame_age_ms'] = _common.percentiles([r[2] for r in stats])
    print(f"{kind:6s} results {out['results']}/{run['published']} age p50 "
          f"{summary['labels']['latency_ms']['p50']} max {summary['labels']['latency_ms']['max']}"
          f" ms; last third p50 {out['age_last_third_ms']['p50']} (load "
          f"{summary['loadavg_1min']})", file=sys.stderr)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = _common.base_parser(__doc__.splitlines()[1])
    parser.add_argument('--width', type=int, default=320)
    parser.add_argument('--height', type=int, default=240)
    parser.add_argument('--rate', type=float, default=30.0, help='camera rate (Hz)')
    parser.add_argument('--duration', type=float, default=20.0, help='seconds of overload')
    parser.add_argument('--warmup', type=float, default=3.0)
    parser.add_argument('--drain', type=float, default=5.0,
                        help='seconds to keep listening after the camera stops')
    parser.add_argument('--fake-engine-ms', type=float, default=None,
                        help='fixed-latency fake engine instead of the real one')
    _common.add_real_engine_arguments(parser)
    args = parser.parse_args(argv)
    if args.quick:
        args.duration, args.warmup, args.drain = 6.0, 1.5, 3.0
    shm, origin = _common.shm_profile_path()
    profile = shm if args.profile == 'shm' else None
    folder = tempfile.TemporaryDirectory()
    args.weights, model = _session.real_model(args.weights, pathlib.Path(folder.name))
    result: dict[str, Any] = {
        'benchmark': 'overload', 'model': model, 'num_threads': args.num_threads,
        'command': ' '.join([sys.executable, *sys.argv]),
        'machine_before': _common.machine_state(), 'profile': args.profile,
        'device': args.device, 'engine': (f'fake {args.fake_engine_ms} ms'
                                          if args.fake_engine_ms else 'real'),
        'input': f'{args.width}x{args.height} rgb8 at {args.rate} Hz, camera reliable depth 10',
        'nodes': {},
    }
    for kind in ('ours', 'naive'):
        result['nodes'][kind] = run_one(kind, args, profile)
    result['machine_after'] = _common.machine_state()
    with _common.matplotlib_axes(args.plot) as axes:
        if axes is not None:
            ax = axes[0][0]
            names = {'ours': 'lw_refinenet (1-slot mailbox + worker)',
                     'naive': 'naive (reliable depth 10, infer in callback)'}
            for kind, data in result['nodes'].items():
                if data.get('series'):
                    xs, ys = zip(*data['series'])
                    ax.plot(xs, ys, '.-', ms=3, lw=0.8, label=names[kind])
            ax.axvline(args.duration, color='grey', ls=':', lw=1)
            ax.set_xlabel('time since the first overload frame (s); dotted: camera stops')
            ax.set_ylabel('age of each published result (ms)')
            ax.set_title(f'Overload: {result["input"]}, {result["engine"]} engine '
                         f'(load {result["machine_before"]["loadavg_1_5_15"][0]})',
                         fontsize=9)
            ax.legend()
    _common.write_json(args.json, result)
    return 0


if __name__ == '__main__':
    sys.exit(main())
