"""Camera perturbations for robustness checks: a named, fixed suite everyone can re-run.

A model for a factory camera has to keep working when the lamp dims, the lens defocuses or the
gain (and with it the noise) goes up. ``lw-refinenet eval --robustness`` scores a checkpoint on
the same held-out images under each perturbation of :data:`ROBUSTNESS_SUITE`, so two models, or
two training recipes, are compared on identical inputs. Noise is drawn from a fixed seed per
run, so the numbers are reproducible.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import cv2
import numpy as np
import torch

from lw_refinenet_ros.evaluation.metrics import SegmentationScores
from lw_refinenet_ros.evaluation.segmentation import evaluate_model


@dataclass(frozen=True)
class Perturbation:
    """An image-only change applied before inference, in this order.

    Attributes:
        name: Short label for tables.
        brightness: Intensity gain (1 = unchanged).
        blur: Gaussian blur sigma in pixels (0 = none).
        noise: Gaussian noise sigma on the 0..255 scale (0 = none).
    """

    name: str
    brightness: float = 1.0
    blur: float = 0.0
    noise: float = 0.0

    @property
    def is_identity(self) -> bool:
        return self.brightness == 1.0 and self.blur <= 0 and self.noise <= 0

    def make(self, seed: int = 0) -> Callable[[np.ndarray], np.ndarray] | None:
        """The perturbation as ``image -> image`` (None for the identity)."""
        if self.is_identity:
            return None
        rng = np.random.default_rng(seed)

        def apply(image: np.ndarray) -> np.ndarray:
            x = image.astype(np.float32) * np.float32(self.brightness)
            if self.blur > 0:
                x = cv2.GaussianBlur(x, (0, 0), self.blur)
            if self.noise > 0:
                x += rng.standard_normal(x.shape, dtype=np.float32) * np.float32(self.noise)
            return np.clip(x, 0, 255).astype(np.uint8)

        return apply


# Half and one-and-a-half exposure, mild and strong defocus, moderate and high sensor gain, and
# all three mild ones at once (a dim, soft, grainy frame).
ROBUSTNESS_SUITE: tuple[Perturbation, ...] = (
    Perturbation('clean'),
    Perturbation('brightness x0.5', brightness=0.5),
    Perturbation('brightness x1.5', brightness=1.5),
    Perturbation('blur sigma 1.5', blur=1.5),
    Perturbation('blur sigma 3', blur=3.0),
    Perturbation('noise sigma 10', noise=10.0),
    Perturbation('noise sigma 20', noise=20.0),
    Perturbation('x0.7 + blur 1.5 + noise 10', brightness=0.7, blur=1.5, noise=10.0),
)


def evaluate_robustness(model: torch.nn.Module, dataset: Sequence, num_classes: int, *,
                        suite: Sequence[Perturbation] = ROBUSTNESS_SUITE,
                        device: torch.device | str = 'cpu', limit: int | None = None,
                        progress: bool = False
                        ) -> list[tuple[Perturbation, SegmentationScores]]:
    """Score ``model`` on ``dataset`` under every perturbation of ``suite``, in order."""
    return [(p, evaluate_model(model, dataset, num_classes, device=device, limit=limit,
                               transform=p.make(seed=index), progress=progress))
            for index, p in enumerate(suite)]
