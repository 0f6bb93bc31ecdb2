"""Where one CPU training step goes: data (read + draw the labels + augment) and the
forward/backward/optimiser passes, in NCHW and in channels_last (NHWC), interleaved.

Usage (repository root):
    .venv/bin/python benchmarks/train_step.py --data DATA [--crop 192] [--batch 8]
        [--threads 2] [--rounds 5] [--json out.json]

DATA is anything ``lw-refinenet train --data`` reads (a COCO file, a folder, ...). The
model is the packaged one with a fresh classifier for the data's classes, as the one-command
recipe fine-tunes it; augmentation is the recipe's. Each round times one step of each
memory format (first round dropped: one-off kernel creation); medians are reported.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--data', required=True)
    parser.add_argument('--crop', type=int, default=192)
    parser.add_argument('--batch', type=int, default=8)
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--rounds', type=int, default=5)
    parser.add_argument('--json')
    args = parser.parse_args()

    import numpy as np
    import torch
    import torch.nn.functional as F

    from lw_refinenet_ros.data.datasets import open_dataset
    from lw_refinenet_ros.model import DEFAULT_MODEL_PATH, build_model, init_from_checkpoint
    from lw_refinenet_ros.training.loss import segmentation_loss
    from lw_refinenet_ros.training.transforms import PhotometricJitter, TrainTransform

    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)
    dataset = open_dataset(args.data)
    transform = TrainTransform(crop_size=args.crop, scale_min=0.8, scale_max=1.25,
                               min_short_side=0, vflip=True,
                               photometric=PhotometricJitter((0.6, 1.5), (0.8, 1.2), 1.5, 8.0,
                                                             0.4))
    rng = np.random.default_rng(0)
    models = {}
    for name, fmt in (('nchw', torch.contiguous_format), ('channels_last', torch.channels_last)):
        model = build_model('mbv2', dataset.num_classes)
        init_from_checkpoint(model, DEFAULT_MODEL_PATH)
        model.train().to(memory_format=fmt)
        models[name] = (model, torch.optim.Adam(model.parameters(), 1e-4), fmt)
    times: dict[str, list[float]] = {'data': [], 'nchw': [], 'channels_last': []}
    for round_index in range(args.rounds + 1):
        start = time.perf_counter()
        indices = rng.integers(0, len(dataset), args.batch)
        items = [transform(*dataset[int(i)], rng) for i in indices]
        images = torch.from_numpy(np.stack([x for x, _ in items]))
        labels = torch.from_numpy(np.stack([y for _, y in items]))
        data_s = time.perf_counter() - start
        for name, (model, optimizer, fmt) in models.items():
            start = time.perf_counter()
            logits = model(images.contiguous(memory_format=fmt))
            logits = F.interpolate(logits, size=labels.shape[-2:], mode='bilinear',
                                   align_corners=False)
            loss = segmentation_loss(logits, labels, 1.0, 2)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if round_index:
                times[name].append(time.perf_counter() - start)
        if round_index:
            times['data'].append(data_s)
    result = {name: statistics.median(values) for name, values in times.items()}
    result.update(crop=args.crop, batch=args.batch, threads=args.threads, rounds=args.rounds)
    print(f'crop {args.crop}, batch {args.batch}, {args.threads} threads, median of '
          f'{args.rounds}: data {result["data"]:.2f} s, step NCHW {result["nchw"]:.2f} s, '
          f'step channels_last {result["channels_last"]:.2f} s')
    if args.json:
        with open(args.json, 'w') as stream:
            json.dump(result, stream, indent=1)
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
