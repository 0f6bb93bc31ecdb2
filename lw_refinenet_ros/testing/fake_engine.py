"""The one stand-in for :class:`~lw_refinenet_ros.engine.InferenceEngine`.

Node tests, reliability tests and the benchmarks all need an engine that answers with valid
results but costs nothing, can be told to be slow (a benchmark's fixed latency, a CPU camera
taking seconds per frame) and can fail on cue. One class does all of it, so a change to the
engine's contract (``infer_batch``, :class:`~lw_refinenet_ros.engine.SegmentationResult`) has
one double to follow. No torch and no ROS: it runs anywhere.
"""

from __future__ import annotations

import threading
import time
from typing import Callable, Sequence

import numpy as np

from lw_refinenet_ros.engine import SegmentationResult
from lw_refinenet_ros.palette import ClassMap
from lw_refinenet_ros.stats import compute_class_stats

LabelFn = Callable[[np.ndarray, str], np.ndarray]

# The class map that goes with red_threshold_labels.
RED_BLUE_CLASSES = ClassMap(('background', 'red_part', 'blue_part'),
                            np.array([[0, 0, 0], [255, 0, 0], [0, 0, 255]], np.uint8))


def red_threshold_labels(image: np.ndarray, order: str) -> np.ndarray:
    """Class 1 where red > 127, class 2 where blue > 127 (and red not), else 0.

    Images without three channels (mono) get class 1 where bright.
    """
    if image.ndim == 2 or image.shape[2] < 3:
        return (image.reshape(image.shape[:2]) > 127).astype(np.uint8)
    red = image[:, :, 0 if order == 'rgb' else 2].astype(int)
    blue = image[:, :, 2 if order == 'rgb' else 0].astype(int)
    return np.where(red > 127, 1, np.where(blue > 127, 2, 0)).astype(np.uint8)


def conveyor_colour_labels(image: np.ndarray, order: str) -> np.ndarray:
    """The conveyor demo's classes from colour alone: colourful -> bolt (2), bright grey ->
    background (0), dark grey -> belt (1). Rough, but enough to test the demo harness
    (recording, pairing, scoring, the robot) without a model; use
    :func:`conveyor_classes` as its class map."""
    spread = image.max(axis=2).astype(np.int16) - image.min(axis=2)
    return np.where(spread > 40, 2, np.where(image.mean(axis=2) > 80, 0, 1)).astype(np.uint8)


def conveyor_classes() -> ClassMap:
    """The conveyor demo's class map (the generator's names and colours)."""
    from lw_refinenet_ros.data.conveyor import CLASS_COLORS, CLASS_NAMES

    return ClassMap(tuple(CLASS_NAMES), np.asarray(CLASS_COLORS, np.uint8))


def split_labels(image: np.ndarray, order: str) -> np.ndarray:
    """Content-blind labels: right half class 1, top-left sixteenth class 2, else 0 (for
    engines with at least 3 classes)."""
    height, width = image.shape[:2]
    labels = np.zeros((height, width), np.uint8)
    labels[:, width // 2:] = 1
    labels[:height // 4, :width // 4] = 2
    return labels


class FakeEngine:
    """Valid segmentation results from a rule instead of a network.

    Args:
        delay_s: Seconds each ``infer_batch`` call takes (the rule's own time included, so
            the latency is fixed; it sleeps, releasing the GIL as torch inference does).
            Seconds are fine: a slow CPU camera pipeline is simulated this way.
        label_fn: ``(image, color_order) -> (H, W) uint8`` labels; default
            :func:`red_threshold_labels` (use :data:`RED_BLUE_CLASSES` as its class map).
        num_classes: Classes in the statistics and the default class map (``label_fn`` must
            stay below it when statistics are wanted).
        fail: Called once per batch after the delay; an exception it returns is raised (a
            device error mid-run).
        script: 1-based image number -> exception raised when that image comes in.
        fail_when: ``image -> exception or None``, checked for every image.
        busy: How the delay is spent: ``'sleep'`` (GIL released, nothing else), or
            ``'native'``: torch matrix products, i.e. inside C++ code with the GIL released
            like a real CPU inference (what a shutdown during an inference must survive;
            imports torch on first use).
        announce: Called with ``'inference start'`` before and ``'inference end'`` after each
            batch (process tests print them to time a signal into an inference).
        cache_by_shape: Compute labels once per input shape and reuse them (benchmarks: the
            rule then costs nothing at any size; the node must not write into its results).
        keep_images: Keep a copy of every batch in :attr:`batches` (tests inspect what the
            node sent; benchmarks turn it off to keep memory flat).
        device: What the node reports as the engine's device.
        network_divisor: The results say the network ran at the image size divided by this
            (a model run on a shrunken frame, as with ``max_side``); labels stay full size.

    Attributes:
        calls: ``(image shape, color order)`` of every image, in order.
        batches: Copies of the images of every batch (when ``keep_images``).
        thread_names: Names of the threads that called the engine.
    """

    def __init__(self, delay_s: float = 0.0, label_fn: LabelFn = red_threshold_labels, *,
                 num_classes: int = 3, fail: Callable[[], BaseException | None] | None = None,
                 script: dict[int, BaseException] | None = None,
                 fail_when: Callable[[np.ndarray], BaseException | None] | None = None,
                 busy: str = 'sleep', announce: Callable[[str], None] | None = None,
                 cache_by_shape: bool = False, keep_images: bool = True,
                 device: str = 'fake', network_divisor: int = 1) -> None:
        if delay_s < 0:
            raise ValueError(f'delay_s must be >= 0, got {delay_s}.')
        if busy not in ('sleep', 'native'):
            raise ValueError(f"busy must be 'sleep' or 'native', got {busy!r}.")
        self.busy = busy
        self.announce = announce
        self.delay_s = float(delay_s)
        self.label_fn = label_fn
        self.num_classes = int(num_classes)
        self.fail = fail
        self.script = dict(script or {})
        self.fail_when = fail_when
        self.cache_by_shape = cache_by_shape
        self.keep_images = keep_images
        self.device = device
        self.network_divisor = network_divisor
        self.calls: list[tuple[tuple[int, ...], str]] = []
        self.batches: list[list[np.ndarray]] = []
        self.thread_names: set[str] = set()
        self._cache: dict[tuple, tuple] = {}
        self._lock = threading.Lock()

    def infer_batch(self, images: Sequence[np.ndarray], color_orders: str | Sequence[str] = 'rgb',
                    *, want_confidence: bool = True,
                    want_stats: bool = True) -> list[SegmentationResult]:
        """Labels, confidence 0.75 and statistics for every image (the engine's contract)."""
        if self.announce is not None:
            self.announce('inference start')
        start = time.perf_counter()
        orders = ([color_orders] * len(images) if isinstance(color_orders, str)
                  else list(color_orders))
        with self._lock:
            self.thread_names.add(threading.current_thread().name)
            if self.keep_images:
                self.batches.append([image.copy() for image in images])
            else:
                self.batches.append([])
            numbers = []
            for image, order in zip(images, orders):
                self.calls.append((tuple(image.shape), order))
                numbers.append(len(self.calls))
        for image, number in zip(images, numbers):
            error = self.script.get(number)
            if error is None and self.fail_when is not None:
                error = self.fail_when(image)
            if error is not None:
                raise error
        results = [self._result(image, order, want_confidence, want_stats)
                   for image, order in zip(images, orders)]
        self._spend(start + self.delay_s)
        if self.announce is not None:
            self.announce('inference end')
        if self.fail is not None:
            error = self.fail()
            if error is not None:
                raise error
        total_ms = (time.perf_counter() - start) * 1e3
        for result in results:
            result.timings.update(forward=total_ms, total=total_ms)
        return results

    def __call__(self, image: np.ndarray, color_order: str = 'rgb', *,
                 want_confidence: bool = True, want_stats: bool = True) -> SegmentationResult:
        """One image, as ``InferenceEngine.__call__``."""
        return self.infer_batch([image], color_order, want_confidence=want_confidence,
                                want_stats=want_stats)[0]

    def _spend(self, until: float) -> None:
        """Wait until ``until`` (perf_counter seconds), the way ``busy`` says."""
        if self.busy == 'sleep':
            left = until - time.perf_counter()
            if left > 0:
                time.sleep(left)
            return
        import torch

        matrix = torch.randn(512, 512)
        while time.perf_counter() < until:
            matrix = torch.mm(matrix, matrix).clamp_(-1.0, 1.0)

    def _result(self, image: np.ndarray, order: str, want_confidence: bool,
                want_stats: bool) -> SegmentationResult:
        key = (image.shape, order, want_confidence, want_stats)
        cached = self._cache.get(key) if self.cache_by_shape else None
        if cached is None:
            # uint8, or uint16 above 256 classes, as the engine returns them.
            labels = np.ascontiguousarray(self.label_fn(image, order))
            confidence = (np.full(labels.shape, 0.75, np.float32) if want_confidence
                          else None)
            stats = (compute_class_stats(labels, confidence, self.num_classes) if want_stats
                     else None)
            cached = (labels, confidence, stats)
            if self.cache_by_shape:
                self._cache[key] = cached
        labels, confidence, stats = cached
        height, width = labels.shape
        return SegmentationResult(
            labels=labels, confidence=confidence, stats=stats,
            timings={'preprocess': 0.0, 'forward': 0.0, 'postprocess': 0.0, 'total': 0.0},
            network_size=(height // self.network_divisor, width // self.network_divisor))
