"""What the engine returns for one frame (numpy only)."""

from __future__ import annotations

import dataclasses

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
    """

    labels: np.ndarray
    confidence: np.ndarray | None
    stats: list[ClassStat] | None
    timings: dict[str, float]
    network_size: tuple[int, int] = (0, 0)
