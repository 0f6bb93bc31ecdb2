"""Per-frame time of every runtime and precision, plus the bare OpenVINO script, in one run.

What docs/benchmarks.md's speed table is made from: for each size, the whole engine (preprocess,
forward, bicubic upsample, argmax: what ``lw-refinenet segment`` does per frame) with torch
fp32, OpenVINO fp32/bf16/int8 and ONNX Runtime fp32, and the ~30-line hand-written OpenVINO
script of ``benchmarks/bare_openvino.py`` at f32 and bf16, all timed interleaved (one frame
each per round) on the same conveyor frame, with label agreement against torch fp32. int8 is
calibrated on generated conveyor frames of another seed. Usage::

    python benchmarks/backends.py --sizes 640x480 320x240 --iters 20 --out /tmp/backends.json
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import bare_openvino  # noqa: E402  (the sibling script, imported as a module)

from lw_refinenet_ros.engine.config import EngineConfig  # noqa: E402
from lw_refinenet_ros.sizes import size_argument  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--weights', help='checkpoint (default: the packaged model)')
    parser.add_argument('--sizes', nargs='+', type=size_argument, default=[(640, 480), (320, 240)],
                        metavar='WIDTHxHEIGHT', help='frame sizes (default 640x480 320x240)')
    parser.add_argument('--iters', type=int, default=20)
    parser.add_argument('--warmup', type=int, default=2)
    parser.add_argument('--threads', type=int, default=1,
                        help='threads for every runtime (default 1: a shared 2-core machine)')
    parser.add_argument('--calibration-frames', type=int, default=64)
    parser.add_argument('--no-int8', action='store_true')
    parser.add_argument('--cache-dir', default='', help='runtime cache (default: a temp dir)')
    parser.add_argument('--out', '--json', dest='out', help='JSON results')
    parser.add_argument('--quick', action='store_true',
                        help='320x240 only, 5 frames, 16 calibration frames (a smoke test of '
                             'this script, as in benchmarks/run_all.sh --quick)')
    args = parser.parse_args()
    if args.quick:
        args.sizes, args.iters, args.calibration_frames = [(320, 240)], 5, 16

    import torch

    from lw_refinenet_ros.bench.compare import (
        backend_candidates,
        compare_backends,
        format_backend_table,
    )
    from lw_refinenet_ros.bench.timing import bench_metadata
    from lw_refinenet_ros.data.conveyor import write_conveyor_dataset
    from lw_refinenet_ros.engine.backends import cpu_description
    from lw_refinenet_ros.engine.export import export_onnx
    from lw_refinenet_ros.segmenter import Segmenter

    torch.set_num_threads(args.threads)
    model = Segmenter.load(args.weights, lazy=True).model  # engines: compare_backends
    work = Path(tempfile.mkdtemp(prefix='lwrf-backends-'))
    cache_dir = args.cache_dir or str(work / 'cache')
    print(f'CPU: {cpu_description()}; load {os.getloadavg()}', flush=True)
    rows = []
    for width, height in args.sizes:
        calibration = ''
        if not args.no_int8:
            calibration = str(work / f'calibration_{height}x{width}')
            write_conveyor_dataset(calibration, args.calibration_frames, 8100, (width, height),
                                   instances=False)
        pairs, missing = backend_candidates(['all'], 'cpu', None, bool(calibration))
        onnx = work / f'model_{height}x{width}.onnx'
        export_onnx(model, onnx, height, width)
        extra = {}
        for hint in ('f32', 'bf16'):
            compiled = bare_openvino.compile_bare(str(onnx), hint, args.threads)
            extra[f'bare-openvino/{hint}'] = (
                lambda c: lambda rgb: bare_openvino.segment_bare(c, rgb[:, :, ::-1]))(compiled)
        base = EngineConfig(device='cpu', num_threads=args.threads, cache_dir=cache_dir,
                            calibration_dir=calibration, warmup_size=(height, width))
        rows.extend(compare_backends(model, base, pairs, iters=args.iters,
                                     warmup=args.warmup, seed=0, extra=extra))
        print(format_backend_table(rows[-len(pairs) - len(extra):]), flush=True)
    print(format_backend_table(rows))
    if args.out:
        meta = bench_metadata(args.weights or 'the packaged default model')
        meta['threads'] = args.threads
        meta['command'] = ' '.join(sys.argv)
        with open(args.out, 'w', encoding='utf-8') as handle:
            json.dump({'meta': meta, 'unavailable': missing, 'results': rows}, handle,
                      indent=2, default=str)
        print(f'wrote {args.out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
