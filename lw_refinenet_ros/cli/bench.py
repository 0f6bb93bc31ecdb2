"""``lw-refinenet bench``: engine vs the reference-style pipeline, same run, same image.

For every architecture x input size x device x precision it times the InferenceEngine and
:func:`~lw_refinenet_ros.reference_pipeline.reference_segment` (float64 numpy preprocessing,
fp32 eager forward, OpenCV INTER_CUBIC on HWC logits, numpy argmax), **interleaved** one
iteration each, so that a machine shared with other jobs slows both equally. It reports
p50/p95 latency, FPS (1000 / mean latency), the p50 speed-up and the label agreement.

``--backends all`` (or a list of runtimes) compares the inference backends instead: every
available runtime at every precision the device runs natively (int8 too when
``--calibration-dir`` is given) runs the whole engine on the same conveyor frame, interleaved
one frame each, with its label agreement against torch fp32 and the CPU named in the table.

The engine options are the flags every model-running command takes (the node parameters of
the same names, one validator each); ``--device``, ``--precision`` and ``--size`` take several
values, each checked like the single-valued option, and are swept.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any, Callable, Mapping

from lw_refinenet_ros.engine.config import (
    ENGINE_PARAMETER_SPECS,
    EngineConfig,
    add_engine_arguments,
    engine_config_from_args,
    parse_size,
)

if TYPE_CHECKING:
    import numpy as np

HELP = 'benchmark the engine against the reference pipeline (latency, FPS, label agreement)'

#: Engine options bench sweeps over (several values per run) instead of taking one value.
SWEPT_OPTIONS = ('device', 'precision', 'warmup_size')


def _swept_help(name: str, default: str) -> str:
    # argparse expands %-formats in help texts: a literal '%' must be doubled.
    description = ENGINE_PARAMETER_SPECS[name].description.replace('%', '%%')
    return f'{description} Several values: one run each (default {default}).'


def add_arguments(parser: argparse.ArgumentParser) -> None:
    a = parser.add_argument
    a('--arch', nargs='+', default=['mbv2'], help='architectures (default mbv2)')
    a('--size', dest='sizes', nargs='+', default=['480x640'], metavar='HEIGHTxWIDTH',
      help='image sizes to time, each also the warm-up size of its runs (default 480x640)')
    a('--device', dest='devices', nargs='+', default=['auto'], metavar='DEVICE',
      help=_swept_help('device', 'auto'))
    a('--precision', dest='precisions', nargs='+', default=None, metavar='PRECISION',
      help=_swept_help('precision', 'fp32; with --backends every native one'))
    a('--num-classes', type=int, default=21, help='classes for random weights (default 21)')
    a('--weights', help='checkpoint instead of random weights (one arch only)')
    a('--seed', type=int, default=0, help='seed for weights and the test image (default 0)')
    a('--iters', type=int, default=10, help='timed iterations per pipeline (default 10)')
    a('--warmup', type=int, default=2, help='untimed iterations first (default 2)')
    a('--channels-last', default='auto', choices=('auto', 'on', 'off'),
      help='torch backend memory format (default auto = on)')
    a('--no-fold-bn', action='store_true', help='engine without BatchNorm folding (ablation)')
    a('--no-reference', action='store_true', help='time the engine only')
    a('--json', help='write the results here as JSON')
    a('--backends', nargs='+', metavar='NAME',
      help='compare runtimes instead: "all" or torch/openvino/onnxruntime (each at every '
           'native precision unless --precision is given; int8 with --calibration-dir)')
    add_engine_arguments(parser.add_argument_group(
        'inference', 'the node parameters of the same names (--backend: the runtime timed '
        'without --backends)'), exclude=SWEPT_OPTIONS)


def swept_values(values: list[str] | None, name: str, flag: str) -> list[Any] | None:
    """Validate each value of a swept option with the option's own spec (``--size`` values
    become ``(height, width)``); None stays None.

    Raises:
        ConfigError: A value is invalid; the message names ``flag``.
    """
    if values is None:
        return None
    spec = ENGINE_PARAMETER_SPECS[name]
    checked = [spec.validate(value, label=flag) for value in values]
    return [parse_size(v) for v in checked] if name == 'warmup_size' else checked


def base_config(args: argparse.Namespace) -> EngineConfig:
    """The engine options every benchmarked configuration shares (the spine's flags plus
    bench's own torch ablations); device, precision and size are set per configuration."""
    return engine_config_from_args(
        args, warmup_iters=max(1, args.warmup), fold_batchnorm=not args.no_fold_bn,
        channels_last={'on': True, 'off': False}.get(args.channels_last, 'auto'))


def latency_summary(values: list[float]) -> dict[str, float]:
    """p50/p95/mean milliseconds and FPS (1000 / mean) of per-frame times, with the
    percentile definition every tool of this package uses."""
    import numpy as np

    from lw_refinenet_ros.percentiles import percentiles

    array = np.asarray(values, dtype=np.float64)
    p50, p95 = percentiles(array, (50, 95))
    return {'p50_ms': p50, 'p95_ms': p95,
            'mean_ms': float(array.mean()), 'fps': float(1000.0 / array.mean())}


def bench_one(model, arch: str, config: EngineConfig, *, iters: int, warmup: int, seed: int,
              reference: bool) -> dict:
    """Time the engine built with ``config`` (at its ``warmup_size``) against the reference
    pipeline, interleaved; returns a JSON-ready dict."""
    import copy
    import time

    import numpy as np
    import torch

    from lw_refinenet_ros.engine import InferenceEngine
    from lw_refinenet_ros.reference_pipeline import reference_segment

    height, width = config.warmup_size
    image = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    ref_model = copy.deepcopy(model).eval()
    engine = InferenceEngine(copy.deepcopy(model), config)

    def sync() -> None:
        if engine.device.startswith('cuda'):
            torch.cuda.synchronize()

    for _ in range(warmup if reference else 0):
        reference_segment(ref_model, image)
    engine_ms: list[float] = []
    ref_ms: list[float] = []
    stages: dict[str, list[float]] = {}
    labels = ref_labels = None
    for _ in range(iters):
        sync()
        start = time.perf_counter()
        result = engine(image, 'rgb')
        sync()
        engine_ms.append((time.perf_counter() - start) * 1e3)
        labels = result.labels
        for key, value in result.timings.items():
            stages.setdefault(key, []).append(value)
        if reference:
            start = time.perf_counter()
            ref_labels = reference_segment(ref_model, image)
            ref_ms.append((time.perf_counter() - start) * 1e3)
    row = {
        'arch': arch, 'height': height, 'width': width, 'device': engine.device,
        'precision': config.precision, 'engine_settings': engine.describe(), 'iters': iters,
        'engine': latency_summary(engine_ms),
        'engine_stages_p50_ms': {k: float(np.median(v)) for k, v in stages.items()},
    }
    if reference:
        row['reference'] = latency_summary(ref_ms)
        row['speedup_p50'] = row['reference']['p50_ms'] / row['engine']['p50_ms']
        row['label_agreement_pct'] = float((labels == ref_labels).mean() * 100.0)
    return row


def _load(args: argparse.Namespace, arch: str):
    """The checkpoint given by --weights, else a model with seeded random weights."""
    import torch

    from lw_refinenet_ros.model import build_model, load_model

    if args.weights:
        model, _ = load_model(args.weights, arch=arch)
    else:
        torch.manual_seed(args.seed)
        model = build_model(arch, args.num_classes)
    return model.eval()


def _format_row(arch: str, row: dict) -> str:
    chosen = row['engine_settings'].get('backend', 'torch')
    line = (f'{arch:9s} {row["height"]}x{row["width"]} {row["device"]:6s} '
            f'{row["precision"]:4s} {chosen:11s} engine p50 {row["engine"]["p50_ms"]:8.1f} ms '
            f'p95 {row["engine"]["p95_ms"]:8.1f} ms {row["engine"]["fps"]:6.2f} FPS')
    if 'reference' in row:
        line += (f' | reference p50 {row["reference"]["p50_ms"]:8.1f} ms '
                 f'p95 {row["reference"]["p95_ms"]:8.1f} ms | x{row["speedup_p50"]:.2f}, '
                 f'labels {row["label_agreement_pct"]:.3f} % equal')
    return line


def _write_json(args: argparse.Namespace, payload: dict) -> None:
    import json

    if args.json:
        with open(args.json, 'w', encoding='utf-8') as handle:
            json.dump({'meta': bench_metadata(args), **payload}, handle, indent=2, default=str)
        print(f'wrote {args.json}')


def run(args: argparse.Namespace) -> int:
    import dataclasses

    import torch

    from lw_refinenet_ros.errors import ConfigError

    if args.iters < 1 or args.warmup < 0:
        raise ConfigError('--iters must be >= 1 and --warmup >= 0.')
    if args.weights and len(args.arch) > 1:
        raise ConfigError('--weights fixes the architecture; pass a single --arch.')
    base = base_config(args)
    sizes = swept_values(args.sizes, 'warmup_size', '--size')
    devices = swept_values(args.devices, 'device', '--device')
    precisions = swept_values(args.precisions, 'precision', '--precision')
    if base.num_threads > 0:  # the reference pipeline runs with the engine's threads
        torch.set_num_threads(base.num_threads)
    if args.backends:
        return _run_backends(args, base, sizes, devices, precisions)
    rows = []
    for arch in args.arch:
        model = _load(args, arch)
        for size in sizes:
            for device in devices:
                for precision in precisions or ['fp32']:
                    config = dataclasses.replace(base, device=device, precision=precision,
                                                 warmup_size=size)
                    row = bench_one(model, arch, config, iters=args.iters,
                                    warmup=args.warmup, seed=args.seed,
                                    reference=not args.no_reference)
                    rows.append(row)
                    print(_format_row(arch, row), flush=True)
    _write_json(args, {'results': rows})
    return 0


# --------------------------------------------------------------------------- --backends


def backend_candidates(names: list[str], device: str, precisions: list[str] | None,
                       int8: bool) -> tuple[list[tuple[str, str]], dict[str, str]]:
    """(backend, precision) pairs to time, torch fp32 first, and the unavailable runtimes."""
    from lw_refinenet_ros.engine.backends import (
        BACKEND_NAMES,
        backend_unavailable,
        native_precisions,
    )
    from lw_refinenet_ros.errors import ConfigError

    wanted = list(BACKEND_NAMES) if 'all' in names else names
    unknown = sorted(set(wanted) - set(BACKEND_NAMES))
    if unknown:
        raise ConfigError(f'--backends: unknown {", ".join(unknown)}; expected "all" or '
                          f'{", ".join(BACKEND_NAMES)}.')
    pairs: list[tuple[str, str]] = [('torch', 'fp32')]
    missing: dict[str, str] = {}
    for name in wanted:
        reason = backend_unavailable(name, device)
        if reason is not None:
            missing[name] = reason
            continue
        native = native_precisions(name, device)
        chosen = precisions or [p for p in native if p != 'int8' or int8]
        pairs.extend((name, p) for p in chosen if (name, p) not in pairs)
    return pairs, missing


def compare_backends(model, base: EngineConfig, pairs: list[tuple[str, str]], *, iters: int,
                     warmup: int, seed: int, extra: dict | None = None) -> list[dict]:
    """Time the whole engine per (backend, precision) on one conveyor frame, interleaved.

    Args:
        base: The options every candidate shares: its ``device`` (not ``auto``),
            ``warmup_size`` (the frame's size), threads, cache and calibration folders.
            Each candidate replaces backend and precision, and runs without the agreement
            gate or fallback: agreement is what this measures, and a fallback would time
            torch under another name.
        extra: Name -> ``segment(rgb) -> labels`` callables timed in the same rounds (the
            bare OpenVINO script in benchmarks/backends.py).

    Returns:
        One JSON-ready row per candidate: p50/p95/mean ms, FPS, speed-up over torch fp32 and
        the share of labels equal to torch fp32's; rows that could not be built carry
        ``error`` instead.
    """
    import copy
    import dataclasses

    from lw_refinenet_ros.data.conveyor import frame_rng, render_conveyor_frame
    from lw_refinenet_ros.engine import InferenceEngine
    from lw_refinenet_ros.errors import LWRefineNetError

    height, width = base.warmup_size
    image = render_conveyor_frame(frame_rng(seed, 0), (width, height))[0]
    runners: dict[str, Callable[[np.ndarray], np.ndarray]] = {}
    rows: dict[str, dict] = {}
    for name, precision in pairs:
        label = f'{name}/{precision}'
        try:
            config = dataclasses.replace(base, backend=name, precision=precision,
                                         agreement_min=0.0, backend_fallback=False,
                                         warmup_iters=1)
            engine = InferenceEngine(copy.deepcopy(model), config)
        except LWRefineNetError as error:
            rows[label] = {'backend': name, 'precision': precision, 'error': str(error)}
            continue
        runners[label] = (lambda e: lambda rgb: e(rgb, 'rgb', want_confidence=False,
                                                   want_stats=False).labels)(engine)
        rows[label] = {'backend': name, 'precision': precision,
                       'engine_settings': engine.describe()}
    for label, segment in (extra or {}).items():
        runners[label] = segment
        rows[label] = {'backend': label, 'precision': ''}
    times, labels = time_interleaved(runners, image, iters=iters, warmup=warmup)
    reference = labels.get('torch/fp32')
    base_ms = latency_summary(times['torch/fp32'])['p50_ms'] if 'torch/fp32' in times \
        else None
    for label in runners:
        row = rows[label]
        row.update(height=height, width=width, iters=iters, **latency_summary(times[label]))
        if base_ms:
            row['speedup_vs_torch_fp32'] = base_ms / row['p50_ms']
        if reference is not None:
            row['label_agreement_pct'] = float((labels[label] == reference).mean() * 100.0)
    return list(rows.values())


def time_interleaved(runners: Mapping[str, Callable[[np.ndarray], np.ndarray]],
                     image: np.ndarray, *, iters: int, warmup: int,
                     sync: Callable[[], None] | None = None
                     ) -> tuple[dict[str, list[float]], dict[str, np.ndarray]]:
    """Time ``runner(image) -> labels`` for each runner, one frame each per round, so that
    load from other jobs slows every runner alike.

    Args:
        sync: Called before each timed frame (``torch.cuda.synchronize`` on a GPU).

    Returns:
        Per runner, the milliseconds of its ``iters`` timed frames (the first ``warmup``
        rounds are not timed) and its labels from the last round.
    """
    import time

    times: dict[str, list[float]] = {name: [] for name in runners}
    labels: dict[str, np.ndarray] = {}
    for round_index in range(warmup + iters):
        for name, segment in runners.items():
            if sync is not None:
                sync()
            start = time.perf_counter()
            labels[name] = segment(image)
            if round_index >= warmup:
                times[name].append((time.perf_counter() - start) * 1e3)
    return times, labels


def format_backend_table(rows: list[dict]) -> str:
    """Markdown table of :func:`compare_backends` rows."""
    lines = ['| size | backend | precision | p50 ms | p95 ms | FPS | x torch fp32 | labels = '
             'torch fp32 |', '|---|---|---|---:|---:|---:|---:|---:|']
    for row in rows:
        size = f'{row.get("height", "")}x{row.get("width", "")}'
        if 'error' in row:
            lines.append(f'| {size} | {row["backend"]} | {row["precision"]} | not built: '
                         f'{row["error"][:80]} | | | | |')
            continue
        lines.append(f'| {size} | {row["backend"]} | {row["precision"]} | {row["p50_ms"]:.1f} '
                     f'| {row["p95_ms"]:.1f} | {row["fps"]:.1f} | '
                     f'{row.get("speedup_vs_torch_fp32", float("nan")):.2f} | '
                     f'{row.get("label_agreement_pct", float("nan")):.2f} % |')
    return '\n'.join(lines)


def bench_metadata(args: argparse.Namespace) -> dict:
    """Date, versions, the CPU (model name and ISA flags) and the load, for every JSON."""
    import datetime
    import os
    import platform

    import torch

    from lw_refinenet_ros.engine.backends import cpu_description

    meta = {
        'date': datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'),
        'cpu': cpu_description(), 'cpu_count': os.cpu_count(),
        'load_average': list(os.getloadavg()) if hasattr(os, 'getloadavg') else None,
        'torch': torch.__version__, 'python': platform.python_version(),
        'torch_threads': torch.get_num_threads(),
        'cuda': torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        'weights': args.weights or f'random (seed {args.seed})',
    }
    for package in ('openvino', 'onnxruntime', 'nncf'):
        try:
            from importlib.metadata import version

            meta[package] = version(package)
        except Exception:
            meta[package] = None
    return meta


def _run_backends(args: argparse.Namespace, base: EngineConfig, sizes: list,
                  devices: list[str], precisions: list[str] | None) -> int:
    import dataclasses

    import torch

    from lw_refinenet_ros.engine.backends import cpu_description
    from lw_refinenet_ros.errors import ConfigError

    if len(args.arch) > 1 or len(devices) > 1:
        raise ConfigError('--backends compares runtimes for one --arch and one --device.')
    device = devices[0]
    if device == 'auto':
        device = 'cuda' if torch.cuda.is_available() else 'cpu'
    model = _load(args, args.arch[0])
    pairs, missing = backend_candidates(args.backends, device, precisions,
                                        bool(base.calibration_dir))
    print(f'CPU: {cpu_description()}')
    for name, reason in missing.items():
        print(f'{name}: not available ({reason})')
    rows = []
    for size in sizes:
        rows.extend(compare_backends(
            model, dataclasses.replace(base, device=device, warmup_size=size), pairs,
            iters=args.iters, warmup=args.warmup, seed=args.seed))
    print(format_backend_table(rows), flush=True)
    _write_json(args, {'unavailable': missing, 'results': rows})
    return 0
