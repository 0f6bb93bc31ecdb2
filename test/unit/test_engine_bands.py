"""Band post-processing: argmax at stride 4, interpolation only where labels can change.

The claim under test: for an output exactly four times the logits, the band path's labels are
those of interpolating every pixel's logits (``align_corners=False``, as the engine and torch
define it) and taking the argmax, for bilinear and bicubic alike; pixels are only allowed to
differ where the full-precision reference itself has a near tie.
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lw_refinenet_ros.engine import EngineConfig, InferenceEngine
from lw_refinenet_ros.engine.bands import band_upsample, block_weights, lobe_sums
from lw_refinenet_ros.engine.postprocess import CpuPostprocessor, label_dtype

#: Float64 reference top-2 gaps below this are ties that float32 rounding may break either way.
NEAR_TIE = 1e-4


def _random_logits(num_classes: int, h: int, w: int, seed: int, smooth: float) -> np.ndarray:
    """Random (K, h, w) float32 logits; ``smooth`` > 0 blurs them into regions with edges."""
    logits = np.random.default_rng(seed).normal(size=(num_classes, h, w)) * 3.0
    if smooth:
        logits = np.stack([cv2.GaussianBlur(plane, (0, 0), smooth) for plane in logits]) * 4
    return logits.astype(np.float32)


def _full(logits: np.ndarray, kernel: str, factor: int = 4) -> torch.Tensor:
    """Every pixel interpolated in float64: (K, factor h, factor w)."""
    _, h, w = logits.shape
    return F.interpolate(torch.from_numpy(logits.astype(np.float64))[None],
                         size=(factor * h, factor * w), mode=kernel, align_corners=False)[0]


def _near_ties(full: torch.Tensor) -> np.ndarray:
    if full.shape[0] == 1:
        return np.zeros(full.shape[1:], bool)
    top = full.topk(2, dim=0).values
    return (top[0] - top[1]).numpy() < NEAR_TIE


def _band(logits: np.ndarray, kernel: str, factor: int = 4, **kwargs: object
          ) -> tuple[np.ndarray, np.ndarray, int]:
    k, h, w = logits.shape
    labels = np.empty((factor * h, factor * w), label_dtype(k))
    confidence = np.empty((factor * h, factor * w), np.float32)
    blocks = band_upsample(logits, kernel, labels, confidence, **kwargs)
    return labels, confidence, blocks


@pytest.mark.parametrize('kernel', ['bilinear', 'bicubic'])
@pytest.mark.parametrize('num_classes, h, w, smooth', [
    (5, 7, 9, 0.0), (8, 30, 40, 1.5), (21, 12, 17, 1.0), (2, 1, 1, 0.0), (1, 4, 5, 0.0),
    (3, 2, 33, 2.0), (300, 6, 5, 0.0)])
def test_band_labels_equal_full_interpolation_then_argmax(kernel: str, num_classes: int, h: int,
                                                          w: int, smooth: float) -> None:
    logits = _random_logits(num_classes, h, w, seed=num_classes * 100 + h, smooth=smooth)
    labels, _, _ = _band(logits, kernel)
    full = _full(logits, kernel)
    _check_labels(labels, full, num_classes)


@pytest.mark.parametrize('kernel', ['bilinear', 'bicubic'])
@pytest.mark.parametrize('factor', [2, 3, 5, 8])
def test_other_integer_factors_equal_full_interpolation_too(kernel: str, factor: int) -> None:
    """8x is the packaged model's case (max_side 320 on a 640x480 camera)."""
    logits = _random_logits(6, 15, 20, seed=factor, smooth=1.5)
    labels, _, blocks = _band(logits, kernel, factor)
    full = _full(logits, kernel, factor)
    _check_labels(labels, full, 6)
    assert 0 < blocks <= 16 * 21 and (kernel == 'bicubic' or blocks < 16 * 21)
    _, confidence, _ = _band(logits, kernel, factor, confidence_tolerance=0.01)
    exact = torch.softmax(full, dim=0).max(dim=0).values.numpy()
    assert np.abs(confidence - exact).max() <= 0.01 + 1e-6


def _check_labels(labels: np.ndarray, full: torch.Tensor, num_classes: int) -> None:
    expected = full.argmax(dim=0).numpy()
    ties = _near_ties(full)
    assert labels.shape == expected.shape and labels.dtype == label_dtype(num_classes)
    differ = labels != expected
    assert not (differ & ~ties).any(), f'{int((differ & ~ties).sum())} labels differ'
    assert ties.mean() < 0.01


@pytest.mark.parametrize('kernel', ['bilinear', 'bicubic'])
@pytest.mark.parametrize('tolerance', [0.01, 0.001])
def test_confidence_is_within_the_tolerance_of_exact(kernel: str, tolerance: float) -> None:
    """Exact in the bands; elsewhere the interpolated stride-4 confidence, only where each
    class's lead range over the window proves it within the tolerance."""
    logits = _random_logits(6, 24, 32, seed=3, smooth=2.0)
    labels, confidence, blocks = _band(logits, kernel, confidence_tolerance=tolerance)
    labels_only = band_upsample(logits, kernel, np.empty_like(labels), None)
    assert 0 < labels_only < 25 * 33 and labels_only <= blocks  # some sure, some in the band
    exact = torch.softmax(_full(logits, kernel), dim=0).max(dim=0).values.numpy()
    assert np.abs(confidence - exact).max() <= tolerance + 1e-6
    assert ((confidence >= 1 / 6 - 1e-6) & (confidence <= 1.0)).all()


def test_without_a_tolerance_only_the_label_bands_are_interpolated() -> None:
    logits = _random_logits(6, 24, 32, seed=3, smooth=2.0)
    labels = np.empty((96, 128), np.uint8)
    _, confidence, blocks = _band(logits, 'bicubic', confidence_tolerance=None)
    assert blocks == band_upsample(logits, 'bicubic', labels, None)
    exact = torch.softmax(_full(logits, 'bicubic'), dim=0).max(dim=0).values.numpy()
    assert np.abs(confidence - exact).mean() < 0.01


def test_the_bicubic_bound_uses_opencvs_kernel() -> None:
    """Weights of each output position sum to one; bicubic has negative lobes, bilinear none,
    and the band's block weights reproduce OpenCV's INTER_CUBIC on a single row."""
    for kernel in ('bilinear', 'bicubic'):
        np.testing.assert_allclose(block_weights(kernel).sum(axis=1), 1.0, atol=1e-6)
    assert lobe_sums('bilinear') == (1.0, 0.0)
    positive, negative = lobe_sums('bicubic')
    assert negative > 0 and positive > 1.0  # the negative lobes: a bound, not convexity
    row = np.random.default_rng(0).normal(size=(1, 6)).astype(np.float32)
    up = cv2.resize(row, (24, 1), interpolation=cv2.INTER_CUBIC)[0]
    # Output 4*2 + 2 + a (block i = 2) reads inputs 1..4 with the block weights of row a.
    for a in range(4):
        assert up[10 + a] == pytest.approx(float(block_weights('bicubic')[a] @ row[0, 1:5]),
                                           abs=1e-5)


def test_the_postprocessor_takes_the_band_path_only_at_integer_factors() -> None:
    logits = _random_logits(5, 10, 12, seed=1, smooth=1.5)
    post = CpuPostprocessor(5)
    post(logits, 40, 48, False)
    assert post.last_band_blocks is not None and 0 < post.last_band_blocks < 11 * 13
    labels, confidence = post(logits, 40, 48, True)
    full = CpuPostprocessor(5, band=False)
    expected, _ = full(logits, 40, 48, True)
    assert full.last_band_blocks is None
    assert np.array_equal(labels, expected)
    post(logits, 39, 48, True)  # an image height that is not a multiple of 10: the full path
    assert post.last_band_blocks is None
    labels_only, none = post(logits, 40, 48, False)
    assert none is None and np.array_equal(labels_only, expected)


def test_engine_labels_and_stats_are_the_same_with_and_without_bands() -> None:
    from lw_refinenet_ros.model import build_model

    torch.manual_seed(0)
    model = build_model('mbv2', 6).eval()
    image = np.random.default_rng(2).integers(0, 256, (64, 96, 3), dtype=np.uint8)
    image = cv2.GaussianBlur(image, (0, 0), 4)
    config = EngineConfig(device='cpu', backend='torch', precision='fp32', warmup_iters=0)
    banded = InferenceEngine(model, config)(image)
    full = InferenceEngine(model, dataclasses.replace(config, band_postprocess=False))(image)
    assert np.array_equal(banded.labels, full.labels)
    assert [(s.class_id, s.pixel_count, s.bbox) for s in banded.stats] == \
        [(s.class_id, s.pixel_count, s.bbox) for s in full.stats]
    assert np.abs(banded.confidence - full.confidence).mean() < 1e-3
