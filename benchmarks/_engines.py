"""Engines for the benchmarks: a fixed-latency fake, and the real one built the node's way.

The fake isolates node overhead: it returns a valid :class:`SegmentationResult` (labels,
confidence, per-class statistics) and then sleeps for the rest of a fixed budget, so
``end-to-end - fake latency - transport floor`` is what the node itself costs. It sleeps
rather than spins because torch releases the GIL during inference too, so the executor
thread keeps receiving frames exactly as it would with the real engine.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Sequence

import numpy as np

_LOG = logging.getLogger(__name__)


class FakeEngine:
    """Fixed-latency stand-in for ``InferenceEngine`` (same call signature and result)."""

    def __init__(self, latency_ms: float = 5.0, num_classes: int = 3,
                 device: str = 'cpu') -> None:
        self.latency_ms = float(latency_ms)
        self.num_classes = int(num_classes)
        self.device = device
        self.calls = 0
        self._cache: dict[tuple, tuple] = {}

    def __call__(self, image: np.ndarray, color_order: str = 'rgb', *,
                 want_confidence: bool = True, want_stats: bool = True) -> Any:
        from lw_refinenet_ros import engine
        from lw_refinenet_ros import stats as stats_module
        start = time.perf_counter()
        self.calls += 1
        height, width = image.shape[:2]
        # Results are cached per shape so the engine's own cost stays ~0 under any load and
        # the fixed latency is really fixed (the node must not write into its results).
        key = (height, width, want_confidence, want_stats)
        if key not in self._cache:
            labels = np.zeros((height, width), dtype=np.uint8)
            labels[:, width // 2:] = 1 % self.num_classes
            labels[: height // 4, : width // 4] = 2 % self.num_classes
            confidence = (np.full((height, width), 0.9, dtype=np.float32)
                          if want_confidence else None)
            stats = (stats_module.compute_class_stats(labels, confidence, self.num_classes)
                     if want_stats else None)
            self._cache[key] = (labels, confidence, stats)
        labels, confidence, stats = self._cache[key]
        left = self.latency_ms / 1e3 - (time.perf_counter() - start)
        if left > 0:
            time.sleep(left)
        total = (time.perf_counter() - start) * 1e3
        return engine.SegmentationResult(
            labels=labels, confidence=confidence, stats=stats,
            timings={'preprocess': 0.0, 'forward': total, 'postprocess': 0.0, 'total': total},
            network_size=(height, width))

    def infer_batch(self, images: Sequence[np.ndarray], color_orders: Any = 'rgb',
                    **kwargs: Any) -> list[Any]:
        orders = [color_orders] * len(images) if isinstance(color_orders, str) else color_orders
        return [self(image, order, **kwargs) for image, order in zip(images, orders)]


def build_real_engine(*, device: str = 'cpu', weights: str | None = None,
                      num_classes: int = 3, max_side: int | None = None,
                      num_threads: int | None = None) -> Any:
    """The real engine on the packaged default model, or random mbv2 weights without one."""
    from lw_refinenet_ros import engine
    from lw_refinenet_ros.errors import CheckpointError
    from lw_refinenet_ros.model import build_model, load_model
    try:
        model, info = load_model(weights)
        num_classes = info.num_classes
        _LOG.info('naive node: model %s', info.source)
    except CheckpointError as error:
        if weights is not None:
            raise
        _LOG.warning('no default model (%s); using random mbv2 weights', error)
        model = build_model('mbv2', num_classes).eval()
    config = engine.EngineConfig(device=device, max_side=max_side, num_threads=num_threads)
    return engine.InferenceEngine(model, config, num_classes=num_classes)
