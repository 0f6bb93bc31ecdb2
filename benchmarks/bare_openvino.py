"""The yardstick: what a user would write by hand with OpenVINO, about 30 lines.

Same model (an ONNX file from ``lw-refinenet export``), same images, same result as
``lw-refinenet segment`` (bicubic logits at full resolution, argmax), none of the engine.
``lw-refinenet bench --backends all --bare-onnx FILE`` and docs/benchmarks.md compare the
engine's per-frame time against this script's. Usage::

    lw-refinenet export --onnx /tmp/m.onnx --weights W --height 480 --width 640
    python benchmarks/bare_openvino.py /tmp/m.onnx --images DIR [--precision bf16]
"""

from __future__ import annotations

import argparse
import glob
import time

import cv2
import numpy as np
import openvino as ov

MEAN = np.array([0.485, 0.456, 0.406], np.float32)
STD = np.array([0.229, 0.224, 0.225], np.float32)


def compile_bare(onnx: str, precision: str = 'f32', threads: int = 0) -> ov.CompiledModel:
    """The model compiled for the CPU the way the OpenVINO docs show (LATENCY hint);
    precision ``'default'`` leaves OpenVINO's own choice (bf16 on bf16 CPUs, else f32)."""
    config = {'PERFORMANCE_HINT': 'LATENCY'}
    if precision != 'default':
        config['INFERENCE_PRECISION_HINT'] = precision
    if threads:
        config['INFERENCE_NUM_THREADS'] = threads
    return ov.Core().compile_model(onnx, 'CPU', config)


def segment_bare(compiled: ov.CompiledModel, bgr: np.ndarray) -> np.ndarray:
    """BGR uint8 image -> (H, W) uint8 labels: normalise, infer, bicubic upsample, argmax."""
    x = ((bgr[:, :, ::-1].astype(np.float32) / 255.0 - MEAN) / STD).transpose(2, 0, 1)[None]
    logits = compiled(np.ascontiguousarray(x))[0][0]  # (K, h/4, w/4)
    height, width = bgr.shape[:2]
    up = cv2.resize(logits.transpose(1, 2, 0), (width, height), interpolation=cv2.INTER_CUBIC)
    return up.argmax(axis=2).astype(np.uint8)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('onnx')
    parser.add_argument('--images', required=True, help='folder of PNG/JPEG images')
    parser.add_argument('--precision', default='f32', choices=('f32', 'bf16', 'default'))
    parser.add_argument('--threads', type=int, default=0)
    args = parser.parse_args()
    paths = sorted(glob.glob(f'{args.images}/*.png') + glob.glob(f'{args.images}/*.jpg'))
    images = [cv2.imread(p) for p in paths]
    compiled = compile_bare(args.onnx, args.precision, args.threads)
    segment_bare(compiled, images[0])  # warm-up
    start = time.perf_counter()
    for image in images:
        segment_bare(compiled, image)
    ms = (time.perf_counter() - start) * 1e3 / len(images)
    print(f'bare OpenVINO {args.precision}: {ms:.1f} ms/frame ({1e3 / ms:.1f} FPS) over '
          f'{len(images)} images')


if __name__ == '__main__':
    main()
