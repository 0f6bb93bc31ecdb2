"""InferenceEngine: image in, full-resolution labels, confidence and per-class stats out.

torch only (no ROS). The default pipeline is the reference one (architecture doc section 6):
RGB, ``/255``, ImageNet mean/std, native resolution, stride-4 logits upsampled bicubically
(``align_corners=False``) to the full image, argmax. Everything after the upload runs on the
engine's device, so on a GPU only the uint8 image goes up and only the labels (plus the
optional confidence map and a few hundred bytes of statistics) come back.

Speed-ups that keep the labels identical to the reference (see docs/engine.md for numbers):

* **BatchNorm folding** into the convolutions (one kernel fewer per conv);
* **channels_last** memory format (3-4x faster MobileNet-v2 on CPU through oneDNN);
* **exact preprocessing through a lookup table**: the float64 reference values for each of
  the 256 byte values per channel, rounded once to float32 -- bit-identical to the
  reference and cheaper than per-pixel arithmetic;
* on CPU the bicubic upsampling uses OpenCV's ``INTER_CUBIC`` (the reference operation,
  ~6x faster than ``F.interpolate`` on two cores) and the argmax/confidence use numpy and
  ``cv2.exp``; on CUDA everything is torch (``F.interpolate``, ``max``, ``exp``);
* argmax and confidence from one max plus one ``exp``-sum, without materialising softmax.

Options that change the labels are explicit: ``max_side`` (downscale the network input),
``upsample='nearest'`` (argmax at stride 4, nearest upsampling) and reduced precision.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import Any, Sequence

import numpy as np

from lw_refinenet_ros.engine.config import (
    AUTO as _AUTO,
)
from lw_refinenet_ros.engine.config import (
    THREADS_AUTO,
    EngineConfig,
    add_engine_arguments,
    engine_config_from_args,
)
from lw_refinenet_ros.errors import ConfigError, EngineError
from lw_refinenet_ros.stats import ClassStat, stats_from_arrays

__all__ = ['IMAGENET_MEAN', 'IMAGENET_STD', 'EngineConfig', 'InferenceEngine',
           'SegmentationResult', 'add_engine_arguments', 'engine_config_from_args',
           'normalization_lut']

_LOG = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
OUTPUT_STRIDE = 4
PRECISIONS = ('fp32', 'fp16', 'bf16')
UPSAMPLE_MODES = ('bicubic', 'nearest')
COLOR_ORDERS = ('rgb', 'bgr')
# The OpenCV 5 Python binding resizes at most 128 channels per call (measured: 129 fails).
_CV_MAX_CHANNELS = 128
_MAX_CLASSES = 65536


def normalization_lut() -> np.ndarray:
    """(3, 256) float32: ``(v / 255 - mean[c]) / std[c]`` computed in float64, rounded once.

    This is exactly what the reference's float64 preprocessing followed by ``.float()`` gives
    for every byte value, so a gather through this table reproduces it bit for bit.
    """
    values = np.arange(256, dtype=np.float64) / 255.0
    mean = np.asarray(IMAGENET_MEAN, dtype=np.float64)[:, None]
    std = np.asarray(IMAGENET_STD, dtype=np.float64)[:, None]
    return ((values[None, :] - mean) / std).astype(np.float32)


@dataclasses.dataclass
class SegmentationResult:
    """One segmented frame.

    Attributes:
        labels: (H, W) class ids at the input's full resolution; uint8, or uint16 when K > 256.
        confidence: (H, W) float32 softmax probability of the winning class, or None.
        stats: Per-class statistics of the present classes (ascending id), or None.
        timings: Milliseconds per stage: ``preprocess``, ``forward``, ``postprocess``,
            ``total``. In a batch, preprocess and forward are those of the whole group.
        network_size: (height, width) the network actually ran at (differs with max_side).
    """

    labels: np.ndarray
    confidence: np.ndarray | None
    stats: list[ClassStat] | None
    timings: dict[str, float]
    network_size: tuple[int, int] = (0, 0)


def _resolve_device(config: EngineConfig) -> str:
    import torch

    requested = config.device
    if requested == _AUTO:
        return 'cuda' if torch.cuda.is_available() else 'cpu'
    if requested == 'cpu':
        return 'cpu'
    index = int(requested[5:]) if ':' in requested else 0
    if torch.cuda.is_available() and index < torch.cuda.device_count():
        return requested
    reason = ('this torch build has no CUDA support or no GPU is visible'
              if not torch.cuda.is_available()
              else f'only {torch.cuda.device_count()} CUDA device(s) are visible')
    if config.device_fallback:
        _LOG.warning('device %r requested but %s; running on the CPU '
                     '(device_fallback=true).', requested, reason)
        return 'cpu'
    raise EngineError(f'device {requested!r} requested but {reason}. Use device "cpu" or '
                      f'"auto", install a CUDA build of torch, or set device_fallback.')


def _resolve_dtype(precision: str, device: str) -> Any:
    import torch

    if precision in ('fp32', _AUTO):
        return torch.float32
    if precision == 'int8':
        raise EngineError('precision int8 needs the openvino or onnxruntime backend; the torch '
                          'backend runs fp32, fp16 or bf16.')
    if device == 'cpu':
        if precision == 'fp16':
            _LOG.warning('precision fp16 is not used on the CPU (its fp16 convolutions are '
                         'emulated and slower than fp32); running fp32. Use bf16 on CPUs '
                         'with native bf16 support.')
            return torch.float32
        _LOG.info('precision bf16 on the CPU: fast only with native bf16 (AVX512-BF16/AMX); '
                  'otherwise slower than fp32.')
        return torch.bfloat16
    if precision == 'bf16' and not torch.cuda.is_bf16_supported():
        _LOG.warning('this GPU does not support bf16; running fp16 instead.')
        return torch.float16
    return torch.float16 if precision == 'fp16' else torch.bfloat16


def _network_size(height: int, width: int, max_side: int) -> tuple[int, int]:
    if not max_side or max(height, width) <= max_side:
        return height, width
    scale = max_side / max(height, width)
    return max(1, round(height * scale)), max(1, round(width * scale))


class _GraphForward:
    """Replays a CUDA-graph capture of ``model`` per input shape (static input buffers)."""

    def __init__(self, model: Any, max_graphs: int = 4) -> None:
        self._model = model
        self._graphs: dict[tuple[int, ...], tuple[Any, Any, Any]] = {}
        self._max_graphs = max_graphs

    def _capture(self, x: Any) -> tuple[Any, Any, Any]:
        import torch

        static_in = x.clone()
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            for _ in range(2):  # allocator and cuDNN warm-up before the capture
                self._model(static_in)
        torch.cuda.current_stream().wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            static_out = self._model(static_in)
        return graph, static_in, static_out

    def __call__(self, x: Any) -> Any:
        key = tuple(x.shape) + (x.dtype, str(x.stride()))
        entry = self._graphs.get(key)
        if entry is None:
            if len(self._graphs) >= self._max_graphs:
                self._graphs.pop(next(iter(self._graphs)))
            entry = self._capture(x)
            self._graphs[key] = entry
        graph, static_in, static_out = entry
        static_in.copy_(x)
        graph.replay()
        # The next replay overwrites static_out; results are post-processed later.
        return static_out.clone()


class InferenceEngine:
    """Runs an LW-RefineNet on numpy images; see the module docstring for the pipeline.

    The engine takes ownership of ``model`` (it may be moved to the device and cast). Use one
    engine from one thread (CUDA graphs and ``torch.compile`` are not thread-safe).

    Args:
        model: nn.Module mapping (N, 3, H, W) normalised RGB to (N, K, ceil(H/4), ceil(W/4))
            logits.
        config: Engine options (defaults: the reference pipeline on the best device).
        num_classes: K; read from ``model.num_classes`` when omitted.

    Raises:
        EngineError: Device unavailable, or the warm-up forward failed.
        ConfigError: K missing or invalid.
    """

    def __init__(self, model: Any, config: EngineConfig | None = None, *,
                 num_classes: int | None = None) -> None:
        import torch

        self.config = config if config is not None else EngineConfig()
        if num_classes is None:
            num_classes = getattr(model, 'num_classes', None)
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) \
                or not 1 <= num_classes <= _MAX_CLASSES:
            raise ConfigError(f'num_classes must be an integer in 1..{_MAX_CLASSES} (pass '
                              f'num_classes= when the model has no num_classes attribute), '
                              f'got {num_classes!r}.')
        self.num_classes = num_classes
        self.device = _resolve_device(self.config)
        self._torch_device = torch.device(self.device)
        self._is_cuda = self._torch_device.type == 'cuda'
        self.dtype = _resolve_dtype(self.config.precision, self.device)
        if self.config.num_threads > 0 and not self._is_cuda:
            torch.set_num_threads(self.config.num_threads)
        if self._is_cuda:
            torch.backends.cudnn.benchmark = self.config.cudnn_benchmark
            torch.backends.cudnn.allow_tf32 = self.config.allow_tf32
            torch.backends.cuda.matmul.allow_tf32 = self.config.allow_tf32
        self._use_cv2 = False
        if not self._is_cuda and self.config.upsample == 'bicubic':
            try:
                import cv2  # noqa: F401 - only checks that the fast CPU resize is available
                self._use_cv2 = True
            except ImportError:
                _LOG.info('OpenCV is not importable; bicubic upsampling uses torch on the CPU.')
        self.channels_last = self.config.channels_last in (True, _AUTO)
        self.model = self._prepare_model(model)
        self._forward_fn = self._wrap_forward(self.model)
        self._lut = torch.from_numpy(normalization_lut().reshape(-1)).to(self._torch_device)
        self._lut_offsets = {
            'rgb': torch.tensor([0, 256, 512], device=self._torch_device).view(3, 1, 1),
            'bgr': torch.tensor([512, 256, 0], device=self._torch_device).view(3, 1, 1),
        }
        self._warmup()

    # ----------------------------------------------------------------- setup

    def _prepare_model(self, model: Any) -> Any:
        import torch

        model = model.eval()
        if self.config.fold_batchnorm:
            try:
                from lw_refinenet_ros.model.fusion import fold_batchnorm
                model = fold_batchnorm(model)
            except Exception as error:  # a foreign module layout must not stop inference
                _LOG.warning('BatchNorm folding failed (%s); running the unfolded model.',
                             error)
        model.requires_grad_(False)
        model = model.to(device=self._torch_device, dtype=self.dtype)
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)
        return model

    def _wrap_forward(self, model: Any) -> Any:
        import torch

        forward = model
        if self.config.compile is True:
            try:
                forward = torch.compile(model, backend=self.config.compile_backend,
                                        dynamic=False)
            except Exception as error:
                _LOG.warning('torch.compile is unavailable (%s); running eager.', error)
        if self.config.cuda_graphs is True:
            if not self._is_cuda:
                _LOG.info('cuda_graphs needs a CUDA device; running without CUDA graphs.')
            elif forward is not model:
                _LOG.info('cuda_graphs is not combined with compile; use compile mode '
                          '"reduce-overhead" instead. Running compiled without graphs.')
            else:
                forward = _GraphForward(model)
        return forward

    def _warmup(self) -> None:
        iters = self.config.warmup_iters
        if iters == 0:
            return
        height, width = self.config.warmup_size
        image = np.zeros((height, width, 3), dtype=np.uint8)
        start = time.perf_counter()
        for _ in range(iters):
            self(image, 'rgb', want_confidence=True, want_stats=True)
        if self.config.num_threads == THREADS_AUTO and not self._is_cuda:
            self._tune_threads(image)
        _LOG.info('engine ready on %s (%s, channels_last=%s, compile=%s, cuda_graphs=%s): '
                  'warm-up %dx %dx%d took %.0f ms', self.device, str(self.dtype)[6:],
                  self.channels_last, self.config.compile, self.config.cuda_graphs, iters,
                  height, width, (time.perf_counter() - start) * 1e3)

    def _tune_threads(self, image: np.ndarray) -> None:
        import torch

        default = torch.get_num_threads()
        timings = {}
        for threads in sorted({1, default}):
            torch.set_num_threads(threads)
            self(image, 'rgb', want_confidence=True, want_stats=True)  # settle the pool
            start = time.perf_counter()
            self(image, 'rgb', want_confidence=True, want_stats=True)
            timings[threads] = (time.perf_counter() - start) * 1e3
        best = min(timings, key=timings.get)
        torch.set_num_threads(best)
        _LOG.info('num_threads=auto: %s ms per frame -> using %d thread(s)',
                  {k: round(v) for k, v in timings.items()}, best)

    # ----------------------------------------------------------------- stages

    def _sync(self) -> None:
        if self._is_cuda:
            import torch
            torch.cuda.synchronize(self._torch_device)

    @staticmethod
    def _check_image(image: Any, index: int | None = None) -> np.ndarray:
        where = 'image' if index is None else f'image {index}'
        if not isinstance(image, np.ndarray):
            raise EngineError(f'{where} must be a numpy array, got {type(image).__name__}.')
        if image.dtype != np.uint8:
            raise EngineError(f'{where} must be uint8 (0..255), got {image.dtype}; convert '
                              f'16-bit or float images before segmenting.')
        if image.ndim != 3 or image.shape[2] != 3:
            raise EngineError(f'{where} must be H x W x 3 (colour), got shape {image.shape}; '
                              f'convert mono or RGBA images to 3 channels first.')
        if image.shape[0] == 0 or image.shape[1] == 0:
            raise EngineError(f'{where} is empty (shape {image.shape}).')
        return image

    def _preprocess(self, image: np.ndarray, color_order: str,
                    net_size: tuple[int, int]) -> Any:
        """uint8 HWC numpy -> normalised (3, h, w) float tensor on the device."""
        import torch
        import torch.nn.functional as F

        tensor = torch.from_numpy(np.ascontiguousarray(image))
        if self._is_cuda:
            tensor = tensor.pin_memory().to(self._torch_device, non_blocking=True)
        chw = tensor.permute(2, 0, 1)
        # One gather through the exact float64-derived table; the channel offset picks the
        # table row, and 'bgr' just reverses which row each input channel uses.
        index = chw.to(torch.int64) + self._lut_offsets[color_order]
        x = torch.take(self._lut, index)
        # take() follows the index's layout (HWC strides); reorder to RGB channel order.
        if color_order == 'bgr':
            x = x.flip(0)
        if net_size != tuple(image.shape[:2]):
            # Normalisation is affine per channel, so resizing after it equals resizing the
            # uint8 image first. Antialiased bilinear avoids aliasing when shrinking.
            x = F.interpolate(x[None], size=net_size, mode='bilinear', align_corners=False,
                              antialias=True)[0]
        return x

    def _forward(self, batch: Any) -> Any:
        import torch

        batch = batch.to(self.dtype)
        if self.channels_last:
            batch = batch.contiguous(memory_format=torch.channels_last)
        else:
            batch = batch.contiguous()
        try:
            logits = self._forward_fn(batch)
        except torch.cuda.OutOfMemoryError as error:
            torch.cuda.empty_cache()
            raise EngineError(f'CUDA out of memory for input {tuple(batch.shape)}; lower '
                              f'max_side, the batch size, or use fp16 ({error}).') from error
        except Exception as error:
            if self._forward_fn is not self.model:
                _LOG.warning('accelerated forward failed (%s: %s); falling back to eager.',
                             type(error).__name__, error)
                self._forward_fn = self.model
                return self._forward(batch)
            raise EngineError(f'forward pass failed for input {tuple(batch.shape)}: '
                              f'{type(error).__name__}: {error}') from error
        if not isinstance(logits, torch.Tensor) or logits.ndim != 4 \
                or logits.shape[1] != self.num_classes:
            raise EngineError(f'the model returned {getattr(logits, "shape", type(logits))}; '
                              f'expected (N, {self.num_classes}, h, w) logits.')
        return logits

    @staticmethod
    def _resize_cv2(logits: Any, height: int, width: int) -> np.ndarray:
        """(K, h, w) float32 CPU logits -> (H, W, K) numpy via OpenCV INTER_CUBIC."""
        import cv2

        # Free for channels_last logits: their (h, w, K) view is already contiguous.
        hwc = logits.permute(1, 2, 0).contiguous().numpy()
        parts = []
        for start in range(0, hwc.shape[2], _CV_MAX_CHANNELS):
            chunk = np.ascontiguousarray(hwc[:, :, start:start + _CV_MAX_CHANNELS])
            up = cv2.resize(chunk, (width, height), interpolation=cv2.INTER_CUBIC)
            parts.append(up.reshape(height, width, -1))
        return np.concatenate(parts, axis=2) if len(parts) > 1 else parts[0]

    @staticmethod
    def _numpy_label_and_confidence(hwk: np.ndarray,
                                    want_confidence: bool) -> tuple[Any, Any]:
        """Argmax and max softmax of (H, W, K) numpy logits (the CPU fast path).

        numpy/OpenCV rather than torch here: single-threaded SIMD kernels measured 1.4x
        faster than the torch reductions over a short innermost axis on two cores, and they
        do not stall in OpenMP barriers when other processes share the cores.
        """
        import cv2
        import torch

        height, width, k = hwk.shape
        labels = hwk.argmax(axis=2)
        if not want_confidence:
            return torch.from_numpy(labels), None
        best = np.take_along_axis(hwk, labels[..., None], axis=2)
        expd = cv2.exp((hwk - best).reshape(height, -1))
        denom = expd.reshape(-1, k) @ np.ones(k, dtype=np.float32)
        conf = np.reciprocal(denom, out=denom).reshape(height, width)
        return torch.from_numpy(labels), torch.from_numpy(conf)

    def _upsample_bicubic_torch(self, logits: Any, height: int, width: int) -> Any:
        """(K, h, w) float32 logits -> (H, W, K) float32 with F.interpolate (any device)."""
        import torch
        import torch.nn.functional as F

        up = F.interpolate(logits[None].contiguous(memory_format=torch.channels_last),
                           size=(height, width), mode='bicubic', align_corners=False)
        return up[0].permute(1, 2, 0)

    @staticmethod
    def _label_and_confidence(hwk: Any, want_confidence: bool) -> tuple[Any, Any]:
        """Argmax and max softmax probability over the last axis, without a full softmax."""
        import torch

        values, labels = torch.max(hwk, dim=-1)
        if not want_confidence:
            return labels, None
        # max softmax = exp(l_max - l_max) / sum_k exp(l_k - l_max) = 1 / sum_k exp(l_k - l_max)
        denom = torch.exp(hwk - values.unsqueeze(-1)).sum(dim=-1)
        return labels, denom.reciprocal_()

    def _nearest_indices(self, size: int, out: int) -> Any:
        import torch

        # Same mapping as F.interpolate(mode='nearest'): src = floor(dst * in / out).
        idx = (torch.arange(out, device=self._torch_device, dtype=torch.float64)
               * (size / out)).floor().to(torch.int64)
        return idx.clamp_(max=size - 1)

    def _device_stats(self, labels: Any, confidence: Any) -> list[ClassStat]:
        """Per-class reductions on the device; equals :func:`stats.compute_class_stats`."""
        import torch

        height, width = labels.shape
        k = self.num_classes
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

    def _postprocess(self, logits: Any, height: int, width: int, want_confidence: bool,
                     want_stats: bool) -> tuple[np.ndarray, np.ndarray | None,
                                                list[ClassStat] | None]:
        """(K, h, w) logits -> labels/confidence at (H, W) + stats, copied to the host."""
        import torch

        logits = logits.float()
        need_conf = want_confidence or want_stats
        if self.config.upsample == 'bicubic' and self._use_cv2 and logits.device.type == 'cpu':
            hwk = self._resize_cv2(logits, height, width)
            labels, conf = self._numpy_label_and_confidence(hwk, need_conf)
        elif self.config.upsample == 'bicubic':
            hwk = self._upsample_bicubic_torch(logits, height, width)
            labels, conf = self._label_and_confidence(hwk, need_conf)
        else:
            small_labels, small_conf = self._label_and_confidence(logits.permute(1, 2, 0),
                                                                  need_conf)
            rows = self._nearest_indices(small_labels.shape[0], height)
            cols = self._nearest_indices(small_labels.shape[1], width)
            labels = small_labels[rows][:, cols]
            conf = small_conf[rows][:, cols] if small_conf is not None else None
        stats = self._device_stats(labels, conf) if want_stats else None
        label_dtype = torch.uint8 if self.num_classes <= 256 else torch.int32
        labels_np = labels.to(label_dtype).cpu().numpy()
        if self.num_classes > 256:
            labels_np = labels_np.astype(np.uint16)
        conf_np = None
        if want_confidence and conf is not None:
            conf_np = conf.to(torch.float32).cpu().numpy()
        return labels_np, conf_np, stats

    # ----------------------------------------------------------------- public API

    def __call__(self, image: np.ndarray, color_order: str = 'rgb', *,
                 want_confidence: bool = True, want_stats: bool = True) -> SegmentationResult:
        """Segment one HxWx3 uint8 image.

        Args:
            image: (H, W, 3) uint8.
            color_order: ``'rgb'`` or ``'bgr'`` (OpenCV and ROS ``bgr8``); stated explicitly
                because a wrong order silently flips labels (architecture doc section 7).
            want_confidence: Also return the (H, W) confidence map.
            want_stats: Also return per-class statistics.

        Raises:
            EngineError: Bad image or colour order, or the forward pass failed (incl. OOM).
        """
        return self.infer_batch([image], color_order, want_confidence=want_confidence,
                                want_stats=want_stats)[0]

    def infer_batch(self, images: Sequence[np.ndarray],
                    color_orders: str | Sequence[str] = 'rgb', *, want_confidence: bool = True,
                    want_stats: bool = True) -> list[SegmentationResult]:
        """Segment several images; same-size images share forward passes (up to max_batch).

        Args:
            images: HxWx3 uint8 arrays, any mix of sizes.
            color_orders: One order for all images or one per image.
            want_confidence: Also return confidence maps.
            want_stats: Also return per-class statistics.

        Returns:
            One result per image, in input order.
        """
        import torch

        images = list(images)
        if isinstance(color_orders, str):
            orders = [color_orders] * len(images)
        else:
            orders = list(color_orders)
            if len(orders) != len(images):
                raise EngineError(f'{len(images)} images but {len(orders)} colour orders.')
        for i, order in enumerate(orders):
            if order not in COLOR_ORDERS:
                raise EngineError(f'colour order {i} is {order!r}; expected "rgb" or "bgr".')
        for i, image in enumerate(images):
            self._check_image(image, i if len(images) > 1 else None)
        groups: dict[tuple[int, int], list[int]] = {}
        for i, image in enumerate(images):
            groups.setdefault(tuple(image.shape[:2]), []).append(i)
        results: list[SegmentationResult | None] = [None] * len(images)
        step = self.config.max_batch
        with torch.inference_mode():
            for (height, width), members in groups.items():
                net_size = _network_size(height, width, self.config.max_side)
                for start in range(0, len(members), step):
                    chunk = members[start:start + step]
                    self._run_group(images, orders, chunk, height, width, net_size,
                                    want_confidence, want_stats, results)
        return results  # type: ignore[return-value]

    def _run_group(self, images: list[np.ndarray], orders: list[str], chunk: list[int],
                   height: int, width: int, net_size: tuple[int, int], want_confidence: bool,
                   want_stats: bool, results: list[SegmentationResult | None]) -> None:
        import torch

        t0 = time.perf_counter()
        try:
            tensors = [self._preprocess(images[i], orders[i], net_size) for i in chunk]
            batch = tensors[0][None] if len(tensors) == 1 else torch.stack(tensors)
            self._sync()
            t1 = time.perf_counter()
            logits = self._forward(batch)
            self._sync()
            t2 = time.perf_counter()
            for j, i in enumerate(chunk):
                t_post = time.perf_counter()
                labels, conf, stats = self._postprocess(logits[j], height, width,
                                                        want_confidence, want_stats)
                t_end = time.perf_counter()
                post = (t_end - t_post) * 1e3
                results[i] = SegmentationResult(
                    labels=labels, confidence=conf, stats=stats, network_size=net_size,
                    timings={'preprocess': (t1 - t0) * 1e3, 'forward': (t2 - t1) * 1e3,
                             'postprocess': post, 'total': (t2 - t0) * 1e3 + post})
        except EngineError:
            raise
        except torch.cuda.OutOfMemoryError as error:
            torch.cuda.empty_cache()
            raise EngineError(f'CUDA out of memory on a {height}x{width} frame; lower '
                              f'max_side or use fp16 ({error}).') from error
        except RuntimeError as error:
            raise EngineError(f'inference failed on a {height}x{width} frame: {error}') \
                from error

    def describe(self) -> dict[str, Any]:
        """Effective settings after fallbacks (for logs, diagnostics and benchmarks)."""
        import torch

        return {
            'device': self.device, 'dtype': str(self.dtype).replace('torch.', ''),
            'channels_last': self.channels_last, 'upsample': self.config.upsample,
            'max_side': self.config.max_side, 'fold_batchnorm': self.config.fold_batchnorm,
            'compile': self.config.compile, 'cuda_graphs': self.config.cuda_graphs,
            'bicubic_backend': 'opencv' if self._use_cv2 else 'torch',
            'num_classes': self.num_classes, 'num_threads': torch.get_num_threads(),
        }
