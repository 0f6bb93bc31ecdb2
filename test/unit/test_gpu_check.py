"""The GPU device check without a GPU: its rows are honest, and a failure loses nothing.

benchmarks/gpu_matrix.py must (issue 23) write its JSON and markdown after every row so that a
runner that raises, or the outer time limit, keeps every finished row; mark a row whose engine
ran something else than was asked for (CUDA graphs or compile fallen back to eager, another
ONNX Runtime provider); and benchmarks/gpu_probe.py must tell a broken environment from a
machine without CUDA. ``auto`` on CUDA must time candidates through the whole engine call.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path
import subprocess
import sys
import types
from typing import Any

import numpy as np
import pytest

from lw_refinenet_ros.engine import select
from lw_refinenet_ros.engine.backends import BackendRequest

ROOT = Path(__file__).resolve().parents[2]
BENCHMARKS = ROOT / 'benchmarks'


def _benchmark_module(name: str):
    """Import ``benchmarks/<name>.py`` (the benchmarks folder is not a package)."""
    sys.path.insert(0, str(BENCHMARKS))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.pop(0)


@pytest.fixture(scope='module')
def matrix():
    return _benchmark_module('gpu_matrix')


@pytest.fixture(scope='module')
def report():
    return _benchmark_module('gpu_report')


class _Result:
    def __init__(self, labels: np.ndarray) -> None:
        self.labels = labels
        self.timings = {'preprocess': 0.1, 'forward': 1.0, 'postprocess': 0.2, 'total': 1.3}


class _FakeEngine:
    """An engine whose describe() says what a real one reports after a fallback or not."""

    def __init__(self, info: dict[str, Any]) -> None:
        self.info = info
        self.calls: list[tuple[bool, bool]] = []

    def infer_batch(self, images, orders, *, want_confidence: bool, want_stats: bool):
        self.calls.append((want_confidence, want_stats))
        return [_Result(np.zeros(images[0].shape[:2], np.uint8))]

    def describe(self) -> dict[str, Any]:
        return dict(self.info)


def _frames(size_hw):
    return np.zeros((4, 6, 3), np.uint8), None


EAGER_INFO = {'backend': 'torch', 'precision': 'fp16', 'device': 'cuda', 'cuda_graphs': False,
              'compile': False, 'fallbacks': [], 'tf32': {'cudnn': False, 'matmul': False}}


def test_a_runner_that_raises_is_an_error_row_and_every_phase_is_on_disk(matrix,
                                                                         tmp_path) -> None:
    specs = [matrix.RowSpec('first', {'backend': 'torch', 'precision': 'fp16'}),
             matrix.RowSpec('broken', {'backend': 'torch'}),
             matrix.RowSpec('last', {'backend': 'torch', 'precision': 'fp16'},
                            full_outputs=True)]
    seen_on_disk: dict[str, list[str]] = {}
    engines: dict[str, _FakeEngine] = {}

    def build(spec):
        # What a crash right now would leave behind: the JSON as written so far.
        written = json.loads((tmp_path / 'gpu_matrix.json').read_text())
        seen_on_disk[spec.mode] = [row['mode'] for row in written['rows']]
        if spec.mode == 'broken':
            raise RuntimeError('CUDA error: an illegal memory access was encountered')
        engines[spec.mode] = _FakeEngine(EAGER_INFO)
        return engines[spec.mode]

    report = matrix.MatrixReport(tmp_path, {'size': [4, 6], 'iters': 3, 'warmup': 1,
                                            'environment': {}})
    def frames(size_hw):
        return np.zeros((4, 6, 3), np.uint8), np.zeros((4, 6), np.uint8)

    matrix.run_matrix(specs, build, frames, report, {}, 'cuda', iters=3, warmup=1,
                      deadline_s=1e6, began=0.0)
    assert seen_on_disk == {'first': [], 'broken': ['first'], 'last': ['first', 'broken']}
    rows = json.loads((tmp_path / 'gpu_matrix.json').read_text())['rows']
    assert [row['status'] for row in rows] == ['ok', 'error', 'ok']
    assert rows[1]['error'] == ('RuntimeError: CUDA error: an illegal memory access was '
                                'encountered')
    assert rows[0]['labels_equal_to_cpu_fp32_pct'] == 100.0 and len(engines['first'].calls) == 4
    assert engines['last'].calls[-1] == (True, True)  # confidence + stats, as the node runs
    assert engines['first'].calls[-1] == (False, False)
    markdown = (tmp_path / 'gpu_matrix.md').read_text()
    assert '| broken | error: RuntimeError: CUDA error: an illegal memory access' in markdown
    assert 'Incomplete' in markdown  # not finished yet: the table says so
    report.finish()
    assert 'Incomplete' not in (tmp_path / 'gpu_matrix.md').read_text()


def test_a_fallback_to_eager_makes_the_row_not_as_requested(matrix) -> None:
    spec = matrix.RowSpec('torch fp16 + CUDA graphs', {'backend': 'torch', 'precision': 'fp16',
                                                       'cuda_graphs': True})
    fallen = {**EAGER_INFO, 'fallbacks': ['cuda_graphs: failed on a (1, 3, 480, 640) input '
                                          '(RuntimeError: capture failed); running eager']}
    row = matrix.run_row(spec, lambda _: _FakeEngine(fallen), _frames, iters=2, warmup=0)
    assert row['status'] == 'not as requested'
    assert row['not_as_requested'] == [
        'CUDA graphs requested, ran without (cuda_graphs: failed on a (1, 3, 480, 640) input '
        '(RuntimeError: capture failed); running eager)']
    honest = {**EAGER_INFO, 'cuda_graphs': True}
    assert matrix.run_row(spec, lambda _: _FakeEngine(honest), _frames, iters=2,
                          warmup=0)['status'] == 'ok'


def test_another_provider_or_precision_than_requested_is_flagged(matrix) -> None:
    spec = matrix.RowSpec('onnxruntime fp16 (TensorRT provider)',
                          {'backend': 'onnxruntime', 'precision': 'fp16'},
                          providers=('TensorrtExecutionProvider',))
    info = {'backend': 'onnxruntime', 'precision': 'fp16', 'provider': 'CUDAExecutionProvider'}
    assert matrix.not_as_requested(spec, info) == [
        'provider TensorrtExecutionProvider requested, CUDAExecutionProvider ran']
    bf16 = matrix.RowSpec('torch bf16', {'backend': 'torch', 'precision': 'bf16'})
    assert matrix.not_as_requested(bf16, {**EAGER_INFO, 'precision': 'fp16'}) == [
        'precision bf16 requested, fp16 ran']


def test_rows_that_cannot_run_here_are_not_run_with_the_probes_reason(matrix) -> None:
    found = {'optional': {'onnxruntime_cuda': {
        'available': False, 'reason': 'the CPU-only onnxruntime 1.30 has no '
                                      'CUDAExecutionProvider'}}}
    specs = {spec.mode: spec for spec in matrix.row_specs('cuda')}
    ort = specs['onnxruntime fp32 (CUDA or TensorRT provider)']
    assert matrix.skip_reason(ort, found, 'cuda') == ('the CPU-only onnxruntime 1.30 has no '
                                                      'CUDAExecutionProvider')
    assert matrix.skip_reason(specs['torch fp16'], found, 'cpu') == \
        'needs CUDA; this is a --device cpu run'
    reference = specs['torch fp32 (reference: eager, TF32 off)']
    assert reference.options == {'backend': 'torch', 'precision': 'fp32', 'compile': False,
                                 'cuda_graphs': False, 'allow_tf32': False}
    assert list(specs)[-1].startswith('torch fp16 + compile')  # the longest build goes last
    assert specs['torch fp16 + CUDA graphs, 512x512'].size_hw == (512, 512)  # forward target


def test_a_row_that_would_overrun_the_deadline_is_not_started(matrix, tmp_path) -> None:
    spec = matrix.RowSpec('compile', {}, budget_s=180.0)
    report = matrix.MatrixReport(tmp_path, {'environment': {}})

    def build(spec):
        raise AssertionError('must not be built')

    matrix.run_matrix([spec], build, _frames, report, {}, 'cuda', iters=1, warmup=0,
                      deadline_s=60.0, began=__import__('time').perf_counter())
    row = report.data['rows'][0]
    assert row['status'] == 'not run' and 'the row may need 180 s' in row['reason']


def test_what_ran_names_graphs_compile_tf32_provider_and_fallbacks(report) -> None:
    assert report.what_ran(EAGER_INFO) == 'torch/fp16 on cuda; graphs no; compile no; TF32 off'
    ort = {'backend': 'onnxruntime', 'precision': 'fp32', 'device': 'cuda',
           'provider': 'CUDAExecutionProvider'}
    assert report.what_ran(ort) == 'onnxruntime/fp32 on cuda; provider CUDAExecutionProvider'
    fallen = {**EAGER_INFO, 'fallbacks': ['compile: failed; running eager']}
    assert report.what_ran(fallen).endswith('FALLBACK compile: failed; running eager')


def _run_probe(device: str, env_path: str, tmp_path: Path) -> tuple[int, dict[str, Any]]:
    out = tmp_path / f'probe_{device}.json'
    completed = subprocess.run(
        [sys.executable, str(BENCHMARKS / 'gpu_probe.py'), '--device', device, '--json',
         str(out)], cwd=tmp_path, env={'PATH': '/usr/bin:/bin', 'PYTHONPATH': env_path},
        capture_output=True, text=True, timeout=120)
    return completed.returncode, json.loads(out.read_text())


@pytest.mark.slow
def test_the_probe_tells_no_cuda_from_a_broken_environment(tmp_path) -> None:
    import torch

    assert not torch.cuda.is_available()  # this machine: no GPU
    code, found = _run_probe('cuda', str(ROOT), tmp_path)
    assert (code, found['status']) == (2, 'no_cuda')
    assert 'CPU-only build' in found['reason']
    assert found['optional']['onnxruntime_cuda']['available'] is False
    assert 'CUDAExecutionProvider' in found['optional']['onnxruntime_cuda']['reason']
    code, found = _run_probe('cpu', str(ROOT), tmp_path)
    assert (code, found['status']) == (0, 'ok')


@pytest.fixture(scope='module')
def gpu_probe():
    return _benchmark_module('gpu_probe')


def test_the_probe_reports_a_missing_required_package_as_broken(gpu_probe,
                                                                 monkeypatch) -> None:
    monkeypatch.setattr(gpu_probe, 'REQUIRED', ('numpy', 'no_such_module_for_the_probe'))
    found = gpu_probe.probe('cuda')
    assert found['status'] == 'broken' and 'no_such_module_for_the_probe' in found['reason']
    assert 'cuda' not in found  # CUDA is never probed (nor blamed) on a broken environment


def test_the_probe_reports_the_package_not_on_the_path_as_broken(gpu_probe,
                                                                 monkeypatch) -> None:
    real = gpu_probe._import_error

    def without_the_package(module: str) -> str | None:
        if module.startswith('lw_refinenet_ros'):
            return "ModuleNotFoundError: No module named 'lw_refinenet_ros'"
        return real(module)

    monkeypatch.setattr(gpu_probe, '_import_error', without_the_package)
    found = gpu_probe.probe('cuda')
    assert found['status'] == 'broken' and 'PYTHONPATH' in found['reason']
    assert 'cuda' not in found


# ----------------------------------------------------------------------- auto on CUDA


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def perf_counter(self) -> float:
        return self.now


class _Candidate:
    def __init__(self, name: str, precision: str, clock: _Clock, forward_s: float) -> None:
        self.name, self.precision, self.device = name, precision, 'cuda'
        self.clock, self.forward_s = clock, forward_s

    def forward(self, batch: np.ndarray) -> np.ndarray:
        self.clock.now += self.forward_s
        return np.zeros((1, 2, 1, 4), np.float32)

    def describe(self) -> dict[str, Any]:
        return {'backend': self.name, 'precision': self.precision, 'device': self.device}


@pytest.mark.parametrize('device, expected', [('cuda', 'torch'), ('cpu', 'onnxruntime')])
def test_auto_on_cuda_times_the_whole_engine_call_not_the_forward_pass(
        monkeypatch, device: str, expected: str) -> None:
    """ONNX Runtime's forward pass is faster here, but its CPU pre/post-processing makes its
    whole call slower than torch's all-on-GPU call: on CUDA torch wins, on the CPU (forward
    time, unchanged) ONNX Runtime."""
    clock = _Clock()
    forward_s = {'torch': 0.003, 'onnxruntime': 0.001}
    post_s = {'torch': 0.001, 'onnxruntime': 0.008}  # on-device vs CPU post-processing
    monkeypatch.setattr(select, 'time', types.SimpleNamespace(perf_counter=clock.perf_counter))
    monkeypatch.setattr(select, 'backend_unavailable', lambda name, device: (
        None if name in forward_s else 'not here'))
    monkeypatch.setattr(select, 'native_precisions', lambda name, device: ('fp32',))
    monkeypatch.setattr(select, 'create_backend', lambda name, model, request: _Candidate(
        name, request.precision, clock, forward_s[name]))
    calls: list[str] = []

    def engine_call(backend: _Candidate) -> None:
        calls.append(backend.name)
        backend.forward(np.zeros((1, 3, 4, 4), np.float32))
        clock.now += post_s[backend.name]

    chosen = select.select_backend(
        object(), backend='auto', precision='fp32', request=BackendRequest(device=device),
        warmup_batch=np.zeros((1, 3, 4, 4), np.float32),
        labels_of=lambda logits: logits[0].argmax(0), agreement_min=0.99, fallback=False,
        engine_call=engine_call)
    assert chosen.backend.name == expected
    if device == 'cuda':
        assert chosen.timings_ms == pytest.approx({'torch/fp32': 4.0, 'onnxruntime/fp32': 9.0})
        assert calls[:2] == ['torch', 'torch']  # one untimed call first, then the timed one
    else:
        assert calls == [] and chosen.timings_ms == pytest.approx({'torch/fp32': 3.0,
                                                                   'onnxruntime/fp32': 1.0})


def test_the_engine_imports_without_the_packages_the_gpu_machine_lacks() -> None:
    """The GPU machine has torch, numpy, OpenCV, onnx and onnxruntime only: importing what the
    matrix imports must not pull in PyYAML, Pillow, matplotlib, mcap, OpenVINO or ROS (the
    rehearsal proves a whole run; this catches a new top-level import in seconds)."""
    modules = ('lw_refinenet_ros.engine', 'lw_refinenet_ros.engine.select',
               'lw_refinenet_ros.engine.backends.torch',
               'lw_refinenet_ros.engine.backends.onnxruntime', 'lw_refinenet_ros.model',
               'lw_refinenet_ros.data.conveyor', 'lw_refinenet_ros.bench.timing')
    # (tqdm is not listed: torch itself imports it where it is installed, and only then.)
    heavy = ('yaml', 'PIL', 'matplotlib', 'mcap', 'openvino', 'nncf', 'rclpy')
    script = (f'import importlib, sys\nfor m in {modules!r}: importlib.import_module(m)\n'
              f'print(sorted({{n.split(".")[0] for n in sys.modules}} & set({heavy!r})))')
    shown = subprocess.run([sys.executable, '-c', script], cwd=ROOT, capture_output=True,
                           text=True, timeout=120, env={**__import__('os').environ,
                                                        'PYTHONPATH': str(ROOT)})
    assert shown.returncode == 0, shown.stderr[-2000:]
    assert shown.stdout.strip() == '[]'
