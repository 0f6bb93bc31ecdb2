"""benchmarks/run_all.sh and benchmarks/report.py agree: every JSON the script writes has a
table in the report, and the tables are rendered from the JSON's own numbers."""

from __future__ import annotations

import json
from pathlib import Path
import re
import sys

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / 'benchmarks'


@pytest.fixture(scope='module')
def report():
    sys.path.insert(0, str(BENCHMARKS))
    try:
        import report as module
    finally:
        sys.path.pop(0)
    return module


def test_every_json_of_run_all_has_a_report_section(report) -> None:
    script = (BENCHMARKS / 'run_all.sh').read_text()
    written = set(re.findall(r'--json "\$OUT/(\w+)\.json"', script))
    assert {'view_overhead', 'backends_cpu'} <= written
    assert written == set(report.SECTIONS)
    for name in re.findall(r'benchmarks/(\w+\.py)', script):
        assert (BENCHMARKS / name).is_file(), name


def _machine(load: float) -> dict:
    return {'time': '2026-11-29T04:00:00', 'loadavg_1_5_15': [load, load, load],
            'cpu_count': 2, 'commit': 'abc1234', 'python': '3.11'}


def test_view_overhead_and_backends_tables(report, tmp_path: Path, capsys) -> None:
    run = {'engine': 'real', 'size': '320x240', 'rate_hz': 30.0,
           'processing_p50_ms': {'off': 61.5, 'on': 66.9},
           'paired_p50_ratio_pct': {'median': 8.6, 'per_round': [48.5, -9.9]},
           'node_cpu_ms_per_frame': {'off': 28.7, 'on': 29.6, 'paired_ratio_pct_median': 2.1},
           'overlay_hz': {'node_published_median': 16.4, 'client_received_median': 16.5,
                          'client_received_min': 10.8}}
    (tmp_path / 'view_overhead.json').write_text(json.dumps(
        {'command': 'view_overhead.py --quick', 'machine_before': _machine(3.0),
         'machine_after': _machine(3.5), 'runs': [run]}))
    row = {'backend': 'openvino', 'precision': 'bf16', 'height': 240, 'width': 320,
           'p50_ms': 15.9, 'p95_ms': 16.7, 'fps': 61.9, 'speedup_vs_torch_fp32': 2.72,
           'label_agreement_pct': 99.96}
    (tmp_path / 'backends_cpu.json').write_text(json.dumps(
        {'meta': {'command': 'backends.py --quick', 'cpu': 'AMD EPYC (avx512_bf16)',
                  'threads': 1, 'load_average': [3.0, 3.1, 4.6], 'date': '2026-11-29',
                  'openvino': '2026.4.1', 'onnxruntime': '1.32.0', 'torch': '2.13.0'},
         'unavailable': {'tensorrt': 'not installed'}, 'results': [row]}))
    assert report.main([str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert '| real engine, 320x240 @ 30 Hz |' in out
    assert '| node processing p50, median of rounds: off / on | 61.5 / 66.9 ms |' in out
    assert '+8.6 % (-10 ... +48 %)' in out and '16.4 / 16.5 (10.8)' in out
    assert 'CPU AMD EPYC (avx512_bf16); 1 thread(s)' in out
    assert '| 320x240 | openvino | bf16 | 15.9 | 16.7 | 61.9 | 2.72 | 99.96 % |' in out
    assert 'tensorrt: not available (not installed)' in out
