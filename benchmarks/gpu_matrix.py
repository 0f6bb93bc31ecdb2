"""The GPU matrix of ``benchmarks/device_check.sh``: every torch mode and runtime, honest rows.

Each row builds one :class:`~lw_refinenet_ros.engine.InferenceEngine`, warms it up, then times
``--iters`` whole engine calls (upload of the uint8 frame, pre-processing, forward, bicubic
upsampling, argmax, download of the labels; the result is on the host, so the wall time of a
call needs no extra synchronisation) on the same conveyor frame. Stage times come from the
engine itself (CUDA events on the GPU). Rows, in order (the slowest to build last):

* ``torch fp32 (reference)``: eager, no CUDA graphs, no compile, TF32 off;
* ``torch fp16``, ``torch bf16``: eager;
* ``torch fp16 + CUDA graphs``, at the frame size and at 512x512 (the size of the forward
  target: MobileNet-v2 fp16 at most 1 ms; read the "forward p50" column);
* ``node pipeline``: the engine as the node builds and calls it (its default options, so
  ``backend``/``precision`` auto, chosen on this machine; ``infer_batch`` with confidence and
  statistics);
* ``onnxruntime fp32`` / ``onnxruntime fp16 (TensorRT)``: where ONNX Runtime has the CUDA /
  TensorRT provider;
* ``torch fp16 + compile``: a cold ``torch.compile`` (the longest build).

Every row records the engine's ``describe()`` after timing: what ran (CUDA graphs and compile
in use, the TF32 switches, the ONNX Runtime provider actually first). A row whose describe()
differs from what it asked for is marked ``not as requested`` with the reasons; a row that
raises is an ``error`` row with its message; a row whose runtime is missing, or that would not
fit in the time left, is ``not run`` with the reason. The JSON and markdown files are
rewritten after every phase, so a crash or the outer time limit keeps every finished row.
Labels are compared with torch fp32 on the CPU (the reference pipeline's labels).

``--device cpu`` runs the same code on the CPU with the CUDA rows marked not run: the
rehearsal of this script that CI runs (test/unit/test_device_check_rehearsal.py).
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import gc
import os
from pathlib import Path
import sys
import tempfile
import time
import traceback
from typing import Any, Callable

from gpu_probe import probe, write_json
from gpu_report import matrix_markdown

#: Seconds a row may need at most on an H100 (build, warm-up and timing): a row is not
#: started when fewer remain before ``--deadline-s``.
DEFAULT_ROW_BUDGET_S = 30.0


@dataclasses.dataclass(frozen=True)
class RowSpec:
    """One row of the matrix.

    Attributes:
        mode: The row's name in the table.
        options: EngineConfig fields on top of the device, size and cache folder.
        full_outputs: Call ``infer_batch`` with confidence and statistics (as the node does
            while someone subscribes to them); otherwise labels only.
        needs: Probe keys that must be available: ``'cuda'`` or an optional part
            (``'onnxruntime_cuda'``, ``'onnxruntime_tensorrt'``).
        providers: For ONNX Runtime rows, the providers accepted as the first one in use.
        budget_s: The most seconds the row may take (see :data:`DEFAULT_ROW_BUDGET_S`).
        size_hw: (height, width) of this row's frame; None: the matrix's ``--size``.
    """

    mode: str
    options: dict[str, Any]
    full_outputs: bool = False
    needs: tuple[str, ...] = ()
    providers: tuple[str, ...] = ()
    budget_s: float = DEFAULT_ROW_BUDGET_S
    size_hw: tuple[int, int] | None = None


_EAGER = {'backend': 'torch', 'compile': False, 'cuda_graphs': False, 'allow_tf32': False}
_ORT_GPU = ('TensorrtExecutionProvider', 'CUDAExecutionProvider')


def row_specs(device: str) -> list[RowSpec]:
    """The rows for ``device`` (the CUDA-only ones stay in the list on the CPU, where they are
    reported as not run)."""
    rows = [
        RowSpec('torch fp32 (reference: eager, TF32 off)', {**_EAGER, 'precision': 'fp32'}),
        RowSpec('torch fp16', {**_EAGER, 'precision': 'fp16'}, needs=('cuda',)),
        RowSpec('torch bf16', {**_EAGER, 'precision': 'bf16'}, needs=('cuda',)),
        RowSpec('torch fp16 + CUDA graphs', {**_EAGER, 'precision': 'fp16', 'cuda_graphs': True},
                needs=('cuda',)),
        RowSpec('torch fp16 + CUDA graphs, 512x512', {**_EAGER, 'precision': 'fp16',
                                                     'cuda_graphs': True},
                needs=('cuda',), size_hw=(512, 512)),
        RowSpec('node pipeline: default options (auto), labels + confidence + stats', {},
                full_outputs=True, budget_s=90.0),
        RowSpec('torch fp16 + CUDA graphs, labels + confidence + stats',
                {**_EAGER, 'precision': 'fp16', 'cuda_graphs': True}, full_outputs=True,
                needs=('cuda',)),
        RowSpec('onnxruntime fp32 (CUDA or TensorRT provider)',
                {'backend': 'onnxruntime', 'precision': 'fp32'}, needs=('onnxruntime_cuda',),
                providers=_ORT_GPU, budget_s=150.0),
        RowSpec('onnxruntime fp16 (TensorRT provider)',
                {'backend': 'onnxruntime', 'precision': 'fp16'},
                needs=('onnxruntime_tensorrt',), providers=('TensorrtExecutionProvider',),
                budget_s=200.0),
        # Runs even where the probe doubts the toolchain: a failing compile falls back to
        # eager, and the row then says so with the compiler's own error.
        RowSpec('torch fp16 + compile (inductor, cold)',
                {**_EAGER, 'precision': 'fp16', 'compile': True},
                needs=('cuda',), budget_s=180.0),
    ]
    if not device.startswith('cuda'):  # the rehearsal: the CPU runtime through the engine too
        rows.insert(1, RowSpec('onnxruntime fp32 on the CPU',
                               {'backend': 'onnxruntime', 'precision': 'fp32'},
                               providers=('CPUExecutionProvider',)))
    return rows


def skip_reason(spec: RowSpec, found: dict[str, Any], device: str) -> str | None:
    """Why ``spec`` cannot run here (from the probe), or None."""
    for need in spec.needs:
        if need == 'cuda':
            if not device.startswith('cuda'):
                return f'needs CUDA; this is a --device {device} run'
            continue
        part = found.get('optional', {}).get(need, {})
        if not part.get('available'):
            return part.get('reason') or f'{need} was not probed'
    return None


def not_as_requested(spec: RowSpec, info: dict[str, Any]) -> list[str]:
    """How the engine's ``describe()`` differs from what ``spec`` asked for (empty: as asked)."""
    problems: list[str] = []
    options = spec.options
    for key in ('backend', 'precision'):
        if key in options and info.get(key) != options[key]:
            problems.append(f'{key} {options[key]} requested, {info.get(key)} ran')
    for key, label in (('cuda_graphs', 'CUDA graphs'), ('compile', 'torch.compile')):
        if options.get(key) and not info.get(key):
            why = '; '.join(f for f in info.get('fallbacks', []) if f.startswith(key))
            problems.append(f'{label} requested, ran without ({why or "no reason given"})')
    if spec.providers and info.get('provider') not in spec.providers:
        problems.append(f'provider {" or ".join(spec.providers)} requested, '
                        f'{info.get("provider")} ran')
    return problems


class MatrixReport:
    """The matrix's JSON and markdown, rewritten after every phase (atomic writes)."""

    def __init__(self, out_dir: Path, meta: dict[str, Any]) -> None:
        self.out_dir = Path(out_dir)
        self.data: dict[str, Any] = {**meta, 'phase': 'start', 'finished': False, 'rows': []}

    def phase(self, name: str) -> None:
        self.data['phase'] = name
        self.write()

    def add_row(self, row: dict[str, Any]) -> None:
        self.data['rows'].append(row)
        self.write()

    def finish(self) -> None:
        self.data.update(phase='done', finished=True)
        self.write()

    def write(self) -> None:
        write_json(self.out_dir / 'gpu_matrix.json', self.data)
        markdown = self.out_dir / 'gpu_matrix.md'
        temporary = markdown.with_name(markdown.name + '.tmp')
        temporary.write_text('# GPU matrix\n\n' + '\n'.join(matrix_markdown(self.data)) + '\n',
                             encoding='utf-8')
        os.replace(temporary, markdown)


EngineFactory = Callable[[RowSpec], Any]
#: ``frames(size_hw)`` -> (RGB frame, its CPU torch fp32 labels or None); None: ``--size``.
Frames = Callable[[Any], tuple[Any, Any]]


def time_row(engine: Any, spec: RowSpec, image: Any, reference: Any, *, iters: int,
             warmup: int) -> dict[str, Any]:
    """Warm-up, then ``iters`` timed engine calls; latency, stage medians and agreement."""
    import numpy as np

    from lw_refinenet_ros.bench.timing import latency_summary

    def call() -> Any:
        return engine.infer_batch([image], ['rgb'], want_confidence=spec.full_outputs,
                                  want_stats=spec.full_outputs)[0]

    for _ in range(warmup):  # compiles, graph captures and TensorRT builds happen here
        call()
    times: list[float] = []
    stages: dict[str, list[float]] = {}
    result = None
    for _ in range(iters):
        start = time.perf_counter()
        result = call()
        times.append((time.perf_counter() - start) * 1e3)
        for stage, value in result.timings.items():
            stages.setdefault(stage, []).append(value)
    row = dict(latency_summary(times))
    row['stage_p50_ms'] = {stage: float(np.median(values)) for stage, values in stages.items()}
    if reference is not None and result is not None:
        row['labels_equal_to_cpu_fp32_pct'] = float((result.labels == reference).mean() * 100)
    return row


def run_row(spec: RowSpec, build: EngineFactory, frames: Frames, *, iters: int,
            warmup: int) -> dict[str, Any]:
    """One row, whatever happens: ``ok``, ``not as requested`` or ``error`` (never raises)."""
    row: dict[str, Any] = {'mode': spec.mode, 'requested': spec.options,
                           'outputs': 'labels + confidence + stats' if spec.full_outputs
                           else 'labels', 'iters': iters, 'warmup': warmup}
    engine = None
    started = time.perf_counter()
    try:
        image, reference = frames(spec.size_hw)
        row['size_hw'] = list(image.shape[:2])
        engine = build(spec)
        row['build_s'] = time.perf_counter() - started
        row['describe_after_build'] = engine.describe()
        row.update(time_row(engine, spec, image, reference, iters=iters, warmup=warmup))
        row['describe'] = info = engine.describe()
        problems = not_as_requested(spec, info)
        row['not_as_requested'] = problems
        row['status'] = 'not as requested' if problems else 'ok'
    except Exception as error:  # every failure is a row, never the end of the run
        row.update(status='error', error=f'{type(error).__name__}: '
                                         f'{" ".join(str(error).split())[:600]}',
                   traceback=traceback.format_exc(limit=6))
        if engine is not None:
            try:
                row['describe'] = engine.describe()
            except Exception:  # noqa: BLE001 - the row already carries the error
                pass
    row['seconds'] = time.perf_counter() - started
    del engine
    _release_memory()
    return row


def _release_memory() -> None:
    gc.collect()
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except Exception:  # noqa: BLE001 - only tidying up between rows
        pass


def run_matrix(specs: list[RowSpec], build: EngineFactory, frames: Frames,
               report: MatrixReport, found: dict[str, Any], device: str, *, iters: int,
               warmup: int, deadline_s: float, began: float) -> None:
    """Every row in order, each written to ``report`` as soon as it is done."""
    for spec in specs:
        reason = skip_reason(spec, found, device)
        if reason is None:
            left = deadline_s - (time.perf_counter() - began)
            if left < spec.budget_s:
                reason = (f'not started: {left:.0f} s of the {deadline_s:.0f} s budget left, '
                          f'the row may need {spec.budget_s:.0f} s')
        if reason is not None:
            report.add_row({'mode': spec.mode, 'requested': spec.options, 'status': 'not run',
                            'reason': reason})
            print(f'{spec.mode}: not run: {reason}', flush=True)
            continue
        report.phase(spec.mode)
        row = run_row(spec, build, frames, iters=iters, warmup=warmup)
        report.add_row(row)
        if row['status'] == 'error':
            print(f'{spec.mode}: error: {row["error"]}', flush=True)
        else:
            print(f'{spec.mode}: {row["status"]}; p50 {row["p50_ms"]:.2f} ms, p95 '
                  f'{row["p95_ms"]:.2f} ms ({row["build_s"]:.1f} s to build)', flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--device', default='cuda', help='cuda, cuda:N, or cpu (rehearsal)')
    parser.add_argument('--size', default='640x480',
                        help='WIDTHxHEIGHT of the frame (default 640x480)')
    parser.add_argument('--iters', type=int, default=200, help='timed calls per row')
    parser.add_argument('--warmup', type=int, default=20, help='untimed calls per row first')
    parser.add_argument('--cache-dir', default='',
                        help='runtime model cache (default: a new temporary folder, so every '
                             'build is a cold start and --out holds only results)')
    parser.add_argument('--deadline-s', type=float, default=330.0,
                        help='rows that may not finish within this many seconds from the start '
                             'are reported as not run')
    parser.add_argument('--out', required=True, type=Path,
                        help='folder for gpu_matrix.json and gpu_matrix.md')
    args = parser.parse_args()
    began = time.perf_counter()

    from lw_refinenet_ros.errors import ConfigError
    from lw_refinenet_ros.sizes import parse_size

    try:
        width, height = parse_size(args.size, what='--size')
    except ConfigError as error:
        parser.error(str(error))
    if args.iters < 1 or args.warmup < 0:
        parser.error('--iters must be >= 1 and --warmup >= 0')
    found = probe(args.device)
    if found['status'] != 'ok':
        print(f'gpu_matrix: {found["status"]}: {found["reason"]}', file=sys.stderr)
        return 2 if found['status'] == 'no_cuda' else 3

    import torch

    from lw_refinenet_ros.data.conveyor import frame_rng, render_conveyor_frame
    from lw_refinenet_ros.engine import EngineConfig, InferenceEngine
    from lw_refinenet_ros.engine.backends import cpu_description
    from lw_refinenet_ros.model import load_model

    cuda = found['cuda']
    environment = {
        'device': (f'{cuda["name"]} (capability {cuda["capability"]})' if cuda['available']
                   and args.device.startswith('cuda') else
                   f'CPU rehearsal, no GPU numbers: {cpu_description()}'),
        'torch': torch.__version__, 'cuda_build': torch.version.cuda,
        'python': found['python'], 'cpu': cpu_description(), 'load': os.getloadavg(),
        'versions': found['versions'], 'tf32_default': cuda.get('tf32_default'),
    }
    report = MatrixReport(args.out, {
        'command': ' '.join(sys.argv), 'size': [height, width], 'iters': args.iters,
        'warmup': args.warmup, 'environment': environment, 'probe': found})
    report.phase('reference')
    cache_dir = args.cache_dir or tempfile.mkdtemp(prefix='gpu_matrix_cache_')
    model, _ = load_model(None)
    cpu_reference = InferenceEngine(copy.deepcopy(model), EngineConfig(
        device='cpu', backend='torch', precision='fp32', warmup_iters=0))
    made: dict[tuple[int, int], tuple[Any, Any]] = {}

    def frames(size_hw: tuple[int, int] | None) -> tuple[Any, Any]:
        """A conveyor frame of that size and torch fp32's labels for it on the CPU."""
        size_hw = size_hw or (height, width)
        if size_hw not in made:
            image = render_conveyor_frame(frame_rng(0, 0), (size_hw[1], size_hw[0]))[0]
            reference = None
            try:
                reference = cpu_reference(image, 'rgb', want_confidence=False,
                                          want_stats=False).labels
            except Exception as error:  # agreement stays empty; the rows still run
                report.data.setdefault('reference_errors', {})[str(size_hw)] = \
                    f'{type(error).__name__}: {error}'
            made[size_hw] = (image, reference)
        return made[size_hw]

    frames(None)

    def build(spec: RowSpec) -> Any:
        image = frames(spec.size_hw)[0]
        options = {'device': args.device, 'warmup_size': image.shape[:2],
                   'cache_dir': cache_dir, **spec.options}
        return InferenceEngine(copy.deepcopy(model), EngineConfig(**options),
                               warmup_image=image)

    run_matrix(row_specs(args.device), build, frames, report, found, args.device,
               iters=args.iters, warmup=args.warmup, deadline_s=args.deadline_s, began=began)
    report.data['load_after'] = os.getloadavg()
    report.data['seconds'] = time.perf_counter() - began
    report.finish()
    print(f'gpu_matrix: {len(report.data["rows"])} rows in {report.data["seconds"]:.0f} s; '
          f'{args.out}/gpu_matrix.md')
    return 0


if __name__ == '__main__':
    sys.exit(main())
