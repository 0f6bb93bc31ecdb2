"""``lw-refinenet bench``: engine vs the reference-style pipeline, same run, same image.

For every architecture x input size x device x precision it times the InferenceEngine and
:func:`~lw_refinenet_ros.reference_pipeline.reference_segment` (float64 numpy preprocessing,
fp32 eager forward, OpenCV INTER_CUBIC on HWC logits, numpy argmax), **interleaved** one
iteration each, so that a machine shared with other jobs slows both equally. It reports
p50/p95 latency, FPS (1000 / mean latency), the p50 speed-up and the label agreement.
"""

from __future__ import annotations

import argparse

HELP = 'benchmark the engine against the reference pipeline (latency, FPS, label agreement)'


def _size(text: str) -> tuple[int, int]:
    try:
        height, width = (int(v) for v in text.lower().split('x'))
    except ValueError as error:
        raise argparse.ArgumentTypeError(f'size {text!r} must be HEIGHTxWIDTH, e.g. 480x640') \
            from error
    if height < 1 or width < 1:
        raise argparse.ArgumentTypeError(f'size {text!r} must be positive')
    return height, width


def add_arguments(parser: argparse.ArgumentParser) -> None:
    a = parser.add_argument
    a('--arch', nargs='+', default=['mbv2'], help='architectures (default mbv2)')
    a('--size', nargs='+', type=_size, default=[(480, 640)], help='HxW sizes (default 480x640)')
    a('--device', nargs='+', default=['auto'], help='devices (default auto)')
    a('--precision', nargs='+', default=['fp32'], help='fp32 | fp16 | bf16 (default fp32)')
    a('--num-classes', type=int, default=21, help='classes for random weights (default 21)')
    a('--weights', help='checkpoint instead of random weights (one arch only)')
    a('--seed', type=int, default=0, help='seed for weights and the test image (default 0)')
    a('--iters', type=int, default=10, help='timed iterations per pipeline (default 10)')
    a('--warmup', type=int, default=2, help='untimed iterations first (default 2)')
    a('--max-side', type=int, help='engine max_side (changes labels)')
    a('--upsample', default='bicubic', choices=('bicubic', 'nearest'))
    a('--channels-last', default='auto', choices=('auto', 'on', 'off'),
      help='engine memory format (default auto = on)')
    a('--no-fold-bn', action='store_true', help='engine without BatchNorm folding (ablation)')
    a('--threads', type=int, help='torch CPU threads (default: torch default)')
    a('--no-reference', action='store_true', help='time the engine only')
    a('--json', help='write the results here as JSON')


def _percentiles(values: list[float]) -> dict[str, float]:
    import numpy as np

    array = np.asarray(values, dtype=np.float64)
    return {'p50_ms': float(np.percentile(array, 50)), 'p95_ms': float(np.percentile(array, 95)),
            'mean_ms': float(array.mean()), 'fps': float(1000.0 / array.mean())}


def bench_one(model, arch: str, size: tuple[int, int], device: str, precision: str, *,
              iters: int, warmup: int, seed: int, max_side: int | None, upsample: str,
              reference: bool, channels_last: bool | str = 'auto',
              fold_batchnorm: bool = True) -> dict:
    """Time one configuration; returns a JSON-ready dict."""
    import copy
    import time

    import numpy as np
    import torch

    from lw_refinenet_ros.engine import EngineConfig, InferenceEngine
    from lw_refinenet_ros.reference_pipeline import reference_segment

    height, width = size
    image = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    ref_model = copy.deepcopy(model).eval()
    config = EngineConfig(device=device, precision=precision, max_side=max_side,
                          upsample=upsample, warmup_iters=max(1, warmup), warmup_size=size,
                          channels_last=channels_last, fold_batchnorm=fold_batchnorm)
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
        'precision': precision, 'engine_settings': engine.describe(), 'iters': iters,
        'engine': _percentiles(engine_ms),
        'engine_stages_p50_ms': {k: float(np.median(v)) for k, v in stages.items()},
    }
    if reference:
        row['reference'] = _percentiles(ref_ms)
        row['speedup_p50'] = row['reference']['p50_ms'] / row['engine']['p50_ms']
        row['label_agreement_pct'] = float((labels == ref_labels).mean() * 100.0)
    return row


def run(args: argparse.Namespace) -> int:
    import datetime
    import json
    import os
    import platform

    import torch

    from lw_refinenet_ros.errors import ConfigError
    from lw_refinenet_ros.model import build_model, load_model

    if args.iters < 1 or args.warmup < 0:
        raise ConfigError('--iters must be >= 1 and --warmup >= 0.')
    if args.weights and len(args.arch) > 1:
        raise ConfigError('--weights fixes the architecture; pass a single --arch.')
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = []
    for arch in args.arch:
        if args.weights:
            model, _ = load_model(args.weights, arch=arch)
        else:
            torch.manual_seed(args.seed)
            model = build_model(arch, args.num_classes)
        model.eval()
        for size in args.size:
            for device in args.device:
                for precision in args.precision:
                    row = bench_one(model, arch, size, device, precision, iters=args.iters,
                                    warmup=args.warmup, seed=args.seed,
                                    max_side=args.max_side, upsample=args.upsample,
                                    reference=not args.no_reference,
                                    channels_last={'on': True, 'off': False}.get(
                                        args.channels_last, 'auto'),
                                    fold_batchnorm=not args.no_fold_bn)
                    rows.append(row)
                    line = (f'{arch:9s} {size[0]}x{size[1]} {row["device"]:6s} {precision:4s} '
                            f'engine p50 {row["engine"]["p50_ms"]:8.1f} ms '
                            f'p95 {row["engine"]["p95_ms"]:8.1f} ms '
                            f'{row["engine"]["fps"]:6.2f} FPS')
                    if 'reference' in row:
                        line += (f' | reference p50 {row["reference"]["p50_ms"]:8.1f} ms '
                                 f'p95 {row["reference"]["p95_ms"]:8.1f} ms | '
                                 f'x{row["speedup_p50"]:.2f}, labels '
                                 f'{row["label_agreement_pct"]:.3f} % equal')
                    print(line, flush=True)
    if args.json:
        meta = {
            'date': datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'),
            'torch': torch.__version__, 'python': platform.python_version(),
            'machine': platform.machine(), 'processor': platform.processor(),
            'cpu_count': os.cpu_count(), 'torch_threads': torch.get_num_threads(),
            'cuda': torch.cuda.get_device_name() if torch.cuda.is_available() else None,
            'weights': args.weights or f'random (seed {args.seed})',
        }
        with open(args.json, 'w', encoding='utf-8') as handle:
            json.dump({'meta': meta, 'results': rows}, handle, indent=2)
        print(f'wrote {args.json}')
    return 0
