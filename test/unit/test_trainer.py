"""Training: loss goes down, checkpoints load, resume continues exactly, config merging."""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import multiprocessing
import os
from pathlib import Path
import subprocess
import sys
from typing import Any, Callable

import pytest
import torch

from lw_refinenet_ros.cli import build_parser
from lw_refinenet_ros.cli.train import build_config
from lw_refinenet_ros.data.conveyor import CLASS_NAMES, write_conveyor_dataset
from lw_refinenet_ros.errors import ConfigError
from lw_refinenet_ros.model import DEFAULT_MODEL_PATH, build_model, load_model, read_checkpoint
from lw_refinenet_ros.training.trainer import (
    TrainConfig,
    freeze_batchnorm,
    make_optimizer,
    split_parameters,
    stage_of,
    train,
)


@pytest.fixture(scope='module')
def tiny_data(tmp_path_factory) -> Path:
    return write_conveyor_dataset(tmp_path_factory.mktemp('conveyor'), 8, seed=5,
                                  size=(64, 48), augment=False)


def _config(data: Path, out: Path, **overrides) -> TrainConfig:
    base = dict(data=str(data), out=str(out), val_data=str(data), val_limit=2, val_every=1,
                stage_epochs=(2,), encoder_lrs=(1e-3,), decoder_lr_mult=1.0,
                optimizer='adam', freeze_bn=False, crop_size=48, scale_min=1.0,
                scale_max=1.0, min_short_side=0, flip=False, batch_size=4, workers=0,
                device='cpu', seed=3, threads=2, report=False)  # test_training_report.py
    base.update(overrides)
    return TrainConfig(**base)


@pytest.mark.slow
def test_tiny_training_lowers_the_loss_and_writes_loadable_checkpoints(tiny_data,
                                                                       tmp_path) -> None:
    result = train(_config(tiny_data, tmp_path, stage_epochs=(6,), encoder_lrs=(2e-3,),
                          val_every=3, val_limit=1))
    assert result.global_step == 12 and result.epochs_done == 6
    history = json.loads((tmp_path / 'history.json').read_text())
    losses = [e['loss'] for e in history['epochs']]
    assert losses[-1] < losses[0] * 0.8, losses
    for name in ('best.pt', 'last.pt', 'resume.pt', 'curves.png', 'train.log'):
        assert (tmp_path / name).is_file(), name
    model, info = load_model(tmp_path / 'best.pt')
    assert info.arch == 'mbv2' and info.num_classes == len(CLASS_NAMES)
    assert tuple(info.class_names) == CLASS_NAMES and info.colors is not None
    assert info.metadata['val_miou'] == pytest.approx(result.best_miou)
    assert 'validation' in (tmp_path / 'train.log').read_text()


@pytest.mark.slow
def test_resume_continues_from_the_saved_step_exactly(tiny_data, tmp_path) -> None:
    whole = train(_config(tiny_data, tmp_path / 'whole', val_data=None))
    part = train(_config(tiny_data, tmp_path / 'cut', val_data=None, max_steps=3))
    assert part.stopped_early and part.global_step == 3
    state = torch.load(tmp_path / 'cut' / 'resume.pt', weights_only=True)
    assert (state['epoch'], state['batch_in_epoch'], state['global_step']) == (1, 1, 3)
    assert read_checkpoint(tmp_path / 'cut' / 'last.pt').metadata['global_step'] == 3
    resumed = train(_config(tiny_data, tmp_path / 'cut', val_data=None, resume=True))
    assert resumed.global_step == whole.global_step == 4 and resumed.epochs_done == 2
    a = read_checkpoint(tmp_path / 'whole' / 'last.pt').state_dict
    b = read_checkpoint(tmp_path / 'cut' / 'last.pt').state_dict
    for key in a:
        assert torch.allclose(a[key].float(), b[key].float(), atol=1e-5), key


def test_resume_without_a_previous_run_is_a_config_error(tiny_data, tmp_path) -> None:
    with pytest.raises(ConfigError, match='resume'):
        train(_config(tiny_data, tmp_path, resume=True))


def test_parameter_groups_follow_the_reference_regex() -> None:
    model = build_model('mbv2', 21)
    encoder, decoder = split_parameters(model)
    assert (len(encoder), len(decoder)) == (156, 27)
    optimizer = make_optimizer(model, TrainConfig(data='x'), stage=1)
    lrs = [group['lr'] for group in optimizer.param_groups]
    assert lrs == pytest.approx([2.5e-4, 2.5e-3])
    assert isinstance(optimizer, torch.optim.SGD)
    assert optimizer.defaults['momentum'] == 0.9 and optimizer.defaults['weight_decay'] == 1e-5


def test_stages_and_frozen_batchnorm() -> None:
    assert [stage_of(e, (2, 1, 2)) for e in range(6)] == [0, 0, 1, 2, 2, 2]
    model = build_model('mbv2', 3).train()
    freeze_batchnorm(model)
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert bns and not any(m.training for m in bns)


def test_recipe_defaults() -> None:
    config = TrainConfig(data='x')
    assert config.stage_epochs == (100, 100, 100)
    assert config.encoder_lrs == (5e-4, 2.5e-4, 1e-4) and config.decoder_lr_mult == 10.0
    assert (config.scale_min, config.scale_max, config.crop_size) == (0.5, 2.0, 500)
    assert config.freeze_bn and config.optimizer == 'sgd'
    with pytest.raises(ConfigError, match='learning rates'):
        TrainConfig(data='x', encoder_lrs=(1e-3,)).validate()


def test_cli_merges_yaml_and_flags(tmp_path) -> None:
    config_file = tmp_path / 'train.yaml'
    config_file.write_text('data: conveyor:1\nbatch_size: 3\ncrop_size: 64\n'
                           'stage_epochs: [4, 2]\nencoder_lrs: [0.01, 0.001]\n')
    args = build_parser().parse_args(['train', '--config', str(config_file), '--batch-size',
                                      '5', '--time-limit', '2', '--conveyor-size', '64x48'])
    config = build_config(args)
    assert config.batch_size == 5 and config.crop_size == 64
    assert config.stage_epochs == (4, 2) and config.encoder_lrs == (0.01, 0.001)
    assert config.time_limit == 120.0 and config.conveyor_size == (64, 48)
    args = build_parser().parse_args(['train', '--data', 'd', '--epochs', '7', '--recipe',
                                      'reference'])
    config = build_config(args)
    assert config.stage_epochs == (7,) and config.encoder_lrs == (5e-4,)
    config_file.write_text('bogus: 1\n')
    with pytest.raises(ConfigError, match='bogus'):
        build_config(argparse.Namespace(config=str(config_file)))
    assert {f.name for f in dataclasses.fields(TrainConfig)} >= {'data', 'out', 'resume'}


@pytest.mark.slow
def test_fine_tuning_starts_from_the_packaged_model(tiny_data, tmp_path) -> None:
    result = train(_config(tiny_data, tmp_path, val_data=None, init_weights='default',
                          encoder_lrs=(1e-6,), max_steps=1))
    assert result.global_step == 1
    tuned = read_checkpoint(tmp_path / 'last.pt').state_dict
    default = read_checkpoint(DEFAULT_MODEL_PATH).state_dict
    fresh = build_model('mbv2', len(CLASS_NAMES)).state_dict()
    key = 'layer4.0.output.0.0.weight'
    step_change = (tuned[key] - default[key]).abs().mean()
    assert step_change < 0.01 * (fresh[key] - default[key]).abs().mean()


@pytest.mark.slow
def test_torchrun_trains_with_two_ranks_and_rank_zero_writes(tiny_data, tmp_path) -> None:
    """DistributedDataParallel on CPU (gloo), launched exactly as on a multi-GPU machine."""
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, 'PYTHONPATH': str(root), 'OMP_NUM_THREADS': '1'}
    command = [sys.executable, '-m', 'torch.distributed.run', '--standalone',
               '--nproc_per_node', '2', '-m', 'lw_refinenet_ros', 'train',
               '--data', str(tiny_data), '--val-data', str(tiny_data), '--val-limit', '1',
               '--val-every', '1', '--stage-epochs', '2', '--lrs', '1e-3',
               '--optimizer', 'adam', '--freeze-bn', 'false', '--crop-size', '48',
               '--scale-min', '1', '--scale-max', '1', '--min-short-side', '0',
               '--batch-size', '2', '--workers', '0', '--device', 'cpu', '--threads', '1',
               '--report-int8', 'false', '--out', str(tmp_path / 'run')]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    # 8 images / (2 per rank x 2 ranks) = 2 steps per epoch, 2 epochs.
    history = json.loads((tmp_path / 'run' / 'history.json').read_text())
    assert [e['step'] for e in history['epochs']] == [2, 4]
    assert len(history['val']) == 2
    assert 'on cpu x2' in (tmp_path / 'run' / 'train.log').read_text()
    assert done.stdout.count('trained 4 steps') == 1, 'only rank 0 reports'
    # Rank 0 alone writes the evaluation report after the ranks' training.
    assert done.stdout.count('report: best.pt mIoU') == 1
    assert 'int8: not built (turned off' in done.stdout
    assert json.loads((tmp_path / 'run' / 'report.json').read_text())['images'] == 1
    model, info = load_model(tmp_path / 'run' / 'best.pt')
    assert info.num_classes == len(CLASS_NAMES)


# --------------------------------------------------------------------------- one command


def test_recipe_for_a_small_dataset_fine_tunes_the_packaged_model() -> None:
    from lw_refinenet_ros.training.auto_recipe import DataSummary, choose_recipe

    values, reasons = choose_recipe(DataSummary(120, (320, 240), 5), time_limit_s=None,
                                    cuda=False, start='packaged')
    assert values['init_weights'] == 'default' and values['optimizer'] == 'adam'
    assert values['crop_size'] == 192 and values['batch_size'] == 8  # 80 % of 240, /32
    assert values['vflip'] and values['min_short_side'] == 0
    assert values['scale_min'] >= 0.75 and values['scale_max'] <= 1.35  # fixed camera
    assert values['schedule'] == 'epochs' and len(values['stage_epochs']) == 3
    steps_per_epoch = (120 - 14) // 8
    assert sum(values['stage_epochs']) * steps_per_epoch >= 1400  # ~1500 steps
    assert list(values['encoder_lrs']) == sorted(values['encoder_lrs'], reverse=True)
    assert values['holdout'] == pytest.approx(0.12) and len(reasons) >= 3
    timed, _ = choose_recipe(DataSummary(120, (320, 240), 5), time_limit_s=1200, cuda=False,
                             start='packaged')
    assert timed['schedule'] == 'time'


def test_recipe_for_a_large_dataset_and_an_imagenet_start() -> None:
    from lw_refinenet_ros.training.auto_recipe import DataSummary, choose_recipe

    small, _ = choose_recipe(DataSummary(120, (640, 480), 5), time_limit_s=None, cuda=False,
                             start='packaged')
    large, _ = choose_recipe(DataSummary(5000, (640, 480), 5), time_limit_s=None,
                             cuda=False, start='imagenet')
    assert large['crop_size'] == 320 and small['crop_size'] == 320  # capped on a CPU
    # Fewer passes over a large dataset, more steps in all.
    assert sum(large['stage_epochs']) < sum(small['stage_epochs'])
    large_steps = sum(large['stage_epochs']) * ((5000 - 600) // 8)
    assert large_steps > 1500
    assert 'init_weights' not in large and large['decoder_lr_mult'] > 1  # fresh decoder
    gpu, _ = choose_recipe(DataSummary(5000, (1280, 720), 5), time_limit_s=None, cuda=True,
                           start='packaged')
    assert gpu['crop_size'] == 512 and gpu['batch_size'] == 16


def test_explicit_values_win_over_the_recipe(tmp_path) -> None:
    from lw_refinenet_ros.data.recycling import write_recycling_coco
    from lw_refinenet_ros.training.auto_recipe import apply_recipe

    path = write_recycling_coco(tmp_path, 3, seed=1, size=(96, 72))
    values = {'data': str(path), 'crop_size': 64, 'stage_epochs': (4,), 'time_limit': 60.0}
    reasons = apply_recipe(values)
    assert values['crop_size'] == 64 and values['stage_epochs'] == (4,)
    assert values['schedule'] == 'epochs' and len(values['encoder_lrs']) == 1
    assert values['init_weights'] == 'default' and any('crop_size' in r for r in reasons)
    resumed = {'data': str(path), 'crop_size': 64, 'stage_epochs': (4,), 'time_limit': 60.0,
               'resume': True}
    apply_recipe(resumed)  # the same command with --resume continues with the same values
    assert {k: v for k, v in resumed.items() if k != 'resume'} == values
    conveyor = {'data': 'conveyor:3'}
    assert apply_recipe(conveyor) == [] and conveyor == {'data': 'conveyor:3'}


def test_a_one_image_dataset_is_refused_with_the_fix(tmp_path) -> None:
    from lw_refinenet_ros.data.recycling import write_recycling_coco

    path = write_recycling_coco(tmp_path, 1, seed=1, size=(96, 72))
    config = TrainConfig(data=str(path), out=str(tmp_path / 'run'), holdout=0.12,
                         device='cpu', workers=0)
    with pytest.raises(ConfigError, match=r'1 image\(s\).*--val-data'):
        train(config)


@pytest.mark.slow
def test_time_limit_ends_with_the_best_validated_model(tmp_path) -> None:
    from lw_refinenet_ros.data.recycling import write_recycling_coco

    path = write_recycling_coco(tmp_path / 'data', 6, seed=2, size=(96, 72))
    config = TrainConfig(data=str(path), out=str(tmp_path / 'run'), holdout=0.34,
                         schedule='time', time_limit=8.0, stage_epochs=(1, 1),
                         encoder_lrs=(1e-3, 1e-4), decoder_lr_mult=1.0, optimizer='adam',
                         freeze_bn=False, crop_size=48, scale_min=1.0, scale_max=1.0,
                         min_short_side=0, batch_size=2, workers=0, device='cpu', seed=1,
                         threads=2, val_every=1000)
    result = train(config)
    assert not result.stopped_early  # the time schedule ends at its limit, as planned
    assert result.split == '2 of 6 images held out, 4 trained on'
    split = json.loads((tmp_path / 'run' / 'split.json').read_text())
    assert len(split['val']) == 2 and not set(split['val']) & set(split['train'])
    history = json.loads((tmp_path / 'run' / 'history.json').read_text())
    # val_every is far away: the one validation is the final one, of the last weights.
    assert [v['step'] for v in history['val']] == [result.global_step]
    best = read_checkpoint(tmp_path / 'run' / 'best.pt')
    assert best.metadata['val_scores']['miou'] == pytest.approx(result.best_miou)
    assert best.metadata['input_size'] == [96, 72]
    assert best.class_names == ('background', 'bottle', 'can', 'carton', 'film')


def _in_a_pytest_of_its_own(test: Callable[..., None]) -> Callable[..., None]:
    """Run ``test`` in a fresh pytest process (same file, same fixtures) and pass its result on.

    For tests that start DataLoader worker processes: torch then installs a Python SIGCHLD
    handler for good, and each worker's exit runs it on the thread's alternate signal stack. In
    the long suite process that stack can be stale: OpenVINO's CPU plugin swaps in a stack of
    its own while a compiled model lives and restores the one it saw on destruction, so models
    freed out of order leave a freed one behind (checked with sigaltstack(2) from ctypes). Two
    full runs died with SIGSEGV right there; in a fresh interpreter no engine has run yet.
    """
    @functools.wraps(test)
    def run(*args: Any, **kwargs: Any) -> None:
        if os.environ.get('LWRF_TEST_IN_CHILD') == test.__name__:
            test(*args, **kwargs)
            return
        node = f'{Path(__file__).resolve()}::{test.__name__}'
        child = subprocess.run([sys.executable, '-m', 'pytest', '-q', '-p', 'no:cacheprovider',
                                node], env={**os.environ, 'LWRF_TEST_IN_CHILD': test.__name__},
                               capture_output=True, text=True, timeout=600)
        assert child.returncode == 0, child.stdout[-4000:] + child.stderr[-2000:]
        assert '1 passed' in child.stdout, child.stdout[-2000:]

    return run


@_in_a_pytest_of_its_own
def test_labels_that_are_not_classes_stop_training_with_the_file_named(tmp_path) -> None:
    import cv2
    import numpy as np

    root = tmp_path / 'data'
    for folder in ('images', 'labels'):
        (root / folder).mkdir(parents=True)
    for index in range(4):
        cv2.imwrite(str(root / 'images' / f'p{index}.png'), np.zeros((32, 32, 3), np.uint8))
        cv2.imwrite(str(root / 'labels' / f'p{index}.png'),
                    np.full((32, 32), 9 if index == 2 else 1, np.uint8))
    (root / 'classes.txt').write_text('background\npart\n')
    config = _config(root, tmp_path / 'run', val_data=None, crop_size=32, batch_size=4,
                     workers=1)
    with pytest.raises(ConfigError) as error:
        train(config)
    message = str(error.value)
    assert message.startswith('p2: label values [9] are not classes 0..1')
    assert 'Traceback' not in message  # the loader worker's traceback is not the message
    # The worker is stopped before the error leaves train(), not by a later garbage collection,
    # and the error does not keep the worker's exception (and the loader) alive.
    assert multiprocessing.active_children() == []
    assert error.value.__context__ is None


@_in_a_pytest_of_its_own
def test_an_epoch_left_early_stops_its_loader_workers_at_once() -> None:
    import torch

    from lw_refinenet_ros.training.epoch_loop import stop_loader_workers

    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.arange(64.0)),
                                         batch_size=4, num_workers=1)
    batches = iter(loader)
    next(batches)  # a budget ends the epoch after one batch
    assert len(multiprocessing.active_children()) == 1
    stop_loader_workers(batches)
    assert multiprocessing.active_children() == []
    stop_loader_workers(batches)  # a second stop is harmless
    stop_loader_workers(iter(torch.utils.data.DataLoader([1, 2])))  # no workers: nothing to do
