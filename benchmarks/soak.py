#!/usr/bin/env python3
"""Soak: tens of thousands of frames through the real node with a fast fake engine.

Looks for slow leaks a short test cannot see: resident memory (VmRSS) and thread count of the
node process sampled from /proc/<pid>/status once a second, the /diagnostics counters at the
end (received = processed + dropped + failed), a clean exit on SIGINT, and no Fast DDS
shared-memory files (/dev/shm/fastrtps_*) left behind by the run.

    .venv/bin/python benchmarks/soak.py --json out.json --plot out.png
"""

from __future__ import annotations

import glob
import os
import sys
import threading
import time
from typing import Any

import _common
import _session


def _mapped_shm_files() -> set[str]:
    """/dev/shm/fastrtps_* files some live process still maps or holds open."""
    held: set[str] = set()
    for maps in glob.glob('/proc/[0-9]*/maps'):
        try:
            with open(maps, encoding='ascii', errors='replace') as handle:
                for line in handle:
                    if '/dev/shm/' in line:
                        held.add(line.split(None, 5)[-1].strip())
        except OSError:
            continue
    for fd in glob.glob('/proc/[0-9]*/fd/*'):
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith('/dev/shm/'):
            held.add(target)
    return held


def sample(pid: int, stop: threading.Event, period: float, out: list, start: float) -> None:
    while not stop.is_set():
        status = _common.proc_status(pid)
        if not status:
            return
        out.append([round(time.monotonic() - start, 2), status.get('VmRSS', 0),
                    status.get('Threads', 0), _common.cpu_seconds(pid),
                    len(_common.shm_files())])
        stop.wait(period)


def growth(samples: list, soak_start: float, soak_end: float,
           skip_fraction: float = 0.1) -> dict[str, Any]:
    """RSS and thread growth during the soak run, after its first ``skip_fraction``.

    Start-up (imports, model, DDS discovery) and the warm-up frames are excluded: their
    allocations are not a leak.
    """
    begin = soak_start + skip_fraction * (soak_end - soak_start)
    window = [s for s in samples if begin <= s[0] <= soak_end + 1.0]
    if len(window) < 3:
        return {}
    start, end = window[0], window[-1]
    minutes = max(1e-9, (end[0] - start[0]) / 60)
    rss = [s[1] for s in window]
    threads = [s[2] for s in window]
    return {
        'window_s': [start[0], end[0]],
        'rss_kb_after_warmup': start[1], 'rss_kb_end': end[1], 'rss_kb_max': max(rss),
        'rss_growth_kb': end[1] - start[1],
        'rss_growth_kb_per_min': round((end[1] - start[1]) / minutes, 1),
        'threads_min': min(threads), 'threads_max': max(threads),
        'threads_after_warmup': start[2], 'threads_end': end[2],
        'cpu_s_total': round(end[3] or 0.0, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = _common.base_parser(__doc__.splitlines()[1])
    parser.add_argument('--frames', type=int, default=30000)
    parser.add_argument('--rate', type=float, default=200.0,
                        help='camera rate (Hz); the node drops what it cannot take')
    parser.add_argument('--width', type=int, default=320)
    parser.add_argument('--height', type=int, default=240)
    parser.add_argument('--fake-engine-ms', type=float, default=1.0)
    parser.add_argument('--profile', choices=('shm', 'default'), default='shm')
    parser.add_argument('--sample-period', type=float, default=1.0)
    args = parser.parse_args(argv)
    if args.quick:
        args.frames = 1500
    shm, origin = _common.shm_profile_path()
    profile = shm if args.profile == 'shm' else None
    shm_before = _common.shm_files()
    result: dict[str, Any] = {
        'benchmark': 'soak', 'command': ' '.join([sys.executable, *sys.argv]),
        'machine_before': _common.machine_state(), 'profile': args.profile,
        'input': f'{args.width}x{args.height} rgb8, {args.frames} frames at {args.rate} Hz',
        'fake_engine_ms': args.fake_engine_ms,
    }
    argv_node = _session.node_command('fake', fake_ms=args.fake_engine_ms, device='cpu')
    session = _session.Session(argv_node, profile=profile, name='node')
    samples: list = []
    stop = threading.Event()
    t0 = time.monotonic()
    sampler = threading.Thread(target=sample, args=(session.sut.pid, stop, args.sample_period,
                                                    samples, t0), daemon=True)
    sampler.start()
    run = None
    soak_start = soak_end = 0.0
    try:
        session.camera(width=args.width, height=args.height, rate=10, duration=2.0,
                       settle=1.0, label='warm-up')
        soak_start = time.monotonic() - t0
        run = session_camera_count(session, args)
        soak_end = time.monotonic() - t0
        session.drain(2.0)
    except RuntimeError as error:
        result['error'] = str(error)
    finally:
        stop.set()
        sampler.join(timeout=5)
        data = session.close()
    result['shutdown'] = session.exit
    result['diagnostics_at_end'] = data.get('diagnostics', {})
    if run is not None:
        result['camera'] = {'published': run['published'], 'elapsed_s': round(
            run['elapsed_s'], 1), 'achieved_rate_hz': round(run['published'] / run['elapsed_s'],
                                                            1)}
        summary = _session.summarize(run, data['records'])
        result['results'] = summary
    result['memory'] = growth(samples, soak_start, soak_end)
    result['memory_whole_process_life'] = growth(samples, 0.0, samples[-1][0] if samples else 0,
                                                 skip_fraction=0.0)
    result['samples'] = samples
    time.sleep(1.0)
    leftover = _common.shm_files() - shm_before
    held = _mapped_shm_files()
    # Non-vacuous check: the run did create shared-memory files (SHM profile in use).
    result['shm_files_during_run_max'] = max((s[4] for s in samples), default=0)
    result['shm_files_new_after_exit'] = sorted(leftover)
    result['shm_files_leaked'] = sorted(f for f in leftover if f not in held)
    result['machine_after'] = _common.machine_state()
    with _common.matplotlib_axes(args.plot, rows=2) as axes:
        if axes is not None and samples:
            xs = [s[0] for s in samples]
            axes[0][0].plot(xs, [s[1] / 1024 for s in samples])
            axes[0][0].set_ylabel('node VmRSS (MiB)')
            axes[0][0].set_title(f'Soak: {result["input"]}, fake engine '
                                 f'{args.fake_engine_ms} ms (load '
                                 f'{result["machine_before"]["loadavg_1_5_15"][0]})')
            axes[1][0].plot(xs, [s[2] for s in samples], color='tab:orange')
            axes[1][0].set_ylabel('node threads')
            axes[1][0].set_xlabel('time since the node process started (s); dotted: soak run')
            for ax in (axes[0][0], axes[1][0]):
                ax.axvline(soak_start, color='grey', ls=':')
                ax.axvline(soak_end, color='grey', ls=':')
    _common.write_json(args.json, {k: v for k, v in result.items() if k != 'samples'}
                       | {'samples_every_s': args.sample_period, 'samples_n': len(samples)})
    return 0


def session_camera_count(session: _session.Session, args: Any) -> dict[str, Any]:
    """The soak run proper: exactly ``args.frames`` frames at ``args.rate``."""
    duration = args.frames / args.rate if args.rate > 0 else 3600.0
    # The duration bound is generous (a loaded camera runs late); --count ends the run.
    return session.camera(width=args.width, height=args.height, rate=args.rate,
                          duration=duration * 3 + 30, label='soak', settle=0.2,
                          count=args.frames)


if __name__ == '__main__':
    sys.exit(main())
