"""The one-command fine-tuning recipe: training values chosen from the data and the budget.

``lw-refinenet train --data PATH --out DIR [--time-limit MIN]`` on a user's own labelled
images (COCO, LabelMe, folder, VOC, Cityscapes; not the on-the-fly ``conveyor:SEED``, which
keeps the reference values) fills every value the user did not set:

* **start**: the packaged conveyor model (its belt, edge and lighting features transfer;
  only the classifier is new), or the ImageNet encoder when ``--init-encoder`` is given;
* **learning rates**: Adam, fine-tuning rates for a trained model, a faster decoder for a
  fresh one; three stages at 1, 0.4 and 0.1 of the rate (fresh optimiser per stage);
* **schedule**: with ``--time-limit``, the stages take 50/30/20 % of the *time* (so the
  rate has decayed when the time is up whatever the machine's speed, and the run ends with
  its best validated model); without, a number of steps from the dataset's size;
* **crop** from the image size (a power-of-two-friendly 80 % of the short side, 128..320 px
  on a CPU, up to 512 on a GPU); batch 8 on a CPU, 16 on a GPU;
* **augmentation for a fixed camera over a belt**: little scale change (x0.8-1.25: the
  camera does not move), both mirrors (seen from above, up/down and left/right are alike),
  and moderate camera changes (exposure, contrast, defocus, noise);
* **validation**: ``--val-data`` when given, else a seeded split by image (12 %, at least
  one image), reported and written to ``split.json``.

:func:`choose_recipe` is pure (tested on small and large datasets); :func:`apply_recipe`
merges it under the user's explicit values.
"""

from __future__ import annotations

from dataclasses import dataclass
import math
from pathlib import Path
from typing import Any, Mapping

#: Share of the images held out for validation when no validation data is given.
HOLDOUT_FRACTION = 0.12
#: A dataset from this many images on counts as large (shorter schedule per image).
LARGE_DATASET = 300
#: Validate about every this many steps.
VALIDATE_EVERY_STEPS = 50
#: Stage weights (share of the schedule) and LR factors.
STAGE_WEIGHTS = (5, 3, 2)
STAGE_LR_FACTORS = (1.0, 0.4, 0.1)


@dataclass(frozen=True)
class DataSummary:
    """What the recipe needs to know about the training data."""

    images: int
    size: tuple[int, int]  # median (width, height)
    num_classes: int


def summarize(dataset: Any, limit: int = 200) -> DataSummary:
    """Count, median image size and classes of a dataset (sizes from the annotations or the
    image headers of the first ``limit`` images; no pixels are decoded)."""
    import numpy as np

    sizes: list[tuple[int, int]] = []
    if callable(getattr(dataset, 'image_sizes', None)):
        sizes = list(dataset.image_sizes())[:limit]
    else:
        from lw_refinenet_ros.data.annotated import image_size

        for image_path, _ in getattr(dataset, 'pairs', [])[:limit]:
            size = image_size(Path(image_path))
            if size is not None:
                sizes.append(size)
    if sizes:
        width = int(np.median([s[0] for s in sizes]))
        height = int(np.median([s[1] for s in sizes]))
    else:
        width, height = 320, 240
    return DataSummary(len(dataset), (width, height), dataset.num_classes)


def choose_recipe(summary: DataSummary, *, time_limit_s: float | None, cuda: bool,
                  start: str) -> tuple[dict[str, Any], list[str]]:
    """TrainConfig values for ``summary`` and a line of reasons for each choice.

    Args:
        summary: The training data.
        time_limit_s: The time budget (None: a schedule in steps from the data size).
        cuda: Training on a GPU (larger crops and batches).
        start: ``'packaged'`` (the packaged model), ``'checkpoint'`` (the user's trained
            model), ``'imagenet'`` (an ImageNet encoder, fresh decoder) or ``'scratch'``.
    """
    values: dict[str, Any] = {}
    reasons: list[str] = []
    if start == 'packaged':
        values['init_weights'] = 'default'
    fresh_decoder = start in ('imagenet', 'scratch')
    lr = {'packaged': 4e-4, 'checkpoint': 2e-4, 'imagenet': 3e-4, 'scratch': 1e-3}[start]
    values.update(optimizer='adam', decoder_lr_mult=5.0 if start == 'imagenet' else 1.0,
                  weight_decay=1e-5, grad_clip=10.0, freeze_bn=False,
                  encoder_lrs=tuple(lr * f for f in STAGE_LR_FACTORS))
    origin = {'packaged': 'the packaged conveyor model (a new classifier for your classes)',
              'checkpoint': 'your model (--init-weights)',
              'imagenet': 'the ImageNet encoder (--init-encoder), a fresh decoder',
              'scratch': 'scratch'}[start]
    reasons.append(f'start: {origin}; Adam, encoder LR {lr:g} -> {lr * STAGE_LR_FACTORS[-1]:g} in '
                   f'{len(STAGE_LR_FACTORS)} stages'
                   + (f', decoder x{values["decoder_lr_mult"]:g}' if fresh_decoder else ''))
    width, height = summary.size
    short = min(width, height)
    train_images = summary.images - max(1, round(summary.images * HOLDOUT_FRACTION))
    batch = max(1, min(16 if cuda else 8, train_images))
    crop = int(max(128, min(512 if cuda else 320, (short * 0.8) // 32 * 32)))
    # One loader process reads and augments the next batch while the CPU trains on this one.
    values.update(crop_size=crop, batch_size=batch, workers=4 if cuda else 1,
                  scale_min=0.8, scale_max=1.25,
                  min_short_side=0, flip=True, vflip=True, brightness=(0.6, 1.5),
                  contrast=(0.8, 1.2), blur_sigma=1.5, noise_sigma=8.0, photometric_prob=0.4)
    reasons.append(f'crops {crop}x{crop} of {width}x{height} images, batch {batch}; fixed '
                   f'camera: scale x0.8-1.25, both mirrors, exposure x0.6-1.5, contrast, '
                   f'defocus <= 1.5 px, noise <= 8')
    steps_per_epoch = max(1, train_images // batch)
    large = summary.images >= LARGE_DATASET
    if time_limit_s is not None:
        values.update(schedule='time', stage_epochs=STAGE_WEIGHTS)
        reasons.append(f'schedule: the {time_limit_s / 60:g} min budget split '
                       f'{"/".join(str(w * 10) for w in STAGE_WEIGHTS)} % between the stages; '
                       f'ends with the best validated model')
    else:
        steps = min(8000, max(1500, 10 * steps_per_epoch)) if large else 1500
        epochs = max(len(STAGE_WEIGHTS), math.ceil(steps / steps_per_epoch))
        total = sum(STAGE_WEIGHTS)
        stage_epochs = [max(1, round(epochs * w / total)) for w in STAGE_WEIGHTS]
        values.update(schedule='epochs', stage_epochs=tuple(stage_epochs))
        reasons.append(f'schedule: {sum(stage_epochs)} epochs of {steps_per_epoch} steps '
                       f'({"large" if large else "small"} dataset, {summary.images} images)')
    values['val_every'] = max(1, round(VALIDATE_EVERY_STEPS / steps_per_epoch))
    values['holdout'] = HOLDOUT_FRACTION
    return values, reasons


def recipe_start(values: Mapping[str, Any]) -> str:
    """Where the user's values say training starts (see :func:`choose_recipe`)."""
    if values.get('init_encoder'):
        return 'imagenet'
    if values.get('init_weights') not in (None, 'default'):
        return 'checkpoint'
    return 'packaged'


def uses_recipe(values: Mapping[str, Any]) -> bool:
    """True for data the recipe is for (files the user labelled, not ``conveyor:SEED``).

    A resumed run applies it too: the choice depends only on the data and the flags, so
    the same command with ``--resume`` continues with the same values."""
    data = str(values.get('data', ''))
    layout = values.get('layout', 'auto')
    return not data.startswith('conveyor:') and layout != 'conveyor'


def apply_recipe(values: dict[str, Any]) -> list[str]:
    """Fill ``values`` (explicit TrainConfig values) with the recipe's choices for the
    fields the user left unset; returns the reasons (empty when the recipe does not apply).

    Raises:
        ConfigError: The data cannot be opened (the message names the file and the fix).
    """
    if not uses_recipe(values):
        return []
    import torch

    from lw_refinenet_ros.data.datasets import open_dataset

    dataset = open_dataset(values['data'], values.get('layout', 'auto'),
                           values.get('split', 'train'), classes=values.get('classes'),
                           images=values.get('images'))
    device = str(values.get('device', 'auto'))
    cuda = device.startswith('cuda') or (device == 'auto' and torch.cuda.is_available())
    chosen, reasons = choose_recipe(summarize(dataset), time_limit_s=values.get('time_limit'),
                                    cuda=cuda, start=recipe_start(values))
    if values.get('val_data') is not None:
        chosen.pop('holdout')
    kept = sorted(k for k in chosen if k in values)
    for key, value in chosen.items():
        values.setdefault(key, value)
    if 'stage_epochs' in kept:
        # The user's epochs: an epoch schedule, with one of the recipe's rates per stage
        # unless the user gave rates too.
        values['schedule'] = values.get('schedule') if 'schedule' in kept else 'epochs'
        if 'encoder_lrs' not in kept:
            lrs = chosen['encoder_lrs']
            values['encoder_lrs'] = tuple(lrs[min(i, len(lrs) - 1)]
                                          for i in range(len(values['stage_epochs'])))
    elif 'encoder_lrs' in kept:
        # The user's rates: as many stages, with the recipe's share of the schedule each.
        weights = chosen['stage_epochs']
        values['stage_epochs'] = tuple(weights[min(i, len(weights) - 1)]
                                       for i in range(len(values['encoder_lrs'])))
    if kept:
        reasons.append(f'kept your values for: {", ".join(kept)}')
    return reasons
