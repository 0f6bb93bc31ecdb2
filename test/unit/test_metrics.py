"""Segmentation metrics on hand-made predictions with known answers."""

from __future__ import annotations

import json

import numpy as np
import pytest

from lw_refinenet_ros.errors import ConfigError
from lw_refinenet_ros.evaluation.metrics import (
    ConfusionMeter,
    confusion_matrix,
    save_confusion_png,
    scores_from_confusion,
)


def test_known_confusion_matrix() -> None:
    gt = np.array([[0, 0, 1, 1], [2, 2, 2, 255]])
    pred = np.array([[0, 1, 1, 1], [2, 0, 2, 1]])
    cm = confusion_matrix(gt, pred, 3)
    assert cm.tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 2]]


def test_iou_values_and_miou() -> None:
    cm = np.array([[1, 1, 0], [0, 2, 0], [1, 0, 2]])
    scores = scores_from_confusion(cm)
    # class 0: TP1 FP1 FN1 -> 1/3; class 1: TP2 FP1 FN0 -> 2/3; class 2: TP2 FN1 -> 2/3
    assert np.allclose(scores.iou, [1 / 3, 2 / 3, 2 / 3])
    assert scores.miou == pytest.approx(5 / 9)
    assert scores.pixel_accuracy == pytest.approx(5 / 7)


def test_ignore_index_pixels_do_not_count() -> None:
    gt = np.full((4, 4), 255)
    gt[0, 0] = 1
    pred = np.zeros((4, 4), int)
    cm = confusion_matrix(gt, pred, 2)
    assert cm.sum() == 1 and cm[1, 0] == 1


def test_absent_class_is_excluded_not_counted_as_one() -> None:
    gt = np.array([0, 0, 1, 1])
    pred = np.array([0, 0, 1, 0])
    scores = scores_from_confusion(confusion_matrix(gt, pred, 4))
    assert np.isnan(scores.iou[2]) and np.isnan(scores.iou[3])
    assert scores.present.tolist() == [True, True, False, False]
    assert scores.miou == pytest.approx((2 / 3 + 1 / 2) / 2)


def test_false_positive_class_counts_with_iou_zero() -> None:
    gt = np.array([0, 0, 0, 0])
    pred = np.array([0, 0, 0, 1])
    scores = scores_from_confusion(confusion_matrix(gt, pred, 3))
    assert scores.iou[1] == 0.0 and np.isnan(scores.iou[2])
    assert scores.miou == pytest.approx((3 / 4 + 0) / 2)


def test_meter_accumulates_and_perfect_prediction_scores_one() -> None:
    meter = ConfusionMeter(3)
    labels = np.array([[0, 1], [2, 2]])
    meter.update(labels, labels)
    meter.update(labels, labels)
    scores = meter.scores()
    assert scores.miou == 1.0 and scores.pixel_accuracy == 1.0
    assert meter.matrix.sum() == 8


def test_errors_and_json_and_png(tmp_path) -> None:
    with pytest.raises(ConfigError):
        confusion_matrix(np.zeros(3), np.zeros(4), 2)
    with pytest.raises(ConfigError):
        confusion_matrix(np.zeros(3), np.full(3, 5), 2)
    scores = scores_from_confusion(np.array([[3, 1], [0, 0]]))
    data = scores.to_dict(['a', 'b'])
    json.dumps(data)
    assert data['per_class']['b']['iou'] == 0.0 and data['classes_counted'] == 2
    save_confusion_png(tmp_path / 'cm.png', scores.confusion, ['a', 'b'])
    assert (tmp_path / 'cm.png').read_bytes()[:4] == b'\x89PNG'
