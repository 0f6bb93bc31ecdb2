"""Evaluation: the reference post-processing, the eval CLI, and the shipped default model."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from lw_refinenet_ros.cli import main
from lw_refinenet_ros.cli.evaluate import perturbation
from lw_refinenet_ros.data.conveyor import CLASS_COLORS, CLASS_NAMES, write_conveyor_dataset
from lw_refinenet_ros.data.datasets import ConveyorDataset
from lw_refinenet_ros.model import DEFAULT_MODEL_PATH, build_model, load_model, save_checkpoint
from lw_refinenet_ros.training.evaluate import evaluate_model, predict


class _Constant(torch.nn.Module):
    """Logits that always favour one class: predictions are known exactly."""

    def __init__(self, num_classes: int, winner: int) -> None:
        super().__init__()
        self.num_classes, self.winner = num_classes, winner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        logits = torch.zeros(n, self.num_classes, (h + 3) // 4, (w + 3) // 4)
        logits[:, self.winner] = 1.0
        return logits


def test_predict_is_full_resolution_and_scores_follow_the_confusion_matrix() -> None:
    image = np.zeros((13, 17, 3), np.uint8)
    assert predict(_Constant(3, 2), image).shape == (13, 17)
    labels = np.zeros((13, 17), np.uint8)
    labels[:, :5] = 2
    labels[0] = 255
    scores = evaluate_model(_Constant(3, 2), [(image, labels)], 3)
    # Only class 2 is predicted: class 0 IoU 0, class 2 IoU = TP / union, class 1 excluded.
    assert np.isnan(scores.iou[1]) and scores.iou[0] == 0.0
    assert scores.iou[2] == pytest.approx(12 * 5 / (12 * 17))
    assert scores.confusion.sum() == 12 * 17


def test_perturbations() -> None:
    assert perturbation() is None
    image = np.full((8, 8, 3), 100, np.uint8)
    assert perturbation(brightness=1.5)(image).max() == 150
    noisy = perturbation(noise=20.0)(image)
    assert noisy.std() > 5


@pytest.mark.slow
def test_eval_cli_writes_json_and_confusion_png(tmp_path, capsys) -> None:
    data = write_conveyor_dataset(tmp_path / 'data', 2, seed=8, size=(64, 48))
    torch.manual_seed(0)
    weights = tmp_path / 'model.pt'
    save_checkpoint(weights, build_model('mbv2', len(CLASS_NAMES)), arch='mbv2',
                    class_names=CLASS_NAMES, colors=CLASS_COLORS)
    code = main(['eval', '--weights', str(weights), '--data', str(data), '--device', 'cpu',
                 '--json', str(tmp_path / 'scores.json'), '--confusion-png',
                 str(tmp_path / 'cm.png'), '--blur', '1.0'])
    assert code == 0
    result = json.loads((tmp_path / 'scores.json').read_text())
    assert set(result['per_class']) == set(CLASS_NAMES) and result['images'] == 2
    assert 0.0 <= result['miou'] <= 1.0 and result['perturbation']['blur'] == 1.0
    assert (tmp_path / 'cm.png').read_bytes()[:4] == b'\x89PNG'
    assert 'mIoU' in capsys.readouterr().out


def test_eval_cli_class_count_mismatch_is_an_error(tmp_path) -> None:
    data = write_conveyor_dataset(tmp_path / 'data', 1, seed=8, size=(64, 48))
    weights = tmp_path / 'model.pt'
    save_checkpoint(weights, build_model('mbv2', 3), arch='mbv2')
    assert main(['eval', '--weights', str(weights), '--data', str(data)]) == 2


@pytest.mark.slow
@pytest.mark.skipif(not DEFAULT_MODEL_PATH.is_file(), reason='default model not shipped yet')
def test_default_model_segments_unseen_conveyor_frames() -> None:
    assert DEFAULT_MODEL_PATH.stat().st_size < 10 * 1024 * 1024
    model, info = load_model(None)
    assert info.arch == 'mbv2' and tuple(info.class_names) == CLASS_NAMES
    frames = ConveyorDataset(seed=777_777, length=4, size=(320, 240), fresh_per_epoch=False)
    scores = evaluate_model(model, frames, info.num_classes)
    assert scores.miou > 0.8, scores.iou
