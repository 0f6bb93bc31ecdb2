"""``lw-refinenet export``: ONNX export (TorchScript exporter, opset 17) with an optional check.

The graph takes ImageNet-normalised RGB ``image`` (N, 3, H, W) float32 and returns stride-4
``logits`` (N, K, ceil(H/4), ceil(W/4)); pre- and post-processing (architecture doc section 6)
stay outside, as in the engine. ``--dynamic`` makes N, H and W symbolic.
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


def build_for_export(arch: str | None, num_classes: int | None, weights: str | None,
                     seed: int):
    """The fp32 CPU eval model to export (loaded, or seeded random)."""
    import torch

    from lw_refinenet_ros.model import build_model, load_model

    if weights:
        model, _ = load_model(weights, arch=arch, num_classes=num_classes)
        return model.eval()
    torch.manual_seed(seed)
    return build_model(arch or 'mbv2', num_classes or 21).eval()


def export_onnx(model, path: str, height: int, width: int, *, dynamic: bool = False,
                opset: int = 17) -> None:
    """Export ``model`` with the TorchScript exporter (``dynamo=False``)."""
    import warnings

    import torch

    from lw_refinenet_ros.errors import ConfigError

    if opset < 11:
        raise ConfigError(f'--opset {opset} is too old: Resize with align_corners needs >= 11.')
    x = torch.zeros(1, 3, height, width)
    axes = None
    if dynamic:
        axes = {'image': {0: 'batch', 2: 'height', 3: 'width'},
                'logits': {0: 'batch', 2: 'height_4', 3: 'width_4'}}
    with torch.no_grad(), warnings.catch_warnings():
        # The TorchScript exporter is chosen on purpose (architecture doc section 10): it
        # exports these models cleanly; silence its deprecation notice.
        warnings.filterwarnings('ignore', category=DeprecationWarning)
        torch.onnx.export(model, (x,), path, dynamo=False, opset_version=opset,
                          input_names=['image'], output_names=['logits'], dynamic_axes=axes,
                          do_constant_folding=True)


def check_onnx(model, path: str, sizes: list[tuple[int, int]], seed: int = 0) -> float:
    """Max |ONNX Runtime - PyTorch| over random inputs of the given sizes."""
    import numpy as np
    import onnxruntime
    import torch

    session = onnxruntime.InferenceSession(path, providers=['CPUExecutionProvider'])
    rng = np.random.default_rng(seed)
    worst = 0.0
    for height, width in sizes:
        x = rng.standard_normal((1, 3, height, width)).astype(np.float32)
        (ort,) = session.run(['logits'], {'image': x})
        with torch.no_grad():
            ref = model(torch.from_numpy(x)).numpy()
        if ort.shape != ref.shape:
            raise AssertionError(f'ONNX output {ort.shape} != PyTorch {ref.shape}')
        worst = max(worst, float(np.abs(ort - ref).max()))
    return worst


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

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
