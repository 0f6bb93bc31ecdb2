"""InferenceEngine: image in, full-resolution labels, confidence and per-class stats out.

The engine composes three stages, each written once: :mod:`.preprocess` (exact
normalisation, optional ``max_side`` shrink), a backend's ``forward`` (torch, OpenVINO or
ONNX Runtime; see :mod:`.backends`), and :mod:`.postprocess` (bicubic upsampling, argmax,
confidence, statistics). At construction it resolves the device, builds the backend (with
``backend='auto'`` the fastest runtime whose labels pass the agreement gate, timed on the
warm-up image; see :mod:`.select`) and warms it up. No ROS here.

On CUDA with the torch backend the whole frame stays on the device (only the uint8 image goes
up; labels, confidence and a few hundred bytes of statistics come back). Elsewhere the stages
run in numpy/OpenCV on the CPU around the backend's numpy interface.
"""

from __future__ import annotations

import dataclasses
import logging
import sys
import time
from typing import Any, Callable, Sequence

import numpy as np

from lw_refinenet_ros.engine.backends.base import Backend, takes_device_tensors
from lw_refinenet_ros.engine.backends.torch_support import cuda_possible
from lw_refinenet_ros.engine.config import AUTO, THREADS_AUTO, EngineConfig
from lw_refinenet_ros.engine.decisions import Decision, DecisionStore
from lw_refinenet_ros.engine.frames import (
    Chunk,
    ForwardOutput,
    checked_orders,
    engine_errors,
    finish_later,
    forward_on_cpu,
    plan_chunks,
    run_on_device,
)
from lw_refinenet_ros.engine.postprocess import CpuPostprocessor, TorchPostprocessor
from lw_refinenet_ros.engine.preprocess import (
    CpuPreprocessor,
    TorchPreprocessor,
    check_image,
    network_size,
)
from lw_refinenet_ros.engine.quantize import Int8Calibration
from lw_refinenet_ros.engine.result import SegmentationResult
from lw_refinenet_ros.engine.startup import (
    backend_request,
    decision_subject,
    int8_offer,
    process_threads,
)
from lw_refinenet_ros.engine.threads import tune_threads
from lw_refinenet_ros.engine.warmup import warmup_frame
from lw_refinenet_ros.engine.weights_card import loaded_model, weights_id_of
from lw_refinenet_ros.errors import ConfigError, EngineError

_LOG = logging.getLogger(__name__)
_MAX_CLASSES = 65536


def resolve_device(config: EngineConfig) -> str:
    """``config.device`` made concrete: ``'auto'`` -> CUDA if available, else CPU.

    Raises:
        EngineError: CUDA requested but unavailable and ``device_fallback`` is off.
    """
    requested = config.device
    if requested == 'cpu' or (requested == AUTO and not cuda_possible()):
        return 'cpu'
    import torch

    if requested == AUTO:
        return 'cuda' if torch.cuda.is_available() else 'cpu'
    index = int(requested[5:]) if ':' in requested else 0
    if torch.cuda.is_available() and index < torch.cuda.device_count():
        return requested
    reason = ('this torch build has no CUDA support or no GPU is visible'
              if not torch.cuda.is_available()
              else f'only {torch.cuda.device_count()} CUDA device(s) are visible')
    if config.device_fallback:
        _LOG.warning('device %r requested but %s; running on the CPU (device_fallback=true).',
                     requested, reason)
        return 'cpu'
    raise EngineError(f'device {requested!r} requested but {reason}. Use device "cpu" or '
                      f'"auto", install a CUDA build of torch, or allow the CPU with '
                      f'device_fallback (node: -p device_fallback:=true; CLI: '
                      f'--device-fallback).')


def checked_num_classes(model: Any, num_classes: int | None) -> int:
    """K as given, else the model's ``num_classes``; refused unless an integer in range."""
    if num_classes is None:
        num_classes = getattr(model, 'num_classes', None)
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) \
            or not 1 <= num_classes <= _MAX_CLASSES:
        raise ConfigError(f'num_classes must be an integer in 1..{_MAX_CLASSES} (pass '
                          f'num_classes= when the model has no num_classes attribute), '
                          f'got {num_classes!r}.')
    return num_classes


class InferenceEngine:
    """Runs an LW-RefineNet on numpy images; see the module docstring for the pipeline.

    Use one engine from one thread (CUDA graphs and ``torch.compile`` are not thread-safe).
    The model is not modified (backends build from copies).

    Args:
        model: nn.Module mapping (N, 3, H, W) normalised RGB to (N, K, ceil(H/4), ceil(W/4))
            logits.
        config: Engine options (defaults: see :class:`EngineConfig`).
        num_classes: K; read from ``model.num_classes`` when omitted.
        warmup_image: RGB uint8 frame for warm-up and backend selection (default: the
            engine's textured synthetic frame at ``config.warmup_size``, see :mod:`.warmup`).
            Pass a real frame when you have one.

    Raises:
        EngineError: Device unavailable, backend below the agreement gate, warm-up failed.
        ConfigError: K missing or invalid, a runtime missing, an unsupported precision.
    """

    def __init__(self, model: Any, config: EngineConfig | None = None, *,
                 num_classes: int | None = None,
                 warmup_image: np.ndarray | None = None,
                 calibration: Int8Calibration | Callable[[tuple[int, int]], Int8Calibration]
                 | None = None) -> None:
        self.config = config = config if config is not None else EngineConfig()
        self._calibration = calibration
        #: Where the int8 model offered to ``precision: auto`` came from (None: none).
        self.int8_model: str | None = None
        #: A node's int8 from its camera frames, in words (ros/live_int8.py; None: none).
        self.int8_live: str | None = None
        self.num_classes = num_classes = checked_num_classes(model, num_classes)
        self.device = resolve_device(config)
        if config.num_threads > 0 and self.device == 'cpu' and 'torch' in sys.modules:
            # (Without torch imported nothing runs on its pool yet; a torch backend sets its
            # threads from the request when it is built.)
            sys.modules['torch'].set_num_threads(config.num_threads)
        self.reason = ''
        #: CPU threads the backend runs with (0 = the runtime's default).
        self.threads = max(0, config.num_threads)
        self.agreement: float | None = None
        self.selection_ms: dict[str, float] = {}
        self.selection_phases_s: dict[str, float] = {}
        self._cpu_pre = CpuPreprocessor()
        self._cpu_post = CpuPostprocessor(num_classes, config.upsample, config.tile_rows,
                                          band=config.band_postprocess)
        self._selection_image: np.ndarray | None = None
        start = time.perf_counter()
        if warmup_image is not None:
            check_image(warmup_image)
        # The on-device stages (torch) are built on first use: a CPU engine whose backend is
        # not torch never imports torch.
        self._torch_stages: tuple[TorchPreprocessor, TorchPostprocessor] | None = None
        self.backend = self._build_backend(model, warmup_image)
        self._on_device = takes_device_tensors(self.backend) and self.device.startswith('cuda')
        self._warmup(warmup_image, start)

    # ----------------------------------------------------------------- setup

    def _build_backend(self, model: Any, warmup_image: np.ndarray | None) -> Backend:
        config = self.config
        height, width = warmup_image.shape[:2] if warmup_image is not None \
            else config.warmup_size
        size = network_size(height, width, config.max_side)
        request = backend_request(config, self.device, size)
        direct = config.backend == 'torch' and config.precision == 'fp32'
        if direct or (config.warmup_iters == 0 and config.backend in (AUTO, 'torch')
                      and config.precision in (AUTO, 'fp32')):
            # The reference itself, or no warm-up to time candidates on: torch fp32.
            from lw_refinenet_ros.engine.backends.torch import TorchBackend

            self.reason = ('torch/fp32 requested (the reference)' if direct else
                           'torch/fp32 (warmup_iters=0: nothing to time the others on)')
            return TorchBackend(loaded_model(model), request)
        from lw_refinenet_ros.engine.select import remembered_selection, select_backend

        # Hashed once here for every candidate's cache key (the request's contract), instead
        # of once per runtime backend that the selection builds; a deferred model's hash
        # comes from its card (weights_card.py), with nothing loaded.
        request = dataclasses.replace(request, weights_id=weights_id_of(model))
        self._model, self._backend_request = model, request
        offer_int8: tuple[str, ...] = ()
        if config.precision == AUTO:
            offer_int8, self.int8_model = int8_offer(config, self.device, model, request,
                                                     self._calibration)
        remembered = previous = selection = None
        if config.remember_selection:
            self._decisions = DecisionStore(config.resolved_cache_dir())
            self._decision_subject = decision_subject(config, self.device, request)
            self._decision_subject['int8'] = self.int8_model
            remembered, previous = self._decisions.load(self._decision_subject)
            if remembered is not None and config.num_threads == THREADS_AUTO \
                    and not process_threads(remembered.backend) and remembered.threads > 0:
                request = dataclasses.replace(request, num_threads=remembered.threads)
        if remembered is not None:
            # Only the remembered runtime is built: no frame drawn, no reference, no timing.
            selection = remembered_selection(model, backend=config.backend,
                                             precision=config.precision, request=request,
                                             decision=remembered,
                                             fallback=config.backend_fallback,
                                             offer_int8=offer_int8)
        if selection is None:
            image = warmup_image if warmup_image is not None else warmup_frame(height, width)
            self._selection_image = image
            batch = self._cpu_pre([image], ['rgb'], size)

            def labels_of(logits: np.ndarray) -> np.ndarray:
                return self._cpu_post(logits[0], height, width, want_confidence=False)[0]

            selection = select_backend(model, backend=config.backend,
                                       precision=config.precision, request=request,
                                       warmup_batch=batch, labels_of=labels_of,
                                       agreement_min=config.agreement_min,
                                       fallback=config.backend_fallback,
                                       engine_call=self._call_with, previous=previous,
                                       offer_int8=offer_int8)
        self._selection = selection
        if selection.remembered and remembered is not None and remembered.threads > 0 \
                and config.num_threads == THREADS_AUTO and self.device == 'cpu':
            self.threads = remembered.threads
            if process_threads(selection.backend.name):
                import torch  # the torch backend: imported already

                torch.set_num_threads(remembered.threads)
        self.reason, self.agreement = selection.reason, selection.agreement
        self.selection_ms = dict(selection.timings_ms)
        self.selection_phases_s = dict(selection.phases_s)
        return selection.backend

    def _remember(self) -> None:
        """Store the selection (after thread tuning, so the threads are the ones in use)."""
        selection = getattr(self, '_selection', None)
        if selection is None or selection.remembered or not self.config.remember_selection:
            return
        threads = self.config.num_threads
        if threads == THREADS_AUTO:
            threads = (sys.modules['torch'].get_num_threads()  # the torch backend's pool
                       if process_threads(self.backend.name) else self.threads)
        self._decisions.save(self._decision_subject, Decision(
            backend=self.backend.name, precision=self.backend.precision, threads=threads,
            agreement=selection.agreement, timings_ms=dict(selection.timings_ms),
            reason=selection.reason))

    def _call_with(self, backend: Backend) -> None:
        """One whole engine call (labels, confidence, stats) of the selection image through
        ``backend``: how a candidate is timed on CUDA (see select.whole_call_timer). The
        chosen backend replaces it right after the selection."""
        self.backend = backend
        self._on_device = takes_device_tensors(backend) and self.device.startswith('cuda')
        self(self._selection_image, 'rgb')

    def _warmup(self, warmup_image: np.ndarray | None, start: float) -> None:
        iters = self.config.warmup_iters
        if iters == 0:
            return
        image = warmup_image if warmup_image is not None else self._selection_image
        if image is None:
            image = np.zeros(self.config.warmup_size + (3,), dtype=np.uint8)
        for _ in range(iters):
            self(image, 'rgb', want_confidence=True, want_stats=True)
        selection = getattr(self, '_selection', None)
        if self.config.num_threads == THREADS_AUTO and self.device == 'cpu' and \
                not (selection is not None and selection.remembered):
            self.threads = tune_threads(self, image, getattr(self, '_model', None),
                                        getattr(self, '_backend_request', None))
        self._remember()
        info = self.describe()
        _LOG.info('engine ready: %s/%s on %s (%s); start-up with %dx warm-up on %dx%d took '
                  '%.0f ms', info['backend'], info['precision'], self.device, self.reason,
                  iters, image.shape[0], image.shape[1], (time.perf_counter() - start) * 1e3)

    # ----------------------------------------------------------------- public API

    def __call__(self, image: np.ndarray, color_order: str = 'rgb', *,
                 want_confidence: bool = True, want_stats: bool = True) -> SegmentationResult:
        """Segment one HxWx3 uint8 image.

        Args:
            image: (H, W, 3) uint8.
            color_order: ``'rgb'`` or ``'bgr'`` (OpenCV and ROS ``bgr8``); stated explicitly
                because a wrong order silently changes labels.
            want_confidence: Also return the (H, W) confidence map.
            want_stats: Also return per-class statistics.

        Raises:
            EngineError: Bad image or colour order, or the forward pass failed (incl. OOM).
        """
        return self.infer_batch([image], color_order, want_confidence=want_confidence,
                                want_stats=want_stats)[0]

    def infer_batch(self, images: Sequence[np.ndarray], color_orders: str | Sequence[str] = 'rgb',
                    **wants: bool) -> list[SegmentationResult]:
        """Segment several images (``want_confidence``, ``want_stats`` as for one); same-size
        images share forward passes (up to max_batch). One result per image, in order."""
        return self.begin_batch(images, color_orders, **wants)()

    def begin_batch(self, images: Sequence[np.ndarray],
                    color_orders: str | Sequence[str] = 'rgb', *, want_confidence: bool = True,
                    want_stats: bool = True) -> Callable[[], list[SegmentationResult]]:
        """:meth:`infer_batch` in two halves: the forward passes now, the post-processing in
        the function returned, which the node calls on a second thread so that the next
        frame's forward pass overlaps it (``overlap_outputs``). Call the functions of
        successive batches one at a time, in order (they share the post-processing
        buffers); the next :meth:`begin_batch` may run meanwhile (every backend returns
        logits of their own). On the device the whole frame runs now (its stages are queued
        on the GPU and do not hold the host).

        Raises:
            EngineError: Bad images or colour orders, or a forward pass failed (now); a
                post-processing failure is raised by the function returned.
        """
        images = list(images)
        results, chunks = plan_chunks(images, checked_orders(images, color_orders),
                                      self.config.max_batch, self.config.max_side,
                                      want_confidence, want_stats)
        forwarded: list[tuple[Chunk, ForwardOutput]] = []
        for chunk in chunks:
            with engine_errors(chunk):
                if self._on_device:
                    pre, post = self._device_stages()
                    run_on_device(pre, self.backend, post, self.num_classes, self.device,
                                  chunk)
                else:
                    forwarded.append((chunk, forward_on_cpu(self._cpu_pre, self.backend,
                                                            self.num_classes, chunk)))
        return finish_later(self._cpu_post, self.num_classes, forwarded, results)

    def _device_stages(self) -> tuple[TorchPreprocessor, TorchPostprocessor]:
        """The torch pre- and post-processing of the on-device path, built once."""
        if self._torch_stages is None:
            self._torch_stages = (TorchPreprocessor(self.device),
                                  TorchPostprocessor(self.num_classes, self.config.upsample))
        return self._torch_stages

    def describe(self) -> dict[str, Any]:
        """Effective settings after selection and fallbacks (logs, /diagnostics, benchmarks):
        backend, precision, device, the reason for the choice and the agreement figure, each
        candidate's timed milliseconds and the seconds each start-up phase took."""
        info = dict(self.backend.describe())
        info.update({
            'backend': self.backend.name, 'precision': self.backend.precision,
            'device': self.device, 'reason': self.reason, 'agreement': self.agreement,
            'threads': self.threads or 'default',
            'selection_ms': self.selection_ms,
            'selection_phases_s': self.selection_phases_s, 'upsample': self.config.upsample,
            'max_side': self.config.max_side, 'num_classes': self.num_classes,
            'int8_model': self.int8_model,
            'int8_live': self.int8_live,
        })
        return info
