"""Labels and confidence at an integer multiple of the logits' resolution (4x at native
resolution, 8x with ``max_side`` halving a frame), interpolating only near boundaries.

See :mod:`lw_refinenet_ros.engine.postprocess` ("Bands") for why this equals full-resolution
interpolation followed by argmax. The geometry, for an output ``s`` times the logits
(``align_corners=False``: the source coordinate of output row ``y`` is ``(y + 0.5) / s -
0.5``):

* output rows ``s i + s // 2 .. s i + s // 2 + s - 1`` share the interpolation window of
  logit rows ``i - 1 .. i + 2`` (bicubic) or ``i .. i + 1`` (bilinear), with fixed fractional
  offsets; the first ``s // 2`` rows belong to the block ``i = -1``. So the output is a grid
  of ``(h + 1) x (w + 1)`` blocks of ``s x s`` pixels, shifted by ``s // 2``, and every block
  is one window with the same weights as every other block (for s = 4: rows ``4 i + 2 ..
  4 i + 5``, offsets ``(a + 0.5) / 4``);
* indices outside the logits are clamped (OpenCV and torch replicate the border), which the
  edge padding here reproduces.

A block whose window is *sure* (one winner everywhere, margin above the kernel's negative
lobes) takes that label for all its pixels; the others are interpolated exactly. The result
is written into a padded ``s (h + 1) x s (w + 1)`` canvas whose first ``s - s // 2`` rows
and columns lie before the image.
"""

from __future__ import annotations

import functools

import cv2
import numpy as np

from lw_refinenet_ros.constants import OUTPUT_STRIDE

#: Kernels the band path implements; both use OpenCV's and torch's conventions.
BAND_KERNELS: tuple[str, ...] = ('bicubic', 'bilinear')
#: Bicubic kernel parameter of OpenCV's INTER_CUBIC and torch's ``mode='bicubic'``.
CUBIC_A = -0.75
#: Band blocks interpolated per batch (bounds the patch memory on noisy 4K frames).
BLOCKS_PER_BATCH = 8192
#: Relative allowance for float32 rounding in the sure-window test.
_ROUNDING = 1e-5
#: None (the default): in a sure block the confidence is the stride-4 confidence interpolated
#: with the same kernel (the class cannot change there; measured on a 640x480 conveyor frame
#: with the default model: at most 0.0015 from exact, mean 8e-6). A number: also proven within
#: that of exact from each class's lead range over the window, else interpolated exactly (on
#: that frame 0.01 puts 31 % of the blocks in the band instead of 14 %, and costs the time the
#: band saved).
CONFIDENCE_TOLERANCE: float | None = None
#: exp() of anything below this is 0 for a softmax sum; clamping avoids subnormal results,
#: which are many times slower on x86.
_EXP_FLOOR = np.float32(-80.0)


def _cubic(x: float) -> float:
    x = abs(x)
    if x <= 1.0:
        return ((CUBIC_A + 2.0) * x - (CUBIC_A + 3.0)) * x * x + 1.0
    if x < 2.0:
        return ((CUBIC_A * x - 5.0 * CUBIC_A) * x + 8.0 * CUBIC_A) * x - 4.0 * CUBIC_A
    return 0.0


@functools.lru_cache(maxsize=None)
def block_weights(kernel: str, factor: int = OUTPUT_STRIDE) -> np.ndarray:
    """(factor, taps) float32 weights: output position ``a`` of a block from its window's
    taps. Block ``i`` starts at output ``factor * i + factor // 2``, where the source
    coordinate ``(y + 0.5) / factor - 0.5`` is ``i + t``."""
    rows = []
    for a in range(factor):
        t = (factor // 2 + a + 0.5) / factor - 0.5
        if kernel == 'bicubic':
            rows.append([_cubic(1.0 + t), _cubic(t), _cubic(1.0 - t), _cubic(2.0 - t)])
        elif kernel == 'bilinear':
            rows.append([1.0 - t, t])
        else:
            raise ValueError(f'band kernel must be one of {BAND_KERNELS}, got {kernel!r}')
    return np.asarray(rows, dtype=np.float32)


@functools.lru_cache(maxsize=None)
def _lobes(kernel: str, factor: int) -> tuple[np.ndarray, np.ndarray]:
    """Sums of the positive and of the (absolute) negative 2-D weights, per output position."""
    weights = block_weights(kernel, factor).astype(np.float64)
    positive, negative = [], []
    for wy in weights:
        for wx in weights:
            w2 = np.outer(wy, wx)
            positive.append(w2[w2 > 0].sum())
            negative.append(-w2[w2 < 0].sum())
    return np.asarray(positive), np.asarray(negative)


def lobe_sums(kernel: str, factor: int = OUTPUT_STRIDE) -> tuple[float, float]:
    """(smallest sum of positive 2-D weights, largest sum of negative ones) over the 16
    output positions of a block: the ``P`` and ``N`` of the sure-window bound (a value
    interpolated from taps in ``[lo, hi]``, ``lo >= 0``, is at least ``P lo - N hi``)."""
    positive, negative = _lobes(kernel, factor)
    return float(positive.min()), float(negative.max())


def lobe_sums_upper(kernel: str, factor: int = OUTPUT_STRIDE) -> tuple[float, float]:
    """(largest positive sum, smallest negative sum): an interpolated value from taps in
    ``[lo, hi]``, ``lo >= 0``, is at most ``P' hi - N' lo`` with these."""
    positive, negative = _lobes(kernel, factor)
    return float(positive.max()), float(negative.min())


def _window(array: np.ndarray, taps: int, reduce: np.ufunc) -> np.ndarray:
    """``reduce`` over the window of every block, border replicated: (..., h + 1, w + 1).

    Block ``b`` (logit row ``i = b - 1``) reads rows ``i - 1 .. i + 2`` (bicubic) or
    ``i .. i + 1`` (bilinear), clamped to the array; leading axes are kept."""
    h, w = array.shape[-2:]
    first = -2 if taps == 4 else -1
    rows = np.clip(np.arange(first, first + h + taps), 0, h - 1)
    cols = np.clip(np.arange(first, first + w + taps), 0, w - 1)
    padded = np.take(np.take(array, rows, axis=-2), cols, axis=-1)
    out = padded[..., :h + 1, :]
    for k in range(1, taps):
        out = reduce(out, padded[..., k:k + h + 1, :])
    result = out[..., :w + 1]
    for k in range(1, taps):
        result = reduce(result, out[..., k:k + w + 1])
    return result


def _top_two_and_bottom(logits: np.ndarray) -> tuple[np.ndarray, ...]:
    """Per logit pixel: winner index, best, second best and smallest value over K.

    Plane by plane over the class axis of (K, h, w): several times faster than numpy's
    reductions over a short axis. Ties go to the lower class index, as ``argmax``."""
    winner = np.zeros(logits.shape[1:], np.int64)
    best = logits[0].copy()
    second = np.full_like(best, -np.inf)
    bottom = logits[0].copy()
    for k in range(1, logits.shape[0]):
        plane = logits[k]
        np.maximum(second, np.minimum(best, plane), out=second)
        winner[plane > best] = k
        np.maximum(best, plane, out=best)
        np.minimum(bottom, plane, out=bottom)
    if logits.shape[0] == 1:
        second = best - np.float32(1e30)
    return winner, best, second, bottom


def _argmax_planes(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index and value of the maximum over the first axis (ties: the lower index)."""
    winner = np.zeros(values.shape[1:], np.int64)
    best = values[0].copy()
    for k in range(1, values.shape[0]):
        winner[values[k] > best] = k
        np.maximum(best, values[k], out=best)
    return winner, best


def _confidence_range(logits: np.ndarray, top: np.ndarray, taps: int, kernel: str,
                      factor: int) -> tuple[np.ndarray, np.ndarray]:
    """Per block, an interval that holds the exact confidence of every pixel, where the
    block is sure (one winner ``c``; meaningless elsewhere).

    The confidence is ``1 / sum_k exp(-lead_k)`` with ``lead_k = l_c - l_k`` interpolated. Over
    the window each class's lead lies in ``[lo_k, hi_k]``, so the interpolated one lies in
    ``[P lo_k - N hi_k, P' hi_k - N' lo_k]`` (:func:`lobe_sums`, :func:`lobe_sums_upper`);
    the sums of exponentials at the two ends bound the
    confidence. The interpolated stride-4 confidence is clipped into the same interval."""
    positive, negative = lobe_sums(kernel, factor)
    positive_up, negative_up = lobe_sums_upper(kernel, factor)
    lead = top - logits  # (K, h, w), >= 0
    lo = _window(lead, taps, np.minimum)
    hi = _window(lead, taps, np.maximum)
    low_sum = np.exp(np.maximum(negative_up * lo - positive_up * hi, _EXP_FLOOR)).sum(axis=0)
    high_sum = np.exp(np.maximum(negative * hi - positive * lo, _EXP_FLOOR)).sum(axis=0)
    return 1.0 / high_sum, 1.0 / low_sum


@functools.lru_cache(maxsize=None)
def _block_kernel(kernel: str, factor: int) -> np.ndarray:
    """(factor^2, taps^2) float32: the outputs of a block from its window, row-major."""
    weights = block_weights(kernel, factor)
    return np.einsum('ap,bq->abpq', weights, weights).reshape(
        factor * factor, -1).astype(np.float32)


def band_factor(logit_shape: tuple[int, int], height: int, width: int) -> int:
    """The integer upsampling factor of (height, width) over the logits, or 0 when the band
    path does not apply (not the same integer in both directions, or below 2)."""
    h, w = logit_shape
    factor = height // h if h else 0
    return factor if factor >= 2 and height == factor * h and width == factor * w else 0


def band_upsample(logits: np.ndarray, kernel: str, labels: np.ndarray,
                  confidence: np.ndarray | None,
                  confidence_tolerance: float | None = CONFIDENCE_TOLERANCE) -> int:
    """Fill ``labels`` (4h, 4w) and ``confidence`` from (K, h, w) float32 ``logits``.

    Args:
        logits: (K, h, w) stride-4 logits.
        kernel: ``'bicubic'`` or ``'bilinear'`` (``align_corners=False``).
        labels: (4h, 4w) output, uint8 or uint16.
        confidence: (4h, 4w) float32 output, or None.
        confidence_tolerance: See :data:`CONFIDENCE_TOLERANCE`.

    Returns:
        The number of 4x4 blocks that were interpolated (the band), for profiling.
    """
    num_classes, h, w = logits.shape
    factor = band_factor((h, w), labels.shape[0], labels.shape[1])
    if not factor:
        raise ValueError(f'band_upsample needs an output that is an integer multiple (>= 2) '
                         f'of the {h}x{w} logits, got {labels.shape}')
    # Block i = -1 starts at output row s // 2 - s: canvas row 0 is that row.
    shift = factor - factor // 2
    taps = 4 if kernel == 'bicubic' else 2
    logits = np.ascontiguousarray(logits, dtype=np.float32)
    small, top, second, bottom = _top_two_and_bottom(logits)
    label_type = labels.dtype
    positive, negative = lobe_sums(kernel, factor)
    # The smallest interpolated lead of the winner over any other class, per block.
    bound = (positive * _window(top - second, taps, np.minimum)
             - negative * _window(top - bottom, taps, np.maximum))
    same = _window(small, taps, np.minimum) == _window(small, taps, np.maximum)
    allowance = _ROUNDING * (1.0 + float(np.abs(top).max()) + float((top - bottom).max()))
    sure = same & (bound > allowance)
    conf_range = None
    if confidence is not None and num_classes > 1 and confidence_tolerance is not None:
        conf_range = _confidence_range(logits, top, taps, kernel, factor)
        sure &= conf_range[1] - conf_range[0] <= confidence_tolerance
    # Every pixel of a block first gets its window's label (any tap: all equal where sure).
    rows = np.clip(np.arange(-1, h), 0, h - 1)
    cols = np.clip(np.arange(-1, w), 0, w - 1)
    block_labels = small[rows][:, cols].astype(label_type)
    canvas = np.repeat(np.repeat(block_labels, factor, axis=0), factor, axis=1)
    blocks = canvas.reshape(h + 1, factor, w + 1, factor)
    inner = (slice(shift, shift + factor * h), slice(shift, shift + factor * w))
    conf_canvas = conf_blocks = None
    if confidence is not None:
        shifted = np.maximum(logits - top, _EXP_FLOOR)  # no subnormal exp results (slow)
        small_conf = 1.0 / np.exp(shifted).sum(axis=0, dtype=np.float32)
        conf_canvas = np.empty(canvas.shape, np.float32)
        interpolation = cv2.INTER_CUBIC if kernel == 'bicubic' else cv2.INTER_LINEAR
        conf_canvas[inner] = cv2.resize(small_conf, (factor * w, factor * h),
                                        interpolation=interpolation)
        conf_blocks = conf_canvas.reshape(blocks.shape)
        if conf_range is not None:  # bicubic may overshoot the exact range: keep within it
            np.clip(conf_blocks, conf_range[0][:, None, :, None],
                    conf_range[1][:, None, :, None], out=conf_blocks)
    band_i, band_j = np.nonzero(~sure)
    if band_i.size:
        pad = 2 if taps == 4 else 1
        # Pixel-major (rows, cols, K) logits, border replicated: a tap is one row of K.
        pixels = np.pad(logits.transpose(1, 2, 0), ((pad, pad), (pad, pad), (0, 0)),
                        mode='edge')
        stride = pixels.shape[1]
        pixels = pixels.reshape(-1, num_classes)
        offset = np.arange(taps)
        # Flat index of tap (p, q) of block (b_i, b_j), tap-major: (taps*taps, n).
        tap_index = (offset[:, None] * stride + offset[None, :]).reshape(-1, 1)
        kernel_matrix = _block_kernel(kernel, factor)
        for start in range(0, band_i.size, BLOCKS_PER_BATCH):
            bi = band_i[start:start + BLOCKS_PER_BATCH]
            bj = band_j[start:start + BLOCKS_PER_BATCH]
            n = bi.size
            window = np.take(pixels, tap_index + (bi * stride + bj)[None, :], axis=0)
            # One GEMM: (16, taps*taps) @ (taps*taps, n*K) -> the 16 outputs of each block.
            # (OpenCV's GEMM: numpy's threaded BLAS stalls on this thin shape under load.)
            up = cv2.gemm(kernel_matrix, window.reshape(taps * taps, n * num_classes), 1.0,
                          None, 0.0)
            up = up.reshape(factor * factor, n, num_classes)
            best, peak = _argmax_planes(np.moveaxis(up, 2, 0))
            blocks[bi, :, bj, :] = best.T.reshape(n, factor, factor)
            if conf_blocks is not None:
                shifted = np.maximum(up - peak[:, :, None], _EXP_FLOOR)
                total = np.einsum('ijk->ij', np.exp(shifted, out=shifted))
                conf_blocks[bi, :, bj, :] = (1.0 / total).T.reshape(n, factor, factor)
    labels[...] = canvas[inner]
    if confidence is not None:
        np.clip(conf_canvas[inner], 1.0 / num_classes, 1.0, out=confidence)
    return int(band_i.size)
