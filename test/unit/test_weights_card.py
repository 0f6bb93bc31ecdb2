"""A checkpoint known from an earlier start (engine/weights_card.py): its card answers the
architecture, classes and weights' hash without loading anything; any change of the file is a
miss; the network is loaded, unchanged, the moment something uses it."""

from __future__ import annotations

import copy
import os
from pathlib import Path
import subprocess
import sys

import pytest
import torch

from lw_refinenet_ros.engine import weights_card
from lw_refinenet_ros.engine.export import model_fingerprint
from lw_refinenet_ros.engine.weights_card import (
    DeferredModel,
    WeightsCards,
    loaded_model,
    open_weights,
    weights_id_of,
)
from lw_refinenet_ros.errors import CheckpointError
from lw_refinenet_ros.model import build_model, save_checkpoint
from lw_refinenet_ros.model import weights as weights_module

ROOT = Path(__file__).resolve().parents[2]
NAMES = ('belt', 'bolt', 'nut')


@pytest.fixture
def checkpoint(tmp_path: Path) -> Path:
    torch.manual_seed(1)
    path = tmp_path / 'small.pt'
    save_checkpoint(path, build_model('mbv2', 3).eval(), arch='mbv2', class_names=NAMES,
                    metadata={'input_size': [48, 64]})
    return path


def test_a_first_open_loads_and_writes_the_card_a_second_loads_nothing(
        checkpoint: Path, tmp_path: Path) -> None:
    cache = tmp_path / 'cache'
    first, info = open_weights(checkpoint, cache_dir=cache)
    assert info is not None and first.is_loaded
    assert len(list((cache / weights_card.FOLDER).glob('*.json'))) == 1
    second, info = open_weights(checkpoint, cache_dir=cache)
    assert info is None and not second.is_loaded
    assert (second.arch, second.num_classes) == ('mbv2', 3)
    assert second.card.class_names == NAMES
    assert second.weights_id == first.weights_id == model_fingerprint(first.load())
    assert weights_id_of(second) == second.weights_id and not second.is_loaded
    assert second.card.engine_defaults == {'max_side': 64}  # the file's trained scale


def test_the_deferred_network_is_the_files_network(checkpoint: Path, tmp_path: Path) -> None:
    open_weights(checkpoint, cache_dir=tmp_path)
    deferred, _ = open_weights(checkpoint, cache_dir=tmp_path)
    x = torch.randn(1, 3, 32, 40)
    with torch.no_grad():
        expected = loaded_model(open_weights(checkpoint, cache_dir=None)[0])(x)
        # Attributes, calls and copies act on the loaded network (loaded on first use).
        assert deferred.training is False and deferred.is_loaded
        assert torch.equal(deferred(x), expected)
    copied = copy.deepcopy(deferred)
    assert isinstance(copied, torch.nn.Module) and copied is not deferred.load()
    assert model_fingerprint(copied) == deferred.weights_id
    assert deferred.checkpoint_info().class_names == NAMES


def test_a_touched_or_replaced_file_is_a_miss(checkpoint: Path, tmp_path: Path) -> None:
    open_weights(checkpoint, cache_dir=tmp_path)
    stat = checkpoint.stat()
    os.utime(checkpoint, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    model, info = open_weights(checkpoint, cache_dir=tmp_path)
    assert info is not None  # loaded again, and the card rewritten for the new stat
    assert open_weights(checkpoint, cache_dir=tmp_path)[1] is None
    torch.manual_seed(2)
    save_checkpoint(checkpoint, build_model('mbv2', 3).eval(), arch='mbv2')  # new weights
    replaced, info = open_weights(checkpoint, cache_dir=tmp_path)
    assert info is not None and replaced.weights_id != model.weights_id


def test_a_request_the_card_contradicts_gets_the_loaders_error(checkpoint: Path,
                                                               tmp_path: Path) -> None:
    open_weights(checkpoint, cache_dir=tmp_path)
    with pytest.raises(CheckpointError, match='Class-count mismatch'):
        open_weights(checkpoint, num_classes=5, cache_dir=tmp_path)
    with pytest.raises(CheckpointError, match='resnet50'):
        open_weights(checkpoint, arch='resnet50', cache_dir=tmp_path)


def test_an_unreadable_card_is_a_miss_and_is_rewritten(checkpoint: Path,
                                                       tmp_path: Path) -> None:
    open_weights(checkpoint, cache_dir=tmp_path)
    (card_file,) = (tmp_path / weights_card.FOLDER).glob('*.json')
    card_file.write_text('{"format": 1, "key": ')
    assert WeightsCards(tmp_path).lookup(checkpoint) is None
    assert open_weights(checkpoint, cache_dir=tmp_path)[1] is not None
    assert WeightsCards(tmp_path).lookup(checkpoint) is not None


def test_a_cache_folder_that_cannot_be_written_costs_only_the_card(checkpoint: Path,
                                                                   tmp_path: Path) -> None:
    blocker = tmp_path / 'file'
    blocker.write_text('not a folder')
    model, info = open_weights(checkpoint, cache_dir=blocker)
    assert info is not None and model.num_classes == 3
    assert open_weights(checkpoint, cache_dir=blocker)[1] is not None  # still no card


def test_a_missing_file_gets_the_loaders_error(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError):
        open_weights(tmp_path / 'absent.pt', cache_dir=tmp_path)


def test_the_packaged_model_is_found_without_importing_torch() -> None:
    script = ('import sys\n'
              'from lw_refinenet_ros.engine.weights_card import packaged_model_path\n'
              'print(packaged_model_path())\n'
              'assert "torch" not in sys.modules, "torch was imported"\n')
    result = subprocess.run([sys.executable, '-c', script], cwd=ROOT, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert Path(result.stdout.strip()) == Path(weights_module.DEFAULT_MODEL_PATH)


def test_a_repointed_default_model_is_followed(monkeypatch: pytest.MonkeyPatch,
                                               checkpoint: Path) -> None:
    monkeypatch.setattr(weights_module, 'DEFAULT_MODEL_PATH', checkpoint)
    assert weights_card.packaged_model_path() == checkpoint


def test_an_in_memory_model_is_hashed_as_before() -> None:
    model = build_model('mbv2', 3).eval()
    assert weights_id_of(model) == model_fingerprint(model)
    assert loaded_model(model) is model
    assert not isinstance(model, DeferredModel)
