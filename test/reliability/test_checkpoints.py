"""Damaged and hostile checkpoints are refused with a message that names the problem and fix.

A factory node must never start with half-loaded weights, crash with a bare ``KeyError``
from deep inside torch, or execute a pickle someone slipped into the weights folder. Small
models only (MobileNet-v2 with 3 classes) and tmp files.
"""

from __future__ import annotations

import pathlib
import pickle
import random

import pytest
import torch

from lw_refinenet_ros.errors import CheckpointError
from lw_refinenet_ros.model import (
    build_model,
    load_model,
    load_weights,
    read_checkpoint,
    save_checkpoint,
)

NUM_CLASSES = 3


@pytest.fixture(scope='module')
def small_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model('mbv2', NUM_CLASSES).eval()


@pytest.fixture(scope='module')
def good_file(small_model: torch.nn.Module,
              tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    path = tmp_path_factory.mktemp('ckpt') / 'good.pt'
    save_checkpoint(path, small_model, arch='mbv2', class_names=['bg', 'belt', 'bolt'],
                    colors=[(0, 0, 0), (128, 0, 0), (0, 128, 0)])
    return path


def test_the_good_file_loads(good_file: pathlib.Path) -> None:
    """Control: every refusal below is about the damage, not about the fixture."""
    info = read_checkpoint(good_file)
    assert (info.arch, info.num_classes) == ('mbv2', NUM_CLASSES)
    model, _ = load_model(good_file)
    assert model.num_classes == NUM_CLASSES


@pytest.mark.parametrize('keep', [0, 64, 0.25, 0.5, 0.99])
def test_truncated_files_are_refused(good_file: pathlib.Path, tmp_path: pathlib.Path,
                                     keep: float) -> None:
    data = good_file.read_bytes()
    size = keep if isinstance(keep, int) else int(len(data) * keep)
    path = tmp_path / 'truncated.pt'
    path.write_bytes(data[:size])
    with pytest.raises(CheckpointError, match='corrupt or truncated') as error:
        read_checkpoint(path)
    assert str(path) in str(error.value)
    assert 'Re-download or re-export' in str(error.value)


def _garbage(good_file: pathlib.Path, kind: str) -> bytes:
    if kind == 'one_byte':
        return good_file.read_bytes()[:1]
    return random.Random(kind).randbytes(4096)


@pytest.mark.parametrize('kind', ['one_byte', 'random1', 'random2', 'random3'])
def test_garbage_is_refused(good_file: pathlib.Path, tmp_path: pathlib.Path,
                            kind: str) -> None:
    """The safety contract: refused as CheckpointError naming the file, nothing else."""
    path = tmp_path / 'garbage.pt'
    path.write_bytes(_garbage(good_file, kind))
    with pytest.raises(CheckpointError) as error:
        read_checkpoint(path)
    assert str(path) in str(error.value)


@pytest.mark.parametrize('kind', ['one_byte', 'random1'])
def test_garbage_is_called_corrupt_not_malicious(good_file: pathlib.Path,
                                                 tmp_path: pathlib.Path, kind: str) -> None:
    """Bytes that are no pickle at all must not be reported as a malicious pickle."""
    path = tmp_path / 'garbage.pt'
    path.write_bytes(_garbage(good_file, kind))
    with pytest.raises(CheckpointError, match='corrupt or truncated'):
        read_checkpoint(path)


def test_flipped_bytes_never_escape_as_a_foreign_exception(good_file: pathlib.Path,
                                                           tmp_path: pathlib.Path) -> None:
    """Corruption inside the archive: either refused as CheckpointError or loads; no crash."""
    data = bytearray(good_file.read_bytes())
    rng = random.Random(1)
    for trial in range(8):
        damaged = bytearray(data)
        for _ in range(32):
            damaged[rng.randrange(len(damaged))] ^= 0xFF
        path = tmp_path / f'flipped{trial}.pt'
        path.write_bytes(bytes(damaged))
        try:
            read_checkpoint(path)
        except CheckpointError as error:
            assert str(path) in str(error)


def test_a_missing_file_says_so(tmp_path: pathlib.Path) -> None:
    with pytest.raises(CheckpointError, match='does not exist'):
        read_checkpoint(tmp_path / 'nope.pt')


class _Payload:
    """Unpickling this calls ``pathlib.Path.touch(marker)``: stands in for arbitrary code."""

    def __init__(self, marker: pathlib.Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (pathlib.Path.touch, (self.marker,))


@pytest.mark.parametrize('writer', ['torch_zip', 'plain_pickle', 'inside_state_dict'])
def test_pickles_that_run_code_are_refused_and_not_run(small_model: torch.nn.Module,
                                                       tmp_path: pathlib.Path,
                                                       writer: str) -> None:
    marker = tmp_path / 'pwned'
    path = tmp_path / 'evil.pt'
    if writer == 'torch_zip':
        torch.save({'state_dict': small_model.state_dict(), 'hook': _Payload(marker)}, path)
    elif writer == 'plain_pickle':
        path.write_bytes(pickle.dumps(_Payload(marker)))
    else:
        state = dict(small_model.state_dict())
        state['extra'] = _Payload(marker)
        torch.save(state, path)
    with pytest.raises(CheckpointError) as error:
        read_checkpoint(path)
    assert not marker.exists(), 'the payload ran during loading'
    text = str(error.value)
    if writer != 'plain_pickle':
        assert 'Refusing to run code' in text
        assert 'plain state dict' in text  # the fix is in the message
    with pytest.raises(CheckpointError):
        load_model(path)
    assert not marker.exists()


def test_wrong_shapes_name_the_keys(small_model: torch.nn.Module) -> None:
    state = {k: v.clone() for k, v in small_model.state_dict().items()}
    key = next(k for k, v in state.items() if v.ndim == 4 and 'clf' not in k)
    state[key] = torch.zeros(*state[key].shape[:-1], state[key].shape[-1] + 2)
    target = build_model('mbv2', NUM_CLASSES)
    before = {k: v.clone() for k, v in target.state_dict().items()}
    with pytest.raises(CheckpointError, match='wrong shape') as error:
        load_weights(target, state)
    assert key in str(error.value)
    assert 'nothing was loaded' in str(error.value)
    after = target.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before), 'partially loaded'


def test_missing_and_unexpected_keys_are_listed(small_model: torch.nn.Module) -> None:
    state = dict(small_model.state_dict())
    removed = next(iter(state))
    del state[removed]
    state['decoder.surprise.weight'] = torch.zeros(1)
    with pytest.raises(CheckpointError) as error:
        load_weights(build_model('mbv2', NUM_CLASSES), state)
    text = str(error.value)
    assert 'missing' in text and removed in text
    assert 'unexpected' in text and 'decoder.surprise.weight' in text


def test_wrong_class_count_says_how_to_fix(good_file: pathlib.Path,
                                           small_model: torch.nn.Module) -> None:
    with pytest.raises(CheckpointError, match='Class-count mismatch') as error:
        load_model(good_file, num_classes=NUM_CLASSES + 2)
    assert 'drop num_classes' in str(error.value)
    with pytest.raises(CheckpointError, match='Class-count mismatch'):
        load_weights(build_model('mbv2', NUM_CLASSES + 2), small_model.state_dict())


def test_wrong_architecture_is_named(good_file: pathlib.Path) -> None:
    with pytest.raises(CheckpointError, match='mbv2'):
        load_model(good_file, arch='resnet50')


def test_inconsistent_project_metadata_is_refused(small_model: torch.nn.Module,
                                                  tmp_path: pathlib.Path) -> None:
    path = tmp_path / 'lying.pt'
    torch.save({'format': 'lw_refinenet_ros/1', 'arch': 'mbv2', 'num_classes': 7,
                'class_names': None, 'colors': None, 'metadata': {},
                'state_dict': small_model.state_dict()}, path)
    with pytest.raises(CheckpointError, match='inconsistent'):
        read_checkpoint(path)
    names = tmp_path / 'names.pt'
    torch.save({'format': 'lw_refinenet_ros/1', 'arch': 'mbv2', 'num_classes': NUM_CLASSES,
                'class_names': ['only', 'two'], 'colors': None, 'metadata': {},
                'state_dict': small_model.state_dict()}, names)
    with pytest.raises(CheckpointError, match='class names'):
        read_checkpoint(names)


def test_nan_weights_are_refused(small_model: torch.nn.Module) -> None:
    state = {k: v.clone() for k, v in small_model.state_dict().items()}
    key = next(k for k, v in state.items() if v.is_floating_point() and v.ndim == 4)
    state[key].view(-1)[0] = float('nan')
    with pytest.raises(CheckpointError, match='NaN'):
        load_weights(build_model('mbv2', NUM_CLASSES), state)


def test_a_file_without_a_state_dict_is_refused(tmp_path: pathlib.Path) -> None:
    path = tmp_path / 'list.pt'
    torch.save([1, 2, 3], path)
    with pytest.raises(CheckpointError, match='state dict'):
        read_checkpoint(path)
