"""The epoch loop: stages -> epochs -> batches, validation, checkpoints, budget, resume.

Each epoch's sample order is a pure function of (seed, epoch), so a run resumed mid-epoch
skips exactly the batches it had trained. The optimiser is re-created at every stage (the
reference v1 behaviour) and restored from ``resume.pt`` only within the stage it was saved in.
The loss is cross-entropy (ignore index 255) on logits bilinearly upsampled to the label size.
"""

from __future__ import annotations

from dataclasses import dataclass
import logging
import math
import sys
import time
from typing import Any

import numpy as np
import torch
from torch import nn
import torch.nn.functional as F

from lw_refinenet_ros.constants import IGNORE_INDEX
from lw_refinenet_ros.errors import ConfigError
from lw_refinenet_ros.evaluation.segmentation import evaluate_model
from lw_refinenet_ros.training.checkpointer import Checkpointer, Progress, ResumeState
from lw_refinenet_ros.training.loss import segmentation_loss
from lw_refinenet_ros.training.precision import choose_precision, forward_for, make_scaler
from lw_refinenet_ros.training.recipe import freeze_batchnorm, make_optimizer, stage_of
from lw_refinenet_ros.training.transforms import TrainTransform

_LOG = logging.getLogger(__name__)


def _original_message(error: Exception) -> str:
    """The message of an error raised in a DataLoader worker, without the worker's
    traceback that the loader wraps around it (bad input is a message, not a traceback)."""
    text = str(error)
    marker = f'{type(error).__module__}.{type(error).__name__}: '
    if 'Original Traceback' in text and marker in text:
        return text.rsplit(marker, 1)[1].strip()
    return text


def stop_loader_workers(batches: Any) -> None:
    """Stop a DataLoader iterator's worker processes now, however the epoch ended.

    An iterator left behind (a budget that ends the epoch early, a bad label raised in a
    worker) otherwise stops its workers in ``__del__`` whenever the garbage collector finds it,
    inside whatever code runs then; PyTorch documents crashes in that path (pytorch#184062),
    and this project's test suite met one: a SIGSEGV in ``_shutdown_workers`` run by the
    collector, two tests after a worker had raised. Single-process iterators have nothing to
    stop. ``_shutdown_workers`` is idempotent (the iterator checks its own flag).
    """
    shutdown = getattr(batches, '_shutdown_workers', None)
    if callable(shutdown):
        shutdown()


class AugmentedSet:
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
        classes = self.dataset.num_classes
        if labels.size and int(labels.max()) >= classes:
            values = np.unique(labels)
            bad = [int(v) for v in values if classes <= v != IGNORE_INDEX]
            if bad:
                raise ConfigError(f'{self.dataset.name(index)}: label values {bad} are not '
                                  f'classes 0..{classes - 1} or 255 (ignore); fix the labels '
                                  f'or the class file (`lw-refinenet data check` lists every '
                                  f'such image).')
        rng = np.random.default_rng((self.seed, self.epoch, int(index)))
        return self.transform(image, labels, rng)


class Budget:
    """A step and/or wall-clock limit that every rank agrees on.

    Every rank reads its own clock, so with a time limit the ranks all-reduce their verdict
    (any rank over -> all stop); otherwise the ranks still training would wait forever in
    their next gradient all-reduce.
    """

    def __init__(self, max_steps: int | None, time_limit_s: float | None, started: float,
                 distributed: bool, device: torch.device) -> None:
        self.max_steps = max_steps
        self.time_limit_s = time_limit_s
        self.started = started
        self.distributed = distributed
        self.device = device
        #: Seconds kept free at the end for the final validation and best.pt.
        self.reserve_s = 0.0

    def elapsed_share(self) -> float:
        """Share of the time limit used so far (0 without one)."""
        if not self.time_limit_s:
            return 0.0
        return (time.monotonic() - self.started) / self.time_limit_s

    def exhausted(self, global_step: int) -> bool:
        over = self.max_steps is not None and global_step >= self.max_steps
        if self.time_limit_s is not None:
            over = over or time.monotonic() - self.started >= self.time_limit_s - self.reserve_s
            if self.distributed:
                flag = torch.tensor([int(over)], device=self.device)
                torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
                over = bool(flag.item())
        return over


@dataclass(frozen=True)
class Ranks:
    """This process's place in a (possibly single-process) run."""

    distributed: bool = False
    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0


@dataclass
class EpochOutcome:
    """One epoch's training: batches reached, mean loss, and whether the budget ran out."""

    batch_index: int
    loss_sum: float
    loss_count: int
    budget_hit: bool


def train_transform(config: Any) -> TrainTransform:
    """The augmentation the run's config asks for."""
    return TrainTransform(crop_size=config.crop_size, scale_min=config.scale_min,
                          scale_max=config.scale_max, min_short_side=config.min_short_side,
                          flip=config.flip, vflip=getattr(config, 'vflip', False),
                          photometric=config.photometric())


def epoch_order(train_set: Any, ranks: Ranks, seed: int, epoch: int, batch_size: int,
                steps_per_epoch: int, batches_done: int) -> list[int]:
    """The epoch's sample indices for this rank, minus the ``batches_done`` already trained.

    A pure function of (seed, epoch), so a run resumed mid-epoch skips exactly the batches
    it had trained.
    """
    if ranks.distributed:
        sampler = torch.utils.data.DistributedSampler(
            train_set, num_replicas=ranks.world, rank=ranks.rank, seed=seed, drop_last=True)
        sampler.set_epoch(epoch)
        order = list(sampler)
    else:
        generator = torch.Generator().manual_seed(seed * 100003 + epoch)
        order = torch.randperm(len(train_set), generator=generator).tolist()
    skip = batches_done * batch_size
    return order[:steps_per_epoch * batch_size][skip:]


class EpochLoop:
    """Trains ``model`` (through ``net``, its DDP wrapper if any) for the configured stages.

    Args:
        config: The run's :class:`~lw_refinenet_ros.training.trainer.TrainConfig`.
        model: The unwrapped model (saved and validated).
        net: What the forward pass runs (``model`` or its DistributedDataParallel).
        train_set, val_set: Datasets (``val_set`` may be None).
        device: Where the batches go.
        ranks: Distributed layout.
        checkpointer: Writes the run's files.
        budget: Step/time limit.
        progress: Where to start (from ``resume.pt`` or fresh).
        resume: The saved optimiser/scaler state, applied when its stage begins.
    """

    def __init__(self, config: Any, model: nn.Module, net: nn.Module, train_set: Any,
                 val_set: Any | None, device: torch.device, ranks: Ranks,
                 checkpointer: Checkpointer, budget: Budget, progress: Progress,
                 resume: ResumeState | None = None) -> None:
        self.config = config
        self.model = model
        self.net = net
        self.val_set = val_set
        self.device = device
        self.ranks = ranks
        self.checkpointer = checkpointer
        self.budget = budget
        self.progress = progress
        self._resume = resume
        self.num_classes = train_set.num_classes
        self.class_names = list(train_set.class_names)
        try:
            self.precision = choose_precision(config.amp, device.type)
        except ValueError as error:
            raise ConfigError(str(error)) from None
        self.use_amp = self.precision.dtype is not None
        self.scaler = make_scaler(self.precision, device.type)
        self.forward = forward_for(net, getattr(config, 'compile', 'off'), device.type)
        _LOG.info('training step: %s%s', self.precision.reason,
                  ', torch.compile' if self.forward is not net else '')
        self.optimizer: torch.optim.Optimizer | None = None
        self.train_set = AugmentedSet(train_set, train_transform(config), config.seed)
        # A time schedule runs until the time limit; its stages are shares of the time.
        self.by_time = getattr(config, 'schedule', 'epochs') == 'time'
        self.total_epochs = 10 ** 9 if self.by_time else sum(config.stage_epochs)
        self._validated_step = -1
        self.steps_per_epoch = len(train_set) // (config.batch_size * ranks.world)
        if self.steps_per_epoch < 1:
            raise ConfigError(f'{len(train_set)} training images are fewer than one batch of '
                              f'{config.batch_size} x {ranks.world} ranks; lower '
                              f'--batch-size.')
        self.last_loss = float('nan')
        self.stopped_early = False
        self._interactive = sys.stderr.isatty()

    def run(self) -> None:
        """Train until the last epoch or the budget; ``progress`` says how far it got."""
        progress = self.progress
        while progress.epoch < self.total_epochs and not self.stopped_early:
            self._enter_stage(self._stage(progress.epoch))
            outcome = self._train_epoch(progress.epoch)
            epoch_done = outcome.batch_index >= self.steps_per_epoch
            if outcome.loss_count:
                progress.history['epochs'].append({
                    'epoch': progress.epoch + 1, 'step': progress.global_step,
                    'loss': outcome.loss_sum / outcome.loss_count, 'stage': progress.stage + 1,
                    'complete': epoch_done})
            exhausted = self.budget.exhausted(progress.global_step)
            finished = progress.epoch + 1 >= self.total_epochs or exhausted
            if epoch_done and self.val_set is not None and self.ranks.main and (
                    (progress.epoch + 1) % self.config.val_every == 0 or finished):
                self._validate(progress.epoch)
            if exhausted:
                self._final_validation()
            if epoch_done:
                progress.epoch += 1
                progress.batch_in_epoch = 0
            else:
                progress.batch_in_epoch = outcome.batch_index
            self.checkpointer.save_last(progress, self.optimizer, self.scaler,
                                        final=finished or not epoch_done)
            if outcome.loss_count and self.ranks.main:
                _LOG.info('epoch %d done: mean loss %.4f, step %d, %.0f s', progress.epoch,
                          outcome.loss_sum / outcome.loss_count, progress.global_step,
                          time.monotonic() - self.budget.started)
            if exhausted:
                self.stopped_early = progress.epoch < self.total_epochs and not self.by_time
                if self.stopped_early:
                    _LOG.info('stopping: step/time budget reached; continue with --resume')
                elif self.by_time:
                    _LOG.info('time is up: the best validated model is in best.pt')
                break
            if self.ranks.distributed:
                torch.distributed.barrier()

    def _stage(self, epoch: int) -> int:
        """The stage of ``epoch``, or with a time schedule of the time used so far."""
        weights = self.config.stage_epochs
        if not self.by_time:
            return stage_of(epoch, weights)
        share, end = self.budget.elapsed_share(), 0.0
        for stage, weight in enumerate(weights):
            end += weight / sum(weights)
            if share < end:
                return max(stage, self.progress.stage)  # never back to a higher rate
        return len(weights) - 1

    def _final_validation(self) -> None:
        """Validate the weights the run ends with unless they already were, so best.pt is
        the best of every validated model including the last."""
        if self.val_set is not None and self.ranks.main and \
                self._validated_step != self.progress.global_step:
            self._validate(max(self.progress.epoch - 1, 0))

    def _enter_stage(self, stage: int) -> None:
        """A fresh optimiser per stage; the saved one only within the stage it was saved in."""
        if stage == self.progress.stage and self.optimizer is not None:
            return
        self.optimizer = make_optimizer(self.model, self.config, stage)
        resume = self._resume
        if resume is not None and resume.optimizer is not None and \
                resume.progress.stage == stage:
            self.optimizer.load_state_dict(resume.optimizer)
            if resume.scaler:  # empty when it was saved disabled
                self.scaler.load_state_dict(resume.scaler)
        self._resume = None
        self.progress.stage = stage
        lr = self.config.encoder_lrs[stage]
        _LOG.info('stage %d: encoder lr %g, decoder lr %g (%s)', stage + 1, lr,
                  lr * self.config.decoder_lr_mult, self.config.optimizer)

    def _train_epoch(self, epoch: int) -> EpochOutcome:
        from tqdm import tqdm

        config, progress = self.config, self.progress
        self.net.train()
        if config.freeze_bn:
            freeze_batchnorm(self.net)
        self.train_set.set_epoch(epoch)
        loader = torch.utils.data.DataLoader(
            torch.utils.data.Subset(self.train_set, epoch_order(
                self.train_set, self.ranks, config.seed, epoch, config.batch_size,
                self.steps_per_epoch, progress.batch_in_epoch)),
            batch_size=config.batch_size, shuffle=False, drop_last=True,
            num_workers=config.workers, pin_memory=self.device.type == 'cuda')
        start = progress.batch_in_epoch
        desc = f'epoch {epoch + 1}' + ('' if self.by_time else f'/{self.total_epochs}')
        batches = iter(loader)
        bar = tqdm(batches, desc=desc, unit='batch',
                   disable=not self.ranks.main, initial=start, total=self.steps_per_epoch,
                   mininterval=0.5 if self._interactive else 60.0, file=sys.stderr)
        outcome = EpochOutcome(start, 0.0, 0, False)
        failure = None
        try:
            self._train_batches(bar, outcome, epoch)
        except ConfigError as error:
            failure = _original_message(error)
        finally:
            bar.close()
            stop_loader_workers(batches)
        if failure is not None:
            # Raised outside the handler: the worker's exception (and the frames holding the
            # loader's iterator) is not kept alive as this one's __context__.
            raise ConfigError(failure) from None
        return outcome

    def _train_batches(self, bar: Any, outcome: EpochOutcome, epoch: int) -> None:
        config, progress = self.config, self.progress
        for images, labels in bar:
            value = self._step(images, labels)
            outcome.loss_sum += value
            outcome.loss_count += 1
            outcome.batch_index += 1
            progress.global_step += 1
            bar.set_postfix(loss=f'{value:.4f}', refresh=self._interactive)
            if progress.global_step % 10 == 0:
                progress.history['steps'].append([progress.global_step, value])
            if progress.global_step % 50 == 0 and self.ranks.main:
                _LOG.info('step %d epoch %d batch %d/%d loss %.4f (%.0f s)',
                          progress.global_step, epoch + 1, outcome.batch_index,
                          self.steps_per_epoch, value, time.monotonic() - self.budget.started)
            if config.checkpoint_every and progress.global_step % config.checkpoint_every == 0:
                progress.batch_in_epoch = outcome.batch_index
                self.checkpointer.save_last(progress, self.optimizer, self.scaler)
            if self.budget.exhausted(progress.global_step):
                outcome.budget_hit = True
                self.stopped_early = outcome.batch_index < self.steps_per_epoch
                break

    def _step(self, images: torch.Tensor, labels: torch.Tensor) -> float:
        """One optimiser step; the loss value (a non-finite loss stops the run)."""
        assert self.optimizer is not None
        images = images.to(self.device, non_blocking=True,
                           memory_format=torch.channels_last
                           if getattr(self.config, 'channels_last', False)
                           else torch.contiguous_format)
        labels = labels.to(self.device, non_blocking=True)
        with torch.autocast(device_type=self.device.type,
                            dtype=self.precision.dtype or torch.float32,
                            enabled=self.use_amp):
            logits = self.forward(images)
        logits = F.interpolate(logits.float(), size=labels.shape[-2:], mode='bilinear',
                               align_corners=False)
        loss = segmentation_loss(logits, labels, self.config.boundary_weight,
                                 self.config.boundary_px)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if self.config.grad_clip:
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        value = float(loss.detach())
        if not math.isfinite(value):
            raise ConfigError(f'The loss became {value} at step {self.progress.global_step}; '
                              f'lower the learning rate (--lrs) or enable --grad-clip.')
        self.last_loss = value
        return value

    def _validate(self, epoch: int) -> None:
        """Score the validation set; a better mIoU writes ``best.pt``."""
        from lw_refinenet_ros.model.checkpoint import val_scores

        progress = self.progress
        started = time.monotonic()
        scores = evaluate_model(self.model, self.val_set, self.num_classes, device=self.device,
                                limit=self.config.val_limit)
        self._validated_step = progress.global_step
        progress.history['val'].append({
            'epoch': epoch + 1, 'step': progress.global_step, 'miou': scores.miou,
            'pixel_accuracy': scores.pixel_accuracy,
            'iou': [None if np.isnan(v) else float(v) for v in scores.iou]})
        _LOG.info('epoch %d validation: mIoU %.4f, pixel accuracy %.4f, IoU %s', epoch + 1,
                  scores.miou, scores.pixel_accuracy,
                  ' '.join(f'{n}={v:.3f}' for n, v in zip(self.class_names, scores.iou)))
        if scores.miou > progress.best_miou:
            progress.best_miou = scores.miou
            count = len(self.val_set) if self.config.val_limit is None else min(
                len(self.val_set), self.config.val_limit)
            card = val_scores(scores.miou, [None if np.isnan(v) else float(v)
                                            for v in scores.iou], self.class_names,
                              scores.pixel_accuracy, count)
            self.checkpointer.save_best(progress, epoch + 1, val_miou=progress.best_miou,
                                        scores=card)
        # Keep time for one more validation and best.pt before the time limit.
        self.budget.reserve_s = 1.5 * (time.monotonic() - started) + 2.0
