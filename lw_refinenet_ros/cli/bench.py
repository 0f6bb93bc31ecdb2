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

This module is the command (flags, sweeps, printing); what it times, and how, is the library
:mod:`lw_refinenet_ros.bench`, which the benchmarks use too.
"""

from __future__ import annotations

import argparse
from typing import Any

from lw_refinenet_ros.engine.config import (
    ENGINE_PARAMETER_SPECS,
    EngineConfig,
    add_engine_arguments,
    engine_config_from_args,
)
from lw_refinenet_ros.sizes import parse_size_hw

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
    a('--size', dest='sizes', nargs='+', default=['640x480'], metavar='WIDTHxHEIGHT',
      help='image sizes to time, each also the warm-up size of its runs (default 640x480)')
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
    """Validate each value of a swept option with the option's own spec (``--size`` values,
    WIDTHxHEIGHT, become the engine's ``(height, width)``); None stays None.

    Raises:
        ConfigError: A value is invalid; the message names ``flag``.
    """
    if values is None:
        return None
    spec = ENGINE_PARAMETER_SPECS[name]
    checked = [spec.validate(value, label=flag) for value in values]
    if name == 'warmup_size':
        return [parse_size_hw(v, what=flag) for v in checked]
    return checked


def base_config(args: argparse.Namespace) -> EngineConfig:
    """The engine options every benchmarked configuration shares (the spine's flags plus
    bench's own torch ablations); device, precision and size are set per configuration."""
    return engine_config_from_args(
        args, warmup_iters=max(1, args.warmup), fold_batchnorm=not args.no_fold_bn,
        channels_last={'on': True, 'off': False}.get(args.channels_last, 'auto'))


def _load(args: argparse.Namespace, arch: str):
    """The checkpoint given by --weights, else a model with seeded random weights."""
    import torch

    from lw_refinenet_ros.model import build_model
    from lw_refinenet_ros.segmenter import Segmenter

    if args.weights:  # read as every command reads a checkpoint; engines are built per run
        model = Segmenter.load(args.weights, arch=arch, lazy=True).model
    else:
        torch.manual_seed(args.seed)
        model = build_model(arch, args.num_classes)
    return model.eval()


def _format_row(arch: str, row: dict) -> str:
    chosen = row['engine_settings'].get('backend', 'torch')
    line = (f'{arch:9s} {row["width"]}x{row["height"]} {row["device"]:6s} '
            f'{row["precision"]:4s} {chosen:11s} engine p50 {row["engine"]["p50_ms"]:8.1f} ms '
            f'p95 {row["engine"]["p95_ms"]:8.1f} ms {row["engine"]["fps"]:6.2f} FPS')
    if 'reference' in row:
        line += (f' | reference p50 {row["reference"]["p50_ms"]:8.1f} ms '
                 f'p95 {row["reference"]["p95_ms"]:8.1f} ms | x{row["speedup_p50"]:.2f}, '
                 f'labels {row["label_agreement_pct"]:.3f} % equal')
    return line


def _write_json(args: argparse.Namespace, payload: dict) -> None:
    import json

    from lw_refinenet_ros.bench.timing import bench_metadata

    if args.json:
        with open(args.json, 'w', encoding='utf-8') as handle:
            json.dump({'meta': bench_metadata(args.weights, args.seed), **payload}, handle,
                      indent=2, default=str)
        print(f'wrote {args.json}')


def run(args: argparse.Namespace) -> int:
    import dataclasses

    import torch

    from lw_refinenet_ros.bench.compare import bench_one
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


def _run_backends(args: argparse.Namespace, base: EngineConfig, sizes: list,
                  devices: list[str], precisions: list[str] | None) -> int:
    import dataclasses

    import torch

    from lw_refinenet_ros.bench.compare import (
        backend_candidates,
        compare_backends,
        format_backend_table,
    )
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
