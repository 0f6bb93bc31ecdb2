"""Stride-4 logits -> full-resolution labels, confidence and statistics, for every backend.

The reference upsamples the logits bicubically (``align_corners=False``) to the image size
and takes the argmax; the confidence is the winning class's softmax probability,
``1 / sum_k exp(l_k - l_max)``, computed without materialising the softmax.

On the CPU this is OpenCV's ``INTER_CUBIC`` (the reference operation) plus numpy reductions,
and it works in horizontal tiles: a 4K frame with 21 classes would otherwise hold 700 MB of
full-resolution float scores at once. Tiling is bit-identical to one call because, when the
output height is exactly four times the logits' height, OpenCV's source coordinate
``(y + 0.5) / 4 - 0.5`` is exact in binary floating point: a slab of logit rows starting at
row ``s`` maps output row ``y - 4 s`` to exactly the coordinate of row ``y`` shifted by ``s``,
and two extra rows on each side cover the four-tap bicubic support. Other ratios (an image
height that is not a multiple of 4, ``max_side``) are not exact after the shift, so those
frames run in one piece. Tile buffers are kept and reused from frame to frame.

**Bands.** Most of a frame lies inside regions where every stride-4 logit around a pixel
votes for the same class, and there the upsampled argmax is known without upsampling. So when
the output is an integer multiple of the logits (4x at native resolution, 8x when
``max_side`` halves a frame), the CPU path takes the argmax
at the network's resolution and computes full-resolution logits only in the *bands*: the 4x4
output blocks whose interpolation window (4x4 logits for bicubic, 2x2 for bilinear) holds
more than one label, or a margin too thin to be sure. A window is sure when every logit in it
has the same winner ``c`` and ``P * min m >= N * max D`` (plus a rounding allowance), where
``m`` is the winner's lead over the runner-up, ``D`` its lead over the last class, and ``P``
and ``N`` the sums of the kernel's positive and (absolute) negative weights: the interpolated
lead of ``c`` over any class ``k`` is ``sum w_i (l_c - l_k)_i``, at least ``P min m - N max
D``. Bilinear weights are never negative (``N = 0``), so there the band labels equal full
bilinear exactly; bicubic's negative lobes (``a = -0.75``, as OpenCV and torch) are covered by
the same bound, so its labels equal the full-resolution path's as well, up to float rounding
at exact ties. Inside the bands the 16 outputs of a block are one fixed 16 x 16 (or 16 x 4)
matrix times its window of logits: one GEMM for all band blocks. The confidence is exact in
the bands; in a sure block it is the stride-4 confidence interpolated with the same kernel
(see :data:`~lw_refinenet_ros.engine.bands.CONFIDENCE_TOLERANCE` for the measured difference
and the variant that guarantees a bound). Statistics and objects are computed from these
labels, as before. Other ratios (sizes that are not a multiple of the logits) run the
full-resolution path.

On CUDA everything is torch (``F.interpolate``, ``max``, ``exp``) and the statistics are
computed on the device, so only labels, confidence and a few numbers come back.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from lw_refinenet_ros.constants import OUTPUT_STRIDE
from lw_refinenet_ros.engine.cpu_threads import one_postprocessing_thread
from lw_refinenet_ros.heap import keep_freed_memory
from lw_refinenet_ros.stats import ClassStat, compute_class_stats, stats_from_arrays

# The OpenCV 5 Python binding resizes at most 128 channels per call (measured: 129 fails).
_CV_MAX_CHANNELS = 128
#: Full-resolution scores held at once before the CPU path starts tiling (bytes).
TILE_BUDGET_BYTES = 64 << 20
#: Logit rows added above and below a slab: the bicubic kernel reads rows sy-1 .. sy+2.
_HALO = 2


def label_dtype(num_classes: int) -> type:
    """uint8 labels up to 256 classes, uint16 above."""
    return np.uint8 if num_classes <= 256 else np.uint16


def nearest_indices(size: int, out: int) -> np.ndarray:
    """Source index per output index, as ``F.interpolate(mode='nearest')`` picks them."""
    index = np.floor(np.arange(out, dtype=np.float64) * (size / out)).astype(np.int64)
    return np.minimum(index, size - 1)


class CpuPostprocessor:
    """(K, h, w) float32 numpy logits -> labels and confidence at (H, W), tiled.

    Args:
        num_classes: K.
        upsample: ``'bicubic'`` (reference), ``'bilinear'`` or ``'nearest'`` (argmax at
            stride 4).
        tile_rows: Output rows per tile; 0 = automatic (tiles only beyond
            :data:`TILE_BUDGET_BYTES`).
        band: Interpolate only in the bands near label changes when the output is exactly
            four times the logits (see "Bands" above); False always interpolates every pixel.
        confidence_tolerance: The band path's confidence bound (see
            :data:`~lw_refinenet_ros.engine.bands.CONFIDENCE_TOLERANCE`).
    """

    def __init__(self, num_classes: int, upsample: str = 'bicubic', tile_rows: int = 0,
                 band: bool = True, confidence_tolerance: float | None = None) -> None:
        self.num_classes = num_classes
        self.upsample = upsample
        self.tile_rows = tile_rows
        self.band = band
        self.confidence_tolerance = confidence_tolerance
        one_postprocessing_thread()  # spinning BLAS and OpenCV pools cost the runtime a core
        keep_freed_memory()  # no page faults for each frame's buffers (heap.py)
        #: Blocks interpolated by the last band call (None: the full path ran).
        self.last_band_blocks: int | None = None
        self._buffers: dict[str, np.ndarray] = {}

    def _buffer(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        """A C-contiguous float32 array of ``shape`` backed by one reused block per name (the
        edge tiles' smaller shapes are views of the same memory)."""
        size = int(np.prod(shape))
        block = self._buffers.get(name)
        if block is None or block.size < size:
            block = self._buffers[name] = np.empty(size, dtype=np.float32)
        return block[:size].reshape(shape)

    def rows_per_tile(self, height: int, width: int) -> int:
        """Output rows handled at once for an (height, width) frame (multiple of 4)."""
        rows = self.tile_rows or TILE_BUDGET_BYTES // max(1, width * self.num_classes * 4)
        return max(OUTPUT_STRIDE, rows - rows % OUTPUT_STRIDE)

    def __call__(self, logits: np.ndarray, height: int, width: int, want_confidence: bool
                 ) -> tuple[np.ndarray, np.ndarray | None]:
        """Labels ((H, W) uint8/uint16) and confidence ((H, W) float32 or None)."""
        logits = logits[:self.num_classes]  # a part-boundary channel K is not a class
        labels = np.empty((height, width), dtype=label_dtype(self.num_classes))
        confidence = np.empty((height, width), np.float32) if want_confidence else None
        self.last_band_blocks = None
        if self.upsample == 'nearest':
            self._nearest(logits, labels, confidence)
            return labels, confidence
        from lw_refinenet_ros.engine.bands import band_factor, band_upsample

        if self.band and band_factor(logits.shape[1:], height, width):

            self.last_band_blocks = band_upsample(logits, self.upsample, labels, confidence,
                                                  self.confidence_tolerance)
            return labels, confidence
        hwk = logits.transpose(1, 2, 0)  # free for channels_last output
        small_h = hwk.shape[0]
        step = self.rows_per_tile(height, width)
        if height != OUTPUT_STRIDE * small_h or step >= height:
            self._bicubic_rows(hwk, height, width, 0, height, labels, confidence)
            return labels, confidence
        for top in range(0, height, step):
            bottom = min(height, top + step)
            first = max(0, top // OUTPUT_STRIDE - _HALO)
            last = min(small_h, bottom // OUTPUT_STRIDE + _HALO)
            slab = hwk[first:last]
            self._bicubic_rows(slab, OUTPUT_STRIDE * (last - first), width,
                               top - OUTPUT_STRIDE * first, bottom - OUTPUT_STRIDE * first,
                               labels[top:bottom],
                               None if confidence is None else confidence[top:bottom])
        return labels, confidence

    def _bicubic_rows(self, hwk: np.ndarray, height: int, width: int, start: int, stop: int,
                      labels: np.ndarray, confidence: np.ndarray | None) -> None:
        """Resize ``hwk`` to (height, width), keep rows [start, stop) into the outputs."""
        import cv2

        k = hwk.shape[2]
        interpolation = cv2.INTER_LINEAR if self.upsample == 'bilinear' else cv2.INTER_CUBIC
        if k <= _CV_MAX_CHANNELS:
            buffer = self._buffer('up', (height, width, k))
            up = cv2.resize(np.ascontiguousarray(hwk), (width, height),
                            dst=buffer if k > 1 else buffer[:, :, 0],
                            interpolation=interpolation).reshape(height, width, k)
        else:
            parts = [cv2.resize(np.ascontiguousarray(hwk[:, :, s:s + _CV_MAX_CHANNELS]),
                                (width, height), interpolation=interpolation
                                ).reshape(height, width, -1)
                     for s in range(0, k, _CV_MAX_CHANNELS)]
            up = np.concatenate(parts, axis=2)
        rows = up[start:stop]
        best_index = rows.argmax(axis=2)
        labels[...] = best_index
        if confidence is None:
            return
        best = np.take_along_axis(rows, best_index[..., None], axis=2)
        shifted = self._buffer('exp', rows.shape)
        np.subtract(rows, best, out=shifted)
        flat = shifted.reshape(rows.shape[0], -1)
        cv2.exp(flat, dst=flat)
        # A per-pixel sum over the classes (not a BLAS product, whose blocking depends on
        # the tile height): the sums, and so the confidence, are the same tiled or not.
        # einsum measured ~4x faster than ndarray.sum over this short last axis.
        denom = np.einsum('ijk->ij', shifted)
        np.reciprocal(denom, out=denom)
        confidence[...] = denom

    def _nearest(self, logits: np.ndarray, labels: np.ndarray,
                 confidence: np.ndarray | None) -> None:
        small_labels = logits.argmax(axis=0)
        rows = nearest_indices(logits.shape[1], labels.shape[0])
        cols = nearest_indices(logits.shape[2], labels.shape[1])
        labels[...] = small_labels[rows][:, cols]
        if confidence is not None:
            best = logits.max(axis=0)
            small_conf = 1.0 / np.exp(logits - best[None]).sum(axis=0, dtype=np.float32)
            confidence[...] = small_conf[rows][:, cols]

    def stats(self, labels: np.ndarray, confidence: np.ndarray | None) -> list[ClassStat]:
        """Per-class statistics (the node's numpy implementation)."""
        return compute_class_stats(labels, confidence, self.num_classes)


class TorchPostprocessor:
    """(K, h, w) logits tensor on a device -> labels/confidence (numpy) + device stats."""

    def __init__(self, num_classes: int, upsample: str = 'bicubic') -> None:
        self.num_classes = num_classes
        self.upsample = upsample

    def __call__(self, logits: Any, height: int, width: int, want_confidence: bool,
                 want_stats: bool) -> tuple[np.ndarray, np.ndarray | None,
                                            list[ClassStat] | None]:
        import torch
        import torch.nn.functional as F

        logits = logits[:self.num_classes].float()  # not a part-boundary channel K
        need_conf = want_confidence or want_stats
        if self.upsample == 'bicubic':
            up = F.interpolate(logits[None].contiguous(memory_format=torch.channels_last),
                               size=(height, width), mode='bicubic', align_corners=False)
            labels, conf = _max_and_confidence(up[0].permute(1, 2, 0), need_conf)
        else:
            small_labels, small_conf = _max_and_confidence(logits.permute(1, 2, 0), need_conf)
            rows = torch.from_numpy(nearest_indices(logits.shape[1], height)).to(logits.device)
            cols = torch.from_numpy(nearest_indices(logits.shape[2], width)).to(logits.device)
            labels = small_labels[rows][:, cols]
            conf = small_conf[rows][:, cols] if small_conf is not None else None
        stats = _device_stats(labels, conf, self.num_classes) if want_stats else None
        wide = torch.uint8 if self.num_classes <= 256 else torch.int32
        labels_np = labels.to(wide).cpu().numpy().astype(label_dtype(self.num_classes),
                                                         copy=False)
        conf_np = conf.to(torch.float32).cpu().numpy() if want_confidence else None
        return labels_np, conf_np, stats


def _max_and_confidence(hwk: Any, want_confidence: bool) -> tuple[Any, Any]:
    """Argmax and max softmax probability over the last axis, without a full softmax."""
    import torch

    values, labels = torch.max(hwk, dim=-1)
    if not want_confidence:
        return labels, None
    denom = torch.exp(hwk - values.unsqueeze(-1)).sum(dim=-1)
    return labels, denom.reciprocal_()


def _device_stats(labels: Any, confidence: Any, k: int) -> list[ClassStat]:
    """Per-class reductions on the device; equals :func:`stats.compute_class_stats`."""
    import torch

    height, width = labels.shape
    lab = labels.to(torch.int64)
    # Class occupancy per row and per column: one bincount each. Counts, coordinate sums
    # (exact int64) and boxes all derive from these two small tables.
    row_ids = torch.arange(height, device=lab.device).mul_(k).unsqueeze(1)
    col_ids = torch.arange(width, device=lab.device).mul_(k).unsqueeze(0)
    rows = torch.bincount((lab + row_ids).reshape(-1), minlength=height * k).view(height, k)
    cols = torch.bincount((lab + col_ids).reshape(-1), minlength=width * k).view(width, k)
    counts = rows.sum(0)
    y_sums = (rows * torch.arange(height, device=lab.device).unsqueeze(1)).sum(0)
    x_sums = (cols * torch.arange(width, device=lab.device).unsqueeze(1)).sum(0)
    row_any = (rows > 0).to(torch.uint8)
    col_any = (cols > 0).to(torch.uint8)
    y_min = row_any.argmax(0)
    y_max = height - 1 - row_any.flip(0).argmax(0)
    x_min = col_any.argmax(0)
    x_max = width - 1 - col_any.flip(0).argmax(0)
    packed = torch.stack([counts, x_sums, y_sums, x_min, y_min, x_max, y_max]).cpu().numpy()
    conf_sums = None
    if confidence is not None:
        conf_sums = torch.zeros(k, dtype=torch.float64, device=lab.device).index_add_(
            0, lab.reshape(-1), confidence.reshape(-1).to(torch.float64)).cpu().numpy()
    c, xs, ys, x0, y0, x1, y1 = packed
    return stats_from_arrays(c, conf_sums, xs, ys, x0, y0, x1, y1, height * width)
