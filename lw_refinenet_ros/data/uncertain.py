"""What to label next: keep the frames the model is least sure about.

A model improves fastest from labels on the images it gets wrong, and it is least confident
there. :class:`UncertainFrames` watches every segmented frame's confidence map (softmax
probability of the winning class) and keeps the N frames with the lowest mean confidence;
:meth:`UncertainFrames.write` saves them as PNGs for the next labelling round, with
``uncertain.json`` listing each frame's score. Used by ``lw-refinenet segment
--save-uncertain DIR N``; the node can use it the same way.
"""

from __future__ import annotations

import heapq
import json
import os
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from lw_refinenet_ros.errors import ConfigError


class UncertainFrames:
    """The ``count`` frames with the lowest mean confidence seen so far.

    Args:
        folder: Where :meth:`write` puts them (created).
        count: How many to keep (>= 1).
    """

    def __init__(self, folder: str | os.PathLike[str], count: int) -> None:
        if count < 1:
            raise ConfigError(f'--save-uncertain keeps N >= 1 frames, got {count}.')
        self.folder = Path(folder)
        self.count = count
        self._heap: list[tuple[float, int, str, np.ndarray]] = []  # (-score, n, stem, frame)
        self._seen = 0

    @classmethod
    def from_args(cls, value: Sequence[str] | None) -> UncertainFrames | None:
        """From the ``--save-uncertain DIR N`` pair (None when the flag is absent)."""
        if value is None:
            return None
        folder, count = value
        try:
            number = int(count)
        except ValueError:
            raise ConfigError(f'--save-uncertain DIR N: N must be a whole number, got '
                              f'{count!r}.') from None
        return cls(folder, number)

    def offer(self, stem: str, frame: np.ndarray, confidence: np.ndarray) -> None:
        """Consider one frame (BGR as it will be written; confidence (H, W) in [0, 1])."""
        score = float(np.mean(confidence))
        self._seen += 1
        entry = (-score, -self._seen, stem, frame)
        if len(self._heap) < self.count:
            heapq.heappush(self._heap, entry)
        elif entry > self._heap[0]:  # less confident than the most confident one kept
            heapq.heapreplace(self._heap, entry)

    def kept(self) -> list[tuple[str, float]]:
        """(stem, mean confidence) of the frames kept, least confident first."""
        return [(stem, -negative) for negative, _, stem, _ in sorted(self._heap, reverse=True)]

    def write(self) -> list[Path]:
        """Write the kept frames as ``<stem>.png`` and ``uncertain.json``; their paths."""
        self.folder.mkdir(parents=True, exist_ok=True)
        written = []
        scores = dict(self.kept())
        for _, _, stem, frame in sorted(self._heap, reverse=True):
            target = self.folder / f'{stem}.png'
            if not cv2.imwrite(str(target), frame):
                raise ConfigError(f'cannot write {target}; check the --save-uncertain folder.')
            written.append(target)
        with open(self.folder / 'uncertain.json', 'w') as stream:
            json.dump({'frames_seen': self._seen,
                       'kept': [{'image': p.name, 'mean_confidence': scores[p.stem]}
                                for p in written]}, stream, indent=1)
        return written
