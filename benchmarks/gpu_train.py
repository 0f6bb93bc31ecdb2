"""Time CUDA training steps of LW-RefineNet (MobileNet-v2): fp32, AMP, AMP + torch.compile.

    python benchmarks/gpu_train.py --out DIR [--device cuda] [--crop 320] [--batch 6]
        [--steps 20] [--warmup 5] [--deadline-s 60]

Each row runs the step ``lw-refinenet train`` runs (training/precision.py's autocast and
loss scaling, training/loss.py's loss, Adam) on random images and labels, ``--warmup``
untimed steps first (a compiled row's first step compiles: its time is reported apart),
then ``--steps`` timed ones (CUDA-synchronised). Rows, in order: ``fp32`` (eager, TF32
off: the reference), ``amp`` (``--amp auto``: bf16 on a GPU with bf16, else fp16 + loss
scaling), ``amp_compile`` (the same with ``--compile on``). A row that cannot run here, or
that would not finish before ``--deadline-s``, is ``not run`` with the reason; without CUDA
every row is (the CPU rehearsal of benchmarks/device_check.sh). ``gpu_train.json`` is
rewritten after every row. Imports only torch and the package's model and training step
modules (the GPU machine has no training extras).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
import statistics
import sys
import time
from typing import Any

ROWS = (('fp32', 'off', 'off'), ('amp', 'auto', 'off'), ('amp_compile', 'auto', 'on'))
NUM_CLASSES = 6


def _row(mode: str, amp: str, compile_choice: str, device: str, args: argparse.Namespace,
         loss_values: list[float]) -> dict[str, Any]:
    import torch

    from lw_refinenet_ros.model import build_model
    from lw_refinenet_ros.training.loss import segmentation_loss
    from lw_refinenet_ros.training.precision import choose_precision, forward_for, make_scaler

    torch.manual_seed(0)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    model = build_model('mbv2', NUM_CLASSES).to(device, memory_format=torch.channels_last)
    model.train()
    chosen = choose_precision(amp, 'cuda')
    scaler = make_scaler(chosen, 'cuda')
    forward = forward_for(model, compile_choice, 'cuda')
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    generator = torch.Generator(device='cpu').manual_seed(1)
    images = torch.randn(args.batch, 3, args.crop, args.crop, generator=generator)
    images = images.to(device, memory_format=torch.channels_last)
    labels = torch.randint(0, NUM_CLASSES, (args.batch, args.crop, args.crop),
                           generator=generator).to(device)

    def step() -> float:
        with torch.autocast('cuda', dtype=chosen.dtype or torch.float32,
                            enabled=chosen.dtype is not None):
            logits = forward(images)
        logits = torch.nn.functional.interpolate(logits.float(), size=labels.shape[-2:],
                                                 mode='bilinear', align_corners=False)
        loss = segmentation_loss(logits, labels, 1.0, 0)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        return float(loss.detach())

    began = time.perf_counter()
    first = step()
    torch.cuda.synchronize()
    first_s = time.perf_counter() - began
    for _ in range(max(0, args.warmup - 1)):
        step()
    torch.cuda.synchronize()
    times = []
    last = first
    for _ in range(args.steps):
        began = time.perf_counter()
        last = step()
        torch.cuda.synchronize()
        times.append((time.perf_counter() - began) * 1000.0)
    loss_values.append(last)
    compiled = forward is not model and getattr(forward, '_compiled', None) is not None
    return {'mode': mode, 'status': 'ok', 'amp': chosen.name, 'reason': chosen.reason,
            'loss_scaling': chosen.scaled, 'compile': compiled,
            'compile_requested': compile_choice == 'on', 'batch': args.batch,
            'crop': args.crop, 'steps': args.steps, 'first_step_s': round(first_s, 3),
            'p50_ms': round(statistics.median(times), 3),
            'mean_ms': round(statistics.fmean(times), 3),
            'images_per_s': round(args.batch * 1000.0 / statistics.median(times), 1),
            'first_loss': round(first, 4), 'last_loss': round(last, 4),
            'peak_memory_mib': round(torch.cuda.max_memory_allocated() / 2 ** 20, 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--device', default='cuda', help='cuda, cuda:N, or cpu (rehearsal)')
    parser.add_argument('--crop', type=int, default=320, help='square crop (default 320)')
    parser.add_argument('--batch', type=int, default=6, help='batch size (default 6)')
    parser.add_argument('--steps', type=int, default=20, help='timed steps per row')
    parser.add_argument('--warmup', type=int, default=5, help='untimed steps per row first')
    parser.add_argument('--deadline-s', type=float, default=60.0,
                        help='rows that would start after this many seconds are not run')
    parser.add_argument('--out', required=True, type=Path, help='folder for gpu_train.json')
    args = parser.parse_args()
    if args.steps < 1 or args.warmup < 1 or args.crop < 32 or args.batch < 1:
        parser.error('--steps and --warmup must be >= 1, --crop >= 32, --batch >= 1')
    began = time.perf_counter()
    import torch

    args.out.mkdir(parents=True, exist_ok=True)
    cuda = args.device.startswith('cuda') and torch.cuda.is_available()
    report: dict[str, Any] = {
        'device': torch.cuda.get_device_name(args.device) if cuda else
        f'no CUDA (device {args.device})', 'torch': torch.__version__, 'rows': []}

    def save() -> None:
        report['seconds'] = round(time.perf_counter() - began, 1)
        (args.out / 'gpu_train.json').write_text(json.dumps(report, indent=1) + '\n')

    losses: list[float] = []
    slowest = 0.0
    for mode, amp, compile_choice in ROWS:
        started = time.perf_counter()
        if not cuda:
            row = {'mode': mode, 'status': 'not run',
                   'reason': 'no CUDA here: training steps are timed on a GPU only'}
        elif started - began + slowest > args.deadline_s:
            row = {'mode': mode, 'status': 'not run',
                   'reason': f'would not finish within --deadline-s {args.deadline_s:.0f}'}
        else:
            try:
                row = _row(mode, amp, compile_choice, args.device, args, losses)
            except Exception as error:  # noqa: BLE001 - one failed row keeps the others
                row = {'mode': mode, 'status': 'error',
                       'error': f'{type(error).__name__}: {str(error)[:300]}'}
            finally:
                if cuda:
                    torch.cuda.empty_cache()
                    torch.cuda.reset_peak_memory_stats()
            slowest = max(slowest, time.perf_counter() - started)
        report['rows'].append(row)
        save()
        if row['status'] == 'ok':
            print(f'{mode}: {row["amp"]}{" + compile" if row["compile"] else ""}; p50 '
                  f'{row["p50_ms"]:.1f} ms/step ({row["images_per_s"]} images/s), first step '
                  f'{row["first_step_s"]:.1f} s, loss {row["first_loss"]} -> '
                  f'{row["last_loss"]}', flush=True)
        else:
            print(f'{mode}: {row["status"]}: {row.get("reason") or row.get("error")}',
                  flush=True)
    save()
    return 0


if __name__ == '__main__':
    sys.exit(main())
