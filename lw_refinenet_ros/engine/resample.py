"""Antialiased bilinear shrinking in numpy: torch's ``interpolate(mode='bilinear',
antialias=True)`` without torch.

The CPU preprocessing shrinks a camera frame to ``max_side`` (the packaged model runs 640x480
frames at 320x240). It used torch for that, which made every CPU engine import torch (about
2 s of CPU on a 2-core machine) even when the network runs on OpenVINO or ONNX Runtime. This
is the same resampling written from its definition: a separable triangle filter stretched by
the scale factor (support ``scale`` input pixels on each side of an output pixel's centre),
its weights normalised per output pixel (so the borders renormalise instead of padding),
the width resampled first and then the height, in float32, with the weights computed in the
same float and double steps as torch's CPU kernel. The result equals torch's to float32
rounding (``test/unit/test_resample.py`` checks it against torch on many sizes).
"""

from __future__ import annotations

import functools

import numpy as np


@functools.lru_cache(maxsize=32)
def _taps(in_size: int, out_size: int) -> tuple[np.ndarray, np.ndarray]:
    """(source index, weight) per output pixel and tap, shapes (out_size, taps); the taps past
    a pixel's own support have weight 0 (and a valid index)."""
    f32 = np.float32
    scale = f32(in_size) / f32(out_size)
    support = scale if scale >= 1.0 else f32(1.0)
    invscale = f32(1.0) / scale if scale >= 1.0 else f32(1.0)
    positions = np.arange(out_size, dtype=np.float64) + 0.5
    center = (np.float64(scale) * positions).astype(f32)
    first = np.maximum(((center - support).astype(np.float64) + 0.5).astype(np.int64), 0)
    last = np.minimum(((center + support).astype(np.float64) + 0.5).astype(np.int64), in_size)
    count = last - first
    offsets = np.arange(int(count.max()), dtype=np.int64)
    index = first[:, None] + offsets[None, :]
    distance = (index.astype(f32) - center[:, None]).astype(np.float64) + 0.5
    x = np.abs((distance * np.float64(invscale)).astype(f32))
    weights = np.where(x < 1.0, (1.0 - x.astype(np.float64)).astype(f32), f32(0.0))
    weights[offsets[None, :] >= count[:, None]] = 0.0
    total = weights[:, 0].copy()
    for tap in range(1, weights.shape[1]):
        total = (total + weights[:, tap]).astype(f32)
    safe = np.where(total != 0.0, total, f32(1.0))
    weights = (weights / safe[:, None]).astype(f32)
    return np.minimum(index, in_size - 1), np.ascontiguousarray(weights)


@functools.lru_cache(maxsize=32)
def _regular_run(in_size: int, out_size: int) -> tuple[int, int, int]:
    """(first, stop, step): the output pixels ``first..stop-1`` whose taps are the row
    ``first``'s shifted by ``step`` input pixels per output pixel, with the same weights;
    (0, 0, 0) when there is no such run.

    For an integer factor that is every output pixel but the borders (where the support is cut
    and renormalised). Those pixels read strided slices of the input instead of gathered
    copies: the same products summed in the same order, so the result is bit-identical.
    """
    if in_size % out_size:
        return 0, 0, 0
    step = in_size // out_size
    index, weights = _taps(in_size, out_size)
    middle = out_size // 2
    shift = (np.arange(out_size) - middle)[:, None] * step
    regular = (np.all(index == index[middle] + shift, axis=1)
               & np.all(weights == weights[middle], axis=1)
               & (index[middle, 0] + shift[:, 0] >= 0))
    rows = np.flatnonzero(regular)
    if rows.size == 0 or rows[-1] - rows[0] + 1 != rows.size:
        return 0, 0, 0
    return int(rows[0]), int(rows[-1]) + 1, step


def _gather_rows(data: np.ndarray, axis: int, index: np.ndarray,
                 weights: np.ndarray) -> np.ndarray:
    shape = [1] * data.ndim
    shape[axis] = index.shape[0]
    result = np.take(data, index[:, 0], axis=axis) * weights[:, 0].reshape(shape)
    for tap in range(1, index.shape[1]):
        result += np.take(data, index[:, tap], axis=axis) * weights[:, tap].reshape(shape)
    return result


def _resample_axis(data: np.ndarray, axis: int, out_size: int) -> np.ndarray:
    index, weights = _taps(data.shape[axis], out_size)
    first, stop, step = _regular_run(data.shape[axis], out_size)
    if stop - first < 2:
        return _gather_rows(data, axis, index, weights)
    shape = list(data.shape)
    shape[axis] = out_size
    result = np.empty(shape, np.float32)

    def rows(start: int, end: int, every: int = 1) -> tuple[slice, ...]:
        return (slice(None),) * axis + (slice(start, end, every),)

    run = result[rows(first, stop)]
    for tap in range(index.shape[1]):
        start = int(index[first, tap])
        strided = data[rows(start, start + step * (stop - first), step)]
        if tap == 0:
            np.multiply(strided, weights[first, 0], out=run)
        else:
            run += strided * weights[first, tap]
    for start, end in ((0, first), (stop, out_size)):
        if end > start:
            result[rows(start, end)] = _gather_rows(data, axis, index[start:end],
                                                    weights[start:end])
    return result


def shrink_chw(chw: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A (C, h, w) float32 array resized to ``size`` = (height, width) with antialiased
    bilinear filtering (``align_corners=False``), as torch's; a C-contiguous float32 array.

    Meant for shrinking (every output side at most the input's); an unchanged side is not
    touched, as in torch.
    """
    data = np.asarray(chw, dtype=np.float32)
    height, width = int(size[0]), int(size[1])
    if data.shape[2] != width:
        data = _resample_axis(data, 2, width)
    if data.shape[1] != height:
        data = _resample_axis(data, 1, height)
    return np.ascontiguousarray(data, dtype=np.float32)
