"""Training loop following the reference recipe (architecture notes, section 9).

Defaults reproduce the v1 recipe: 3 stages, encoder LRs 5e-4 / 2.5e-4 / 1e-4 with the decoder
at 10x, SGD (momentum 0.9, weight decay 1e-5) with the optimisers *re-created at every stage*
(v1 behaviour; momentum restarts, which the v2 MultiStepLR variant does not do), BatchNorm
frozen in eval mode, random scale 0.5-2.0 / pad / mirror / crop, cross-entropy (ignore 255) on
logits bilinearly upsampled to the label size. Every value is a :class:`TrainConfig` field.

Outputs in ``out``: ``last.pt`` and ``best.pt`` (project checkpoint format, loadable by
``lw_refinenet_ros.model.load_model``), ``resume.pt`` (optimiser/scaler/progress state for
``--resume``), ``history.json``, ``curves.png`` (loss and mIoU) and ``train.log``.

Multi-GPU: launch with ``torchrun --nproc_per_node N -m lw_refinenet_ros.cli train ...``;
when ``WORLD_SIZE > 1`` the process group is initialised from the environment, the model is
wrapped in DistributedDataParallel and each rank reads its DistributedSampler share.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
import json
import logging
import math
import os
from pathlib import Path
import re
import sys
import time
from typing import Any

import numpy as np
import torch
from torch import nn
import torch.nn.functional as F

from lw_refinenet_ros.data.datasets import open_dataset
from lw_refinenet_ros.errors import ConfigError
from lw_refinenet_ros.training.evaluate import evaluate_model
from lw_refinenet_ros.training.transforms import IGNORE_INDEX, PhotometricJitter, TrainTransform

_LOG = logging.getLogger(__name__)

# Reference v1 split: these names are the encoder (ResNet conv1/bn1/layerN, mbv2 layerN).
ENCODER_REGEX = r'.*conv1.*|.*bn1.*|.*layer.*'
RESUME_FILE = 'resume.pt'


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run needs; the CLI fills it from flags and an optional YAML.

    Attributes mirror the reference recipe; see the module docstring.
    """

    data: str
    out: str = 'runs/train'
    layout: str = 'auto'
    split: str = 'train'
    val_data: str | None = None
    val_layout: str = 'auto'
    val_split: str = 'val'
    classes: str | None = None
    arch: str = 'mbv2'
    init_encoder: str | None = None
    init_weights: str | None = None
    resume: bool = False
    stage_epochs: tuple[int, ...] = (100, 100, 100)
    encoder_lrs: tuple[float, ...] = (5e-4, 2.5e-4, 1e-4)
    decoder_lr_mult: float = 10.0
    optimizer: str = 'sgd'
    momentum: float = 0.9
    weight_decay: float = 1e-5
    freeze_bn: bool = True
    crop_size: int = 500
    scale_min: float = 0.5
    scale_max: float = 2.0
    min_short_side: int = 350
    flip: bool = True
    brightness: tuple[float, float] = (1.0, 1.0)
    contrast: tuple[float, float] = (1.0, 1.0)
    blur_sigma: float = 0.0
    noise_sigma: float = 0.0
    photometric_prob: float = 0.5
    batch_size: int = 6
    workers: int = 2
    device: str = 'auto'
    amp: bool = True
    val_every: int = 5
    val_limit: int | None = None
    seed: int = 42
    max_steps: int | None = None
    time_limit: float | None = None
    checkpoint_every: int = 0
    epoch_size: int = 1000
    conveyor_size: tuple[int, int] = (320, 240)
    half: bool = False
    grad_clip: float | None = None
    threads: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> TrainConfig:
        """Check values; raises ConfigError naming the field and the fix."""
        if not self.stage_epochs or any(e < 0 for e in self.stage_epochs):
            raise ConfigError(f'stage_epochs must be non-negative integers, got '
                              f'{self.stage_epochs}.')
        if len(self.encoder_lrs) != len(self.stage_epochs):
            raise ConfigError(f'{len(self.encoder_lrs)} learning rates for '
                              f'{len(self.stage_epochs)} stages; give one per stage '
                              f'(--lrs 5e-4,2.5e-4,1e-4 with --stage-epochs 100,100,100).')
        if self.optimizer not in ('sgd', 'adam'):
            raise ConfigError(f'optimizer must be sgd or adam, got {self.optimizer!r}.')
        if self.device not in ('auto', 'cpu', 'cuda') and not self.device.startswith('cuda:'):
            raise ConfigError(f'device must be auto, cpu, cuda or cuda:N, got {self.device!r}.')
        for name in ('crop_size', 'batch_size', 'val_every', 'epoch_size'):
            if getattr(self, name) < 1:
                raise ConfigError(f'{name} must be >= 1, got {getattr(self, name)}.')
        if not 0 < self.scale_min <= self.scale_max:
            raise ConfigError(f'Need 0 < scale_min <= scale_max, got {self.scale_min}, '
                              f'{self.scale_max}.')
        if self.workers < 0:
            raise ConfigError(f'workers must be >= 0, got {self.workers}.')
        if self.init_encoder and self.init_weights:
            raise ConfigError('Give --init-encoder (ImageNet encoder only) or --init-weights '
                              '(a whole trained model), not both.')
        try:
            self.photometric()
        except ValueError as error:
            raise ConfigError(f'Photometric augmentation: {error}') from None
        return self

    def photometric(self) -> PhotometricJitter | None:
        """The camera-change augmentation these fields describe (None when all are off)."""
        jitter = PhotometricJitter(brightness=tuple(self.brightness),
                                   contrast=tuple(self.contrast), blur_sigma=self.blur_sigma,
                                   noise_sigma=self.noise_sigma, prob=self.photometric_prob)
        return jitter if jitter.enabled else None


@dataclass
class TrainResult:
    """What a run produced."""

    out: Path
    epochs_done: int
    global_step: int
    best_miou: float
    last_loss: float
    stopped_early: bool


class _TrainSet:
    """Dataset wrapper applying the augmentation with a per-(seed, epoch, index) generator."""

    def __init__(self, dataset: Any, transform: TrainTransform, seed: int) -> None:
        self.dataset = dataset
        self.transform = transform
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        if hasattr(self.dataset, 'epoch'):
            self.dataset.epoch = epoch

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        image, labels = self.dataset[index]
        rng = np.random.default_rng((self.seed, self.epoch, int(index)))
        return self.transform(image, labels, rng)


def _dist_info() -> tuple[bool, int, int, int]:
    world = int(os.environ.get('WORLD_SIZE', '1'))
    if world <= 1:
        return False, 0, 1, 0
    return True, int(os.environ.get('RANK', '0')), world, int(os.environ.get('LOCAL_RANK', '0'))


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """'auto' -> CUDA when available, else CPU; raises ConfigError for CUDA without CUDA."""
    if name == 'auto':
        name = 'cuda' if torch.cuda.is_available() else 'cpu'
    if name.startswith('cuda'):
        if not torch.cuda.is_available():
            raise ConfigError(f'device={name!r} but CUDA is not available; use --device cpu.')
        if name == 'cuda':
            name = f'cuda:{local_rank}'
    return torch.device(name)


def freeze_batchnorm(model: nn.Module) -> None:
    """Keep every BatchNorm in eval mode (running statistics fixed), as the reference does."""
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.eval()


def split_parameters(model: nn.Module) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    """(encoder, decoder) parameters by the reference regex on parameter names."""
    pattern = re.compile(ENCODER_REGEX)
    encoder, decoder = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        (encoder if pattern.match(name) else decoder).append(param)
    return encoder, decoder


def make_optimizer(model: nn.Module, config: TrainConfig, stage: int) -> torch.optim.Optimizer:
    """The stage's optimiser: encoder group at ``encoder_lrs[stage]``, decoder at x mult."""
    encoder, decoder = split_parameters(model)
    lr = config.encoder_lrs[stage]
    groups = [{'params': encoder, 'lr': lr, 'name': 'encoder'},
              {'params': decoder, 'lr': lr * config.decoder_lr_mult, 'name': 'decoder'}]
    if config.optimizer == 'adam':
        return torch.optim.Adam(groups, lr=lr, weight_decay=config.weight_decay)
    return torch.optim.SGD(groups, lr=lr, momentum=config.momentum,
                           weight_decay=config.weight_decay)


def stage_of(epoch: int, stage_epochs: tuple[int, ...]) -> int:
    """Index of the stage an epoch belongs to (the last stage absorbs any overflow)."""
    end = 0
    for stage, count in enumerate(stage_epochs):
        end += count
        if epoch < end:
            return stage
    return len(stage_epochs) - 1


def _setup_file_log(out: Path) -> logging.Handler:
    handler = logging.FileHandler(out / 'train.log')
    handler.setFormatter(logging.Formatter('%(asctime)s %(levelname)s %(name)s: %(message)s'))
    logger = logging.getLogger('lw_refinenet_ros')
    logger.addHandler(handler)
    if logger.getEffectiveLevel() > logging.INFO:
        logger.setLevel(logging.INFO)
    return handler


def plot_history(history: dict[str, list], path: Path) -> None:
    """Loss (per epoch and per logged step) and validation mIoU curves as a PNG."""
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    fig, (ax_loss, ax_miou) = plt.subplots(1, 2, figsize=(10, 4))
    if history.get('steps'):
        steps, losses = zip(*history['steps'])
        ax_loss.plot(steps, losses, alpha=0.4, label='train loss (logged steps)')
    if history.get('epochs'):
        ax_loss.plot([e['step'] for e in history['epochs']],
                     [e['loss'] for e in history['epochs']], 'o-', label='train loss (epoch)')
    ax_loss.set_xlabel('step')
    ax_loss.set_ylabel('cross-entropy')
    ax_loss.set_yscale('log')
    ax_loss.legend()
    val = history.get('val') or []
    if val:
        ax_miou.plot([v['step'] for v in val], [v['miou'] for v in val], 's-', color='C2')
    ax_miou.set_xlabel('step')
    ax_miou.set_ylabel('validation mIoU')
    ax_miou.set_ylim(0, 1)
    ax_miou.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _open_sets(config: TrainConfig) -> tuple[Any, Any | None]:
    train_set = open_dataset(config.data, config.layout, config.split, classes=config.classes,
                             conveyor_length=config.epoch_size, size=config.conveyor_size)
    val_set = None
    if config.val_data is not None:
        val_set = open_dataset(config.val_data, config.val_layout, config.val_split,
                               classes=config.classes,
                               conveyor_length=config.val_limit or 50,
                               size=config.conveyor_size)
        if hasattr(val_set, 'fresh_per_epoch'):
            val_set.fresh_per_epoch = False
        if val_set.num_classes != train_set.num_classes:
            raise ConfigError(f'Validation data has {val_set.num_classes} classes but the '
                              f'training data {train_set.num_classes}; use one class list.')
    return train_set, val_set


def train(config: TrainConfig) -> TrainResult:
    """Run (or resume) a training; returns a summary. Rank 0 writes every file."""
    from lw_refinenet_ros.model import (
        build_model,
        init_encoder_from_torchvision,
        load_weights,
        save_checkpoint,
    )

    config.validate()
    started = time.monotonic()
    distributed, rank, world, local_rank = _dist_info()
    device = resolve_device(config.device, local_rank)
    if distributed:
        torch.distributed.init_process_group(
            backend='nccl' if device.type == 'cuda' else 'gloo')
        if device.type == 'cuda':
            torch.cuda.set_device(device)
    if config.threads:
        torch.set_num_threads(config.threads)
    out = Path(config.out)
    main_rank = rank == 0
    handler = None
    if main_rank:
        out.mkdir(parents=True, exist_ok=True)
        handler = _setup_file_log(out)
    try:
        return _train(config, out, device, distributed, rank, world, main_rank, started,
                      build_model, init_encoder_from_torchvision, load_weights,
                      save_checkpoint)
    finally:
        if handler is not None:
            logging.getLogger('lw_refinenet_ros').removeHandler(handler)
            handler.close()
        if distributed:
            torch.distributed.destroy_process_group()


def _train(config: TrainConfig, out: Path, device: torch.device, distributed: bool,
           rank: int, world: int, main_rank: bool, started: float, build_model: Any,
           init_encoder_from_torchvision: Any, load_weights: Any,
           save_checkpoint: Any) -> TrainResult:
    torch.manual_seed(config.seed)
    train_set, val_set = _open_sets(config)
    num_classes = train_set.num_classes
    class_names = list(train_set.class_names)
    colors = [list(c) for c in train_set.colors] if train_set.colors else None
    model = build_model(config.arch, num_classes)
    if config.init_encoder:
        init_encoder_from_torchvision(model, config.init_encoder)
    if config.init_weights and not config.resume:
        from lw_refinenet_ros.model import DEFAULT_MODEL_PATH, init_from_checkpoint

        init_from_checkpoint(model, DEFAULT_MODEL_PATH if config.init_weights == 'default'
                             else config.init_weights)
    history: dict[str, list] = {'epochs': [], 'val': [], 'steps': []}
    start_epoch, skip_batches, global_step, best_miou = 0, 0, 0, -1.0
    resume_state = None
    if config.resume:
        resume_path = out / RESUME_FILE
        if not resume_path.is_file():
            raise ConfigError(f'--resume: {resume_path} does not exist; resume needs the same '
                              f'--out folder as the interrupted run.')
        resume_state = torch.load(resume_path, map_location='cpu', weights_only=True)
        load_weights(model, out / 'last.pt')
        start_epoch = int(resume_state['epoch'])
        skip_batches = int(resume_state['batch_in_epoch'])
        global_step = int(resume_state['global_step'])
        best_miou = float(resume_state['best_miou'])
        history = json.loads(resume_state['history'])
        _LOG.info('resuming at epoch %d batch %d (step %d, best mIoU %.4f)', start_epoch,
                  skip_batches, global_step, best_miou)
    model.to(device)
    net: nn.Module = model
    if distributed:
        net = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == 'cuda' else None)
    use_amp = config.amp and device.type == 'cuda'
    scaler = torch.amp.GradScaler('cuda', enabled=use_amp)
    transform = TrainTransform(crop_size=config.crop_size, scale_min=config.scale_min,
                               scale_max=config.scale_max, min_short_side=config.min_short_side,
                               flip=config.flip, photometric=config.photometric())
    train_aug = _TrainSet(train_set, transform, config.seed)
    total_epochs = sum(config.stage_epochs)
    steps_per_epoch = len(train_set) // (config.batch_size * world)
    if steps_per_epoch < 1:
        raise ConfigError(f'{len(train_set)} training images are fewer than one batch of '
                          f'{config.batch_size} x {world} ranks; lower --batch-size.')
    metadata = {'dataset': str(config.data), 'layout': train_set.layout,
                'config': json.loads(json.dumps(dataclasses.asdict(config), default=str))}
    optimizer = None
    current_stage = -1
    stopped_early = False
    last_loss = float('nan')
    epoch = start_epoch
    interactive = sys.stderr.isatty()

    def save(epoch_next: int, batch_next: int) -> None:
        if not main_rank:
            return
        save_checkpoint(out / 'last.pt', model, arch=config.arch, class_names=class_names,
                        colors=colors, metadata={**metadata, 'global_step': global_step,
                                                 'epoch': epoch_next})
        state = {'epoch': epoch_next, 'batch_in_epoch': batch_next, 'global_step': global_step,
                 'best_miou': best_miou, 'stage': current_stage,
                 'optimizer': optimizer.state_dict() if optimizer is not None else None,
                 'scaler': scaler.state_dict(), 'history': json.dumps(history)}
        partial = out / f'.{RESUME_FILE}.partial'
        torch.save(state, partial)
        os.replace(partial, out / RESUME_FILE)
        with open(out / 'history.json', 'w') as stream:
            json.dump(history, stream, indent=1)
        try:
            plot_history(history, out / 'curves.png')
        except Exception as error:  # a plotting failure must never stop training
            _LOG.warning('could not plot curves: %s', error)

    def out_of_budget() -> bool:
        over = config.max_steps is not None and global_step >= config.max_steps
        if config.time_limit is not None:
            over = over or time.monotonic() - started >= config.time_limit
            if distributed:
                # Every rank reads its own clock: agree (any rank over -> all stop), or the
                # ranks still training would wait forever in their next gradient all-reduce.
                flag = torch.tensor([int(over)], device=device)
                torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
                over = bool(flag.item())
        return over

    _LOG.info('training %s on %s (%d images, %d classes) on %s x%d, %d epochs of %d steps',
              config.arch, config.data, len(train_set), num_classes, device, world,
              total_epochs, steps_per_epoch)
    while epoch < total_epochs and not stopped_early:
        stage = stage_of(epoch, config.stage_epochs)
        if stage != current_stage:
            optimizer = make_optimizer(model, config, stage)
            if resume_state is not None and resume_state.get('optimizer') is not None and \
                    int(resume_state['stage']) == stage:
                optimizer.load_state_dict(resume_state['optimizer'])
                scaler.load_state_dict(resume_state['scaler'])
            resume_state = None
            current_stage = stage
            _LOG.info('stage %d: encoder lr %g, decoder lr %g (%s)', stage + 1,
                      config.encoder_lrs[stage],
                      config.encoder_lrs[stage] * config.decoder_lr_mult, config.optimizer)
        net.train()
        if config.freeze_bn:
            freeze_batchnorm(net)
        train_aug.set_epoch(epoch)
        # The epoch's sample order is a pure function of (seed, epoch): resuming mid-epoch
        # skips exactly the batches already seen.
        if distributed:
            sampler = torch.utils.data.DistributedSampler(train_aug, num_replicas=world,
                                                          rank=rank, seed=config.seed,
                                                          drop_last=True)
            sampler.set_epoch(epoch)
            order = list(sampler)
        else:
            generator = torch.Generator().manual_seed(config.seed * 100003 + epoch)
            order = torch.randperm(len(train_aug), generator=generator).tolist()
        order = order[:steps_per_epoch * config.batch_size][skip_batches * config.batch_size:]
        loader = torch.utils.data.DataLoader(
            torch.utils.data.Subset(train_aug, order), batch_size=config.batch_size,
            shuffle=False, drop_last=True, num_workers=config.workers,
            pin_memory=device.type == 'cuda')
        from tqdm import tqdm

        bar = tqdm(loader, desc=f'epoch {epoch + 1}/{total_epochs}', unit='batch',
                   disable=not main_rank, initial=skip_batches, total=steps_per_epoch,
                   mininterval=0.5 if interactive else 60.0, file=sys.stderr)
        loss_sum, loss_count = 0.0, 0
        batch_index = skip_batches
        skip_batches = 0
        for images, labels in bar:
            images = images.to(device, non_blocking=True)
            labels = labels.to(device, non_blocking=True)
            with torch.autocast(device_type=device.type, dtype=torch.float16,
                                enabled=use_amp):
                logits = net(images)
            logits = F.interpolate(logits.float(), size=labels.shape[-2:], mode='bilinear',
                                   align_corners=False)
            loss = F.cross_entropy(logits, labels, ignore_index=IGNORE_INDEX)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            if config.grad_clip:
                scaler.unscale_(optimizer)
                nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            scaler.step(optimizer)
            scaler.update()
            value = float(loss.detach())
            if not math.isfinite(value):
                raise ConfigError(f'The loss became {value} at step {global_step}; lower the '
                                  f'learning rate (--lrs) or enable --grad-clip.')
            last_loss = value
            loss_sum += value
            loss_count += 1
            global_step += 1
            batch_index += 1
            bar.set_postfix(loss=f'{value:.4f}', refresh=interactive)
            if global_step % 10 == 0:
                history['steps'].append([global_step, value])
            if global_step % 50 == 0 and main_rank:
                _LOG.info('step %d epoch %d batch %d/%d loss %.4f (%.0f s)', global_step,
                          epoch + 1, batch_index, steps_per_epoch, value,
                          time.monotonic() - started)
            if config.checkpoint_every and global_step % config.checkpoint_every == 0:
                save(epoch, batch_index)
            if out_of_budget():
                stopped_early = batch_index < steps_per_epoch
                break
        bar.close()
        epoch_done = batch_index >= steps_per_epoch
        if loss_count:
            history['epochs'].append({'epoch': epoch + 1, 'step': global_step,
                                      'loss': loss_sum / loss_count, 'stage': stage + 1,
                                      'complete': epoch_done})
        finished = epoch + 1 >= total_epochs or out_of_budget()
        if epoch_done and val_set is not None and main_rank and (
                (epoch + 1) % config.val_every == 0 or finished):
            scores = evaluate_model(model, val_set, num_classes, device=device,
                                    limit=config.val_limit)
            history['val'].append({'epoch': epoch + 1, 'step': global_step,
                                   'miou': scores.miou, 'pixel_accuracy': scores.pixel_accuracy,
                                   'iou': [None if np.isnan(v) else float(v)
                                           for v in scores.iou]})
            _LOG.info('epoch %d validation: mIoU %.4f, pixel accuracy %.4f, IoU %s', epoch + 1,
                      scores.miou, scores.pixel_accuracy,
                      ' '.join(f'{n}={v:.3f}' for n, v in zip(class_names, scores.iou)))
            if scores.miou > best_miou:
                best_miou = scores.miou
                save_checkpoint(out / 'best.pt', model, arch=config.arch,
                                class_names=class_names, colors=colors, half=config.half,
                                metadata={**metadata, 'global_step': global_step,
                                          'epoch': epoch + 1, 'val_miou': best_miou})
        if epoch_done:
            epoch += 1
            save(epoch, 0)
        else:
            save(epoch, batch_index)
        if loss_count and main_rank:
            _LOG.info('epoch %d done: mean loss %.4f, step %d, %.0f s', epoch, loss_sum /
                      loss_count, global_step, time.monotonic() - started)
        if out_of_budget():
            stopped_early = epoch < total_epochs
            if stopped_early:
                _LOG.info('stopping: step/time budget reached; continue with --resume')
            break
        if distributed:
            torch.distributed.barrier()
    if main_rank and val_set is None:
        # Without validation, "best" is simply the latest weights.
        save_checkpoint(out / 'best.pt', model, arch=config.arch, class_names=class_names,
                        colors=colors, half=config.half,
                        metadata={**metadata, 'global_step': global_step, 'epoch': epoch})
    return TrainResult(out=out, epochs_done=epoch, global_step=global_step,
                       best_miou=best_miou, last_loss=last_loss, stopped_early=stopped_early)
