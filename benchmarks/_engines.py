"""Engines for the benchmarks: a fixed-latency fake, and the real one built the node's way.

The fake is the tests' (:class:`lw_refinenet_ros.testing.fake_engine.FakeEngine`). It isolates
node overhead: it returns a valid result (labels, confidence, per-class statistics) and then
sleeps for the rest of a fixed budget per call, so ``end-to-end - fake latency - transport
floor`` is what the node itself costs. It sleeps rather than spins because torch releases the
GIL during inference too, so the executor thread keeps receiving frames exactly as it would
with the real engine.
"""

from __future__ import annotations

import logging
from typing import Any

from lw_refinenet_ros.testing.fake_engine import FakeEngine, split_labels

_LOG = logging.getLogger(__name__)


def fake_engine(latency_ms: float = 5.0, num_classes: int = 3) -> FakeEngine:
    """The shared fake engine with a fixed latency per call and labels cached per shape."""
    return FakeEngine(latency_ms / 1e3, split_labels, num_classes=num_classes,
                      cache_by_shape=True, keep_images=False, device='cpu')


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
