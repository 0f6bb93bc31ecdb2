"""Full-resolution evaluation through the inference engine the node runs.

Scores are computed on the labels of :class:`~lw_refinenet_ros.engine.InferenceEngine`, not
on a separate evaluation path, so ``lw-refinenet eval`` with a given backend and precision
measures exactly what the node with the same parameters publishes (the default, torch fp32
at native resolution with bicubic upsampling, is the reference pipeline; see
docs/engine.md).
"""

from __future__ import annotations

import copy
import logging
from typing import Callable, Sequence

import numpy as np
import torch

from lw_refinenet_ros.data.datasets import scored_samples
from lw_refinenet_ros.engine import EngineConfig, InferenceEngine
from lw_refinenet_ros.evaluation.metrics import ConfusionMeter, SegmentationScores

_LOG = logging.getLogger(__name__)

#: RGB uint8 (H, W, 3) -> (H, W) class ids.
Segmenter = Callable[[np.ndarray], np.ndarray]


def reference_engine(model: torch.nn.Module, device: torch.device | str = 'cpu', *,
                     num_classes: int | None = None) -> InferenceEngine:
    """A torch fp32 engine on a copy of ``model`` (the caller's model is left untouched).

    Training validates with this: the engine folds BatchNorm and changes the memory format of
    the model it owns, which must not happen to the model being trained.
    """
    module = model.module if isinstance(
        model, torch.nn.parallel.DistributedDataParallel) else model
    frozen = copy.deepcopy(module).eval()
    # None: the process-wide cuDNN/TF32 switches stay as training set them.
    config = EngineConfig(device=str(device), backend='torch', precision='fp32',
                          warmup_iters=0, cudnn_benchmark=None, allow_tf32=None)
    return InferenceEngine(frozen, config, num_classes=num_classes)


def engine_segmenter(engine: InferenceEngine) -> Segmenter:
    """The labels of ``engine`` for an RGB image (no confidence, no statistics)."""
    def segment(image: np.ndarray) -> np.ndarray:
        return engine(image, 'rgb', want_confidence=False, want_stats=False).labels
    return segment


def predict(model: torch.nn.Module | InferenceEngine, image: np.ndarray,
            device: torch.device | str = 'cpu') -> np.ndarray:
    """Segment one RGB uint8 image at full resolution; returns (H, W) labels."""
    engine = model if isinstance(model, InferenceEngine) else reference_engine(model, device)
    return engine_segmenter(engine)(image)


def evaluate_labels(segment: Segmenter, dataset: Sequence, num_classes: int, *,
                    limit: int | None = None,
                    transform: Callable[[np.ndarray], np.ndarray] | None = None,
                    progress: bool = False) -> SegmentationScores:
    """Confusion-matrix scores of ``segment`` over ``dataset`` (or its first ``limit`` items).

    Args:
        segment: RGB uint8 image -> labels.
        dataset: ``ds[i] -> (image RGB uint8, labels uint8)``.
        num_classes: K.
        limit: Evaluate only the first ``limit`` items.
        transform: Optional image-only perturbation (robustness checks: brightness, blur...).
        progress: Show a tqdm bar.
    """
    meter = ConfusionMeter(num_classes)
    for _, image, labels in scored_samples(dataset, limit=limit, transform=transform,
                                           progress=progress, desc='eval'):
        meter.update(labels, segment(image))
    return meter.scores()


def evaluate_model(model: torch.nn.Module | InferenceEngine, dataset: Sequence,
                   num_classes: int, *, device: torch.device | str = 'cpu',
                   limit: int | None = None,
                   transform: Callable[[np.ndarray], np.ndarray] | None = None,
                   progress: bool = False) -> SegmentationScores:
    """Scores of a model (through a torch fp32 :func:`reference_engine` on ``device``) or of
    an already built engine (its own backend, precision and device; ``device`` is ignored).

    See :func:`evaluate_labels` for the other arguments.
    """
    engine = model if isinstance(model, InferenceEngine) else reference_engine(
        model, device, num_classes=num_classes)
    return evaluate_labels(engine_segmenter(engine), dataset, num_classes, limit=limit,
                           transform=transform, progress=progress)
