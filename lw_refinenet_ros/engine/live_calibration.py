"""int8 calibrated on the frames a running stream sees, switched to only when it agrees.

A model's int8 is only as good as its calibration frames, and the best frames are the ones
the camera really shows. :class:`LiveInt8` watches a stream that is being segmented at its
current precision (fp32, bf16): it keeps a spread of frames over the first minute or so
(:data:`LIVE_INT8_PARAMETERS`), hands them to a builder on a background thread at low
priority (the stream's own thread only copies frames and never waits), keeps *other* frames
with the labels the current engine gave them, and runs the int8 candidate on those. The
candidate is offered (:meth:`LiveInt8.take`) only when its share of equal labels is at least
``agreement_min``; the figure is kept for logs, /diagnostics and ``describe()`` either way.

A model whose domain can be generated (the packaged conveyor model) needs no gathering: given
a :class:`ReadyCalibration`, the build starts at once on those frames, and only the check
(camera frames, the same gate) waits for the stream.

Bad input ends the attempt, never the stream: too few frames, a build that fails (full disk,
a runtime error), a candidate that disagrees: :attr:`LiveInt8.status` says why, the caller
warns once, and the stream runs on at its precision. The int8 model itself goes through the
runtime cache (:func:`~lw_refinenet_ros.engine.quantize.prepare_int8`), which is keyed with
the calibration's identity and leaves nothing half-written, so the next start finds it.

No ROS and no torch here; the builder (which makes the candidate engine) is the caller's.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
import time
from typing import Any, Callable, Sequence

import numpy as np

from lw_refinenet_ros.options import ParameterSpec

_LOG = logging.getLogger(__name__)

#: Fewer calibration frames than this are not worth a build (quantize.MIN_CALIBRATION_FRAMES).
MIN_FRAMES = 8
#: A ready calibration's build waits for the stream's first frame (at most this many seconds)
#: and then :data:`AFTER_FIRST_FRAME_S`: its imports (torch, NNCF) hold the interpreter's lock
#: for seconds, and a restart's first labels must not wait for them (restart 1.7 -> 2.0 s,
#: 1.43 -> 1.72 CPU s on 2 cores when the build started with the node).
READY_WAIT_S = 5.0
AFTER_FIRST_FRAME_S = 1.0

LIVE_INT8_PARAMETERS: tuple[ParameterSpec, ...] = (
    ParameterSpec('live_int8.enabled', True,
                  'With precision auto on a CPU, unless start-up chose int8 (or, for a '
                  "user's model, judged one cached earlier): calibrate int8 in the background "
                  '(low priority, the stream keeps running) on camera frames, or, for the '
                  "packaged model, on the conveyor generator's frames from the start; switch "
                  'to it when at least agreement_min of its labels on other camera frames '
                  "equal the current engine's; cached for the next start. false: never."),
    ParameterSpec('live_int8.frames', 200,
                  'Camera frames int8 is calibrated on (spread over live_int8.gather_s).',
                  minimum=MIN_FRAMES, maximum=300),
    ParameterSpec('live_int8.check_frames', 30,
                  'Other camera frames, after the calibration ones, on which the int8 labels '
                  'are compared with the current engine before switching.',
                  minimum=1, maximum=1000),
    ParameterSpec('live_int8.gather_s', 60.0,
                  'Seconds the calibration frames are spread over (closer frames are not '
                  'taken); with fewer frames after twice this, int8 is built from those (at '
                  f'least {MIN_FRAMES}) or not at all. 0: every frame.',
                  minimum=0.0, maximum=3600.0),
)

#: Builds the int8 candidate from the calibration and a frame at the camera's size (RGB);
#: the candidate segments like the current engine: ``segment_batch(images, orders, ...)``,
#: and may say where its int8 model came from in ``int8_source`` (default: calibrated on
#: the frames given).
Builder = Callable[[Any, np.ndarray], Any]


@dataclasses.dataclass(frozen=True)
class ReadyCalibration:
    """Calibration frames that need no camera: the model's own domain, made on demand (the
    packaged model's conveyor generator, ros/live_int8.py), so the build need not wait a
    minute for camera frames.

    Attributes:
        make: The network's (height, width) -> the
            :class:`~lw_refinenet_ros.engine.quantize.Int8Calibration` for that size (called
            on the background thread: rendering frames costs the stream nothing).
        what: The frames in words, plural (``'conveyor frames'``), for the status.
        sample: Makes an RGB frame at the size the stream is expected to have (the engine's
            warm-up frame; drawing it costs a third of a second, so it is made on the
            background thread, not on the node's start-up path): the candidate is built for
            its size at once, and again for the camera's when the camera's frames turn out to
            need another network size.
    """

    make: Callable[[tuple[int, int]], Any]
    what: str
    sample: Callable[[], np.ndarray]


@dataclasses.dataclass(frozen=True)
class LiveInt8Settings:
    """How many frames, how spread, and the gate (see :data:`LIVE_INT8_PARAMETERS`)."""

    frames: int = 200
    check_frames: int = 30
    gather_s: float = 60.0
    agreement_min: float = 0.99
    max_side: int = 0


def _network_frame(image: np.ndarray, order: str, max_side: int) -> np.ndarray:
    """An RGB copy at the size the network sees (small: 200 frames must not cost 200 camera
    frames of memory; the calibration resizes to exactly this size anyway)."""
    import cv2

    from lw_refinenet_ros.engine.preprocess import network_size

    rgb = image[:, :, ::-1] if order == 'bgr' else image
    height, width = network_size(image.shape[0], image.shape[1], max_side)
    if (height, width) != image.shape[:2]:
        return cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(rgb).copy()


def label_agreement(candidate: Any, images: Sequence[np.ndarray], orders: Sequence[str],
                    labels: Sequence[np.ndarray]) -> float:
    """Share of pixels whose ``candidate`` label equals ``labels`` over all the frames."""
    equal = total = 0
    for image, order, expected in zip(images, orders, labels):
        (result,) = candidate.segment_batch([image], [order], want_confidence=False,
                                            want_stats=False)
        equal += int(np.count_nonzero(result.labels == expected))
        total += expected.size
    return equal / total if total else 0.0


class LiveInt8:
    """Gather, calibrate in the background, check on other frames, offer the candidate.

    Args:
        settings: Frame counts, spread and the agreement gate.
        build: Makes the candidate (see :data:`Builder`); runs on the background thread.
        current: The precision running now, in words (``'openvino/bf16'``), for messages.
        clock: Seconds (monotonic); tests pass their own.
        low_priority: Raise the background thread's nice value (Linux threads have their
            own), so that the stream keeps the CPU.
        ready: Calibration frames that need no gathering: the build starts on the background
            thread without camera frames (after the stream's first frame, see
            :data:`READY_WAIT_S`), and camera frames are only kept to check the candidate.
        ready_wait_s: :data:`READY_WAIT_S`; 0 starts the build at once (tests).
    """

    def __init__(self, settings: LiveInt8Settings, build: Builder, *, current: str,
                 clock: Callable[[], float] = time.monotonic, low_priority: bool = True,
                 ready: ReadyCalibration | None = None,
                 ready_wait_s: float = READY_WAIT_S) -> None:
        self.settings = settings
        self._build = build
        self.current = current
        self._clock = clock
        self._low_priority = low_priority
        self._frames: list[np.ndarray] = []
        self._sample: np.ndarray | None = None
        self._checks: list[tuple[np.ndarray, str, np.ndarray]] = []
        self._first: float | None = None
        self._last: float | None = None
        self._checks_ready = threading.Event()
        self._streaming = threading.Event()
        self._ready_wait_s = ready_wait_s
        self._stopping = False
        self._lock = threading.Lock()
        self._candidate: Any = None
        self._thread: threading.Thread | None = None
        #: Where it stands, in words (logs, /diagnostics, ``describe()``).
        self.status = f'gathering camera frames (0/{settings.frames})'
        #: Share of equal labels on the check frames once measured, else None.
        self.agreement: float | None = None
        #: ``'switched'``, ``'refused'`` or ``'failed'`` once decided, else None.
        self.outcome: str | None = None
        if ready is not None:
            self.status = f'calibrating int8 on {ready.what} (background)'
            self._thread = threading.Thread(target=self._run_ready, args=(ready,),
                                            name='live-int8', daemon=True)
            self._thread.start()

    # ------------------------------------------------------------------ the stream's side

    @property
    def phase(self) -> str:
        """``gathering``, ``checking`` (calibration frames handed over), or ``done``."""
        if self.outcome is not None or self._stopping:
            return 'done'
        return 'gathering' if self._thread is None else 'checking'

    def _due(self, now: float) -> bool:
        spacing = self.settings.gather_s / self.settings.frames
        return self._last is None or now - self._last >= spacing

    def observe(self, images: Sequence[np.ndarray], orders: Sequence[str],
                labels: Sequence[np.ndarray]) -> None:
        """The stream's frames and the current engine's labels for them (called by the
        stream's thread after each batch; copies at most one frame, never waits)."""
        phase = self.phase
        if phase == 'done' or not images:
            return
        self._streaming.set()
        now = self._clock()
        if self._first is None:
            self._first = now
        if phase == 'gathering':
            if self._due(now):
                self._last = now
                if self._sample is None:
                    rgb = images[0][:, :, ::-1] if orders[0] == 'bgr' else images[0]
                    self._sample = np.ascontiguousarray(rgb).copy()
                self._frames.append(_network_frame(images[0], orders[0],
                                                   self.settings.max_side))
                self.status = (f'gathering camera frames ({len(self._frames)}/'
                               f'{self.settings.frames})')
            overdue = self.settings.gather_s > 0 and \
                now - self._first >= 2 * self.settings.gather_s
            if len(self._frames) >= self.settings.frames or overdue:
                self._start()
        elif len(self._checks) < self.settings.check_frames and self._due(now):
            # Frames after the calibration ones: the candidate never saw them.
            self._last = now
            self._checks.append((np.ascontiguousarray(images[0]).copy(), orders[0],
                                 np.array(labels[0], copy=True)))
            if len(self._checks) >= self.settings.check_frames:
                self._checks_ready.set()

    def _start(self) -> None:
        if len(self._frames) < MIN_FRAMES:
            self._decide('failed', f'int8 not built: only {len(self._frames)} camera frames '
                                   f'in {2 * self.settings.gather_s:g} s (at least {MIN_FRAMES} '
                                   f'needed); running on {self.current}')
            self._frames = []
            return
        frames, self._frames = self._frames, []
        self.status = f'calibrating int8 on {len(frames)} camera frames (background)'
        self._thread = threading.Thread(target=self._run, args=(frames,),
                                        name='live-int8', daemon=True)
        self._thread.start()

    def take(self) -> Any:
        """The agreed candidate, once (None until then and after): the caller switches."""
        with self._lock:
            candidate, self._candidate = self._candidate, None
        return candidate

    def stop(self, timeout: float = 0.0) -> None:
        """Give up (shutdown): the background thread ends at its next step."""
        self._stopping = True
        self._checks_ready.set()
        self._streaming.set()
        if self._thread is not None and timeout > 0:
            self._thread.join(timeout)

    # ------------------------------------------------------------------ the background

    def _decide(self, outcome: str, status: str) -> None:
        self.outcome, self.status = outcome, status
        (_LOG.info if outcome == 'switched' else _LOG.debug)(status)

    def _lower_priority(self) -> None:
        if self._low_priority and hasattr(os, 'setpriority'):
            try:  # this thread only; it ends with the attempt, so it is never lowered back
                tid = threading.get_native_id()
                os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(
                    os.PRIO_PROCESS, tid) + 10))
            except OSError:
                pass

    def _candidate_from(self, make: Callable[[], Any], what: str,
                        sample: np.ndarray) -> tuple[Any, str] | None:
        """(candidate, the calibration in words), or None once failed (said in the status)."""
        words = what
        try:
            calibration = make()
            words = f'{len(calibration.frames)} {what}'
            return self._build(calibration, sample), words
        except Exception as error:  # noqa: BLE001 - a full disk, NNCF, a runtime: go on
            self._decide('failed', f'int8 not used: calibrating on {words} failed '
                                   f'({" ".join(str(error).split())}); running on '
                                   f'{self.current}')
            return None

    def _run(self, frames: list[np.ndarray]) -> None:
        from lw_refinenet_ros.engine.quantize import Int8Calibration

        self._lower_priority()
        assert self._sample is not None
        built = self._candidate_from(
            lambda: Int8Calibration(frames, f'{len(frames)} live camera frames'),
            'camera frames', self._sample)
        if built is not None:
            self._check(*built)

    def _run_ready(self, ready: ReadyCalibration) -> None:
        from lw_refinenet_ros.engine.preprocess import network_size

        if self._ready_wait_s > 0:
            if self._streaming.wait(self._ready_wait_s) and not self._stopping:
                time.sleep(AFTER_FIRST_FRAME_S)
        if self._stopping:
            return
        self._lower_priority()
        max_side = self.settings.max_side
        sample = ready.sample()
        size = network_size(*sample.shape[:2], max_side)
        built = self._candidate_from(lambda: ready.make(size), ready.what, sample)
        if built is None:
            return
        self._say_waiting(built[1])
        self._checks_ready.wait()
        if self._stopping:
            return
        image, order, _ = self._checks[0]
        camera = network_size(*image.shape[:2], max_side)
        if camera != size:
            # The camera's frames need another network size than the one expected.
            self.status = (f'calibrating int8 on {ready.what} again, at {camera[1]}x'
                           f'{camera[0]} for the camera (background)')
            rgb = np.ascontiguousarray(image[:, :, ::-1] if order == 'bgr' else image)
            built = self._candidate_from(lambda: ready.make(camera), ready.what, rgb)
            if built is None:
                return
        self._check(*built)

    def _say_waiting(self, words: str) -> None:
        if not self._checks_ready.is_set():
            self.status = (f'int8 calibrated on {words}; waiting for '
                           f'{self.settings.check_frames} other frames to check it')

    def _check(self, candidate: Any, words: str) -> None:
        """Wait for the check frames, measure, and offer the candidate above the gate."""
        self._say_waiting(words)
        self._checks_ready.wait()
        if self._stopping:
            return
        images, orders, labels = zip(*self._checks)
        try:
            agreement = label_agreement(candidate, images, orders, labels)
        except Exception as error:  # noqa: BLE001 - as above
            self._decide('failed', f'int8 not used: checking it failed '
                                   f'({" ".join(str(error).split())}); running on '
                                   f'{self.current}')
            return
        self.agreement = agreement
        gate = self.settings.agreement_min
        figure = (f'{100 * agreement:.2f} % of labels equal to {self.current} on '
                  f'{len(labels)} other camera frames')
        source = getattr(candidate, 'int8_source', f'calibrated on {words}')
        if agreement >= gate:
            with self._lock:
                self._candidate = candidate
            self._decide('switched', f'int8 {source}: {figure} (agreement_min '
                                     f'{100 * gate:g} %)')
        else:
            self._decide('refused', f'int8 not used: {figure}, below agreement_min '
                                    f'{100 * gate:g} %; running on {self.current}')
