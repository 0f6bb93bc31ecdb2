#!/usr/bin/env python3
"""The node with and without ``overlap_outputs``: labels and parts per second at 640x480.

The system under test is the installed node (``main()``, every parameter at its default but
those of the variant: ``--variant 'overlap_outputs:=true'`` and ``'overlap_outputs:=false'``
unless given; a variant is space-separated ``NAME:=VALUE`` node parameters) on the packaged
conveyor model. A camera process publishes conveyor
frames (``--seed``, ``--density``) at ``--rate`` Hz, best-effort, with the shared-memory
profile; a monitor subscribes to ``segmentation/labels``, ``segmentation/stats`` and
``segmentation/objects`` (so the node finds the parts, as for a sorting robot). Each round
starts one node per variant, the order reversed every other round, warms it up for
``--warmup`` seconds (not measured), then measures ``--duration`` seconds: labels and object
messages per second, stamp -> arrival latency, and the node's CPU seconds per second.

Unlike ``lw-refinenet demo``, nothing else runs (no recorder, no scoring, no video), so the
figures are the node's, on a machine that is otherwise idle.

    .venv/bin/python benchmarks/overlap_outputs.py --rounds 3 --json overlap.json
"""

from __future__ import annotations

import pathlib
import statistics
import sys
import time
from typing import Any

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

import _common  # noqa: E402
import _session  # noqa: E402

from lw_refinenet_ros.ros.topic_names import DIAGNOSTICS, LABELS, OBJECTS, STATS  # noqa: E402

TOPICS = (f'labels:{LABELS}:image', f'stats:{STATS}:stats', f'objects:{OBJECTS}:objects',
          f'diag:{DIAGNOSTICS}:diag')
VARIANTS = ('overlap_outputs:=true', 'overlap_outputs:=false')


def measure(variant: str, args: Any, profile: str | None) -> dict[str, Any]:
    """One node with the ``variant``'s parameters: warm-up, then one measured camera run."""
    extra = ['--ros-args']
    for item in variant.split():
        extra += ['-p', item]
    argv = _session.node_command('real', fake_ms=0, device=args.device, extra=extra)
    session = _session.Session(argv, profile=profile, monitor_topics=TOPICS, name=variant)
    width, height = args.width, args.height
    camera = {'width': width, 'height': height, 'conveyor_seed': args.seed,
              'density': args.density}
    try:
        session.camera(rate=args.rate, duration=args.warmup, settle=1.0, label='warm-up',
                       **camera)
        session.drain(1.0)
        before = _common.cpu_seconds(session.sut.pid)
        start = time.monotonic()
        run = session.camera(rate=args.rate, duration=args.duration, label='measured',
                             **camera)
        cpu = _common.cpu_seconds(session.sut.pid)
        elapsed = time.monotonic() - start
        session.drain(1.0)
        summary = _session.summarize(run, session.monitor_records()['records'],
                                     ('labels', 'stats', 'objects'))
        if before is not None and cpu is not None:
            # The camera run's whole wall time (its settle included): the node's CPU per
            # second while frames came.
            summary['node_cores'] = round((cpu - before) / elapsed, 3)
    finally:
        session.close()
    summary['variant'] = variant
    return summary


def main() -> int:
    parser = _common.base_parser(__doc__.splitlines()[0])
    parser.add_argument('--size', default='640x480', help='camera WIDTHxHEIGHT')
    parser.add_argument('--rate', type=float, default=30.0, help='camera Hz')
    parser.add_argument('--duration', type=float, default=15.0, help='measured seconds')
    parser.add_argument('--warmup', type=float, default=5.0)
    parser.add_argument('--rounds', type=int, default=3)
    parser.add_argument('--seed', type=int, default=75005, help='conveyor seed (a test seed)')
    parser.add_argument('--density', type=float, default=6.0)
    parser.add_argument('--variant', action='append', default=[],
                        help="node parameters of one variant, e.g. 'overlap_outputs:=true "
                             "num_threads:=1' (repeatable; default: overlap_outputs true "
                             'and false)')
    args = parser.parse_args()
    variants = tuple(args.variant) or VARIANTS
    args.width, args.height = (int(v) for v in args.size.lower().split('x'))
    profile, _ = _common.shm_profile_path()
    runs: list[dict[str, Any]] = []
    for round_index in range(args.rounds):
        order = variants if round_index % 2 == 0 else variants[::-1]
        for variant in order:
            summary = measure(variant, args, profile)
            summary['round'] = round_index + 1
            runs.append(summary)
            labels, objects = summary['labels'], summary['objects']
            print(f"round {round_index + 1} {variant}: labels "
                  f"{labels['output_rate_hz']} Hz (p50 {labels['latency_ms']['p50']} ms), "
                  f"objects {objects['output_rate_hz']} Hz, node "
                  f"{summary.get('node_cores')} cores, load {summary['loadavg_1min']}",
                  file=sys.stderr)
    medians = {}
    for variant in variants:
        mine = [r for r in runs if r['variant'] == variant]
        medians[variant] = {
            'labels_hz': statistics.median(r['labels']['output_rate_hz'] for r in mine),
            'objects_hz': statistics.median(r['objects']['output_rate_hz'] for r in mine),
            'labels_p50_ms': statistics.median(r['labels']['latency_ms']['p50'] for r in mine),
        }
    first, last = variants[0], variants[-1]
    ratio = medians[first]['labels_hz'] / max(1e-9, medians[last]['labels_hz'])
    print(f"median labels/s: {first}: {medians[first]['labels_hz']}, {last}: "
          f"{medians[last]['labels_hz']} (x{ratio:.2f})", file=sys.stderr)
    _common.write_json(args.json, {
        'command': ' '.join(sys.argv), 'size': args.size, 'rate_hz': args.rate,
        'seed': args.seed, 'density': args.density, 'runs': runs, 'medians': medians,
        'ratio_first_to_last_labels_hz': round(ratio, 3), 'machine': _common.machine_state()})
    return 0


if __name__ == '__main__':
    sys.exit(main())
