"""What to label next: the N least confident frames, kept by segment --save-uncertain."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from lw_refinenet_ros.cli import main
from lw_refinenet_ros.data.uncertain import UncertainFrames
from lw_refinenet_ros.errors import ConfigError
from lw_refinenet_ros.model import build_model, save_checkpoint


def test_keeps_the_lowest_mean_confidence_frames(tmp_path: Path) -> None:
    keep = UncertainFrames(tmp_path / 'next', 2)
    for stem, score in (('a', 0.9), ('b', 0.4), ('c', 0.95), ('d', 0.6), ('e', 0.99)):
        keep.offer(stem, np.full((4, 6, 3), int(score * 100), np.uint8),
                   np.full((4, 6), score, np.float32))
    assert [stem for stem, _ in keep.kept()] == ['b', 'd']
    written = keep.write()
    assert [p.name for p in written] == ['b.png', 'd.png']
    assert cv2.imread(str(written[0]))[0, 0, 0] == 40  # the frame itself, unchanged
    record = json.loads((tmp_path / 'next' / 'uncertain.json').read_text())
    assert record['frames_seen'] == 5
    assert record['kept'][0] == {'image': 'b.png', 'mean_confidence': pytest.approx(0.4)}


def test_a_bad_count_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match='N must be a whole number'):
        UncertainFrames.from_args(['dir', 'many'])
    with pytest.raises(ConfigError, match='N >= 1'):
        UncertainFrames.from_args(['dir', '0'])
    assert UncertainFrames.from_args(None) is None


def test_segment_saves_the_uncertain_frames(tmp_path: Path, capsys) -> None:
    torch.manual_seed(0)
    weights = tmp_path / 'm.pt'
    save_checkpoint(weights, build_model('mbv2', 3).eval(), arch='mbv2')
    inputs = tmp_path / 'in'
    inputs.mkdir()
    rng = np.random.default_rng(0)
    for index in range(3):
        cv2.imwrite(str(inputs / f'f{index}.png'),
                    rng.integers(0, 256, (16, 24, 3), dtype=np.uint8))
    assert main(['segment', str(inputs), '--weights', str(weights), '--out',
                 str(tmp_path / 'out'), '--device', 'cpu', '--backend', 'torch',
                 '--precision', 'fp32', '--no-progress', '--save-uncertain',
                 str(tmp_path / 'next'), '2']) == 0
    record = json.loads((tmp_path / 'next' / 'uncertain.json').read_text())
    assert record['frames_seen'] == 3 and len(record['kept']) == 2
    scores = [k['mean_confidence'] for k in record['kept']]
    assert scores == sorted(scores) and all(0 < s <= 1 for s in scores)
    assert all((tmp_path / 'next' / k['image']).is_file() for k in record['kept'])
    assert 'least confident' in capsys.readouterr().out
