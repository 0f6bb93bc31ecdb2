"""Full-resolution evaluation with the reference post-processing.

Each image is normalised, run at its native size, the stride-4 logits are upsampled to the
image size with bicubic interpolation (``align_corners=False``) and the argmax is compared
with the ground truth (section 6 of the architecture notes).
"""

from __future__ import annotations

import logging
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from lw_refinenet_ros.training.metrics import ConfusionMeter, SegmentationScores
from lw_refinenet_ros.training.transforms import normalize

_LOG = logging.getLogger(__name__)


@torch.inference_mode()
def predict(model: torch.nn.Module, image: np.ndarray, device: torch.device | str = 'cpu'
            ) -> np.ndarray:
    """Segment one RGB uint8 image at full resolution; returns uint8 (H, W) labels."""
    x = torch.from_numpy(normalize(image))[None].to(device)
    logits = model(x)
    logits = F.interpolate(logits.float(), size=image.shape[:2], mode='bicubic',
                           align_corners=False)
    return logits.argmax(1)[0].to(torch.uint8).cpu().numpy()


def evaluate_model(model: torch.nn.Module, dataset: Sequence, num_classes: int, *,
                   device: torch.device | str = 'cpu', limit: int | None = None,
                   transform: Callable[[np.ndarray], np.ndarray] | None = None,
                   progress: bool = False) -> SegmentationScores:
    """Confusion-matrix scores of ``model`` over ``dataset`` (or its first ``limit`` items).

    Args:
        model: Returns logits (N, K, ceil(H/4), ceil(W/4)); put in eval mode here.
        dataset: ``ds[i] -> (image RGB uint8, labels uint8)``.
        num_classes: K.
        device: Where to run.
        limit: Evaluate only the first ``limit`` items.
        transform: Optional image-only perturbation (robustness checks: brightness, blur...).
        progress: Show a tqdm bar.
    """
    was_training = model.training
    model.eval()
    meter = ConfusionMeter(num_classes)
    count = len(dataset) if limit is None else min(limit, len(dataset))
    indices = range(count)
    if progress:
        from tqdm import tqdm

        indices = tqdm(indices, desc='eval', unit='img')
    try:
        for i in indices:
            image, labels = dataset[i]
            if transform is not None:
                image = transform(image)
            meter.update(labels, predict(model, image, device))
    finally:
        model.train(was_training)
    return meter.scores()
