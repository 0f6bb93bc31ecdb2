"""Per-class statistics of a label image (numpy reference implementation).

The engine computes the same numbers on the device (see ``engine.py``); this module is the
specification it is tested against, and the fallback for label images from elsewhere.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from lw_refinenet_ros.errors import ConfigError

#: Largest ``classes x pixels`` for which per-class masks are built (bytes of memory).
MASK_BUDGET = 1 << 24


@dataclasses.dataclass(frozen=True)
class ClassStat:
    """Statistics of one class present in a label image.

    Attributes:
        class_id: Label id.
        pixel_count: Number of pixels with this label (> 0).
        area_fraction: ``pixel_count / (H * W)``.
        mean_confidence: Mean softmax probability of the winning class over those pixels;
            NaN when no confidence map was given.
        bbox: ``(x_min, y_min, x_max, y_max)``, inclusive pixel coordinates.
        centroid: ``(x, y)``, mean pixel coordinates (pixel centres at integers).
    """

    class_id: int
    pixel_count: int
    area_fraction: float
    mean_confidence: float
    bbox: tuple[int, int, int, int]
    centroid: tuple[float, float]


def stats_from_arrays(counts: np.ndarray, conf_sums: np.ndarray | None, x_sums: np.ndarray,
                      y_sums: np.ndarray, x_min: np.ndarray, y_min: np.ndarray,
                      x_max: np.ndarray, y_max: np.ndarray, total: int) -> list[ClassStat]:
    """Turn per-class reductions (all length K) into :class:`ClassStat` for present classes.

    Shared by the numpy reference and the engine's device path, so both round the same way.
    """
    present = np.flatnonzero(counts > 0)
    result = []
    for c in present.tolist():
        n = int(counts[c])
        conf = float(conf_sums[c] / n) if conf_sums is not None else float('nan')
        result.append(ClassStat(
            class_id=c,
            pixel_count=n,
            area_fraction=n / total,
            mean_confidence=conf,
            bbox=(int(x_min[c]), int(y_min[c]), int(x_max[c]), int(y_max[c])),
            centroid=(float(x_sums[c] / n), float(y_sums[c] / n)),
        ))
    return result


def compute_class_stats(labels: np.ndarray, confidence: np.ndarray | None,
                        num_classes: int) -> list[ClassStat]:
    """Per-class pixel counts, area, mean confidence, bounding box and centroid.

    Everything comes from two integer histograms, per row and per column: their sums are
    the pixel counts, their first moments the centroids, and their non-zero rows and columns
    the boxes. A 640x480 frame with 8 classes takes about 1 ms (docs/benchmarks.md, "The
    heap, one post-processing thread").

    Args:
        labels: (H, W) integer labels in ``[0, num_classes)``.
        confidence: (H, W) float confidence of the winning class, or None.
        num_classes: K.

    Returns:
        One :class:`ClassStat` per class that occurs, in ascending id order.

    Raises:
        ConfigError: Bad shapes, or labels outside ``[0, num_classes)``.
    """
    if num_classes < 1:
        raise ConfigError(f'num_classes must be >= 1, got {num_classes}.')
    if not isinstance(labels, np.ndarray) or labels.ndim != 2 or labels.dtype.kind not in 'iu':
        raise ConfigError('labels must be a 2-D integer array.')
    if confidence is not None and np.shape(confidence) != labels.shape:
        raise ConfigError(f'confidence {np.shape(confidence)} and labels {labels.shape} '
                          f'differ in shape.')
    height, width = labels.shape
    total = height * width
    if total == 0:
        return []
    low, high = int(labels.min()), int(labels.max())
    if low < 0 or high >= num_classes:
        raise ConfigError(f'labels must lie in [0, {num_classes}); found {low}..{high}.')
    if labels.dtype == np.uint64:
        labels = labels.astype(np.intp)  # bincount refuses uint64 input
    if labels.dtype == np.uint8 and num_classes * total <= MASK_BUDGET:
        row_hist, col_hist = _histograms_by_masks(labels, num_classes)
    else:
        row_hist, col_hist = _histograms_by_bincount(labels, num_classes)
    conf_sums = None
    if confidence is not None:
        conf_sums = np.bincount(labels.reshape(-1), minlength=num_classes,
                                weights=np.asarray(confidence, np.float64).reshape(-1))
    counts = row_hist.sum(axis=0)
    y_sums = np.arange(height, dtype=np.float64) @ row_hist
    x_sums = np.arange(width, dtype=np.float64) @ col_hist
    rows, cols = row_hist > 0, col_hist > 0
    y_min = rows.argmax(axis=0)
    y_max = height - 1 - rows[::-1].argmax(axis=0)
    x_min = cols.argmax(axis=0)
    x_max = width - 1 - cols[::-1].argmax(axis=0)
    return stats_from_arrays(counts, conf_sums, x_sums, y_sums, x_min, y_min, x_max, y_max,
                             total)


def _histograms_by_masks(labels: np.ndarray, num_classes: int) -> tuple[np.ndarray, ...]:
    """(rows x K, columns x K) class counts of uint8 labels from one 0/1 mask per class,
    summed by OpenCV along each axis: 2.5x faster than ``bincount`` at 640x480 with 8
    classes, at the cost of ``K x H x W`` bytes of masks."""
    import cv2

    height, width = labels.shape
    masks = (labels[None] == np.arange(num_classes, dtype=np.uint8)[:, None, None]).view(
        np.uint8)
    rows = cv2.reduce(masks.reshape(num_classes * height, width), 1, cv2.REDUCE_SUM,
                      dtype=cv2.CV_32S)
    columns = [cv2.reduce(mask, 0, cv2.REDUCE_SUM, dtype=cv2.CV_32S) for mask in masks]
    return (rows.reshape(num_classes, height).T.astype(np.int64),
            np.concatenate(columns).T.astype(np.int64))


def _histograms_by_bincount(labels: np.ndarray, num_classes: int) -> tuple[np.ndarray, ...]:
    """The same histograms for any integer labels and class count, from ``bincount``.

    Built in blocks of about 32k pixels: the index temporaries then stay small and are reused,
    instead of megabyte arrays allocated and faulted in on every frame."""
    height, width = labels.shape
    k = num_classes
    rows_per_block = max(1, 32768 // width)
    row_hist = np.empty((height, k), np.int64)
    col_hist = np.zeros((width, k), np.int64)
    col_offsets = np.arange(width, dtype=np.intp) * k
    for y0 in range(0, height, rows_per_block):
        block = labels[y0:y0 + rows_per_block]
        n = block.shape[0]
        row_index = np.arange(n, dtype=np.intp)[:, None] * k + block
        row_hist[y0:y0 + n] = np.bincount(row_index.reshape(-1),
                                          minlength=n * k).reshape(n, k)
        col_hist += np.bincount((col_offsets + block).reshape(-1),
                                minlength=width * k).reshape(width, k)
    return row_hist, col_hist
