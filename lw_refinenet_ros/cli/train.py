"""``lw-refinenet train``: train LW-RefineNet (every value a flag).

Values come from, in increasing priority: the reference recipe defaults (``TrainConfig``),
the auto recipe chosen from the data and the time limit
(:mod:`lw_refinenet_ros.training.auto_recipe`; ``--recipe reference`` turns it off; never
for ``conveyor:SEED`` data), a YAML file (``--config``, keys = TrainConfig field names), then
explicit flags.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from pathlib import Path
from typing import Any

# lw_refinenet_ros.data.datasets.LAYOUTS, spelled out so that --help does not import OpenCV.
LAYOUTS = ('auto', 'voc', 'folder', 'cityscapes', 'coco', 'labelme', 'conveyor')

HELP = ('train a model: COCO/LabelMe exports, VOC, folder, Cityscapes or the synthetic '
        'conveyor')


def _floats(text: str) -> tuple[float, ...]:
    return tuple(float(v) for v in text.split(','))


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(v) for v in text.split(','))


def _pair(text: str) -> tuple[float, float]:
    values = _floats(text)
    if len(values) != 2:
        raise argparse.ArgumentTypeError(f'expected MIN,MAX, got {text!r}')
    return values[0], values[1]


def _bool(text: str) -> bool:
    if text.lower() in ('1', 'true', 'yes', 'on'):
        return True
    if text.lower() in ('0', 'false', 'no', 'off'):
        return False
    raise argparse.ArgumentTypeError(f'expected true/false, got {text!r}')


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags; every default is None so that only explicit flags override the YAML config."""
    a = parser.add_argument
    a('--config', help='YAML file with TrainConfig fields (flags override it)')
    a('--recipe', choices=('auto', 'reference'),
      help='auto (default): fine-tuning values chosen from your data and --time-limit for '
      "every value you do not set (not for conveyor:SEED data); reference: the paper's v1 "
      'recipe defaults')
    a('--data', help='dataset: a COCO instances .json (CVAT, Label Studio, Roboflow), a '
      'LabelMe folder, a VOC/folder/Cityscapes folder, or conveyor:SEED')
    a('--layout', choices=LAYOUTS, help='dataset layout (default: auto-detect)')
    a('--images', help='folder holding the images of a COCO/LabelMe --data (default: next '
      'to the annotations)')
    a('--split', help='training split for VOC/Cityscapes (default train)')
    a('--val-data', help='validation data, same forms as --data (conveyor: an unseen seed!)')
    a('--val-layout', choices=LAYOUTS)
    a('--val-images', help='image folder of a COCO/LabelMe --val-data')
    a('--val-split', help='validation split (default val)')
    a('--val-every', type=int, help='validate every N epochs (default 5)')
    a('--val-limit', type=int, help='validate on the first N images only')
    a('--classes', help='class names/colours file (YAML or text)')
    a('--out', help='output folder (default runs/train)')
    a('--arch', choices=('mbv2', 'resnet50', 'resnet101', 'resnet152'), help='default mbv2')
    a('--init-encoder', help='"imagenet": fetch torchvision\'s ImageNet weights for the '
      'encoder (cached, hash-checked; offline it says which URL to fetch and where to put '
      'it), or a torchvision weights file')
    a('--init-weights', help='start from a trained LW-RefineNet file, or "default" for the '
      'packaged conveyor model (fine-tuning); a different class count re-initialises only '
      'the classifier')
    a('--resume', action='store_true', default=None,
      help='continue the run in --out from its resume.pt / last.pt')
    a('--stage-epochs', type=_ints, help='epochs per stage, e.g. 100,100,100')
    a('--epochs', type=int, help='shortcut: one stage of N epochs (uses the first LR)')
    a('--lrs', type=_floats, dest='encoder_lrs',
      help='encoder LR per stage (default 5e-4,2.5e-4,1e-4)')
    a('--decoder-lr-mult', type=float, help='decoder LR = encoder LR x this (default 10)')
    a('--optimizer', choices=('sgd', 'adam'))
    a('--momentum', type=float)
    a('--weight-decay', type=float)
    a('--freeze-bn', type=_bool, help='keep BatchNorm in eval mode (default true)')
    a('--crop-size', type=int, help='square crop (default 500)')
    a('--scale-min', type=float)
    a('--scale-max', type=float)
    a('--min-short-side', type=int, help='raise scale so the short side >= this (0 = off)')
    a('--flip', type=_bool, help='random left/right mirror (default true)')
    a('--vflip', type=_bool, help='random up/down mirror too (default false; the auto recipe '
      'turns it on: a camera looking down on a belt)')
    a('--schedule', choices=('epochs', 'time'),
      help='epochs: stages of --stage-epochs epochs; time: --stage-epochs are shares of '
      '--time-limit (the LR has decayed when the time is up, on any machine)')
    a('--holdout', type=float, help='without --val-data: validate on this share of the '
      'images, a seeded split by image (the auto recipe: 0.12)')
    a('--brightness', type=_pair, help='exposure gain range MIN,MAX, e.g. 0.4,1.6 (default '
      '1,1 = off)')
    a('--contrast', type=_pair, help='contrast factor range MIN,MAX (default 1,1 = off)')
    a('--blur-sigma', type=float, help='max Gaussian defocus sigma, pixels (default 0 = off)')
    a('--noise-sigma', type=float, help='max sensor noise sigma, 0..255 (default 0 = off)')
    a('--photometric-prob', type=float,
      help='probability of each photometric effect (default 0.5)')
    a('--batch-size', type=int)
    a('--workers', type=int)
    a('--device', help='auto | cpu | cuda | cuda:N')
    a('--amp', help='autocast of the training step: auto (default: bf16 on a GPU with bf16, '
      'else fp16 with loss scaling; on a CPU bf16 only where it has avx512_bf16/amx_bf16, '
      'else fp32), off, bf16, fp16 (CUDA); true/false = auto/off')
    a('--compile', choices=('auto', 'on', 'off'), help='torch.compile the network for the '
      'training step (default auto: on CUDA only; falls back to eager if compiling fails)')
    a('--seed', type=int)
    a('--max-steps', type=int, help='stop (resumably) after this many optimiser steps')
    a('--time-limit', type=float, help='stop after this many minutes with the best '
      'validated model in best.pt (resumable)', dest='time_limit_min')
    a('--checkpoint-every', type=int, help='also checkpoint every N steps (0 = epoch ends)')
    a('--epoch-size', type=int, help='frames per epoch for conveyor:SEED data')
    a('--conveyor-size', help='WIDTHxHEIGHT of rendered conveyor frames (default 320x240)')
    a('--half', type=_bool, help='store best.pt weights as fp16')
    a('--grad-clip', type=float)
    a('--boundary-weight', type=float,
      help='loss weight of pixels near an edge between two classes (default 1 = plain '
      'cross-entropy; 2-4 sharpens outlines and thin details)')
    a('--boundary-px', type=int, help='half-width of that edge band in pixels (default 2)')
    a('--threads', type=int, help='torch CPU threads')
    a('--report', type=_bool, help='after training, score best.pt on the validation '
      'images into report.json, report.md and confusion.png in --out (default true)')
    a('--report-int8', type=_bool, help='with the report, also build the int8 model from at '
      'most 64 training images into --out/int8/ and give its mIoU change against fp32 '
      '(default true; false saves its minutes)')
    a('--channels-last', type=_bool, help='NHWC memory format (default true: several times '
      'faster MobileNet-v2 steps on a CPU)')


def build_config(args: argparse.Namespace) -> Any:
    """Merge defaults, the YAML file and explicit flags into a validated TrainConfig."""
    import yaml

    from lw_refinenet_ros.data.conveyor import parse_size
    from lw_refinenet_ros.errors import ConfigError
    from lw_refinenet_ros.training.trainer import TrainConfig

    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    values: dict[str, Any] = {}
    epochs_given = False
    if args.config:
        path = Path(args.config)
        if not path.is_file():
            raise ConfigError(f'--config {path} does not exist.')
        loaded = yaml.safe_load(path.read_text()) or {}
        if not isinstance(loaded, dict):
            raise ConfigError(f'--config {path} must be a YAML mapping of TrainConfig fields.')
        unknown = sorted(set(loaded) - fields)
        if unknown:
            raise ConfigError(f'--config {path}: unknown keys {", ".join(unknown)}; valid keys: '
                              f'{", ".join(sorted(fields))}.')
        values.update(loaded)
    for name, value in vars(args).items():
        if value is None or name.startswith('_') or name in ('config', 'command', 'verbose'):
            continue
        if name == 'epochs':
            values['stage_epochs'] = (value,)
            if 'encoder_lrs' in values:
                values['encoder_lrs'] = (tuple(values['encoder_lrs'])[0],)
            epochs_given = True
            continue
        if name == 'time_limit_min':
            values['time_limit'] = value * 60.0
            continue
        if name == 'conveyor_size':
            values['conveyor_size'] = parse_size(value)
            continue
        if name in fields:
            values[name] = value
    if 'data' not in values:
        raise ConfigError('No training data: pass --data DIR (or conveyor:SEED), or set data: '
                          'in --config.')
    recipe = getattr(args, 'recipe', None) or 'auto'
    if recipe == 'auto':
        from lw_refinenet_ros.training.auto_recipe import apply_recipe

        for line in apply_recipe(values):
            print(f'recipe: {line}')
    if epochs_given and 'encoder_lrs' not in values:
        values['encoder_lrs'] = (TrainConfig.encoder_lrs[0],)
    for key in ('stage_epochs', 'encoder_lrs', 'conveyor_size', 'brightness', 'contrast'):
        if key in values:
            values[key] = tuple(values[key])
    return TrainConfig(**values).validate()


def run(args: argparse.Namespace) -> int:
    from lw_refinenet_ros.training.trainer import train

    config = build_config(args)
    result = train(config)
    if os.environ.get('RANK', '0') != '0':
        return 0  # under torchrun only rank 0 reports
    if result.split is not None:
        print(f'validation: {result.split} (no --val-data: a seeded split by image, listed '
              f'in {result.out / "split.json"})')
    print(f'trained {result.global_step} steps ({result.epochs_done} epochs); best val mIoU '
          f'{result.best_miou:.4f}; checkpoints in {result.out}'
          + (' (stopped early: continue with --resume)' if result.stopped_early else ''))
    _print_report(result.report, result.out)
    return 0


def _print_report(report: dict[str, Any] | None, out: Path) -> None:
    """One or two lines of the evaluation report written next to the checkpoint."""
    if not report:
        return
    if 'miou' not in report:
        print(f'report: {report.get("skipped") or report.get("error")}')
        return
    print(f'report: best.pt mIoU {report["miou"]:.4f} on {report["images"]} validation images '
          f'({out / "report.md"}, confusion.png)')
    int8 = report.get('int8') or {}
    if 'miou_change' in int8 and int8['miou_change'] is not None:
        print(f'int8: {int8["runtime"]} model in {out / "int8"}, mIoU {int8["int8_miou"]:.4f} '
              f'vs fp32 {int8["fp32_miou"]:.4f} at the same {int8["input_size"][0]}x'
              f'{int8["input_size"][1]} input ({int8["miou_change"]:+.4f})')
    else:
        print(f'int8: not built ({int8.get("skipped") or int8.get("error")})')
