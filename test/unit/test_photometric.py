"""Camera-change augmentation: what each effect does, that labels never change, the config."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from lw_refinenet_ros.cli import build_parser
from lw_refinenet_ros.cli.train import build_config
from lw_refinenet_ros.data.conveyor import frame_rng, render_conveyor_frame
from lw_refinenet_ros.errors import ConfigError
from lw_refinenet_ros.training.trainer import TrainConfig
from lw_refinenet_ros.training.transforms import PhotometricJitter, TrainTransform


@pytest.fixture(scope='module')
def frame() -> tuple[np.ndarray, np.ndarray]:
    return render_conveyor_frame(frame_rng(11, 0), (160, 120))


def _sharpness(image: np.ndarray) -> float:
    return float(cv2.Laplacian(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY), cv2.CV_32F).var())


def test_all_effects_off_is_disabled_and_the_identity(frame) -> None:
    image, _ = frame
    jitter = PhotometricJitter()
    assert not jitter.enabled
    assert not PhotometricJitter(brightness=(0.5, 2.0), prob=0.0).enabled
    assert np.array_equal(jitter(image, np.random.default_rng(0)), image)


def test_brightness_gain_stays_inside_its_range(frame) -> None:
    image, _ = frame
    jitter = PhotometricJitter(brightness=(0.5, 0.5), prob=1.0)
    darker = jitter(image, np.random.default_rng(1))
    ratio = darker.astype(np.float64).mean() / image.astype(np.float64).mean()
    assert ratio == pytest.approx(0.5, abs=0.01)
    gains = []
    wide = PhotometricJitter(brightness=(0.4, 1.6), prob=1.0)
    for seed in range(40):
        grey = np.full((8, 8, 3), 100, np.uint8)
        gains.append(wide(grey, np.random.default_rng(seed)).mean() / 100.0)
    assert 0.39 <= min(gains) and max(gains) <= 1.61
    assert min(gains) < 0.7 and max(gains) > 1.3, 'the range is actually explored'


def test_blur_removes_detail_and_noise_adds_it(frame) -> None:
    image, _ = frame
    blurred = PhotometricJitter(blur_sigma=3.0, prob=1.0)(image, np.random.default_rng(2))
    noisy = PhotometricJitter(noise_sigma=25.0, prob=1.0)(image, np.random.default_rng(2))
    assert _sharpness(blurred) < 0.8 * _sharpness(image)
    assert _sharpness(noisy) > _sharpness(image)
    assert noisy.dtype == np.uint8 and noisy.shape == image.shape


def test_each_effect_is_drawn_with_its_probability(frame) -> None:
    image, _ = frame
    jitter = PhotometricJitter(brightness=(0.4, 1.6), prob=0.3)
    changed = sum(not np.array_equal(jitter(image, np.random.default_rng(s)), image)
                  for s in range(200))
    assert 40 <= changed <= 80  # ~60 expected


def test_same_generator_state_gives_the_same_image(frame) -> None:
    image, _ = frame
    jitter = PhotometricJitter((0.4, 1.6), (0.7, 1.3), 3.0, 20.0, prob=0.5)
    a = jitter(image, np.random.default_rng(9))
    b = jitter(image, np.random.default_rng(9))
    assert np.array_equal(a, b)


def test_train_transform_jitters_the_image_but_never_the_labels(frame) -> None:
    image, labels = frame
    plain = TrainTransform(crop_size=96, scale_min=1.0, scale_max=1.0, min_short_side=0)
    jittered = TrainTransform(crop_size=96, scale_min=1.0, scale_max=1.0, min_short_side=0,
                              photometric=PhotometricJitter(brightness=(0.5, 0.5),
                                                            noise_sigma=10, prob=1.0))
    x0, y0 = plain(image, labels, np.random.default_rng(4))
    x1, y1 = jittered(image, labels, np.random.default_rng(4))
    assert x0.shape == x1.shape == (3, 96, 96)
    assert not np.allclose(x0, x1)
    # Jitter draws come first, so the crop position differs; compare the label histograms.
    assert set(np.unique(y1)) <= set(np.unique(labels)) | {255}


@pytest.mark.parametrize('kwargs, match', [
    (dict(brightness=(1.5, 0.5)), 'brightness'),
    (dict(contrast=(0.0, 1.0)), 'contrast'),
    (dict(blur_sigma=-1.0), 'blur_sigma'),
    (dict(photometric_prob=1.5), 'prob'),
    (dict(init_encoder='a.pth', init_weights='b.pt'), 'not both'),
])
def test_bad_augmentation_settings_stop_with_the_reason(kwargs, match) -> None:
    with pytest.raises(ConfigError, match=match):
        TrainConfig(data='x', **kwargs).validate()


def test_cli_flags_build_the_jitter() -> None:
    args = build_parser().parse_args([
        'train', '--data', 'conveyor:1', '--brightness', '0.4,1.6', '--contrast', '0.8,1.2',
        '--blur-sigma', '3', '--noise-sigma', '20', '--photometric-prob', '0.6',
        '--init-weights', 'm.pt'])
    config = build_config(args)
    assert config.init_weights == 'm.pt'
    assert config.photometric() == PhotometricJitter((0.4, 1.6), (0.8, 1.2), 3.0, 20.0, 0.6)
    assert TrainConfig(data='x').photometric() is None, 'the paper recipe has none'
    with pytest.raises(SystemExit):
        build_parser().parse_args(['train', '--brightness', '0.5'])
