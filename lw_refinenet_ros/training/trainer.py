"""Training following the reference recipe (see docs/architecture.md, "Training recipe").

Defaults reproduce the v1 recipe: 3 stages, encoder LRs 5e-4 / 2.5e-4 / 1e-4 with the decoder
at 10x, SGD (momentum 0.9, weight decay 1e-5) with the optimisers *re-created at every stage*
(v1 behaviour; momentum restarts, which the v2 MultiStepLR variant does not do), BatchNorm
frozen in eval mode, random scale 0.5-2.0 / pad / mirror / crop, cross-entropy (ignore 255) on
logits bilinearly upsampled to the label size. Every value is a :class:`TrainConfig` field.

Outputs in ``out``: ``last.pt`` and ``best.pt`` (project checkpoint format, loadable by
``lw_refinenet_ros.model.load_model``), ``resume.pt`` (optimiser/scaler/progress state for
``--resume``), ``history.json``, ``curves.png`` (loss and mIoU) and ``train.log``.

The work is split along its jobs: :mod:`.recipe` (parameter groups, stages, optimisers),
:mod:`.epoch_loop` (stages -> epochs -> batches, validation, budget), :mod:`.checkpointer`
(the files above and resuming from them); this module holds the configuration and wires a run.

Multi-GPU: launch with ``torchrun --nproc_per_node N -m lw_refinenet_ros.cli train ...``;
when ``WORLD_SIZE > 1`` the process group is initialised from the environment, the model is
wrapped in DistributedDataParallel and each rank reads its DistributedSampler share.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
import json
import logging
import os
from pathlib import Path
import time
from typing import Any

import torch
from torch import nn

from lw_refinenet_ros.data.datasets import open_dataset
from lw_refinenet_ros.errors import ConfigError
from lw_refinenet_ros.training.checkpointer import (
    RESUME_FILE,
    Checkpointer,
    Progress,
    load_resume,
    plot_history,
)
from lw_refinenet_ros.training.epoch_loop import Budget, EpochLoop, Ranks
from lw_refinenet_ros.training.recipe import (
    ENCODER_REGEX,
    freeze_batchnorm,
    make_optimizer,
    split_parameters,
    stage_of,
)
from lw_refinenet_ros.training.transforms import PhotometricJitter

# Importable from here as before the split.
__all__ = ['ENCODER_REGEX', 'RESUME_FILE', 'TrainConfig', 'TrainResult', 'freeze_batchnorm',
           'make_optimizer', 'plot_history', 'resolve_device', 'split_parameters', 'stage_of',
           'train']

_LOG = logging.getLogger(__name__)



@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run needs; the CLI fills it from flags and an optional YAML.

    Attributes mirror the reference recipe; see the module docstring.
    """

    data: str
    out: str = 'runs/train'
    layout: str = 'auto'
    split: str = 'train'
    images: str | None = None
    val_data: str | None = None
    val_layout: str = 'auto'
    val_split: str = 'val'
    val_images: str | None = None
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
    vflip: bool = False
    brightness: tuple[float, float] = (1.0, 1.0)
    contrast: tuple[float, float] = (1.0, 1.0)
    blur_sigma: float = 0.0
    noise_sigma: float = 0.0
    photometric_prob: float = 0.5
    batch_size: int = 6
    workers: int = 2
    device: str = 'auto'
    amp: str | bool = 'auto'
    compile: str = 'auto'
    val_every: int = 5
    val_limit: int | None = None
    seed: int = 42
    max_steps: int | None = None
    time_limit: float | None = None
    schedule: str = 'epochs'
    holdout: float = 0.0
    checkpoint_every: int = 0
    epoch_size: int = 1000
    conveyor_size: tuple[int, int] = (320, 240)
    half: bool = False
    grad_clip: float | None = None
    boundary_weight: float = 1.0
    boundary_px: int = 2
    threads: int | None = None
    channels_last: bool = True
    report: bool = True
    report_int8: bool = True
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
        if self.schedule not in ('epochs', 'time'):
            raise ConfigError(f'schedule must be epochs or time, got {self.schedule!r}.')
        if self.schedule == 'time' and not self.time_limit:
            raise ConfigError('schedule=time splits the time limit between the stages: give '
                              '--time-limit MINUTES too (or use --schedule epochs).')
        if not 0 <= self.holdout < 0.9:
            raise ConfigError(f'holdout is the share of images kept for validation, in '
                              f'[0, 0.9), got {self.holdout}.')
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
        if not self.boundary_weight > 0 or self.boundary_px < 0:
            raise ConfigError(f'boundary_weight must be > 0 and boundary_px >= 0, got '
                              f'{self.boundary_weight} and {self.boundary_px} (1 and any '
                              f'width = plain cross-entropy).')
        if self.init_encoder and self.init_weights:
            raise ConfigError('Give --init-encoder (ImageNet encoder only) or --init-weights '
                              '(a whole trained model), not both.')
        from lw_refinenet_ros.training.precision import COMPILE_CHOICES, normalize_amp

        try:
            normalize_amp(self.amp)
        except ValueError as error:
            raise ConfigError(f'{error} (--amp).') from None
        if self.compile not in COMPILE_CHOICES:
            raise ConfigError(f'compile must be one of {", ".join(COMPILE_CHOICES)} '
                              f'(--compile), got {self.compile!r}.')
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
    split: str | None = None  # how the validation images were held out, when they were
    report: dict[str, Any] | None = None  # training/report.py's scores of best.pt


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


def _setup_file_log(out: Path) -> logging.Handler:
    handler = logging.FileHandler(out / 'train.log')
    handler.setFormatter(logging.Formatter('%(asctime)s %(levelname)s %(name)s: %(message)s'))
    logger = logging.getLogger('lw_refinenet_ros')
    logger.addHandler(handler)
    if logger.getEffectiveLevel() > logging.INFO:
        logger.setLevel(logging.INFO)
    return handler


def _open_sets(config: TrainConfig) -> tuple[Any, Any | None]:
    """The training and validation data; without validation data and with ``holdout``, a
    seeded split of the training data by image."""
    train_set = open_dataset(config.data, config.layout, config.split, classes=config.classes,
                             conveyor_length=config.epoch_size, size=config.conveyor_size,
                             images=config.images)
    val_set = None
    if config.val_data is not None:
        val_set = open_dataset(config.val_data, config.val_layout, config.val_split,
                               classes=config.classes,
                               conveyor_length=config.val_limit or 50,
                               size=config.conveyor_size, images=config.val_images)
        if hasattr(val_set, 'fresh_per_epoch'):
            val_set.fresh_per_epoch = False
        if val_set.num_classes != train_set.num_classes:
            raise ConfigError(f'Validation data has {val_set.num_classes} classes but the '
                              f'training data {train_set.num_classes}; use one class list.')
    elif config.holdout > 0 and getattr(train_set, 'layout', '') != 'conveyor':
        from lw_refinenet_ros.data.split import split_by_image

        train_set, val_set = split_by_image(train_set, config.holdout, config.seed)
    return train_set, val_set


def _write_split(out: Path, train_set: Any, val_set: Any) -> str:
    """Record a held-out split (``split.json``) and describe it in one line."""
    names = {'train': [train_set.name(i) for i in range(len(train_set))],
             'val': [val_set.name(i) for i in range(len(val_set))]}
    with open(out / 'split.json', 'w') as stream:
        json.dump(names, stream, indent=1)
    total = len(train_set) + len(val_set)
    return f'{len(val_set)} of {total} images held out, {len(train_set)} trained on'


def _input_size(dataset: Any) -> list[int] | None:
    """Median (width, height) of the training images, for the checkpoint's model card."""
    from lw_refinenet_ros.training.auto_recipe import summarize

    if getattr(dataset, 'layout', '') == 'conveyor':
        return [int(v) for v in dataset.size]
    try:
        return [int(v) for v in summarize(dataset).size]
    except Exception:  # noqa: BLE001 - the card is informative; never fail a run over it
        return None


def train(config: TrainConfig) -> TrainResult:
    """Run (or resume) a training; returns a summary. Rank 0 writes every file."""
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
    if device.type == 'cpu':
        # Fine-tuned weights and their gradients decay into subnormal floats, which x86 CPUs
        # compute on at a fraction of the speed; zero is as good for training.
        torch.set_flush_denormal(True)
    out = Path(config.out)
    ranks = Ranks(distributed, rank, world)
    handler = None
    if ranks.main:
        out.mkdir(parents=True, exist_ok=True)
        handler = _setup_file_log(out)
    try:
        return _run(config, out, device, ranks, started)
    finally:
        if handler is not None:
            logging.getLogger('lw_refinenet_ros').removeHandler(handler)
            handler.close()
        if distributed:
            torch.distributed.destroy_process_group()


def _run(config: TrainConfig, out: Path, device: torch.device, ranks: Ranks,
         started: float) -> TrainResult:
    """Data, model (initialised or resumed), the epoch loop; ``best.pt`` at the end."""
    from lw_refinenet_ros.model import build_model, init_encoder_from_torchvision

    torch.manual_seed(config.seed)
    train_set, val_set = _open_sets(config)
    split = None
    if hasattr(train_set, 'indices') and val_set is not None and config.val_data is None:
        split = _write_split(out, train_set, val_set) if ranks.main else ''
        _LOG.info('no validation data: %s (seed %d, split.json)', split, config.seed)
    model = build_model(config.arch, train_set.num_classes)
    if config.init_encoder:
        source = config.init_encoder
        if source == 'imagenet':
            from lw_refinenet_ros.model.pretrained import imagenet_weights

            source = imagenet_weights(config.arch)
        init_encoder_from_torchvision(model, source)
    if config.init_weights and not config.resume:
        from lw_refinenet_ros.model import DEFAULT_MODEL_PATH, init_from_checkpoint

        init_from_checkpoint(model, DEFAULT_MODEL_PATH if config.init_weights == 'default'
                             else config.init_weights)
    resume = load_resume(out, model) if config.resume else None
    progress = resume.progress if resume is not None else Progress()
    # NHWC: oneDNN's depthwise and 1x1 convolutions of MobileNet-v2 run several times
    # faster on it, forward and backward (one CPU step at 192 px: 7 s -> 1.2 s measured).
    model.to(device, memory_format=torch.channels_last if config.channels_last
             else torch.contiguous_format)
    net: nn.Module = model
    if ranks.distributed:
        net = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == 'cuda' else None)
    from lw_refinenet_ros.model.checkpoint import model_card

    metadata = {'dataset': str(config.data), 'layout': train_set.layout,
                'config': json.loads(json.dumps(dataclasses.asdict(config), default=str)),
                **model_card(input_size=_input_size(train_set),
                             train_scale=(config.scale_min, config.scale_max))}
    checkpointer = Checkpointer(out, model, arch=config.arch,
                                class_names=train_set.class_names,
                                colors=train_set.colors or None, metadata=metadata,
                                half=config.half, enabled=ranks.main)
    budget = Budget(config.max_steps, config.time_limit, started, ranks.distributed, device)
    loop = EpochLoop(config, model, net, train_set, val_set, device, ranks, checkpointer,
                     budget, progress, resume)
    _LOG.info('training %s on %s (%d images, %d classes) on %s x%d, %d epochs of %d steps',
              config.arch, config.data, len(train_set), train_set.num_classes, device,
              ranks.world, loop.total_epochs, loop.steps_per_epoch)
    loop.run()
    if val_set is None:
        # Without validation, "best" is simply the latest weights.
        checkpointer.save_best(progress, progress.epoch)
    report = _report(config, out, train_set, val_set, device) if ranks.main else None
    return TrainResult(out=out, epochs_done=progress.epoch, global_step=progress.global_step,
                       best_miou=progress.best_miou, last_loss=loop.last_loss,
                       stopped_early=loop.stopped_early, split=split, report=report)


def _report(config: TrainConfig, out: Path, train_set: Any, val_set: Any | None,
            device: torch.device) -> dict[str, Any] | None:
    """The evaluation report and int8 model next to ``best.pt`` (training/report.py);
    a failure is logged and leaves the trained run as it is."""
    if not config.report or not (out / 'best.pt').is_file():
        return None
    from lw_refinenet_ros.training.report import write_report

    try:
        report = write_report(out, train_set, val_set, device=str(device),
                              int8=config.report_int8, limit=config.val_limit)
    except Exception as error:  # noqa: BLE001 - the report never fails a finished training
        _LOG.warning('no evaluation report: %s: %s', type(error).__name__, error)
        return {'error': f'{type(error).__name__}: {error}'}
    int8 = report.get('int8') or {}
    _LOG.info('report: mIoU %s on %s validation images; int8 mIoU change %s (report.md)',
              report.get('miou'), report.get('images'),
              int8.get('miou_change', int8.get('skipped') or int8.get('error')))
    return report
