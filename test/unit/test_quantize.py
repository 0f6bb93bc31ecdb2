"""int8 with NNCF: calibration folders (good, empty, unreadable), the cached int8 model, and
its labels against torch fp32 on the default model at a small size."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import cv2
import numpy as np
import pytest

from lw_refinenet_ros.engine.backends import BackendRequest, create_backend, native_precisions
from lw_refinenet_ros.engine.quantize import (
    calibration_id,
    calibration_images,
    preprocess_for_network,
)
from lw_refinenet_ros.errors import ConfigError

SIZE = (48, 64)  # (height, width)


def write_frames(folder: Path, seed: int, count: int) -> list[np.ndarray]:
    from lw_refinenet_ros.data.conveyor import frame_rng, render_conveyor_frame

    folder.mkdir(parents=True, exist_ok=True)
    images = []
    for index in range(count):
        rgb = render_conveyor_frame(frame_rng(seed, index), (SIZE[1], SIZE[0]))[0]
        cv2.imwrite(str(folder / f'{index:03d}.png'), rgb[:, :, ::-1])
        images.append(rgb)
    return images


@pytest.fixture(scope='module')
def model():
    from lw_refinenet_ros.model import load_model

    return load_model(None)[0]


def test_folder_without_images_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / 'notes.txt').write_text('no images here')
    with pytest.raises(ConfigError) as error:
        calibration_images(tmp_path)
    message = str(error.value)
    assert 'holds no images' in message and '.png' in message and 'make-dataset' in message


def test_missing_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match='does not exist'):
        calibration_images(tmp_path / 'nope')


def test_dataset_layout_uses_images_not_labels(tmp_path: Path) -> None:
    write_frames(tmp_path / 'images', 1, 2)
    (tmp_path / 'labels').mkdir()
    cv2.imwrite(str(tmp_path / 'labels' / '000.png'), np.zeros(SIZE, np.uint8))
    found = calibration_images(tmp_path)
    assert [p.parent.name for p in found] == ['images', 'images']


def test_calibration_id_changes_with_the_images(tmp_path: Path) -> None:
    write_frames(tmp_path, 1, 2)
    first = calibration_id(tmp_path)
    assert calibration_id(tmp_path) == first
    write_frames(tmp_path, 2, 1)  # 000.png replaced by another frame
    assert calibration_id(tmp_path) != first


def test_preprocess_matches_the_engine_normalisation() -> None:
    from lw_refinenet_ros.constants import IMAGENET_MEAN, IMAGENET_STD

    bgr = np.zeros((4, 6, 3), np.uint8)
    bgr[..., 2] = 255  # red in BGR
    x = preprocess_for_network(bgr, (4, 6))
    assert x.shape == (1, 3, 4, 6) and x.dtype == np.float32 and x.flags.c_contiguous
    assert x[0, 0, 0, 0] == pytest.approx((1.0 - IMAGENET_MEAN[0]) / IMAGENET_STD[0])
    assert x[0, 1, 0, 0] == pytest.approx(-IMAGENET_MEAN[1] / IMAGENET_STD[1])
    assert preprocess_for_network(np.zeros((8, 12, 3), np.uint8), (4, 6)).shape == (1, 3, 4, 6)


@pytest.mark.slow
def test_int8_model_is_built_once_cached_and_close_to_fp32(model, tmp_path: Path) -> None:
    import torch

    if 'int8' not in native_precisions('openvino', 'cpu'):
        pytest.skip('OpenVINO reports no int8 support on this CPU')
    calibration = tmp_path / 'calibration'
    write_frames(calibration, 8100, 6)
    test_frames = write_frames(tmp_path / 'test', 9100, 2)
    request = BackendRequest(precision='int8', input_size=SIZE, cache_dir=tmp_path / 'cache',
                             num_threads=1, calibration_dir=calibration, weights_id='default')
    backend = create_backend('openvino', model, request)
    assert backend.describe()['calibration'] == calibration_id(calibration)[:12]
    entries = sorted((tmp_path / 'cache' / 'openvino').iterdir())
    assert len(entries) == 2  # the fp32 IR it was quantized from, and the int8 IR
    stamp = {p: p.stat().st_mtime_ns for p in entries}
    create_backend('openvino', model, request)  # second start: cache hit, nothing rebuilt
    assert {p: p.stat().st_mtime_ns for p in entries} == stamp
    # Without the calibration folder, the int8 model built earlier is found and used.
    cached = create_backend('openvino', model, dataclasses.replace(request,
                                                                   calibration_dir=None))
    assert cached.describe()['calibration'] == 'cached int8 model'
    assert {p: p.stat().st_mtime_ns for p in entries} == stamp
    agree = []
    for rgb in test_frames:
        x = preprocess_for_network(rgb[:, :, ::-1], SIZE)
        with torch.no_grad():
            reference = model(torch.from_numpy(x)).numpy().argmax(1)
        agree.append((backend.forward(x).argmax(1) == reference).mean())
    assert np.mean(agree) >= 0.95
    # A camera that changes size mid-stream: no int8 model for the new size and nothing to
    # calibrate on, so that size runs on the fp32 model instead of failing every frame.
    other = preprocess_for_network(test_frames[0][:, :, ::-1], (32, 40))
    with torch.no_grad():
        fp32 = model(torch.from_numpy(other)).numpy()
    logits = cached.forward(other)
    assert logits.shape == fp32.shape
    assert (logits.argmax(1) == fp32.argmax(1)).mean() >= 0.99


def test_int8_without_calibration_or_cached_model_says_how_to_build_one(
        model, tmp_path: Path) -> None:
    if 'int8' not in native_precisions('openvino', 'cpu'):
        pytest.skip('OpenVINO reports no int8 support on this CPU')
    request = BackendRequest(precision='int8', input_size=SIZE, cache_dir=tmp_path,
                             weights_id='default')
    with pytest.raises(ConfigError) as error:
        create_backend('openvino', model, request)
    message = str(error.value)
    assert 'calibration_dir' in message and 'lw-refinenet quantize --calibration' in message


def test_int8_with_unreadable_calibration_images_stops(model, tmp_path: Path) -> None:
    if 'int8' not in native_precisions('openvino', 'cpu'):
        pytest.skip('OpenVINO reports no int8 support on this CPU')
    (tmp_path / 'broken.png').write_bytes(b'not a png')
    request = BackendRequest(precision='int8', input_size=SIZE, cache_dir=tmp_path / 'cache',
                             calibration_dir=tmp_path, weights_id='default')
    with pytest.raises(ConfigError, match='could be read'):
        create_backend('openvino', model, request)
    manifests = [p.read_text() for p in (tmp_path / 'cache').rglob('manifest.json')]
    assert not any('"int8"' in text for text in manifests)  # no int8 entry, half or whole
    assert not list((tmp_path / 'cache').rglob('.tmp-*'))


@pytest.mark.slow
def test_quantize_cli_reports_the_miou_change(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from lw_refinenet_ros.cli import main

    write_frames(tmp_path / 'calibration', 8100, 4)
    report = tmp_path / 'report.json'
    assert main(['quantize', '--calibration', str(tmp_path / 'calibration'), '--cache-dir',
                 str(tmp_path / 'cache'), '--eval-count', '2', '--threads', '1',
                 '--json', str(report)]) == 0
    out = capsys.readouterr().out
    assert f'int8 model for {SIZE[1]}x{SIZE[0]} from 4 calibration images' in out  # WxH
    assert 'mIoU change int8 vs fp32:' in out
    data = json.loads(report.read_text())
    assert set(data['results']) == {'torch fp32', 'openvino fp32', 'openvino int8'}
    assert data['results']['openvino fp32']['labels_equal_to_torch_fp32'] >= 0.999
    assert data['miou_change_points'] == pytest.approx(
        (data['results']['openvino int8']['miou'] - data['results']['torch fp32']['miou'])
        * 100)
    assert list((tmp_path / 'cache' / 'openvino').iterdir())  # cached for the node


def test_quantize_cli_without_images_exits_with_the_reason(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from lw_refinenet_ros.cli import main

    assert main(['quantize', '--calibration', str(tmp_path)]) == 2
    assert 'holds no images' in capsys.readouterr().err


# ----------------------------------------------------------------- int8 without a manual step

def test_calibration_frames_are_checked_and_identified() -> None:
    from lw_refinenet_ros.engine.quantize import MIN_CALIBRATION_FRAMES, Int8Calibration

    frames = [np.full((6, 8, 3), i, np.uint8) for i in range(MIN_CALIBRATION_FRAMES)]
    with pytest.raises(ConfigError, match='at least'):
        Int8Calibration(frames[:-1], 'camera')
    with pytest.raises(ConfigError, match='frame 2'):
        Int8Calibration(frames[:2] + [np.zeros((6, 8), np.uint8)] + frames[3:], 'camera')
    first = Int8Calibration(frames, 'camera')
    assert first.identity == Int8Calibration(list(frames), 'again').identity
    frames[0] = frames[0].copy()
    frames[0][0, 0, 0] = 255
    assert Int8Calibration(frames, 'camera').identity != first.identity


def test_the_default_models_frames_come_from_the_conveyor_generator() -> None:
    from lw_refinenet_ros.data.calibration import CALIBRATION_SEED, conveyor_calibration

    calibration = conveyor_calibration(SIZE, count=8)
    assert len(calibration.frames) == 8
    assert all(f.shape == SIZE + (3,) and f.dtype == np.uint8 for f in calibration.frames)
    assert str(CALIBRATION_SEED) in calibration.identity and '64x48' in calibration.source
    again = conveyor_calibration(SIZE, count=8)
    assert all(np.array_equal(a, b) for a, b in zip(calibration.frames, again.frames))


@pytest.mark.slow
def test_auto_offers_int8_built_once_from_frames_behind_the_gate(model, tmp_path: Path,
                                                                 caplog) -> None:
    """The engine with precision auto and calibration frames builds the int8 model once,
    offers it to the selection (timed, gated); a restart finds it in the cache; a failed
    build leaves the engine running on the other precisions."""
    import logging

    from lw_refinenet_ros.data.calibration import conveyor_calibration
    from lw_refinenet_ros.engine import EngineConfig, InferenceEngine

    if 'int8' not in native_precisions('openvino', 'cpu'):
        pytest.skip('OpenVINO reports no int8 support on this CPU')
    config = EngineConfig(device='cpu', cache_dir=str(tmp_path), warmup_size=SIZE,
                          num_threads=1)
    calls: list[tuple[int, int]] = []

    def frames(size: tuple[int, int]):
        calls.append(size)
        return conveyor_calibration(size, count=8)

    engine = InferenceEngine(model, config, calibration=frames)
    assert calls == [SIZE]
    assert engine.int8_model is not None and 'openvino/int8' in engine.selection_ms
    assert 'openvino/int8' in engine.reason
    if engine.describe()['precision'] == 'int8':
        assert engine.agreement >= 0.995
    restarted = InferenceEngine(model, config, calibration=frames)
    assert calls == [SIZE]  # found in the cache: the frames were not even rendered
    assert restarted.int8_model == engine.int8_model

    def broken(size: tuple[int, int]):
        raise ConfigError('no frames today')

    with caplog.at_level(logging.WARNING):
        other = InferenceEngine(model, dataclasses.replace(config, max_side=40),
                                calibration=broken)
    assert other.int8_model is None and 'no frames today' in caplog.text
    assert not list(tmp_path.rglob('.tmp-*'))
