"""Segmentation metrics: confusion matrix, per-class IoU, mIoU, pixel accuracy (numpy only).

mIoU follows the reference v2 evaluator, not v1: a class that is absent from both the ground
truth and the prediction has an undefined IoU (0/0) and is *excluded* from the mean, instead
of counting as 1 and inflating it (docs/architecture.md §5, "mIoU").
"""

from __future__ import annotations

from dataclasses import dataclass
import os
from typing import Any, Sequence

import numpy as np

from lw_refinenet_ros.constants import IGNORE_INDEX as IGNORE_INDEX  # re-exported
from lw_refinenet_ros.errors import ConfigError


def confusion_matrix(gt: np.ndarray, pred: np.ndarray, num_classes: int) -> np.ndarray:
    """Count pixels: ``cm[g, p]`` = pixels with ground truth g predicted as p.

    Only pixels with ``gt < num_classes`` count, so 255 (ignore) and any out-of-range label
    drop out. Predictions >= ``num_classes`` are an error (the model cannot produce them).

    Returns:
        int64 (K, K).
    """
    gt = np.asarray(gt)
    pred = np.asarray(pred)
    if gt.shape != pred.shape:
        raise ConfigError(f'Ground truth {gt.shape} and prediction {pred.shape} differ in shape.')
    gt = gt.reshape(-1).astype(np.int64)
    pred = pred.reshape(-1).astype(np.int64)
    valid = (gt >= 0) & (gt < num_classes)
    gt, pred = gt[valid], pred[valid]
    if pred.size and (pred.min() < 0 or pred.max() >= num_classes):
        raise ConfigError(f'Prediction holds labels outside 0..{num_classes - 1}.')
    return np.bincount(gt * num_classes + pred, minlength=num_classes * num_classes).reshape(
        num_classes, num_classes)


@dataclass(frozen=True)
class SegmentationScores:
    """Scores derived from one confusion matrix.

    Attributes:
        iou: Per-class IoU; NaN where the class is absent from gt and prediction (union 0).
        miou: Mean IoU over classes with a non-zero union (NaN if there are none).
        pixel_accuracy: Correct pixels / counted pixels.
        class_accuracy: Per-class recall (NaN where the class is absent from gt).
        present: Which classes have a non-zero union (counted in ``miou``).
        confusion: The (K, K) matrix.
    """

    iou: np.ndarray
    miou: float
    pixel_accuracy: float
    class_accuracy: np.ndarray
    present: np.ndarray
    confusion: np.ndarray

    def to_dict(self, class_names: Sequence[str] | None = None) -> dict[str, Any]:
        """A JSON-ready dict (NaN -> None)."""
        k = self.confusion.shape[0]
        names = list(class_names) if class_names is not None else [str(i) for i in range(k)]

        def clean(value: float) -> float | None:
            return None if np.isnan(value) else float(value)

        return {
            'miou': clean(self.miou),
            'pixel_accuracy': clean(self.pixel_accuracy),
            'num_classes': k,
            'classes_counted': int(self.present.sum()),
            'per_class': {names[i]: {'iou': clean(self.iou[i]),
                                     'accuracy': clean(self.class_accuracy[i]),
                                     'gt_pixels': int(self.confusion[i].sum()),
                                     'pred_pixels': int(self.confusion[:, i].sum())}
                          for i in range(k)},
            'confusion': self.confusion.tolist(),
        }


def scores_from_confusion(confusion: np.ndarray) -> SegmentationScores:
    """IoU = TP / (TP + FP + FN) per class; mean over classes whose union is > 0."""
    cm = np.asarray(confusion, dtype=np.float64)
    tp = np.diag(cm)
    gt_count = cm.sum(axis=1)
    pred_count = cm.sum(axis=0)
    union = gt_count + pred_count - tp
    present = union > 0
    with np.errstate(divide='ignore', invalid='ignore'):
        iou = np.where(present, tp / np.where(present, union, 1), np.nan)
        class_acc = np.where(gt_count > 0, tp / np.where(gt_count > 0, gt_count, 1), np.nan)
    miou = float(iou[present].mean()) if present.any() else float('nan')
    total = cm.sum()
    pixel_acc = float(tp.sum() / total) if total > 0 else float('nan')
    return SegmentationScores(iou=iou, miou=miou, pixel_accuracy=pixel_acc,
                              class_accuracy=class_acc, present=present,
                              confusion=np.asarray(confusion, dtype=np.int64))


class ConfusionMeter:
    """Accumulates a confusion matrix over many images."""

    def __init__(self, num_classes: int) -> None:
        if num_classes < 1:
            raise ConfigError(f'num_classes must be >= 1, got {num_classes}.')
        self.num_classes = num_classes
        self.matrix = np.zeros((num_classes, num_classes), np.int64)

    def update(self, gt: np.ndarray, pred: np.ndarray) -> None:
        self.matrix += confusion_matrix(gt, pred, self.num_classes)

    def scores(self) -> SegmentationScores:
        return scores_from_confusion(self.matrix)


def save_confusion_png(path: str | os.PathLike[str], confusion: np.ndarray,
                       class_names: Sequence[str] | None = None, *,
                       title: str = 'Confusion (row-normalised)') -> None:
    """Plot the row-normalised confusion matrix (rows = ground truth) as a PNG."""
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    cm = np.asarray(confusion, dtype=np.float64)
    k = cm.shape[0]
    names = list(class_names) if class_names is not None else [str(i) for i in range(k)]
    rows = cm.sum(axis=1, keepdims=True)
    norm = np.divide(cm, rows, out=np.zeros_like(cm), where=rows > 0)
    side = max(4.0, 0.45 * k + 2)
    fig, ax = plt.subplots(figsize=(side, side))
    ax.imshow(norm, cmap='Blues', vmin=0, vmax=1)
    ax.set_xticks(range(k), names, rotation=90)
    ax.set_yticks(range(k), names)
    ax.set_xlabel('predicted')
    ax.set_ylabel('ground truth')
    ax.set_title(title)
    if k <= 25:
        for g in range(k):
            for p in range(k):
                if norm[g, p] >= 0.005:
                    ax.text(p, g, f'{norm[g, p]:.2f}', ha='center', va='center', fontsize=7,
                            color='white' if norm[g, p] > 0.5 else 'black')
    fig.tight_layout()
    fig.savefig(os.fspath(path), dpi=100)
    plt.close(fig)
