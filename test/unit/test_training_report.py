"""The report next to a finished training: scores of best.pt, confusion PNG, int8 model."""

from __future__ import annotations

import json
from pathlib import Path
import shutil

import pytest

from lw_refinenet_ros.data.conveyor import write_conveyor_dataset
from lw_refinenet_ros.data.datasets import open_dataset
from lw_refinenet_ros.training import report as report_module
from lw_refinenet_ros.training.trainer import TrainConfig, train


@pytest.fixture(scope='module')
def tiny_data(tmp_path_factory) -> Path:
    return write_conveyor_dataset(tmp_path_factory.mktemp('conveyor'), 8, seed=5,
                                  size=(64, 48), augment=False)


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch) -> None:
    # The int8 model is built through the engine's cache; keep it out of the user's.
    monkeypatch.setenv('XDG_CACHE_HOME', str(tmp_path / 'cache'))


@pytest.fixture(scope='module')
def trained_run(tiny_data, tmp_path_factory) -> Path:
    """One finished training without its report: the report's variants are written on copies."""
    run = tmp_path_factory.mktemp('trained') / 'run'
    train(_config(tiny_data, run, report=False))
    assert (run / 'best.pt').is_file() and not (run / 'report.json').exists()
    return run


def _copy_of(run: Path, tmp_path: Path) -> Path:
    copy = tmp_path / 'run'
    copy.mkdir()
    shutil.copy2(run / 'best.pt', copy / 'best.pt')
    return copy


def _config(data: Path, out: Path, **overrides) -> TrainConfig:
    base = dict(data=str(data), out=str(out), val_data=str(data), val_limit=3, val_every=1,
                stage_epochs=(1,), encoder_lrs=(1e-3,), optimizer='adam', freeze_bn=False,
                crop_size=48, scale_min=1.0, scale_max=1.0, min_short_side=0, flip=False,
                batch_size=4, workers=0, device='cpu', seed=3, threads=2)
    base.update(overrides)
    return TrainConfig(**base)


def test_training_writes_the_report_and_an_int8_model_with_its_miou_change(tiny_data,
                                                                           tmp_path) -> None:
    result = train(_config(tiny_data, tmp_path / 'run'))
    run = tmp_path / 'run'
    report = json.loads((run / 'report.json').read_text())
    assert result.report is not None and result.report['miou'] == report['miou']
    assert report['images'] == 3 and 0.0 <= report['miou'] <= 1.0
    assert set(report['per_class']) == set(result_classes(run))
    assert (run / 'confusion.png').stat().st_size > 0
    # Written conveyor datasets carry instance PNGs: objects are scored one-to-one.
    assert report['objects']['ground_truth'] == 'files'
    assert report['objects']['matching'] == 'one-to-one'
    int8 = report['int8']
    assert int8['runtime'] in ('openvino', 'onnxruntime'), int8
    assert int8['calibration_frames'] == 8 and int8['input_size'] == [64, 48]
    assert int8['miou_change'] == pytest.approx(int8['int8_miou'] - int8['fp32_miou'],
                                                abs=1e-4)
    assert 0.0 <= int8['labels_equal'] <= 1.0
    assert int8['files'] and all((run / 'int8' / name).is_file() for name in int8['files'])
    markdown = (run / 'report.md').read_text()
    assert 'mIoU' in markdown and '## int8' in markdown and 'change' in markdown


def result_classes(run: Path) -> list[str]:
    from lw_refinenet_ros.model import read_checkpoint

    return list(read_checkpoint(run / 'best.pt').class_names)


def test_the_int8_part_can_be_skipped(tiny_data, trained_run, tmp_path) -> None:
    run = _copy_of(trained_run, tmp_path)
    data = open_dataset(str(tiny_data))
    report = report_module.write_report(run, data, data, int8=False, limit=3)
    assert 'skipped' in report['int8'] and report['miou'] is not None
    assert not (run / 'int8').exists()
    assert 'No int8 model: turned off' in (run / 'report.md').read_text()


def test_no_report_at_all_when_turned_off(tiny_data, tmp_path) -> None:
    result = train(_config(tiny_data, tmp_path, report=False))
    assert result.report is None and not (tmp_path / 'report.json').exists()
    assert (tmp_path / 'best.pt').is_file()


def test_a_failed_quantization_is_reported_and_training_still_succeeds(
        tiny_data, tmp_path, monkeypatch) -> None:
    def broken(*args, **kwargs):
        raise RuntimeError('OpenVINO: no runtime; ONNX Runtime: no runtime')

    monkeypatch.setattr(report_module, '_build_int8', broken)
    result = train(_config(tiny_data, tmp_path))
    assert (tmp_path / 'best.pt').is_file() and result.global_step > 0
    assert 'no runtime' in result.report['int8']['error']
    assert result.report['miou'] is not None
    assert 'No int8 model: RuntimeError' in (tmp_path / 'report.md').read_text()


def test_without_validation_images_the_report_says_so(tiny_data, trained_run,
                                                       tmp_path) -> None:
    run = _copy_of(trained_run, tmp_path)
    report = report_module.write_report(run, open_dataset(str(tiny_data)), None)
    assert 'no validation images' in report['skipped']
    assert 'Not evaluated' in (run / 'report.md').read_text()


def test_calibration_frames_are_spread_over_the_set_and_bounded() -> None:
    class Images:
        def __len__(self) -> int:
            return 200

        def __getitem__(self, index: int):
            import numpy as np
            return np.full((4, 4, 3), index % 256, np.uint8), None

    frames = report_module.calibration_frames(Images(), 64)
    assert len(frames) == 64
    assert frames[0][0, 0, 0] == 0 and frames[-1][0, 0, 0] > 190


def test_the_train_command_prints_the_scores_and_the_int8_change(capsys) -> None:
    from lw_refinenet_ros.cli.train import _print_report

    _print_report({'miou': 0.9, 'images': 40, 'int8': {
        'runtime': 'openvino', 'int8_miou': 0.895, 'fp32_miou': 0.9, 'miou_change': -0.005,
        'input_size': [320, 240]}}, Path('RUN'))
    _print_report({'miou': 0.9, 'images': 40, 'int8': {'error': 'RuntimeError: no nncf'}},
                  Path('RUN'))
    out = capsys.readouterr().out
    assert 'report: best.pt mIoU 0.9000 on 40 validation images' in out
    assert 'mIoU 0.8950 vs fp32 0.9000 at the same 320x240 input (-0.0050)' in out
    assert 'int8: not built (RuntimeError: no nncf)' in out


def test_without_openvino_the_int8_model_comes_from_onnx_runtime(tiny_data, trained_run,
                                                                 tmp_path, monkeypatch) -> None:
    from lw_refinenet_ros.engine import quantize
    from lw_refinenet_ros.errors import ConfigError

    def missing(*args, **kwargs):
        raise ConfigError('int8 needs openvino (pip install openvino).')

    monkeypatch.setattr(quantize, 'prepare_int8', missing)
    run = _copy_of(trained_run, tmp_path)
    data = open_dataset(str(tiny_data))
    int8 = report_module.write_report(run, data, data, limit=3,
                                      cache_dir=tmp_path / 'cache')['int8']
    assert int8['runtime'] == 'onnxruntime', int8
    assert int8['files'] == ['model_int8.onnx']
    assert (run / 'int8' / 'model_int8.onnx').is_file()
    assert int8['int8_miou'] is not None and 0.0 <= int8['labels_equal'] <= 1.0
