"""Post-processing's share of a frame: full-resolution interpolation against the band path.

One process, the packaged default model, a conveyor frame (test seed) at WIDTHxHEIGHT, the
engine's own backend choice for the forward pass (``--backend``/``--precision`` to pin one).
Interleaved round by round (so load on a shared machine slows every variant alike), the
median of each:

* ``forward``: the backend's forward pass;
* ``full``: every pixel's logits interpolated (OpenCV bicubic), argmax, confidence, stats;
* ``band``: the band path (:mod:`lw_refinenet_ros.engine.bands`), same outputs;
* ``full labels`` / ``band labels``: labels only.

Prints the medians, each post-processing variant's share of forward + post-processing, and
the band's agreement with the full path (labels, largest confidence difference). Usage::

    .venv/bin/python benchmarks/postprocess_share.py [--size 640x480] [--rounds 30]
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import time

import numpy as np

from lw_refinenet_ros.data.calibration import conveyor_calibration
from lw_refinenet_ros.data.conveyor import frame_rng, render_conveyor_frame
from lw_refinenet_ros.engine import EngineConfig, InferenceEngine
from lw_refinenet_ros.engine.backends import cpu_description
from lw_refinenet_ros.engine.postprocess import CpuPostprocessor
from lw_refinenet_ros.engine.preprocess import CpuPreprocessor, network_size
from lw_refinenet_ros.model.weights import load_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--size', default='640x480', help='WIDTHxHEIGHT')
    parser.add_argument('--rounds', type=int, default=30)
    parser.add_argument('--backend', default='auto')
    parser.add_argument('--precision', default='auto')
    parser.add_argument('--max-side', type=int, default=0,
                        help='network at this longer side (320: the packaged model default)')
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.lower().split('x'))
    model, _ = load_model(None)
    # A conveyor frame of a test seed: the default model's domain (its int8 model is
    # calibrated on conveyor frames; on the engine's synthetic warm-up frame it agrees less).
    image = np.ascontiguousarray(render_conveyor_frame(frame_rng(8101, 0), (width, height))[0])
    config = EngineConfig(device='cpu', backend=args.backend, precision=args.precision,
                          max_side=args.max_side, agreement_min=0.0, warmup_size=(height, width))
    if args.precision == 'int8':
        # The conveyor-calibrated int8 model at this network size, built into the cache once
        # (precision auto builds it; an explicit int8 only loads what is cached).
        InferenceEngine(model, dataclasses.replace(config, precision='auto'),
                        warmup_image=image, calibration=conveyor_calibration)
    engine = InferenceEngine(model, config, warmup_image=image)
    backend = engine.backend
    batch = CpuPreprocessor()([image], ['rgb'], network_size(height, width, args.max_side))
    logits = backend.forward(batch)[0]
    k = model.num_classes
    full, band = CpuPostprocessor(k, band=False), CpuPostprocessor(k)

    def post(which: CpuPostprocessor, confidence: bool) -> None:
        labels, conf = which(logits, height, width, confidence)
        if confidence:
            which.stats(labels, conf)

    variants = {
        'forward': lambda: backend.forward(batch),
        'full': lambda: post(full, True),
        'band': lambda: post(band, True),
        'full labels': lambda: post(full, False),
        'band labels': lambda: post(band, False),
    }
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(args.rounds):
        for name, run in variants.items():
            start = time.perf_counter()
            run()
            times[name].append((time.perf_counter() - start) * 1e3)
    medians = {name: statistics.median(values) for name, values in times.items()}
    info = engine.describe()
    print(f'CPU: {cpu_description()}; {info["backend"]}/{info["precision"]}; '
          f'{width}x{height} (network {batch.shape[3]}x{batch.shape[2]}), K={k}, '
          f'{args.rounds} interleaved rounds (medians)')
    forward = medians['forward']
    print(f'forward {forward:.1f} ms')
    for name in ('full', 'band', 'full labels', 'band labels'):
        share = medians[name] / (forward + medians[name])
        print(f'{name:12s} {medians[name]:6.2f} ms = {share:5.1%} of forward + post')
    print(f'band / full: {medians["band"] / medians["full"]:.2f}x time (labels, confidence, '
          f'stats); labels only {medians["band labels"] / medians["full labels"]:.2f}x')
    labels_full, conf_full = full(logits, height, width, True)
    labels_band, conf_band = band(logits, height, width, True)
    print(f'band blocks {band.last_band_blocks} of {(logits.shape[1] + 1) * (logits.shape[2] + 1)}'
          f'; labels equal {np.mean(labels_full == labels_band):.4%}; confidence max diff '
          f'{np.abs(conf_full - conf_band).max():.2e}')


if __name__ == '__main__':
    main()
