"""Fake engines for node tests: deterministic labels, optional delay or failure."""

from __future__ import annotations

import threading
import time
from typing import Any, Callable

import numpy as np

from lw_refinenet_ros.engine import SegmentationResult
from lw_refinenet_ros.palette import ClassMap
from lw_refinenet_ros.ros.pipeline import LoadedModel
from lw_refinenet_ros.stats import compute_class_stats

NUM_CLASSES = 3


def red_threshold_labels(image: np.ndarray, order: str) -> np.ndarray:
    """Class 1 where red > 127, class 2 where blue > 127 (and red not), else 0."""
    red = image[:, :, 0 if order == 'rgb' else 2].astype(int)
    blue = image[:, :, 2 if order == 'rgb' else 0].astype(int)
    return np.where(red > 127, 1, np.where(blue > 127, 2, 0)).astype(np.uint8)


class FakeEngine:
    """Stands in for InferenceEngine: labels from ``label_fn``, confidence 0.75 everywhere."""

    device = 'fake'

    def __init__(self, delay_s: float = 0.0,
                 label_fn: Callable[[np.ndarray, str], np.ndarray] = red_threshold_labels,
                 fail: Callable[[], Exception | None] | None = None) -> None:
        self.delay_s = delay_s
        self.label_fn = label_fn
        self.fail = fail
        self.batches: list[list[np.ndarray]] = []
        self.thread_names: set[str] = set()
        self._lock = threading.Lock()

    def infer_batch(self, images: list[np.ndarray], orders: Any, *,
                    want_confidence: bool = True, want_stats: bool = True) -> list[Any]:
        self.thread_names.add(threading.current_thread().name)
        with self._lock:
            self.batches.append([image.copy() for image in images])
        if self.delay_s:
            time.sleep(self.delay_s)
        if self.fail is not None:
            error = self.fail()
            if error is not None:
                raise error
        orders = [orders] * len(images) if isinstance(orders, str) else list(orders)
        results = []
        for image, order in zip(images, orders):
            labels = self.label_fn(image, order)
            confidence = np.full(labels.shape, 0.75, np.float32)
            stats = compute_class_stats(labels, confidence, NUM_CLASSES) if want_stats else None
            results.append(SegmentationResult(labels, confidence if want_confidence else None,
                                              stats, {'total': self.delay_s * 1e3}))
        return results


def fake_factory(engine: FakeEngine) -> Callable[[Any], LoadedModel]:
    """An engine_factory for SegmentationNode returning ``engine`` with 3 named classes."""
    class_map = ClassMap(('background', 'red_part', 'blue_part'),
                         np.array([[0, 0, 0], [255, 0, 0], [0, 0, 255]], np.uint8))
    return lambda config: LoadedModel(engine, class_map, 'fake:test')
