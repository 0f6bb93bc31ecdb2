"""InferenceEngine against the reference pipeline (CPU, small seeded inputs)."""

from __future__ import annotations

import dataclasses
import logging

import cv2
import numpy as np
import pytest
import torch
from torch import nn
import torch.nn.functional as F

from lw_refinenet_ros.engine import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    EngineConfig,
    InferenceEngine,
    normalization_lut,
)
from lw_refinenet_ros.engine.postprocess import (
    TILE_BUDGET_BYTES,
    CpuPostprocessor,
    TorchPostprocessor,
)
from lw_refinenet_ros.engine.preprocess import CpuPreprocessor, TorchPreprocessor
from lw_refinenet_ros.errors import ConfigError, EngineError
from lw_refinenet_ros.reference_pipeline import (
    reference_logits,
    reference_preprocess,
    reference_segment,
)
from lw_refinenet_ros.stats import compute_class_stats

FAST = EngineConfig(device='cpu', backend='torch', precision='fp32', warmup_iters=0)


class StandIn(nn.Module):
    """(N, 3, H, W) -> (N, K, ceil(H/4), ceil(W/4)) with a BatchNorm to fold."""

    def __init__(self, num_classes: int, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1, bias=False), nn.BatchNorm2d(8),
                                  nn.ReLU())
        self.head = nn.Conv2d(8, num_classes, 3, 2, 1)
        with torch.no_grad():
            self.body[1].running_mean.uniform_(-0.5, 0.5)
            self.body[1].running_var.uniform_(0.5, 2.0)
            self.body[1].weight.uniform_(0.5, 1.5)
            self.body[1].bias.uniform_(-0.2, 0.2)
        self.num_classes = num_classes
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


def _image(height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def _stats_equal(a: list, b: list, rel: float = 1e-9) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert dataclasses.replace(x, mean_confidence=0.0) == \
            dataclasses.replace(y, mean_confidence=0.0)
        assert x.mean_confidence == pytest.approx(y.mean_confidence, rel=rel, abs=1e-12)


# ----------------------------------------------------------------- preprocessing


def test_normalisation_of_known_pixels_is_exact() -> None:
    lut = normalization_lut()
    assert lut[0, 255] == np.float32((1.0 - 0.485) / 0.229)
    assert lut[1, 0] == np.float32((0.0 - 0.456) / 0.224)
    assert lut[2, 128] == np.float32((128 / 255 - 0.406) / 0.225)
    assert lut[0, 255] == pytest.approx(2.2489083, abs=1e-6)
    assert lut[1, 0] == pytest.approx(-2.0357143, abs=1e-6)
    assert np.allclose(lut[:, 0], -np.array(IMAGENET_MEAN) / np.array(IMAGENET_STD))


@pytest.mark.parametrize('order', ['rgb', 'bgr'])
def test_preprocessing_is_bit_identical_to_the_float64_reference(order: str) -> None:
    image = _image(7, 9)
    pixel = np.array([[[255, 0, 128]]], dtype=np.uint8)
    fed = image if order == 'rgb' else np.ascontiguousarray(image[..., ::-1])
    fed_pixel = pixel if order == 'rgb' else np.ascontiguousarray(pixel[..., ::-1])
    for preprocess in (CpuPreprocessor(), lambda *a: TorchPreprocessor('cpu')(*a).numpy()):
        x = preprocess([fed, fed], [order, order], (7, 9))
        one = preprocess([fed_pixel], [order], (1, 1))[0, :, 0, 0]
        assert x.dtype == np.float32 and x.shape == (2, 3, 7, 9)
        assert np.array_equal(x[1], reference_preprocess(image)[0])
        expected = [(1 - 0.485) / 0.229, (0 - 0.456) / 0.224, (128 / 255 - 0.406) / 0.225]
        assert np.array_equal(one, np.asarray(expected, dtype=np.float32))


# ----------------------------------------------------------------- labels


@pytest.mark.parametrize('order', ['rgb', 'bgr'])
def test_labels_equal_the_reference_on_an_odd_size_mbv2(order: str) -> None:
    from lw_refinenet_ros.model import build_model

    torch.manual_seed(0)
    model = build_model('mbv2', 21).eval()
    image = _image(37, 53)
    reference = reference_segment(model, image)
    engine = InferenceEngine(model, FAST)
    fed = image if order == 'rgb' else np.ascontiguousarray(image[..., ::-1])
    result = engine(fed, order)
    assert result.labels.dtype == np.uint8 and result.labels.shape == (37, 53)
    assert np.array_equal(result.labels, reference)
    assert set(result.timings) == {'preprocess', 'forward', 'postprocess', 'total'}
    assert result.network_size == (37, 53)


def test_confidence_is_the_max_softmax_of_the_reference_logits() -> None:
    model = StandIn(5)
    image = _image(21, 30)
    logits = reference_logits(model, image)
    expected = torch.softmax(torch.from_numpy(logits), dim=2).max(dim=2).values.numpy()
    result = InferenceEngine(StandIn(5), FAST)(image)
    assert result.confidence.dtype == np.float32
    np.testing.assert_allclose(result.confidence, expected, rtol=1e-5, atol=1e-6)
    assert np.array_equal(result.labels, reference_segment(model, image))


def test_torch_postprocessing_matches_the_opencv_path() -> None:
    """The CUDA path's torch postprocessing (run here on the CPU) equals the numpy one."""
    logits = np.random.default_rng(3).normal(size=(6, 6, 8)).astype(np.float32) * 4
    cpu = CpuPostprocessor(6)
    labels, conf = cpu(logits, 23, 31, True)
    t_labels, t_conf, t_stats = TorchPostprocessor(6)(torch.from_numpy(logits), 23, 31, True,
                                                      True)
    assert np.array_equal(labels, t_labels)
    np.testing.assert_allclose(conf, t_conf, rtol=1e-5, atol=1e-6)
    _stats_equal(t_stats, cpu.stats(labels, conf), rel=1e-5)
    nearest = CpuPostprocessor(6, 'nearest')(logits, 23, 31, True)
    t_nearest = TorchPostprocessor(6, 'nearest')(torch.from_numpy(logits), 23, 31, True, False)
    assert np.array_equal(nearest[0], t_nearest[0])
    np.testing.assert_allclose(nearest[1], t_nearest[1], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize('height, width, tile_rows', [
    (96, 53, 8), (100, 37, 12), (2160 // 8, 3840 // 16, 16), (37, 61, 8), (64, 7, 4)])
@pytest.mark.parametrize('classes', [1, 5, 130])
def test_tiled_postprocessing_is_bit_identical_to_one_piece(height: int, width: int,
                                                            tile_rows: int,
                                                            classes: int) -> None:
    """Tiles (with the bicubic halo) give exactly the untiled labels and confidence, for
    odd widths, heights that are and are not multiples of 4, and K beyond OpenCV's 128
    channels per call; buffers reused across frames do not leak between them."""
    rng = np.random.default_rng(height * width + classes)
    small = (-(-height // 4), -(-width // 4))
    tiled = CpuPostprocessor(classes, tile_rows=tile_rows)
    whole = CpuPostprocessor(classes, tile_rows=1 << 20)
    assert tiled.rows_per_tile(height, width) == tile_rows
    for _ in range(2):
        logits = rng.normal(size=(classes,) + small).astype(np.float32) * 3
        labels, conf = tiled(logits, height, width, True)
        expected_labels, expected_conf = whole(logits, height, width, True)
        assert np.array_equal(labels, expected_labels)
        assert np.array_equal(conf, expected_conf)
        labels_only, none = tiled(logits, height, width, False)
        assert none is None and np.array_equal(labels_only, expected_labels)
    hwk = np.ascontiguousarray(logits.transpose(1, 2, 0))
    parts = [cv2.resize(np.ascontiguousarray(hwk[:, :, s:s + 128]), (width, height),
                        interpolation=cv2.INTER_CUBIC).reshape(height, width, -1)
             for s in range(0, classes, 128)]
    assert np.array_equal(labels, np.concatenate(parts, axis=2).argmax(axis=2))


def test_automatic_tiles_follow_the_memory_budget() -> None:
    post = CpuPostprocessor(21)
    assert post.rows_per_tile(480, 640) >= 480  # a VGA frame runs in one piece
    rows = post.rows_per_tile(2160, 3840)
    assert rows % 4 == 0 and rows * 3840 * 21 * 4 <= TILE_BUDGET_BYTES


def test_uint16_labels_when_more_than_256_classes() -> None:
    model = StandIn(300)
    image = _image(19, 26)
    result = InferenceEngine(StandIn(300), FAST)(image)
    assert result.labels.dtype == np.uint16
    assert np.array_equal(result.labels, reference_segment(model, image))
    _stats_equal(result.stats, compute_class_stats(result.labels, result.confidence, 300))


def test_max_side_maps_back_to_full_resolution() -> None:
    model = StandIn(4)
    image = _image(60, 100)
    engine = InferenceEngine(StandIn(4), dataclasses.replace(FAST, max_side=40))
    result = engine(image)
    assert result.labels.shape == (60, 100) and result.confidence.shape == (60, 100)
    assert result.network_size == (24, 40)
    # The same thing by hand: normalise, shrink, forward, bicubic to the full size, argmax.
    x = torch.from_numpy(reference_preprocess(image))
    with torch.no_grad():
        small = F.interpolate(x, size=(24, 40), mode='bilinear', align_corners=False,
                              antialias=True)
        logits = F.interpolate(model(small), size=(60, 100), mode='bicubic',
                               align_corners=False)
    expected = logits.argmax(1)[0].numpy()
    assert (result.labels == expected).mean() > 0.999
    # Images already within max_side run natively.
    assert engine(_image(30, 40)).network_size == (30, 40)


def test_nearest_mode_upsamples_the_stride4_argmax() -> None:
    model = StandIn(5)
    image = _image(17, 22)
    result = InferenceEngine(StandIn(5), dataclasses.replace(FAST, upsample='nearest'))(image)
    with torch.no_grad():
        small = model(torch.from_numpy(reference_preprocess(image))).argmax(1).float()
    expected = F.interpolate(small[None], size=(17, 22), mode='nearest')[0, 0].numpy()
    assert np.array_equal(result.labels, expected.astype(np.uint8))
    _stats_equal(result.stats, compute_class_stats(result.labels, result.confidence, 5))


def test_bf16_agrees_with_fp32_on_cpu() -> None:
    image = _image(32, 40)
    fp32 = InferenceEngine(StandIn(4), FAST)(image)
    bf16 = InferenceEngine(StandIn(4), dataclasses.replace(FAST, precision='bf16',
                                                           agreement_min=0.0))(image)
    assert (bf16.labels == fp32.labels).mean() > 0.95


def test_fp16_on_cpu_falls_back_to_fp32(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        engine = InferenceEngine(StandIn(4), dataclasses.replace(FAST, precision='fp16'))
    assert engine.backend.dtype == torch.float32 and engine.describe()['precision'] == 'fp32'
    assert 'fp16' in caplog.text


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')
def test_fp16_agrees_with_fp32_on_cuda() -> None:
    from lw_refinenet_ros.model import build_model

    torch.manual_seed(0)
    model = build_model('mbv2', 21).eval()
    image = _image(120, 160)
    reference = reference_segment(model, image)
    cuda = EngineConfig(device='cuda', backend='torch', precision='fp32', warmup_iters=0)
    fp32 = InferenceEngine(model, cuda)  # engines build from copies: one model serves both
    fp16 = InferenceEngine(model, dataclasses.replace(cuda, precision='fp16',
                                                      agreement_min=0.0))
    assert fp16.describe()['precision'] == 'fp16'
    assert np.array_equal(fp32(image).labels, reference)
    assert (fp16(image).labels == reference).mean() > 0.99


# ----------------------------------------------------------------- batching and stats


def test_batch_equals_single_frames() -> None:
    engine = InferenceEngine(StandIn(5), dataclasses.replace(FAST, max_batch=2))
    images = [_image(20, 28, 1), _image(20, 28, 2), _image(15, 33, 3), _image(20, 28, 4)]
    orders = ['rgb', 'bgr', 'rgb', 'rgb']
    batch = engine.infer_batch(images, orders)
    for image, order, got in zip(images, orders, batch):
        single = engine(image, order)
        assert np.array_equal(got.labels, single.labels)
        np.testing.assert_allclose(got.confidence, single.confidence, rtol=1e-5, atol=1e-6)
        _stats_equal(got.stats, single.stats, rel=1e-5)  # batched convs round differently
    assert batch[2].labels.shape == (15, 33)


def test_a_batch_begun_runs_its_forward_pass_now_and_its_post_processing_when_finished(
        ) -> None:
    """``begin_batch`` is ``infer_batch`` in two halves (the node runs the second on another
    thread): the forward passes happen at once, the post-processing on ``finish()``, and the
    results are the same."""
    engine = InferenceEngine(StandIn(5), dataclasses.replace(FAST, max_batch=2))
    images = [_image(20, 28, 1), _image(20, 28, 2), _image(15, 33, 3)]
    orders = ['rgb', 'bgr', 'rgb']
    expected = engine.infer_batch(images, orders)
    calls = {'forward': 0, 'post': 0}
    forward, post = engine.backend.forward, engine._cpu_post

    def counted_forward(batch):
        calls['forward'] += 1
        return forward(batch)

    class CountedPost:
        def __call__(self, *args, **kwargs):
            calls['post'] += 1
            return post(*args, **kwargs)

        def stats(self, *args, **kwargs):
            return post.stats(*args, **kwargs)

    engine.backend.forward = counted_forward
    engine._cpu_post = CountedPost()
    finish = engine.begin_batch(images, orders)
    assert calls == {'forward': 2, 'post': 0}, 'two chunks forwarded, none post-processed'
    results = finish()
    assert calls == {'forward': 2, 'post': 3}
    for got, want in zip(results, expected):
        assert np.array_equal(got.labels, want.labels)
        np.testing.assert_array_equal(got.confidence, want.confidence)


def test_a_failing_post_processing_is_an_engine_error_of_the_finish() -> None:
    engine = InferenceEngine(StandIn(5), FAST)

    def broken(*args, **kwargs):
        raise RuntimeError('tile buffer gone')

    engine._cpu_post = broken
    finish = engine.begin_batch([_image(20, 28, 1)], 'rgb')  # the forward pass is fine
    with pytest.raises(EngineError, match='20x28 frame: RuntimeError: tile buffer gone'):
        finish()


def test_device_stats_equal_the_numpy_reference() -> None:
    engine = InferenceEngine(StandIn(6, seed=3), FAST)
    result = engine(_image(41, 57, 5))
    assert len(result.stats) >= 2
    _stats_equal(result.stats, compute_class_stats(result.labels, result.confidence, 6))


def test_optional_outputs_can_be_skipped() -> None:
    result = InferenceEngine(StandIn(3), FAST)(_image(9, 9), want_confidence=False,
                                              want_stats=False)
    assert result.confidence is None and result.stats is None


def test_warmup_and_channels_last_off() -> None:
    config = dataclasses.replace(FAST, warmup_iters=2, warmup_size=(16, 16),
                                 channels_last=False, fold_batchnorm=False)
    engine = InferenceEngine(StandIn(3), config)
    assert not engine.backend.channels_last
    assert np.array_equal(engine(_image(13, 11)).labels,
                          reference_segment(StandIn(3), _image(13, 11)))


def test_num_threads_auto_keeps_a_valid_setting() -> None:
    before = torch.get_num_threads()
    try:
        config = dataclasses.replace(FAST, num_threads=-1, warmup_iters=1,
                                     warmup_size=(16, 16))
        engine = InferenceEngine(StandIn(3), config)
        assert engine.describe()['num_threads'] in {1, before}
    finally:
        torch.set_num_threads(before)


def test_unavailable_accelerations_fall_back_with_a_log(
        caplog: pytest.LogCaptureFixture) -> None:
    config = dataclasses.replace(FAST, compile=True, compile_backend='no_such_backend',
                                 cuda_graphs=True)
    with caplog.at_level(logging.INFO):
        engine = InferenceEngine(StandIn(3), config)
    assert 'torch.compile is unavailable' in caplog.text
    assert 'cuda_graphs requested but not in use: needs a CUDA device' in caplog.text
    assert engine(_image(9, 9)).labels.shape == (9, 9)


def test_compile_eager_backend_smoke() -> None:
    config = dataclasses.replace(FAST, compile=True, compile_backend='eager')
    image = _image(16, 20)
    assert np.array_equal(InferenceEngine(StandIn(3), config)(image).labels,
                          InferenceEngine(StandIn(3), FAST)(image).labels)


# ----------------------------------------------------------------- errors


@pytest.mark.parametrize('image, match', [
    (np.zeros((8, 8, 3), np.float32), 'uint8'),
    (np.zeros((8, 8), np.uint8), 'H x W x 3'),
    (np.zeros((8, 8, 4), np.uint8), 'H x W x 3'),
    (np.zeros((0, 8, 3), np.uint8), 'empty'),
    ([[1, 2, 3]], 'numpy array'),
])
def test_bad_images_raise_engine_error(image: object, match: str) -> None:
    engine = InferenceEngine(StandIn(3), FAST)
    with pytest.raises(EngineError, match=match):
        engine(image)  # type: ignore[arg-type]


def test_bad_colour_order_and_forward_failure() -> None:
    engine = InferenceEngine(StandIn(3), FAST)
    with pytest.raises(EngineError, match='colour order'):
        engine(_image(8, 8), 'rgba')
    with pytest.raises(EngineError, match='2 images but 1'):
        engine.infer_batch([_image(8, 8)] * 2, ['rgb'])

    class Broken(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            raise RuntimeError('boom')

    broken = InferenceEngine(Broken(), FAST, num_classes=3)
    with pytest.raises(EngineError, match='boom'):
        broken(_image(8, 8))


def test_wrong_logit_shape_is_reported() -> None:
    engine = InferenceEngine(StandIn(3), FAST, num_classes=4)
    with pytest.raises(EngineError, match='expected'):
        engine(_image(8, 8))


def test_cuda_unavailable(monkeypatch: pytest.MonkeyPatch,
                          caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    with pytest.raises(EngineError, match='device_fallback'):
        InferenceEngine(StandIn(3), EngineConfig(device='cuda', warmup_iters=0))
    with caplog.at_level(logging.WARNING):
        engine = InferenceEngine(StandIn(3), EngineConfig(device='cuda:0', warmup_iters=0,
                                                          device_fallback=True))
    assert engine.device == 'cpu' and 'CPU' in caplog.text
    assert InferenceEngine(StandIn(3), EngineConfig(warmup_iters=0)).device == 'cpu'


@pytest.mark.parametrize('field, value', [
    ('device', 'gpu'), ('precision', 'int4'), ('max_side', -1), ('max_side', 9000),
    ('max_side', True), ('backend', 'tensorflow'), ('agreement_min', 1.5),
    ('upsample', 'bilinear'), ('channels_last', 'yes'), ('fold_batchnorm', 1),
    ('num_threads', -2), ('num_threads', 'many'), ('warmup_iters', -1), ('tile_rows', -1),
    ('warmup_size', (0, 4)), ('max_batch', 0),
    ('compile_backend', ''),
])
def test_config_validation(field: str, value: object) -> None:
    with pytest.raises(ConfigError, match=field):
        EngineConfig(**{field: value})


def test_config_from_mapping() -> None:
    config = EngineConfig.from_mapping({'device': 'cpu', 'max_side': 512,
                                        'warmup_size': [48, 64]})
    assert config.max_side == 512 and config.warmup_size == (48, 64)
    with pytest.raises(ConfigError, match='Unknown engine option'):
        EngineConfig.from_mapping({'devise': 'cpu'})
    with pytest.raises(ConfigError, match='num_classes'):
        InferenceEngine(nn.Identity(), FAST)


@pytest.mark.parametrize('upsample', ['bicubic', 'nearest'])
def test_the_on_device_path_equals_the_cpu_path(upsample: str) -> None:
    """The CUDA frame path (torch preprocessing, forward_tensor, torch postprocessing and
    device statistics), run here on CPU tensors, gives the CPU path's results."""
    engine = InferenceEngine(StandIn(6, seed=4), dataclasses.replace(FAST, upsample=upsample))
    images = [_image(26, 35, 1), _image(26, 35, 2)]
    cpu = engine.infer_batch(images, ['rgb', 'bgr'])
    engine._on_device = True
    device = engine.infer_batch(images, ['rgb', 'bgr'])
    for a, b in zip(cpu, device):
        assert np.array_equal(a.labels, b.labels)
        np.testing.assert_allclose(a.confidence, b.confidence, rtol=1e-5, atol=1e-6)
        _stats_equal(a.stats, b.stats, rel=1e-5)


@pytest.mark.parametrize('max_side', [1, 7, 31, 8192])
def test_every_max_side_the_parameter_allows_runs(max_side: int) -> None:
    """max_side used to pass the node's descriptor (0..8192) and fail the engine below 32."""
    from lw_refinenet_ros.model import build_model

    torch.manual_seed(0)
    engine = InferenceEngine(build_model('mbv2', 4), dataclasses.replace(FAST,
                                                                        max_side=max_side))
    result = engine(_image(37, 53))
    assert result.labels.shape == (37, 53) and max(result.network_size) == min(max_side, 53)
