"""Teach a trained model where touching parts of one class meet: the boundary head only.

``lw-refinenet train-boundary`` starts from a trained checkpoint (the packaged conveyor model
by default), adds the part-boundary head (lw_refinenet_ros/model/boundary.py) and trains it
alone on conveyor videos rendered from the training seeds, with the target of
:mod:`.boundary_target`. Everything else stays frozen, so the class logits, the labels and
the mIoU of the saved model are exactly those of the model it started from; only the new
channel K is added.

Why frozen: the head reads the decoder's fused features, which already tell parts from the
belt; what it adds is where two parts of one class meet. Freezing makes it cheap on a 2-core
CPU: the network runs once per training frame (its features are kept, float16), then the
small head trains for several epochs over the kept features in seconds each.

Loss: binary cross-entropy on the stride-4 cells, positive cells weighted by
``pos_weight`` (seams are about 1 % of the cells).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
import logging
import math
from pathlib import Path
import time
from typing import Any, Callable

from lw_refinenet_ros.errors import ConfigError
from lw_refinenet_ros.evaluation.seeds import TRAINING_SEEDS
from lw_refinenet_ros.training.boundary_target import SEAM_RADIUS, boundary_target

_LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class BoundaryTrainConfig:
    """What ``train-boundary`` does.

    Attributes:
        weights: Checkpoint to start from; None: the packaged default model.
        out: Where the checkpoint with the head is written.
        seeds: Conveyor seeds the videos come from (training seeds only).
        videos: Videos per seed; video ``v`` of seed ``s`` is ``ConveyorScene((s, v))``.
        frames: Frames kept per video, every ``frame_step``-th frame.
        frame_step: Frames the belt moves between two kept frames (neighbours look alike).
        densities: Parts per 320 px of belt, cycled over the videos (crowded belts have the
            most seams).
        size: (width, height) of the rendered frames (the default model's training size).
        epochs: Passes over the kept frames.
        batch: Frames per optimiser step.
        lr: Adam learning rate.
        pos_weight: Weight of a seam cell in the loss.
        radius: Seam half-width in pixels (:func:`.boundary_target.seam_pixels`).
        threads: torch CPU threads (1 leaves the other core to the rest of the machine).
        seed: Seed of the shuffling and the head's initial weights.
    """

    weights: str | None = None
    out: str = 'runs/boundary/conveyor_mbv2_boundary.pt'
    seeds: tuple[int, ...] = TRAINING_SEEDS
    videos: int = 2
    frames: int = 30
    frame_step: int = 6
    densities: tuple[float, ...] = (6.0, 8.0, 10.0)
    size: tuple[int, int] = (320, 240)
    epochs: int = 12
    batch: int = 8
    lr: float = 3e-3
    pos_weight: float = 10.0
    radius: int = SEAM_RADIUS
    threads: int = 1
    seed: int = 0

    def check(self) -> None:
        """Raise ConfigError on values that cannot train."""
        bad = [name for name in ('videos', 'frames', 'frame_step', 'epochs', 'batch',
                                 'radius', 'threads') if getattr(self, name) < 1]
        if bad:
            raise ConfigError(f'train-boundary: {", ".join(bad)} must be at least 1.')
        if not self.seeds or not self.densities:
            raise ConfigError('train-boundary needs at least one seed and one density.')
        if not (self.lr > 0 and self.pos_weight > 0 and math.isfinite(self.lr)):
            raise ConfigError('train-boundary: --lr and --pos-weight must be positive.')
        if min(self.densities) <= 0:
            raise ConfigError('train-boundary: densities must be positive.')


@dataclass
class BoundaryTrainReport:
    """What a run did, for the log and the checkpoint's metadata."""

    frames: int
    seam_cells: float
    render_s: float
    train_s: float
    losses: list[float] = field(default_factory=list)
    precision: float = math.nan
    recall: float = math.nan

    def as_metadata(self) -> dict[str, Any]:
        """Plain values; ``frames`` becomes ``kept_frames`` (the config has ``frames``)."""
        values = {('kept_frames' if key == 'frames' else key):
                  (round(value, 5) if isinstance(value, float) else value)
                  for key, value in asdict(self).items() if key != 'losses'}
        values['final_loss'] = round(self.losses[-1], 5) if self.losses else None
        return values


def collect(model: Any, config: BoundaryTrainConfig,
            progress: Callable[[str], None] = _LOG.info) -> tuple[Any, Any]:
    """Render the training frames, run the frozen network once on each and keep its fused
    features (float16) and the boundary targets.

    Returns:
        ``(features (N, 256, h, w) float16, targets (N, 1, h, w) float32)`` tensors.
    """
    import torch

    from lw_refinenet_ros.data.conveyor import ConveyorScene
    from lw_refinenet_ros.engine.preprocess import CpuPreprocessor

    pre = CpuPreprocessor()
    width, height = config.size
    features, targets = [], []
    index = 0
    for seed in config.seeds:
        for video in range(config.videos):
            density = config.densities[index % len(config.densities)]
            index += 1
            scene = ConveyorScene((int(seed), video), (width, height), density=density)
            for frame in range(config.frames * config.frame_step):
                image, labels = scene.next_frame()
                if frame % config.frame_step:
                    continue
                target = boundary_target(labels, scene.render_instances(), config.radius)
                batch = torch.from_numpy(pre([image], ['rgb'], (height, width)))
                with torch.inference_mode():
                    fused = model.decode_features(model.encode(batch))
                features.append(fused.to(torch.float16))
                targets.append(torch.from_numpy(target)[None, None])
            progress(f'train-boundary: seed {seed} video {video} (density {density:g}): '
                     f'{len(features)} frames kept')
    return torch.cat(features), torch.cat(targets)


def train_head(head: Any, features: Any, targets: Any, config: BoundaryTrainConfig,
               progress: Callable[[str], None] = _LOG.info) -> list[float]:
    """Fit ``head`` (a :class:`~lw_refinenet_ros.model.boundary.BoundaryHead`) to the
    targets; returns the mean loss of each epoch."""
    import torch
    import torch.nn.functional as F

    generator = torch.Generator().manual_seed(config.seed)
    optimiser = torch.optim.Adam(head.parameters(), lr=config.lr)
    steps = config.epochs * math.ceil(len(features) / config.batch)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, max(1, steps))
    weight = torch.tensor(config.pos_weight)
    head.train()
    losses = []
    for epoch in range(config.epochs):
        order = torch.randperm(len(features), generator=generator)
        total = 0.0
        for first in range(0, len(order), config.batch):
            chosen = order[first:first + config.batch]
            logits = head(features[chosen].float())
            loss = F.binary_cross_entropy_with_logits(logits, targets[chosen],
                                                      pos_weight=weight)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
            total += loss.item() * len(chosen)
        losses.append(total / len(order))
        progress(f'train-boundary: epoch {epoch + 1}/{config.epochs} loss {losses[-1]:.4f}')
    head.eval()
    return losses


def cell_scores(head: Any, features: Any, targets: Any, threshold: float = 0.5,
                ) -> tuple[float, float]:
    """Precision and recall of the head's cells at ``threshold`` (a sanity figure; the
    object scores decide)."""
    import torch

    with torch.inference_mode():
        predicted = torch.cat([torch.sigmoid(head(features[i:i + 16].float()))
                               for i in range(0, len(features), 16)]) >= threshold
    truth = targets > 0.5
    hits = int((predicted & truth).sum())
    found, present = int(predicted.sum()), int(truth.sum())
    return (hits / found if found else math.nan), (hits / present if present else math.nan)


def train_boundary(config: BoundaryTrainConfig,
                   progress: Callable[[str], None] = _LOG.info) -> BoundaryTrainReport:
    """The whole command: load, add the head, collect, train, save.

    Raises:
        ConfigError: Bad settings, or an output path that is the starting checkpoint.
        CheckpointError: The starting checkpoint cannot be read.
    """
    import torch

    from lw_refinenet_ros.model.boundary import BOUNDARY_FLAG
    from lw_refinenet_ros.model.checkpoint import save_checkpoint
    from lw_refinenet_ros.model.weights import DEFAULT_MODEL_PATH, load_model

    config.check()
    source = Path(config.weights) if config.weights else DEFAULT_MODEL_PATH
    if Path(config.out).resolve() == source.resolve():
        raise ConfigError(f'train-boundary would overwrite its starting checkpoint {source}; '
                          f'choose another --out.')
    torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    model, info = load_model(config.weights)
    model.eval()
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    head = model.boundary if model.boundary is not None else model.add_boundary_head()
    for parameter in head.parameters():
        parameter.requires_grad_(True)
    start = time.perf_counter()
    features, targets = collect(model, config, progress)
    rendered = time.perf_counter()
    losses = train_head(head, features, targets, config, progress)
    trained = time.perf_counter()
    precision, recall = cell_scores(head, features, targets)
    report = BoundaryTrainReport(
        frames=len(features), seam_cells=float(targets.mean()),
        render_s=rendered - start, train_s=trained - rendered, losses=losses,
        precision=precision, recall=recall)
    training = {key: list(value) if isinstance(value, tuple) else value
                for key, value in asdict(config).items() if key not in ('out', 'weights')}
    metadata = dict(info.metadata)
    metadata[BOUNDARY_FLAG] = True
    metadata['boundary_training'] = {'from': str(source.name), **training,
                                     **report.as_metadata()}
    # float16 (half the file, as the packaged model) only where that loses nothing: the class
    # weights must come back bit for bit (BatchNorm statistics stay float32 either way).
    half = all(torch.equal(t, t.half().float()) for key, t in info.state_dict.items()
               if t.is_floating_point() and not key.endswith(('running_mean', 'running_var')))
    save_checkpoint(config.out, model, arch=info.arch, class_names=info.class_names,
                    colors=info.colors, metadata=metadata, half=half)
    progress(f'train-boundary: {report.frames} frames ({100 * report.seam_cells:.2f} % seam '
             f'cells), features {report.render_s:.0f} s, head {report.train_s:.0f} s; cells '
             f'at 0.5: precision {precision:.3f} recall {recall:.3f}; saved {config.out}')
    return report
