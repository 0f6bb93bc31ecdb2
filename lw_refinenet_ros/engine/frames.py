"""One chunk of same-size frames through the engine's stages, on the CPU or on the device.

:class:`~lw_refinenet_ros.engine.inference.InferenceEngine` splits a call into chunks of
same-size images (up to ``max_batch``) and hands each to one of the two paths here. The CPU
path runs numpy/OpenCV stages around the backend's numpy ``forward``; the device path keeps
the whole frame on the GPU (torch stages around ``forward_tensor``) and reads the stage times
from CUDA events, so the frame runs without a synchronisation between stages.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
import time
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from lw_refinenet_ros.engine.backends.base import Backend
from lw_refinenet_ros.engine.postprocess import CpuPostprocessor, TorchPostprocessor
from lw_refinenet_ros.engine.preprocess import (
    COLOR_ORDERS,
    CpuPreprocessor,
    TorchPreprocessor,
    check_image,
    network_size,
)
from lw_refinenet_ros.engine.result import SegmentationResult
from lw_refinenet_ros.errors import EngineError


def checked_orders(images: list[np.ndarray], color_orders: str | Sequence[str]) -> list[str]:
    """One valid colour order per image, after checking every image.

    Raises:
        EngineError: A count mismatch, an unknown colour order, or a bad image.
    """
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
        check_image(image, i if len(images) > 1 else None)
    return orders


def size_groups(images: list[np.ndarray]) -> dict[tuple[int, int], list[int]]:
    """Image indices by (height, width), in first-seen order: what can share a forward."""
    groups: dict[tuple[int, int], list[int]] = {}
    for i, image in enumerate(images):
        groups.setdefault(tuple(image.shape[:2]), []).append(i)
    return groups


@dataclass
class Chunk:
    """Same-size images of one call that share a forward pass, and where their results go."""

    images: list[np.ndarray]
    orders: list[str]
    members: list[int]
    height: int
    width: int
    size: tuple[int, int]
    want_confidence: bool
    want_stats: bool
    results: list[SegmentationResult | None]


def plan_chunks(images: list[np.ndarray], orders: list[str], max_batch: int, max_side: int,
                want_confidence: bool, want_stats: bool
                ) -> tuple[list[SegmentationResult | None], list[Chunk]]:
    """The result slots of a call and its chunks: same-size images, up to ``max_batch``
    each, at the network size ``max_side`` gives them."""
    results: list[SegmentationResult | None] = [None] * len(images)
    chunks = []
    for (height, width), members in size_groups(images).items():
        size = network_size(height, width, max_side)
        for first in range(0, len(members), max_batch):
            chunks.append(Chunk(images, orders, members[first:first + max_batch], height,
                                width, size, want_confidence, want_stats, results))
    return results, chunks


@contextlib.contextmanager
def engine_errors(chunk: Chunk) -> Iterator[None]:
    """Runtime errors of a chunk's stages as EngineError (which names the frame size)."""
    try:
        yield
    except EngineError:
        raise
    except (RuntimeError, MemoryError) as error:
        raise EngineError(f'inference failed on a {chunk.height}x{chunk.width} frame: '
                          f'{type(error).__name__}: {error}') from error


def check_logits(logits: Any, count: int, num_classes: int, size: tuple[int, int]) -> None:
    """Raise EngineError unless ``logits`` are (count, K, ceil(h/4), ceil(w/4)), or K + 1
    channels: the class logits and a part-boundary logit (model/boundary.py)."""
    expected = (count, num_classes, -(-size[0] // 4), -(-size[1] // 4))
    shape = tuple(getattr(logits, 'shape', ()))
    if shape != expected and shape != (count, num_classes + 1) + expected[2:]:
        raise EngineError(f'the backend returned {getattr(logits, "shape", type(logits))}; '
                          f'expected {expected} logits (N, K, h/4, w/4).')


def boundary_probability(logits: Any, num_classes: int) -> np.ndarray | None:
    """The part-boundary probability (h, w) float32 of one frame's (C, h, w) logits, from
    channel K when there is one (C = K + 1); None otherwise. numpy or torch logits."""
    if logits.shape[0] != num_classes + 1:
        return None
    channel = logits[num_classes]
    if not isinstance(channel, np.ndarray):
        channel = channel.float().cpu().numpy()
    # Clipped: exp of a far negative logit would overflow float32 (the value is 0 anyway).
    channel = np.clip(channel.astype(np.float32), -60.0, 60.0)
    return (1.0 / (1.0 + np.exp(-channel))).astype(np.float32)


@dataclass
class ForwardOutput:
    """A chunk's logits and the host times around its forward pass (:func:`forward_on_cpu`),
    waiting for :func:`finish_on_cpu`."""

    logits: Any
    times: tuple[float, float, float]  # preprocess start, forward start, forward end


def forward_on_cpu(pre: CpuPreprocessor, backend: Backend, num_classes: int,
                   chunk: Chunk) -> ForwardOutput:
    """The chunk's preprocessing and forward pass (then :func:`finish_on_cpu`)."""
    size = chunk.size
    t0 = time.perf_counter()
    batch = pre([chunk.images[i] for i in chunk.members],
                [chunk.orders[i] for i in chunk.members], size)
    t1 = time.perf_counter()
    logits = backend.forward(batch)
    t2 = time.perf_counter()
    check_logits(logits, len(chunk.members), num_classes, size)
    return ForwardOutput(logits, (t0, t1, t2))


def finish_on_cpu(post: CpuPostprocessor, num_classes: int, chunk: Chunk,
                  forward: ForwardOutput) -> None:
    """The chunk's post-processing into its results, after :func:`forward_on_cpu` (on the
    same thread or another one: ``InferenceEngine.begin_batch``)."""
    t0, t1, t2 = forward.times
    need_conf = chunk.want_confidence or chunk.want_stats
    for j, i in enumerate(chunk.members):
        t_post = time.perf_counter()
        labels, conf = post(forward.logits[j], chunk.height, chunk.width, need_conf)
        stats = post.stats(labels, conf) if chunk.want_stats else None
        post_ms = (time.perf_counter() - t_post) * 1e3
        chunk.results[i] = SegmentationResult(
            labels=labels, confidence=conf if chunk.want_confidence else None, stats=stats,
            network_size=chunk.size,
            boundary=boundary_probability(forward.logits[j], num_classes),
            timings={'preprocess': (t1 - t0) * 1e3, 'forward': (t2 - t1) * 1e3,
                     'postprocess': post_ms, 'total': (t2 - t0) * 1e3 + post_ms})


def finish_later(post: CpuPostprocessor, num_classes: int,
                 forwarded: list[tuple[Chunk, ForwardOutput]],
                 results: list[SegmentationResult | None]
                 ) -> Callable[[], list[SegmentationResult]]:
    """The function that post-processes the ``forwarded`` chunks (:func:`finish_on_cpu`) and
    returns every result of the call."""
    def finish() -> list[SegmentationResult]:
        for chunk, forward in forwarded:
            with engine_errors(chunk):
                finish_on_cpu(post, num_classes, chunk, forward)
        return results  # type: ignore[return-value]

    return finish


def run_on_device(pre: TorchPreprocessor, backend: Backend, post: TorchPostprocessor,
                  num_classes: int, device: str, chunk: Chunk) -> None:
    """The chunk through torch stages around ``backend.forward_tensor`` on ``device``.

    Raises:
        EngineError: CUDA ran out of memory (the cache is emptied first).
    """
    import torch

    cuda = device.startswith('cuda')

    def mark() -> Any:
        # Stage boundaries as CUDA events: the frame runs without a synchronisation between
        # stages (the labels' download at the end is the only one); the stage times are
        # read from the events afterwards. (Host clock for CPU tensors, as in tests.)
        if not cuda:
            return time.perf_counter()
        event = torch.cuda.Event(enable_timing=True)
        event.record(torch.cuda.current_stream(device))
        return event

    def elapsed_ms(begin: Any, end: Any) -> float:
        return begin.elapsed_time(end) if cuda else (end - begin) * 1e3

    size = chunk.size
    t0 = time.perf_counter()
    try:
        with torch.inference_mode():
            pre_start = mark()
            batch = pre([chunk.images[i] for i in chunk.members],
                        [chunk.orders[i] for i in chunk.members], size)
            forward_start = mark()
            logits = backend.forward_tensor(batch)  # type: ignore[attr-defined]
            forward_end = mark()
            check_logits(logits, len(chunk.members), num_classes, size)
            for j, i in enumerate(chunk.members):
                post_start = mark()
                labels, conf, stats = post(logits[j], chunk.height, chunk.width,
                                           chunk.want_confidence, chunk.want_stats)
                post_end = mark()
                if cuda:
                    post_end.synchronize()
                chunk.results[i] = SegmentationResult(
                    labels=labels, confidence=conf, stats=stats, network_size=size,
                    boundary=boundary_probability(logits[j], num_classes),
                    timings={'preprocess': elapsed_ms(pre_start, forward_start),
                             'forward': elapsed_ms(forward_start, forward_end),
                             'postprocess': elapsed_ms(post_start, post_end),
                             'total': (time.perf_counter() - t0) * 1e3})
    except torch.cuda.OutOfMemoryError as error:
        torch.cuda.empty_cache()
        raise EngineError(f'CUDA out of memory on a {chunk.height}x{chunk.width} frame; lower '
                          f'max_side or use fp16 ({error}).') from error
