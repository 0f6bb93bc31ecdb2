"""The numpy reference for per-class statistics, on hand-made label images."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lw_refinenet_ros.errors import ConfigError
from lw_refinenet_ros.stats import compute_class_stats


def test_hand_made_stats() -> None:
    labels = np.array([[0, 0, 2, 2],
                       [0, 0, 2, 0],
                       [0, 0, 0, 0]], dtype=np.uint8)
    conf = np.full(labels.shape, 0.5, dtype=np.float32)
    conf[0, 2] = 1.0
    stats = compute_class_stats(labels, conf, 4)
    assert [s.class_id for s in stats] == [0, 2]
    two = stats[1]
    assert two.pixel_count == 3
    assert two.area_fraction == pytest.approx(3 / 12)
    assert two.mean_confidence == pytest.approx((1.0 + 0.5 + 0.5) / 3)
    assert two.bbox == (2, 0, 3, 1)
    assert two.centroid == pytest.approx(((2 + 3 + 2) / 3, (0 + 0 + 1) / 3))
    zero = stats[0]
    assert zero.pixel_count == 9 and zero.bbox == (0, 0, 3, 2)


def test_without_confidence_is_nan() -> None:
    stats = compute_class_stats(np.ones((2, 2), np.uint16), None, 300)
    assert len(stats) == 1 and stats[0].class_id == 1 and math.isnan(stats[0].mean_confidence)


@pytest.mark.parametrize('shape, dtype', [
    ((17, 23), np.uint8),
    ((480, 640), np.uint8),  # several row blocks
    ((3, 40000), np.uint16),  # wider than one block: one row per block
    ((9, 7), np.int64),
    ((9, 7), np.uint64),
])
def test_matches_brute_force_on_random_labels(shape, dtype) -> None:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 5, shape).astype(dtype)
    labels[labels == 3] = 4  # class 3 absent
    conf = rng.random(labels.shape).astype(np.float32)
    stats = {s.class_id: s for s in compute_class_stats(labels, conf, 5)}
    assert sorted(stats) == [0, 1, 2, 4]
    for c, s in stats.items():
        ys, xs = np.nonzero(labels == c)
        assert s.pixel_count == len(xs)
        assert s.bbox == (xs.min(), ys.min(), xs.max(), ys.max())
        assert s.centroid == pytest.approx((xs.mean(), ys.mean()))
        assert s.mean_confidence == pytest.approx(conf[labels == c].mean(), rel=1e-6)


def test_errors() -> None:
    with pytest.raises(ConfigError, match='lie in'):
        compute_class_stats(np.full((2, 2), 3, np.uint8), None, 3)
    with pytest.raises(ConfigError, match=r'found -1\.\.0'):
        compute_class_stats(np.array([[0, -1]], np.int32), None, 3)
    with pytest.raises(ConfigError, match='differ'):
        compute_class_stats(np.zeros((2, 2), np.uint8), np.zeros((3, 2)), 3)
    assert compute_class_stats(np.zeros((0, 4), np.uint8), None, 3) == []


def test_the_mask_and_bincount_histograms_give_the_same_statistics(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """uint8 labels take the per-class masks; wider ones (or too many pixels x classes) the
    bincount path. Both must report identical counts, boxes and centroids."""
    import lw_refinenet_ros.stats as stats_module

    rng = np.random.default_rng(11)
    labels = rng.integers(0, 6, (37, 53), dtype=np.uint8)
    labels[:, :5] = 0  # class 5 absent from the left, class 0 a wide band
    labels[labels == 4] = 3  # class 4 absent entirely
    conf = rng.random((37, 53), dtype=np.float32)
    by_masks = compute_class_stats(labels, conf, 6)
    monkeypatch.setattr(stats_module, 'MASK_BUDGET', 0)
    by_bincount = compute_class_stats(labels, conf, 6)
    assert [s.class_id for s in by_masks] == [0, 1, 2, 3, 5]
    for a, b in zip(by_masks, by_bincount, strict=True):
        assert (a.class_id, a.pixel_count, a.bbox, a.centroid) == \
            (b.class_id, b.pixel_count, b.bbox, b.centroid)
        assert a.mean_confidence == pytest.approx(b.mean_confidence, rel=1e-12)
    ys, xs = np.nonzero(labels == 3)
    three = next(s for s in by_masks if s.class_id == 3)
    assert three.bbox == (xs.min(), ys.min(), xs.max(), ys.max())
    assert three.centroid == pytest.approx((xs.mean(), ys.mean()))
