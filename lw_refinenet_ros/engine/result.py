"""What the engine returns for one frame (numpy only)."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from lw_refinenet_ros.stats import ClassStat


@dataclasses.dataclass
class SegmentationResult:
    """One segmented frame.

    Attributes:
        labels: (H, W) class ids at the input's full resolution; uint8, or uint16 when K > 256.
        confidence: (H, W) float32 softmax probability of the winning class, or None.
        stats: Per-class statistics of the present classes (ascending id), or None.
        timings: Milliseconds per stage: ``preprocess``, ``forward``, ``postprocess``,
            ``total``. In a batch, preprocess and forward are those of the whole group.
        network_size: (height, width) the network actually ran at (differs with max_side).
        class_names: Names of the class ids (filled in by :class:`~lw_refinenet_ros.segmenter.
            Segmenter`; empty from a bare engine).
        objects: The parts found in the frame (an ``objects.processor.ObjectFrame``), when a
            Segmenter looked for them; else None.
        boundary: (h, w) float32 part-boundary probability at the network's stride 4, when
            the model has the boundary channel (model/boundary.py); else None.
    """

    labels: np.ndarray
    confidence: np.ndarray | None
    stats: list[ClassStat] | None
    timings: dict[str, float]
    network_size: tuple[int, int] = (0, 0)
    class_names: tuple[str, ...] = ()
    objects: Any = None  # ObjectFrame; the engine layer does not import objects/
    boundary: np.ndarray | None = None
