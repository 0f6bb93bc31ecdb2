"""``lw-refinenet export``: ONNX export (TorchScript exporter, opset 17) with an optional check.

The graph takes ImageNet-normalised RGB ``image`` (N, 3, H, W) float32 and returns stride-4
``logits`` (N, K, ceil(H/4), ceil(W/4)); pre- and post-processing stay outside, as in the
engine. ``--dynamic`` makes N, H and W symbolic. The export itself lives in
:mod:`lw_refinenet_ros.engine.export`, shared with the OpenVINO and ONNX Runtime backends,
which build their models from the checkpoint without this manual step.
"""

from __future__ import annotations

import argparse

HELP = 'export a model to ONNX (opset 17, static or dynamic H/W); --check runs onnxruntime'


def add_arguments(parser: argparse.ArgumentParser) -> None:
    a = parser.add_argument
    a('--onnx', required=True, metavar='OUT', help='output .onnx file')
    a('--arch', default=None, help='architecture (default: from --weights, else mbv2)')
    a('--num-classes', type=int, default=None, help='classes (default: from --weights, else 21)')
    a('--weights', help='checkpoint; without it the weights are random (seeded)')
    a('--seed', type=int, default=0, help='seed for random weights (default 0)')
    a('--height', type=int, default=480, help='input height (default 480)')
    a('--width', type=int, default=640, help='input width (default 640)')
    a('--dynamic', action='store_true', help='symbolic batch, height and width')
    a('--opset', type=int, default=17, help='ONNX opset (>= 11 for align_corners Resize)')
    a('--check', action='store_true', help='compare onnxruntime with PyTorch')
    a('--tolerance', type=float, default=1e-4, help='max |logit difference| for --check')


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from lw_refinenet_ros.engine.export import build_for_export, check_onnx, export_onnx

    model = build_for_export(args.arch, args.num_classes, args.weights, args.seed)
    Path(args.onnx).parent.mkdir(parents=True, exist_ok=True)
    export_onnx(model, args.onnx, args.height, args.width, dynamic=args.dynamic,
                opset=args.opset)
    print(f'wrote {args.onnx} ({model.arch}, {model.num_classes} classes, opset {args.opset}, '
          f'{"dynamic" if args.dynamic else f"static {args.height}x{args.width}"})')
    if not args.check:
        return 0
    sizes = [(args.height, args.width)]
    if args.dynamic:
        sizes.append((args.height // 2 + 1, args.width // 2 + 3))  # odd, non-multiple of 4
    worst = check_onnx(model, args.onnx, sizes, args.seed)
    ok = worst <= args.tolerance
    print(f'check: max |onnxruntime - torch| = {worst:.3g} over '
          f'{", ".join(f"{h}x{w}" for h, w in sizes)} -> {"OK" if ok else "FAILED"} '
          f'(tolerance {args.tolerance:g})')
    return 0 if ok else 1
