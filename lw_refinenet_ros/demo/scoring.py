"""Live scoring of the node's labels against the camera's ground truth, and the run summary.

The node's ``segmentation/labels`` and the camera's ``ground_truth/labels`` arrive on two
topics in either order; they are paired by header stamp (the node copies the camera's stamp)
within a window of recent frames and accumulated into one confusion matrix. No ROS imports:
the monitor hands in arrays, so this is testable on its own.
"""

from __future__ import annotations

from collections import OrderedDict
import math
from typing import Any

import numpy as np

from lw_refinenet_ros.evaluation.metrics import ConfusionMeter

PAIRING_WINDOW = 90  # frames of unmatched ground truth / labels kept for pairing (3 s at 30 Hz)


def remember(store: OrderedDict[int, np.ndarray], stamp: int, array: np.ndarray,
             window: int = PAIRING_WINDOW) -> None:
    """Keep ``array`` under ``stamp``, forgetting the oldest entries beyond ``window``."""
    store[stamp] = array
    while len(store) > window:
        store.popitem(last=False)


class StampPairingScorer:
    """Pairs labels and ground truth by stamp and accumulates a confusion matrix.

    Args:
        num_classes: Classes of the scene; grows when the model predicts more (the matrix
            keeps what it has counted).
    """

    def __init__(self, num_classes: int) -> None:
        self.meter = ConfusionMeter(num_classes)
        self.frames_scored = 0
        self._truth: OrderedDict[int, np.ndarray] = OrderedDict()
        self._labels: OrderedDict[int, np.ndarray] = OrderedDict()

    def add_truth(self, stamp: int, truth: np.ndarray) -> None:
        """A ground-truth label image; scored now if the labels of ``stamp`` are waiting."""
        predicted = self._labels.pop(stamp, None)
        if predicted is not None:
            self._score(truth, predicted)
        else:
            remember(self._truth, stamp, truth)

    def add_labels(self, stamp: int, predicted: np.ndarray) -> None:
        """The node's labels; scored now if the ground truth of ``stamp`` is waiting."""
        truth = self._truth.pop(stamp, None)
        if truth is not None:
            self._score(truth, predicted)
        else:
            remember(self._labels, stamp, predicted)

    def grow(self, num_classes: int) -> None:
        """Make room for ``num_classes`` classes (the node's class map may name more)."""
        if num_classes > self.meter.num_classes:
            old = self.meter
            self.meter = ConfusionMeter(num_classes)
            self.meter.matrix[:old.num_classes, :old.num_classes] = old.matrix

    def _score(self, truth: np.ndarray, predicted: np.ndarray) -> None:
        if truth.shape != predicted.shape:
            return  # the node was configured to publish at another size: not comparable
        self.grow(int(predicted.max(initial=0)) + 1)
        self.meter.update(truth, predicted)
        self.frames_scored += 1


def number(text: str | None) -> float | int | None:
    """A diagnostics value as a number (int when whole); None when absent or not numeric."""
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    return int(value) if value.is_integer() else value


def rounded(value: float | None, digits: int = 2) -> float | None:
    """``value`` rounded for the summary; None and NaN stay None."""
    if value is None or math.isnan(value):
        return None
    return round(float(value), digits)


def accuracy_summary(scorer: StampPairingScorer, class_names: tuple[str, ...]) -> dict[str, Any]:
    """mIoU, pixel accuracy, the IoU of every class in view or predicted, and the confusion
    matrix, JSON-ready."""
    scores = scorer.meter.scores()
    names = list(class_names) + [str(i) for i in range(len(class_names), len(scores.iou))]
    # IoU of every class with pixels in the ground truth or the prediction (the mIoU's terms).
    per_class = {name: round(float(iou), 4)
                 for name, iou, present in zip(names, scores.iou, scores.present) if present}
    details = scores.to_dict(names[:len(scores.iou)])
    # A short run can miss a class entirely (no washer passed): a few pixels predicted as
    # one then count with IoU 0 in the mIoU, so the classes in view are averaged apart too.
    in_view = scores.confusion.sum(axis=1) > 0
    return {'frames_scored': scorer.frames_scored,
            'miou': rounded(scores.miou, 4),
            'miou_in_view': rounded(float(np.mean(scores.iou[in_view])), 4)
            if in_view.any() else None,
            'pixel_accuracy': rounded(scores.pixel_accuracy, 4),
            'iou': per_class,
            'per_class': details['per_class'], 'confusion': details['confusion']}
