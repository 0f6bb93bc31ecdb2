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


def _gather(data: np.ndarray, axis: int, index: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Outputs ``sum_t data[index[:, t]] * weights[:, t]`` along ``axis``, tap by tap."""
    shape = [1] * data.ndim
    shape[axis] = index.shape[0]
    result = np.take(data, index[:, 0], axis=axis) * weights[:, 0].reshape(shape)
    for tap in range(1, index.shape[1]):
        result += np.take(data, index[:, tap], axis=axis) * weights[:, tap].reshape(shape)
    return result


def _resample_axis(data: np.ndarray, axis: int, out_size: int) -> np.ndarray:
    index, weights = _taps(data.shape[axis], out_size)
    return _gather(data, axis, index, weights)


@functools.lru_cache(maxsize=32)
def _uniform_run(in_size: int, out_size: int) -> tuple[np.ndarray, int, int, int, int] | None:
    """For an integer shrink factor ``k``: the taps every interior output shares.

    Returns ``(weights, anchor, first, stop, k)``: outputs ``first .. stop - 1`` are
    ``sum_j weights[j] * in[k * o - anchor + j]``, one kernel for all of them (the borders
    renormalise theirs); None when the factor is not an integer or there is no such run.
    """
    if in_size % out_size or in_size == out_size or out_size < 3:
        return None
    k = in_size // out_size
    index, weights = _taps(in_size, out_size)
    mid = out_size // 2
    count = int(np.count_nonzero(weights[mid]))
    offsets = index[mid, :count] - k * mid
    kernel = weights[mid, :count]
    if not np.array_equal(offsets, offsets[0] + np.arange(count)) or not (
            -count < offsets[0] <= 0):
        return None
    outputs = np.arange(out_size)
    same = (np.all(index[:, :count] == k * outputs[:, None] + offsets[None, :], axis=1)
            & np.all(weights[:, :count] == kernel[None, :], axis=1)
            & np.all(weights[:, count:] == 0.0, axis=1))
    first = stop = mid
    while first > 0 and same[first - 1]:
        first -= 1
    while stop < out_size and same[stop]:
        stop += 1
    return kernel.copy(), int(-offsets[0]), first, stop, k


def _shrink_hwc_axis(hwc: np.ndarray, axis: int, out_size: int) -> np.ndarray:
    """One axis (0: height, 1: width) of an (H, W, C) float32 image, C <= 4.

    Interior outputs come from OpenCV's separable filter with the shared kernel, sampled at
    the stride (SIMD, about 3x the gather at 640x480 -> 320x240); the renormalised border
    outputs from the gather. Equal to the gather to float32 rounding (the order of the
    sum may differ)."""
    import cv2

    run = _uniform_run(hwc.shape[axis], out_size)
    if run is None:
        return _resample_axis(hwc, axis, out_size)
    kernel, anchor, first, stop, k = run
    hwc = np.ascontiguousarray(hwc)  # once: a strided view slows the filter and the gather
    identity = np.ones((1, 1), np.float32)
    column = kernel.reshape(-1, 1).astype(np.float32)
    kx, ky, point = (column, identity, (anchor, 0)) if axis == 1 else (identity, column,
                                                                       (0, anchor))
    filtered = cv2.sepFilter2D(hwc, cv2.CV_32F, kx, ky, anchor=point,
                               borderType=cv2.BORDER_REPLICATE)
    if filtered.ndim == 2:
        filtered = filtered[:, :, None]
    shape = list(hwc.shape)
    shape[axis] = out_size
    result = np.empty(shape, np.float32)
    picked = slice(k * first, k * (stop - 1) + 1, k)
    if axis == 0:
        result[first:stop] = filtered[picked]
    else:
        result[:, first:stop] = filtered[:, picked]
    border = np.r_[0:first, stop:out_size]
    if border.size:
        index, weights = _taps(hwc.shape[axis], out_size)
        values = _gather(hwc, axis, index[border], weights[border])
        if axis == 0:
            result[border] = values
        else:
            result[:, border] = values
    return result


def shrink_chw(chw: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A (C, h, w) float32 array resized to ``size`` = (height, width) with antialiased
    bilinear filtering (``align_corners=False``), as torch's; a C-contiguous float32 array.

    Meant for shrinking (every output side at most the input's); an unchanged side is not
    touched, as in torch.
    """
    data = np.asarray(chw, dtype=np.float32)
    height, width = int(size[0]), int(size[1])
    if _filterable(data.shape[0], data.shape[1:], size):
        hwc = shrink_hwc(np.moveaxis(data, 0, 2), size)
        return np.ascontiguousarray(np.moveaxis(hwc, 2, 0), dtype=np.float32)
    if data.shape[2] != width:
        data = _resample_axis(data, 2, width)
    if data.shape[1] != height:
        data = _resample_axis(data, 1, height)
    return np.ascontiguousarray(data, dtype=np.float32)


def _filterable(channels: int, source: tuple[int, ...], size: tuple[int, int]) -> bool:
    """Whether OpenCV's filter can take a side (an integer factor, at most 4 channels)."""
    return channels <= 4 and (_uniform_run(int(source[1]), int(size[1])) is not None
                              or _uniform_run(int(source[0]), int(size[0])) is not None)


def shrink_hwc(hwc: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """:func:`shrink_chw` for an (H, W, C) float32 image: an (h, w, C) float32 array.

    A side shrunk by an integer factor (640x480 -> 320x240) goes through OpenCV's separable
    filter at about 3x the speed of the gather (6x at 1920x1080 -> 320x180), the rest
    through the gather; both equal torch's to float32 rounding."""
    data = np.asarray(hwc, dtype=np.float32)
    height, width = int(size[0]), int(size[1])
    if not _filterable(data.shape[2], data.shape[:2], size):
        return np.moveaxis(shrink_chw(np.moveaxis(data, 2, 0), size), 0, 2)
    if data.shape[1] != width:
        data = _shrink_hwc_axis(data, 1, width)
    if data.shape[0] != height:
        data = _shrink_hwc_axis(data, 0, height)
    return data
