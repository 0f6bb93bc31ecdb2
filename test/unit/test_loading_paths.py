"""load_weights('~/...') as the README writes it: ``~`` is the home folder."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from lw_refinenet_ros.errors import CheckpointError
from lw_refinenet_ros.model import build_model, load_weights


def test_load_weights_expands_the_home_folder(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv('HOME', str(tmp_path))
    source = build_model('mbv2', num_classes=3)
    (tmp_path / '.torch' / 'models').mkdir(parents=True)
    torch.save(source.state_dict(), tmp_path / '.torch' / 'models' / 'mine.pth')
    target = build_model('mbv2', num_classes=3)
    load_weights(target, '~/.torch/models/mine.pth')
    for key, value in source.state_dict().items():
        assert torch.equal(target.state_dict()[key], value), key


def test_a_missing_home_file_is_named_with_the_expanded_path(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv('HOME', str(tmp_path))
    with pytest.raises(CheckpointError, match=str(tmp_path / 'nope.pth')):
        load_weights(build_model('mbv2', num_classes=3), '~/nope.pth')
