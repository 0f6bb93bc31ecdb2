"""What a training run leaves in its output folder, and how it picks up from it.

``last.pt`` and ``best.pt`` (the project checkpoint format, loadable by
``lw_refinenet_ros.model.load_model``), ``resume.pt`` (optimiser, scaler and progress, written
atomically so that a run killed mid-write can still resume), ``history.json`` and
``curves.png``. Only the main rank writes; the other ranks' checkpointer does nothing.

The curves are redrawn at most every :data:`PLOT_EVERY_S` seconds and when the run ends: a
plot costs a few tenths of a second on a small CPU, which on a fine-tuning of short epochs
(seconds each) would be a noticeable share of the run. ``history.json`` is written every time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
import json
import logging
from pathlib import Path
import time
from typing import Any, Sequence

import torch
from torch import nn

from lw_refinenet_ros.atomic import atomic_file
from lw_refinenet_ros.errors import ConfigError

_LOG = logging.getLogger(__name__)

RESUME_FILE = 'resume.pt'
#: Least seconds between two redraws of ``curves.png`` (the last save of a run always draws).
PLOT_EVERY_S = 30.0


def _empty_history() -> dict[str, list]:
    return {'epochs': [], 'val': [], 'steps': []}


@dataclass
class Progress:
    """Where a run is: the next batch to train is ``batch_in_epoch`` of ``epoch`` (0-based).

    Attributes:
        epoch: Epoch to continue in.
        batch_in_epoch: Batches of that epoch already trained.
        global_step: Optimiser steps so far.
        best_miou: Best validation mIoU so far (-1 before any validation).
        stage: Stage of the current optimiser (-1 before the first).
        history: ``epochs`` (mean loss per epoch), ``val`` (scores), ``steps`` (every 10th
            step's loss).
    """

    epoch: int = 0
    batch_in_epoch: int = 0
    global_step: int = 0
    best_miou: float = -1.0
    stage: int = -1
    history: dict[str, list] = field(default_factory=_empty_history)


@dataclass(frozen=True)
class ResumeState:
    """A saved run: its progress and the optimiser/scaler state of its stage."""

    progress: Progress
    optimizer: dict[str, Any] | None
    scaler: dict[str, Any] | None


class Checkpointer:
    """Writes a run's files on the main rank.

    Args:
        out: Output folder (exists on the main rank).
        model: The unwrapped model whose weights are saved.
        arch, class_names, colors: Stored in every checkpoint.
        metadata: Stored in every checkpoint (dataset, config), plus step and epoch.
        half: Store ``best.pt`` as float16.
        enabled: False on the other ranks.
    """

    def __init__(self, out: Path, model: nn.Module, *, arch: str, class_names: Sequence[str],
                 colors: Sequence[Sequence[int]] | None, metadata: dict[str, Any],
                 half: bool, enabled: bool) -> None:
        self.out = out
        self.model = model
        self.arch = arch
        self.class_names = list(class_names)
        self.colors = [list(c) for c in colors] if colors else None
        self.metadata = metadata
        self.half = half
        self.enabled = enabled
        self._plotted = time.monotonic()

    def save_last(self, progress: Progress, optimizer: torch.optim.Optimizer | None,
                  scaler: Any, *, final: bool = False) -> None:
        """``last.pt``, then ``resume.pt`` (atomically), ``history.json`` and, when ``final``
        (the run's last save) or :data:`PLOT_EVERY_S` after the last drawing, the curves."""
        if not self.enabled:
            return
        from lw_refinenet_ros.model import save_checkpoint

        save_checkpoint(self.out / 'last.pt', self.model, arch=self.arch,
                        class_names=self.class_names, colors=self.colors,
                        metadata={**self.metadata, 'global_step': progress.global_step,
                                  'epoch': progress.epoch})
        state = {'epoch': progress.epoch, 'batch_in_epoch': progress.batch_in_epoch,
                 'global_step': progress.global_step, 'best_miou': progress.best_miou,
                 'stage': progress.stage,
                 'optimizer': optimizer.state_dict() if optimizer is not None else None,
                 'scaler': scaler.state_dict(), 'history': json.dumps(progress.history)}
        with atomic_file(self.out / RESUME_FILE) as stream:
            torch.save(state, stream)
        with open(self.out / 'history.json', 'w') as stream:
            json.dump(progress.history, stream, indent=1)
        if not final and time.monotonic() - self._plotted < PLOT_EVERY_S:
            return
        self._plotted = time.monotonic()
        try:
            plot_history(progress.history, self.out / 'curves.png')
        except Exception as error:  # noqa: BLE001 - a plotting failure must never stop training
            _LOG.warning('could not plot curves: %s', error)

    def save_best(self, progress: Progress, epoch: int, val_miou: float | None = None,
                  scores: dict[str, Any] | None = None) -> None:
        """``best.pt``: after a better validation, or the final weights without validation.

        ``scores`` (:func:`~lw_refinenet_ros.model.checkpoint.val_scores`) go into the model
        card as ``val_scores``."""
        if not self.enabled:
            return
        from lw_refinenet_ros.model import save_checkpoint

        metadata = {**self.metadata, 'global_step': progress.global_step, 'epoch': epoch}
        if val_miou is not None:
            metadata['val_miou'] = val_miou
        if scores is not None:
            metadata['val_scores'] = scores
        save_checkpoint(self.out / 'best.pt', self.model, arch=self.arch,
                        class_names=self.class_names, colors=self.colors, half=self.half,
                        metadata=metadata)


def load_resume(out: Path, model: nn.Module) -> ResumeState:
    """Load ``last.pt`` into ``model`` and return the progress saved next to it.

    Raises:
        ConfigError: No ``resume.pt`` in ``out`` (resume needs the interrupted run's folder).
    """
    from lw_refinenet_ros.model import load_weights

    path = out / RESUME_FILE
    if not path.is_file():
        raise ConfigError(f'--resume: {path} does not exist; resume needs the same --out folder '
                          f'as the interrupted run.')
    state = torch.load(path, map_location='cpu', weights_only=True)
    load_weights(model, out / 'last.pt')
    progress = Progress(epoch=int(state['epoch']), batch_in_epoch=int(state['batch_in_epoch']),
                        global_step=int(state['global_step']),
                        best_miou=float(state['best_miou']), stage=int(state['stage']),
                        history=json.loads(state['history']))
    _LOG.info('resuming at epoch %d batch %d (step %d, best mIoU %.4f)', progress.epoch,
              progress.batch_in_epoch, progress.global_step, progress.best_miou)
    return ResumeState(progress, state.get('optimizer'), state.get('scaler'))


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
