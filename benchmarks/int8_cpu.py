"""int8 against fp32 on this CPU, both int8 paths, with the default model's own calibration.

Builds (or loads from the cache) the OpenVINO NNCF and the ONNX Runtime QDQ int8 models of the
packaged model at WIDTHxHEIGHT from the default calibration (32 conveyor-generator frames,
``data/calibration.py``), then:

* times each runtime's forward pass at fp32 and int8, interleaved round by round, medians;
* scores torch fp32, OpenVINO fp32/int8 and ONNX Runtime int8 through the engine on frames of
  the test seed (mIoU against the generator's labels, and labels equal to torch fp32).

Usage: ``.venv/bin/python benchmarks/int8_cpu.py [--size 640x480] [--frames 16] [--rounds 8]``
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
import statistics
import time

import numpy as np

from lw_refinenet_ros.data.calibration import conveyor_calibration
from lw_refinenet_ros.data.conveyor import frame_rng, render_conveyor_frame
from lw_refinenet_ros.engine import EngineConfig, InferenceEngine
from lw_refinenet_ros.engine.backends import BackendRequest, cpu_description, create_backend
from lw_refinenet_ros.engine.config import default_cache_dir
from lw_refinenet_ros.engine.export import model_fingerprint
from lw_refinenet_ros.engine.quantize import preprocess_for_network
from lw_refinenet_ros.model.weights import load_model

TEST_SEED = 8101  # evaluation/seeds.py: the seed kept for reported numbers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--size', default='640x480', help='WIDTHxHEIGHT')
    parser.add_argument('--frames', type=int, default=16)
    parser.add_argument('--rounds', type=int, default=8)
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.lower().split('x'))
    size = (height, width)
    model, _ = load_model(None)
    cache = Path(default_cache_dir())
    request = BackendRequest(input_size=size, cache_dir=cache, weights_id=model_fingerprint(model))
    int8 = dataclasses.replace(request, precision='int8',
                               extra={'calibration': conveyor_calibration(size)})
    runtimes = {'openvino/fp32': create_backend('openvino', model, request),
                'openvino/int8': create_backend('openvino', model, int8),
                'onnxruntime/fp32': create_backend('onnxruntime', model, request),
                'onnxruntime/int8': create_backend('onnxruntime', model, int8)}
    scenes = [render_conveyor_frame(frame_rng(TEST_SEED, i), (width, height), augment=False)
              for i in range(args.frames)]
    batches = [preprocess_for_network(np.ascontiguousarray(rgb[:, :, ::-1]), size)
               for rgb, *_ in scenes]
    times: dict[str, list[float]] = {name: [] for name in runtimes}
    for index in range(args.rounds):
        for name, backend in runtimes.items():
            start = time.perf_counter()
            backend.forward(batches[index % len(batches)])
            times[name].append((time.perf_counter() - start) * 1e3)
    print(f'CPU: {cpu_description()}; {width}x{height}; forward medians of {args.rounds} '
          f'interleaved rounds')
    for name, values in times.items():
        print(f'  {name:18s} {statistics.median(values):8.1f} ms')
    base = EngineConfig(device='cpu', warmup_size=size, remember_selection=False,
                        agreement_min=0.0)
    k = model.num_classes
    reference: list[np.ndarray] = []
    for backend, precision in (('torch', 'fp32'), ('openvino', 'fp32'), ('openvino', 'int8'),
                               ('onnxruntime', 'int8')):
        engine = InferenceEngine(model, dataclasses.replace(base, backend=backend,
                                                            precision=precision),
                                 warmup_image=scenes[0][0])
        confusion = np.zeros((k, k), np.int64)
        labels = []
        for rgb, truth, *_ in scenes:
            out = engine(rgb, 'rgb', want_confidence=False, want_stats=False).labels
            labels.append(out)
            confusion += np.bincount(truth.astype(np.int64).ravel() * k + out.ravel(),
                                     minlength=k * k).reshape(k, k)
        reference = reference or labels
        iou = np.diag(confusion) / np.maximum(
            confusion.sum(0) + confusion.sum(1) - np.diag(confusion), 1)
        equal = np.mean([np.mean(a == b) for a, b in zip(labels, reference)])
        print(f'  {backend}/{precision:5s} mIoU {iou[confusion.sum(1) > 0].mean():.4f} on '
              f'{len(scenes)} frames of seed {TEST_SEED}; labels {equal:.3%} equal to torch fp32')


if __name__ == '__main__':
    main()
