"""The torch backend's CPU rewrites: forward CPU time with and without them, interleaved.

Four copies of the packaged default model, all BatchNorm-folded and channels_last: plain, with
the CRP pooling rewrite only, with the 1x1-convolutions-through-oneDNN rewrite only, and with
both (what the torch backend runs). Each round runs one forward of each; the table reports
the median CPU time (``time.process_time``: on a machine shared with other jobs, CPU time
stays comparable where wall time does not) and checks that the labels equal the plain model's.

Usage::

    python benchmarks/torch_cpu.py --size 640x480 --threads 1 --rounds 8
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import time

import numpy as np
import torch

from lw_refinenet_ros.data.conveyor import render_conveyor_frame
from lw_refinenet_ros.engine.backends import cpu_description
from lw_refinenet_ros.engine.backends import torch_rewrites as rewrites
from lw_refinenet_ros.model import fold_batchnorm, load_model
from lw_refinenet_ros.reference_pipeline import reference_preprocess
from lw_refinenet_ros.sizes import size_argument


def _variant(base: torch.nn.Module, pool: bool, pointwise: bool) -> torch.nn.Module:
    model = copy.deepcopy(base)
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if pointwise and rewrites._is_pointwise(child):
                parent.register_module(name, rewrites.PointwiseConv(child))
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if pool and isinstance(child, rewrites.CRPBlock):
                parent.register_module(name, rewrites.FastCRPBlock(child))
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--size', default='640x480', type=size_argument,
                        help='WIDTHxHEIGHT (default 640x480)')
    parser.add_argument('--threads', type=int, default=1, help='torch threads (default 1)')
    parser.add_argument('--rounds', type=int, default=8, help='interleaved rounds (default 8)')
    parser.add_argument('--clock', choices=('cpu', 'wall'), default='cpu',
                        help='cpu: process time (default; comparable on a busy machine); '
                             'wall: elapsed time')
    args = parser.parse_args()
    width, height = args.size
    torch.set_num_threads(args.threads)
    model, _ = load_model(None)
    base = fold_batchnorm(model).to(memory_format=torch.channels_last)
    variants = {'plain': base, 'pool': _variant(base, True, False),
                'pointwise': _variant(base, False, True), 'both': _variant(base, True, True)}
    image = render_conveyor_frame(3, (width, height))[0]
    x = torch.from_numpy(reference_preprocess(image)).contiguous(
        memory_format=torch.channels_last)
    times: dict[str, list[float]] = {name: [] for name in variants}
    clock = time.process_time if args.clock == 'cpu' else time.perf_counter
    with torch.inference_mode():
        reference = base(x).argmax(1)
        for name, variant in variants.items():
            assert torch.equal(variant(x).argmax(1), reference), f'{name}: labels differ'
        for _ in range(args.rounds):
            for name, variant in variants.items():
                start = clock()
                variant(x)
                times[name].append((clock() - start) * 1e3)
    print(f'{cpu_description()}; load average {os.getloadavg()[0]:.1f}; torch '
          f'{torch.__version__}, {args.threads} thread(s), {height}x{width}, '
          f'{args.rounds} rounds; labels equal in every variant')
    plain = statistics.median(times['plain'])
    for name, values in times.items():
        median = statistics.median(values)
        print(f'  {name:10s} {median:8.1f} ms {args.clock}  x{plain / median:.2f}  '
              f'(p10 {np.percentile(values, 10):.1f}, p90 {np.percentile(values, 90):.1f})')


if __name__ == '__main__':
    main()
