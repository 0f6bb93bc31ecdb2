"""Engines for the benchmarks: a fixed-latency fake, and the real one built the node's way
(through :class:`~lw_refinenet_ros.segmenter.Segmenter`).

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
    """The real engine on the packaged default model (or ``weights``), built through the
    Segmenter as the node builds it; random mbv2 weights when there is no default model."""
    from lw_refinenet_ros.engine.config import EngineConfig
    from lw_refinenet_ros.errors import CheckpointError
    from lw_refinenet_ros.model import build_model
    from lw_refinenet_ros.segmenter import Segmenter

    config = EngineConfig(device=device, max_side=max_side, num_threads=num_threads)
    try:
        segmenter = Segmenter.load(weights, engine=config)
        _LOG.info('naive node: model %s', segmenter.name)
    except CheckpointError as error:
        if weights is not None:
            raise
        _LOG.warning('no default model (%s); using random mbv2 weights', error)
        segmenter = Segmenter.from_model(build_model('mbv2', num_classes).eval(), engine=config)
    return segmenter.engine
