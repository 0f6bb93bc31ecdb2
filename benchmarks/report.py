#!/usr/bin/env python3
"""Print the Markdown tables of docs/benchmarks.md from the benchmark JSON files.

    .venv/bin/python benchmarks/report.py docs/bench

Numbers are copied from the JSON, never typed by hand; each table says the load average it
was measured under.
"""

from __future__ import annotations

import json
import pathlib
import sys
from typing import Any


def _ms(value: Any) -> str:
    return '-' if value is None else f'{value:.1f}'


def _load(data: dict[str, Any]) -> str:
    before = data['machine_before']['loadavg_1_5_15']
    after = data['machine_after']['loadavg_1_5_15']
    return (f"load average (1/5/15 min) {before[0]}/{before[1]}/{before[2]} before, "
            f"{after[0]}/{after[1]}/{after[2]} after; {data['machine_before']['time']}, "
            f"commit {data['machine_before']['commit']}")


def transport(data: dict[str, Any]) -> str:
    lines = [f'`{data["command"]}`  ', _load(data), '',
             '| Size | QoS | Profile | Delivered | p50 ms | p95 ms | max ms | publish() ms '
             '| load 1 min |', '|---|---|---|---|---|---|---|---|---|']
    for run in data['runs']:
        lat = run['latency_ms']
        lines.append(f"| {run['width']}x{run['height']} | {run['qos']} | {run['profile']} | "
                     f"{run['delivered_pct']:.1f} % | {_ms(lat['p50'])} | {_ms(lat['p95'])} | "
                     f"{_ms(lat['max'])} | {_ms(run['publish_call_ms']['p50'])} | "
                     f"{run['loadavg_1min']} |")
    return '\n'.join(lines)


def node(data: dict[str, Any]) -> str:
    lines = [f'`{data["command"]}`  ', _load(data), '',
             f"Input {data['input']}, {data['profile']} profile, fake engine "
             f"{data['fake_engine_ms']} ms.", '',
             '| System | Rate Hz | labels delivered | labels p50 / p95 / max ms | '
             'stats p50 / p95 ms | node processing p50 ms | load 1 min |',
             '|---|---|---|---|---|---|---|']
    for engine, result in data['results'].items():
        for run in result.get('rates', []):
            lab = run['labels']
            stats = run.get('stats', {})
            slat = stats.get('latency_ms', {})
            proc = stats.get('node_processing_ms', {})
            lines.append(
                f"| {engine} | {run['rate_hz']:g} | {lab['delivered_pct']:.1f} % | "
                f"{_ms(lab['latency_ms']['p50'])} / {_ms(lab['latency_ms']['p95'])} / "
                f"{_ms(lab['latency_ms']['max'])} | {_ms(slat.get('p50'))} / "
                f"{_ms(slat.get('p95'))} | {_ms(proc.get('p50'))} | {run['loadavg_1min']} |")
    lines += ['', '| System | Peak rate at <= 5 % loss (Hz) | tries (rate -> delivered %) |',
              '|---|---|---|']
    for engine, result in data['results'].items():
        peak = result.get('peak')
        if peak:
            tries = ', '.join(f"{t['achieved_rate_hz']:g}->{t['delivered_pct']:g}"
                              for t in peak['tries'])
            lines.append(f"| {engine} | {peak['peak_hz_at_5pct_loss']} | {tries} |")
    lines += ['', '| Rate Hz | e2e - engine - floor, labels p50 / p95 ms | same, stats '
              'p50 / p95 ms | in-node (callback -> publish) - engine, p50 / p95 ms |',
              '|---|---|---|---|']
    for row in data.get('node_overhead_ms', []):
        lab, st, inn = row.get('labels', {}), row.get('stats', {}), row.get('in_node', {})
        lines.append(f"| {row['rate_hz']:g} | {_ms(lab.get('p50'))} / {_ms(lab.get('p95'))} | "
                     f"{_ms(st.get('p50'))} / {_ms(st.get('p95'))} | {_ms(inn.get('p50'))} / "
                     f"{_ms(inn.get('p95'))} |")
    return '\n'.join(lines)


def overload(data: dict[str, Any]) -> str:
    lines = [f'`{data["command"]}`  ', _load(data), '',
             f"Input {data['input']}, engine {data['engine']}, {data['profile']} profile.", '',
             '| Node | results / frames | age p50 / p95 / max ms | age, first third p50 | '
             'age, last third p50 | results after the camera stopped | counters at end | '
             'exit |', '|---|---|---|---|---|---|---|---|']
    for kind, result in data['nodes'].items():
        if 'summary' not in result:
            lines.append(f"| {kind} | error: {result.get('error', '?')[:80]} |")
            continue
        lat = result['summary']['labels']['latency_ms']
        diag = next(iter(result.get('diagnostics_at_end', {}).values()), {})
        counters = ', '.join(f'{k} {v}' for k, v in diag.items() if k in (
            'received', 'processed', 'dropped_overwritten', 'dropped_too_old', 'failed'))
        lines.append(
            f"| {kind} | {result['results']} / {result['published_frames']} | "
            f"{_ms(lat['p50'])} / {_ms(lat['p95'])} / {_ms(lat['max'])} | "
            f"{_ms(result['age_first_third_ms']['p50'])} | "
            f"{_ms(result['age_last_third_ms']['p50'])} | "
            f"{result['results_after_camera_stopped']} | {counters or 'none published'} | "
            f"{result['shutdown'].get('exit_code')} in {result['shutdown'].get('shutdown_s')} s |")
    return '\n'.join(lines)


def soak(data: dict[str, Any]) -> str:
    mem = data.get('memory', {})
    diag = next(iter(data.get('diagnostics_at_end', {}).values()), {})
    labels = data.get('results', {}).get('labels', {})
    lat = labels.get('latency_ms', {})
    return '\n'.join([
        f'`{data["command"]}`  ', _load(data), '',
        '| Quantity | Value |', '|---|---|',
        f"| Input | {data['input']}, fake engine {data['fake_engine_ms']} ms, "
        f"{data['profile']} profile |",
        f"| Camera | {data.get('camera', {}).get('published')} frames in "
        f"{data.get('camera', {}).get('elapsed_s')} s "
        f"({data.get('camera', {}).get('achieved_rate_hz')} Hz) |",
        f"| Results received | {labels.get('delivered')} ({labels.get('delivered_pct')} %), "
        f"latency p50 / p95 / max {_ms(lat.get('p50'))} / {_ms(lat.get('p95'))} / "
        f"{_ms(lat.get('max'))} ms |",
        f"| Node counters at end | {', '.join(f'{k} {v}' for k, v in diag.items())} |",
        f"| VmRSS after warm-up -> end (max) | {mem.get('rss_kb_after_warmup')} -> "
        f"{mem.get('rss_kb_end')} kB ({mem.get('rss_kb_max')} kB) |",
        f"| VmRSS growth | {mem.get('rss_growth_kb')} kB "
        f"({mem.get('rss_growth_kb_per_min')} kB/min) |",
        f"| Threads after warm-up -> end (min..max) | {mem.get('threads_after_warmup')} -> "
        f"{mem.get('threads_end')} ({mem.get('threads_min')}..{mem.get('threads_max')}) |",
        f"| Node CPU time | {mem.get('cpu_s_total')} s |",
        f"| Exit on SIGINT | code {data['shutdown'].get('exit_code')} in "
        f"{data['shutdown'].get('shutdown_s')} s |",
        f"| /dev/shm/fastrtps_* during the run (max) | {data.get('shm_files_during_run_max')} |",
        f"| New /dev/shm/fastrtps_* files after exit / leaked (held by no process) | "
        f"{len(data.get('shm_files_new_after_exit', []))} / "
        f"{len(data.get('shm_files_leaked', []))} |",
    ])


def fuzz(data: dict[str, Any]) -> str:
    lines = [f'`{data["command"]}`  ', _load(data), '',
             f"{data['examples_per_type']} examples per message type, seed {data['seed']}, "
             f"pytest exit code {data['pytest_exit_code']}, {data['elapsed_s']} s.", '']
    for kind, report in data.get('reports', {}).items():
        lines.append(f"- {kind}: {report['malformed_sent']} malformed messages, each counted "
                     f"failed; by fault {report['by_fault']}; counters after "
                     f"{report['counters_after']}; good frame processed afterwards: "
                     f"{report['good_frame_after']}")
    return '\n'.join(lines)


def view_overhead(data: dict[str, Any]) -> str:
    runs = data['runs']
    lines = [f'`{data.get("command", "benchmarks/view_overhead.py")}`  ', _load(data), '',
             '| | ' + ' | '.join(f"{run['engine']} engine, {run['size']} @ {run['rate_hz']:g} Hz"
                                 for run in runs) + ' |',
             '|---|' + '---|' * len(runs)]

    def row(title: str, cell: Any) -> None:
        lines.append(f'| {title} | ' + ' | '.join(cell(run) for run in runs) + ' |')

    row('node processing p50, median of rounds: off / on',
        lambda r: f"{_ms(r['processing_p50_ms']['off'])} / {_ms(r['processing_p50_ms']['on'])} ms")
    row('the same, paired per round (median; range)',
        lambda r: f"{r['paired_p50_ratio_pct']['median']:+.1f} % "
                  f"({min(r['paired_p50_ratio_pct']['per_round']):+.0f} ... "
                  f"{max(r['paired_p50_ratio_pct']['per_round']):+.0f} %)")
    row('node CPU per published frame: off / on',
        lambda r: f"{_ms(r['node_cpu_ms_per_frame']['off'])} / "
                  f"{_ms(r['node_cpu_ms_per_frame']['on'])} ms")
    row('the same, paired per round (median)',
        lambda r: f"{r['node_cpu_ms_per_frame']['paired_ratio_pct_median']:+.1f} %")
    row('overlay Hz: node published / client received (median; client min)',
        lambda r: f"{r['overlay_hz']['node_published_median']:.1f} / "
                  f"{r['overlay_hz']['client_received_median']:.1f} "
                  f"({r['overlay_hz']['client_received_min']:.1f})")
    return '\n'.join(lines)


def backends(data: dict[str, Any]) -> str:
    from lw_refinenet_ros.bench.compare import format_backend_table

    meta = data['meta']
    load = meta.get('load_average') or []
    lines = [f'`{meta.get("command", "lw-refinenet bench --backends")}`  ',
             f"CPU {meta['cpu']}; {meta.get('threads', meta.get('torch_threads'))} thread(s); "
             f"load average {'/'.join(f'{v:.2f}' for v in load)} at the end; {meta['date']}; "
             f"openvino {meta.get('openvino')}, onnxruntime {meta.get('onnxruntime')}, "
             f"torch {meta.get('torch')}", '', format_backend_table(data['results'])]
    for name, reason in data.get('unavailable', {}).items():
        lines.append(f'\n{name}: not available ({reason})')
    return '\n'.join(lines)


SECTIONS = {'transport_floor': transport, 'node_latency': node, 'overload': overload,
            'soak': soak, 'fuzz_node': fuzz, 'view_overhead': view_overhead,
            'backends_cpu': backends}


def main(argv: list[str] | None = None) -> int:
    folder = pathlib.Path((argv or sys.argv[1:] or ['docs/bench'])[0])
    for name, render in SECTIONS.items():
        path = folder / f'{name}.json'
        if path.is_file():
            print(f'### {name}\n\n{render(json.loads(path.read_text()))}\n')
    return 0


if __name__ == '__main__':
    sys.exit(main())
