"""The GPU matrix of ``benchmarks/device_check.sh``: every torch mode and ONNX Runtime provider.

Per-frame time of the whole engine (upload, forward, bicubic upsample, argmax, download of the
labels) for torch fp32 / fp16 / bf16, fp16 with CUDA graphs and fp16 compiled, and ONNX
Runtime on CUDA (the TensorRT provider when installed); plus the network alone through the
ONNX Runtime CUDA and TensorRT providers. All on the same conveyor frame, interleaved one frame
each per round, with label agreement against torch fp32 on the CPU (the reference).
``--device cpu`` runs the same code on the CPU (a smoke test of this script, not GPU numbers).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import time
from typing import Any, Callable

import numpy as np

from lw_refinenet_ros.engine.config import size_argument


def _engine_runner(model: Any, options: dict[str, Any]) -> Callable[[np.ndarray], np.ndarray]:
    from lw_refinenet_ros.engine import InferenceEngine
    from lw_refinenet_ros.engine.config import EngineConfig

    engine = InferenceEngine(copy.deepcopy(model), EngineConfig(**options))
    return lambda rgb: engine(rgb, 'rgb', want_confidence=False, want_stats=False).labels


def _network_runner(model: Any, provider: str, precision: str, size: tuple[int, int],
                    device: str, cache_dir: str) -> Callable[[np.ndarray], np.ndarray]:
    from lw_refinenet_ros.engine.backends import BackendRequest, create_backend
    from lw_refinenet_ros.engine.quantize import preprocess_for_network

    backend = create_backend('onnxruntime', model, BackendRequest(
        precision=precision, device=device, input_size=size, cache_dir=cache_dir or None,
        extra={'ort_provider': provider}))

    def run(rgb: np.ndarray) -> np.ndarray:
        import cv2

        logits = backend.forward(preprocess_for_network(rgb[:, :, ::-1], size))[0]
        up = cv2.resize(logits.transpose(1, 2, 0), (size[1], size[0]),
                        interpolation=cv2.INTER_CUBIC)
        return up.argmax(axis=2).astype(np.uint8)

    return run


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--device', default='cuda')
    parser.add_argument('--size', default='480x640', type=size_argument,
                        help='HxW (default 480x640)')
    parser.add_argument('--iters', type=int, default=20)
    parser.add_argument('--warmup', type=int, default=3)
    parser.add_argument('--cache-dir', default='')
    parser.add_argument('--build-budget-s', type=float, default=200.0,
                        help='stop building further modes after this many seconds (TensorRT '
                             'and torch.compile builds take minutes); the rest is reported '
                             'as not run')
    parser.add_argument('--json', required=True)
    args = parser.parse_args()
    began = time.perf_counter()
    height, width = args.size

    import torch

    from lw_refinenet_ros.cli.bench import latency_summary, time_interleaved
    from lw_refinenet_ros.data.conveyor import frame_rng, render_conveyor_frame
    from lw_refinenet_ros.engine.backends import backend_unavailable, cpu_description
    from lw_refinenet_ros.model import load_model

    cuda = args.device.startswith('cuda')
    model, _ = load_model(None)
    image = render_conveyor_frame(frame_rng(0, 0), (width, height))[0]
    base = dict(device=args.device, warmup_size=(height, width), agreement_min=0.0,
                cache_dir=args.cache_dir)
    configs: dict[str, dict[str, Any]] = {
        'torch fp32': dict(backend='torch', precision='fp32'),
        'torch fp16': dict(backend='torch', precision='fp16'),
        'torch bf16': dict(backend='torch', precision='bf16'),
        'torch fp16 + CUDA graphs': dict(backend='torch', precision='fp16', cuda_graphs=True),
        'torch fp16 + compile': dict(backend='torch', precision='fp16', compile=True),
        'onnxruntime fp32 (engine)': dict(backend='onnxruntime', precision='fp32'),
        'openvino fp32 (engine)': dict(backend='openvino', precision='fp32'),
    }
    if not cuda:  # the smoke test: CPU-only modes are meaningless or slow
        for name in ('torch fp16', 'torch fp16 + CUDA graphs', 'torch fp16 + compile'):
            configs.pop(name)
    runners: dict[str, Callable[[np.ndarray], np.ndarray]] = {}
    errors: dict[str, str] = {}
    reference = _engine_runner(model, dict(device='cpu', backend='torch', precision='fp32',
                                           warmup_size=(height, width)))(image)
    def over_budget(name: str) -> bool:
        if time.perf_counter() - began <= args.build_budget_s:
            return False
        errors[name] = f'not built: the {args.build_budget_s:.0f} s build budget was spent'
        return True

    for name, options in configs.items():
        if over_budget(name):
            continue
        reason = backend_unavailable(options['backend'], args.device)
        if reason:
            errors[name] = reason
            continue
        start = time.perf_counter()
        try:
            runners[name] = _engine_runner(model, {**base, **options})
        except Exception as error:  # report every mode, whatever breaks
            errors[name] = f'{type(error).__name__}: {error}'
            continue
        print(f'{name}: ready in {time.perf_counter() - start:.1f} s', flush=True)
    if cuda:
        for provider, precision in (('cuda', 'fp32'), ('tensorrt', 'fp32'),
                                    ('tensorrt', 'fp16')):
            name = f'onnxruntime {provider} {precision} (network + cv2 post)'
            if over_budget(name):
                continue
            start = time.perf_counter()
            try:
                runners[name] = _network_runner(model, provider, precision, (height, width),
                                                args.device, args.cache_dir)
            except Exception as error:
                errors[name] = f'{type(error).__name__}: {error}'
                continue
            print(f'{name}: ready in {time.perf_counter() - start:.1f} s', flush=True)
    times, labels = time_interleaved(runners, image, iters=args.iters, warmup=args.warmup,
                                     sync=torch.cuda.synchronize if cuda else None)
    rows = [{'mode': name, **latency_summary(values),
             'labels_equal_to_cpu_fp32_pct': float((labels[name] == reference).mean() * 100.0)}
            for name, values in times.items()]
    result = {
        'device': torch.cuda.get_device_name() if cuda else f'CPU smoke test: '
                                                            f'{cpu_description()}',
        'size': [height, width], 'iters': args.iters, 'torch': torch.__version__,
        'cuda': torch.version.cuda, 'cpu': cpu_description(), 'load': os.getloadavg(),
        'command': ' '.join(sys.argv), 'results': rows, 'not_run': errors,
    }
    with open(args.json, 'w', encoding='utf-8') as handle:
        json.dump(result, handle, indent=2, default=str)
    for row in rows:
        print(f'{row["mode"]:45s} p50 {row["p50_ms"]:7.2f} ms  p95 {row["p95_ms"]:7.2f} ms  '
              f'labels {row["labels_equal_to_cpu_fp32_pct"]:.2f} %')
    for name, reason in errors.items():
        print(f'{name}: not run ({reason})')
    return 0


if __name__ == '__main__':
    sys.exit(main())
