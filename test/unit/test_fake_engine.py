"""The shared fake engine (``lw_refinenet_ros.testing``): the engine's contract, on cue."""

from __future__ import annotations

import time

import numpy as np
import pytest

from lw_refinenet_ros.testing.fake_engine import FakeEngine, split_labels


def _frame(red: int = 200, blue: int = 0) -> np.ndarray:
    image = np.zeros((6, 8, 3), np.uint8)
    image[:, :4, 0] = red
    image[:, 4:, 2] = 200 if blue else 0
    return image


def test_results_follow_the_engines_contract() -> None:
    engine = FakeEngine()
    result = engine(_frame(blue=1))
    assert result.labels.shape == (6, 8) and result.labels.dtype == np.uint8
    assert set(np.unique(result.labels)) == {1, 2}
    assert result.confidence is not None and result.confidence.dtype == np.float32
    assert [stat.class_id for stat in result.stats] == [1, 2]
    assert result.network_size == (6, 8)
    assert engine.calls == [((6, 8, 3), 'rgb')]


def test_colour_order_is_honoured() -> None:
    bgr = _frame()[..., ::-1].copy()  # red in the last channel
    assert FakeEngine()(bgr, 'bgr').labels[0, 0] == 1
    assert FakeEngine()(bgr, 'rgb').labels[0, 0] == 2


def test_batches_with_per_image_orders_and_optional_outputs() -> None:
    engine = FakeEngine()
    results = engine.infer_batch([_frame(), _frame()[..., ::-1].copy()], ['rgb', 'bgr'],
                                 want_confidence=False, want_stats=False)
    assert [r.labels[0, 0] for r in results] == [1, 1]
    assert all(r.confidence is None and r.stats is None for r in results)
    assert len(engine.batches) == 1 and len(engine.batches[0]) == 2


def test_delay_is_the_whole_calls_latency() -> None:
    engine = FakeEngine(delay_s=0.2)
    start = time.perf_counter()
    result = engine(_frame())
    assert time.perf_counter() - start >= 0.2
    assert result.timings['total'] >= 200.0


def test_script_fails_the_numbered_image_only() -> None:
    engine = FakeEngine(script={2: RuntimeError('CUDA out of memory')})
    engine(_frame())
    with pytest.raises(RuntimeError, match='out of memory'):
        engine(_frame())
    engine(_frame())
    assert len(engine.calls) == 3


def test_fail_when_and_fail_callbacks() -> None:
    engine = FakeEngine(fail_when=lambda image: ValueError('odd') if image.shape[1] % 2 else None)
    engine(_frame())
    with pytest.raises(ValueError):
        engine(np.zeros((4, 5, 3), np.uint8))
    errors = [MemoryError()]
    engine = FakeEngine(fail=lambda: errors.pop() if errors else None)
    with pytest.raises(MemoryError):
        engine(_frame())
    engine(_frame())


def test_cache_by_shape_reuses_results_and_keep_images_off_keeps_nothing() -> None:
    engine = FakeEngine(label_fn=split_labels, cache_by_shape=True, keep_images=False)
    first, second = engine(_frame()), engine(_frame(red=0))
    assert first.labels is second.labels
    assert engine.batches == [[], []]
    assert engine(np.zeros((4, 4, 3), np.uint8)).labels.shape == (4, 4)


def test_negative_delay_is_refused() -> None:
    with pytest.raises(ValueError, match='delay_s'):
        FakeEngine(delay_s=-1)


def test_native_busy_spends_the_delay_in_torch_and_announces_the_batch() -> None:
    said: list[str] = []
    engine = FakeEngine(delay_s=0.2, busy='native', announce=said.append)
    start = time.perf_counter()
    engine(_frame())
    assert time.perf_counter() - start >= 0.2
    assert said == ['inference start', 'inference end']
    with pytest.raises(ValueError, match='busy'):
        FakeEngine(busy='spin')
