"""Markdown of the device check: the probe, the GPU matrix and the end-to-end step.

Only the standard library: the report is written even where torch or numpy is broken.
``gpu_matrix.py`` renders its own table with :func:`matrix_markdown` after every row;
``device_check.sh`` ends with ``gpu_report.py OUT`` to combine every file of the run into
``device_check.md`` and ``device_check.json``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
import sys
from typing import Any

#: The files one device check writes into its output folder (the rehearsal checks them all).
OUTPUT_FILES = ('probe.json', 'gpu_matrix.json', 'gpu_matrix.md', 'device_check.json',
                'device_check.md')


def _ms(value: Any) -> str:
    return f'{value:.2f}' if isinstance(value, (int, float)) else ''


def what_ran(info: dict[str, Any] | None) -> str:
    """One cell saying what actually ran, from the engine's describe()."""
    if not info:
        return ''
    parts = [f'{info.get("backend")}/{info.get("precision")} on {info.get("device")}']
    if info.get('backend') == 'torch':
        parts.append(f'graphs {"yes" if info.get("cuda_graphs") else "no"}')
        parts.append(f'compile {"yes" if info.get("compile") else "no"}')
        tf32 = info.get('tf32')
        if isinstance(tf32, dict):
            parts.append('TF32 ' + ('on' if all(tf32.values()) else
                                    'off' if not any(tf32.values()) else
                                    ', '.join(f'{k} {"on" if v else "off"}'
                                              for k, v in tf32.items())))
    elif info.get('provider'):
        parts.append(f'provider {info["provider"]}')
    for fallback in info.get('fallbacks') or []:
        parts.append(f'FALLBACK {fallback[:120]}')
    return '; '.join(parts)


def _cell(text: str) -> str:
    return ' '.join(str(text).split()).replace('|', '/')


def matrix_markdown(matrix: dict[str, Any]) -> list[str]:
    """The matrix table: one line per row, whatever its status."""
    env = matrix.get('environment', {})
    height, width = matrix.get('size', ['?', '?'])  # stored (height, width); written WxH
    lines = [f'Device: {env.get("device", "?")}; torch {env.get("torch", "?")}, CUDA '
             f'{env.get("cuda_build") or "none"}; Python {env.get("python", "?")}; '
             f'{width}x{height} frame (WIDTHxHEIGHT), '
             f'{matrix.get("warmup")} warm-up + {matrix.get("iters")} timed calls per row, one '
             f'row after the other; CPU {env.get("cpu", "?")}.',
             f'Command: `{matrix.get("command", "")}`', '']
    if not matrix.get('finished'):
        lines += [f'**Incomplete**: the run stopped during phase "{matrix.get("phase")}" '
                  f'(its time limit or a crash); the rows below were written before that.', '']
    lines += ['| mode | status | p50 ms | p95 ms | FPS | forward p50 ms | labels = CPU torch '
              'fp32 | what ran (describe) |', '|---|---|---:|---:|---:|---:|---:|---|']
    for row in matrix.get('rows', []):
        status = row.get('status', '?')
        if status in ('error', 'not run'):
            detail = row.get('error') or row.get('reason') or ''
            lines.append(f'| {row.get("mode")} | {status}: {_cell(detail)[:200]} | | | | | | '
                         f'{_cell(what_ran(row.get("describe")))} |')
            continue
        agreement = row.get('labels_equal_to_cpu_fp32_pct')
        stages = row.get('stage_p50_ms', {})
        flag = status if status == 'ok' else f'**{status}**: ' + _cell(
            '; '.join(row.get('not_as_requested', [])))
        lines.append(f'| {row.get("mode")} | {flag} | {_ms(row.get("p50_ms"))} | '
                     f'{_ms(row.get("p95_ms"))} | {row.get("fps", 0):.1f} | '
                     f'{_ms(stages.get("forward"))} | '
                     f'{"" if agreement is None else f"{agreement:.2f} %"} | '
                     f'{_cell(what_ran(row.get("describe")))} |')
    return lines


def _load(folder: Path, name: str) -> Any:
    path = folder / name
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding='utf-8'))
    except ValueError as error:
        return {'unreadable': f'{name}: {error}'}


def device_check_markdown(folder: Path) -> tuple[list[str], dict[str, Any]]:
    """The whole report of one run folder, and the combined JSON."""
    probe = _load(folder, 'probe.json') or {}
    matrix = _load(folder, 'gpu_matrix.json')
    node = _load(folder, 'node_latency.json')
    lines = ['# Device check', '']
    status = probe.get('status', 'missing')
    lines.append(f'Probe: **{status}**{": " + probe["reason"] if probe.get("reason") else ""}'
                 f' (Python {probe.get("python", "?")}, {probe.get("executable", "?")}).')
    versions = probe.get('versions', {})
    lines += ['', 'Packages: ' + ', '.join(f'{name} {version}' for name, version in
                                          versions.items() if version) + '.', '']
    not_run = {name: part['reason'] for name, part in probe.get('optional', {}).items()
               if not part.get('available')}
    if not_run:
        lines += ['Optional parts not run:', '']
        lines += [f'- {name}: not run: {reason}' for name, reason in not_run.items()]
        lines.append('')
    if matrix:
        lines += ['## GPU matrix', ''] + matrix_markdown(matrix) + ['']
    else:
        lines += ['## GPU matrix', '', 'not run: '
                  + ('the probe stopped the check first' if status != 'ok' else
                     'gpu_matrix.json was not written (see gpu_matrix.log)'), '']
    lines += ['## Node end to end (ROS)', '']
    if node:
        lines += ['| graph | p50 ms | p95 ms | delivered |', '|---|---:|---:|---:|']
        for engine, data in node.get('results', {}).items():
            for rate in data.get('rates', []):
                labels = rate.get('labels', {})
                latency = labels.get('latency_ms', {})
                lines.append(f'| {engine} @ {rate.get("rate_hz")} Hz | {latency.get("p50")} | '
                             f'{latency.get("p95")} | {labels.get("delivered_pct", "")} |')
    else:
        reason = probe.get('optional', {}).get('ros_node', {}).get('reason') or \
            'node_latency.json was not written (see node_latency.log)'
        lines.append(f'not run: {reason}. The matrix row "node pipeline" measures the '
                     f"engine in-process as the node calls it (the node's infer_batch with "
                     f'confidence and statistics), without the ROS transport.')
    combined = {'probe': probe, 'gpu_matrix': matrix, 'node_latency': node,
                'transport_floor': _load(folder, 'transport_floor.json'),
                'not_run': not_run}
    return lines, combined


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('folder', type=Path, help='the device check output folder')
    args = parser.parse_args()
    lines, combined = device_check_markdown(args.folder)
    (args.folder / 'device_check.md').write_text('\n'.join(lines) + '\n', encoding='utf-8')
    (args.folder / 'device_check.json').write_text(
        json.dumps(combined, indent=2, default=str) + '\n', encoding='utf-8')
    print('\n'.join(lines))
    return 0


if __name__ == '__main__':
    sys.exit(main())
