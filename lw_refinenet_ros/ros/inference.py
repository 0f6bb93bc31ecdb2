"""The node's inference: the latest-frame scheduler, its worker thread and the segmenter.

One :class:`~lw_refinenet_ros.scheduler.LatestFrameScheduler` worker decodes the frames
taken (a bad one fails alone) and runs one batched forward pass through the model's
:class:`~lw_refinenet_ros.segmenter.Segmenter` (the same object ``lw-refinenet segment``
uses); with ``overlap_outputs`` (the default) the scheduler's second thread then
post-processes and publishes those frames while the worker runs the next forward pass, and
without it the worker does both. No GPU work ever runs on the executor thread. It also keeps
the worker alive: a worker that died is restarted by :meth:`Inference.supervise` (called by
the diagnostics timer), and one that keeps dying ends the process
(:class:`~.health.NodeFailure`).

Between two batches the worker may switch to an int8 engine calibrated on the camera's own
frames (:mod:`.live_int8`; it is built on another thread, and switched to only when its labels
agree), and it hands each frame's confidence to the least-confident-frames keeper
(``uncertain.save_dir``, :mod:`.uncertain`).
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any, Callable, Sequence

import numpy as np

from lw_refinenet_ros.config import NodeConfig
from lw_refinenet_ros.engine.live_calibration import LiveInt8
from lw_refinenet_ros.errors import LWRefineNetError
from lw_refinenet_ros.palette import ClassMap
from lw_refinenet_ros.ros.health import WARN, StreamHealth, Verdict, WorkerSupervisor, worst
from lw_refinenet_ros.ros.inputs import Inputs
from lw_refinenet_ros.ros.live_int8 import live_int8_for
from lw_refinenet_ros.ros.outputs import Outputs
from lw_refinenet_ros.ros.throttle import ThrottledLog
from lw_refinenet_ros.ros.uncertain import UncertainKeeper
from lw_refinenet_ros.scheduler import Frame, FrameCounters, LatestFrameScheduler, WorkerCrash

_LOG = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class LoadedModel:
    """What the node needs from a model: an engine, its classes and a name for logs.

    Attributes:
        engine: The InferenceEngine (or a fake with the same ``infer_batch`` in tests); its
            ``device`` and ``reason`` go to the log and /diagnostics.
        class_map: Names and colours of the classes.
        name: ``arch:file via backend/precision``.
        segmenter: The :class:`~lw_refinenet_ros.segmenter.Segmenter` the production factory
            builds; frames then go through its ``segment_batch``. None: ``engine`` directly.
    """

    engine: Any
    class_map: ClassMap
    name: str
    segmenter: Any = None


EngineFactory = Callable[[NodeConfig], LoadedModel]
Finish = Callable[[], list[Any]]


@dataclasses.dataclass(frozen=True)
class _Forwarded:
    """A batch between the stages: the decoded frames (index in the cycle, image, colour
    order) and the function that post-processes their forward pass."""

    decoded: list[tuple[int, np.ndarray, str]]
    finish: Finish


def _first_half(loaded: LoadedModel) -> Callable[..., Finish]:
    """``begin_batch`` of the model's segmenter; for a model without one (the engine fakes of
    tests, a segmenter with only ``segment_batch``) the whole batch runs in the first stage."""
    begin = getattr(loaded.segmenter, 'begin_batch', None)
    if begin is not None:
        return begin
    whole = (loaded.engine.infer_batch if loaded.segmenter is None
             else loaded.segmenter.segment_batch)

    def begin_whole(images: list[np.ndarray], orders: list[str], **kwargs: Any) -> Finish:
        results = whole(images, orders, **kwargs)
        return lambda: results

    return begin_whole


def load_engine(config: NodeConfig) -> LoadedModel:
    """The production factory: the node's parameters -> :class:`Segmenter` (checkpoint,
    class map, engine on the chosen device), the one path every command shares.

    A model that carries itself: its class names and colours come from the checkpoint (unless
    ``model.classes_file`` is set), and with ``max_side`` 0 and ``model.trained_scale`` the
    network runs at the image size the checkpoint was trained at, as ``lw-refinenet segment``
    does without ``--max-side``.
    """
    from lw_refinenet_ros.segmenter import Segmenter

    # A file this machine has loaded before is known from its card: the network itself is
    # loaded only if the engine needs it (not for a remembered OpenVINO or ONNX Runtime
    # choice with its runtime model cached, so a restart does not import torch).
    segmenter = Segmenter.from_config(config)
    return LoadedModel(segmenter.engine, segmenter.class_map, segmenter.name, segmenter)


class Inference:
    """Scheduler + worker + segmenter between the inputs and the outputs.

    Args:
        config: The configuration in force (see :meth:`configure`).
        loaded: The model.
        inputs: Decodes the frames.
        outputs: Publishes the results.
        log: Throttled warnings (bad frames, engine failures, frames too old).
        logger: Returns the node's logger, or None once it may be gone.
    """

    def __init__(self, config: NodeConfig, loaded: LoadedModel, inputs: Inputs,
                 outputs: Outputs, log: ThrottledLog, logger: Callable[[], Any]) -> None:
        self._config = config
        self._loaded = loaded
        self._inputs = inputs
        self._outputs = outputs
        self._log = log
        self._logger = logger
        self._begin_infer = _first_half(loaded)
        if config.overlap_outputs:
            process, complete = self._forward, self._publish
        else:
            process, complete = self._process, None
        self.scheduler = LatestFrameScheduler(
            list(inputs.names), process, config.scheduler, on_skipped=self._on_skipped,
            on_crash=self._on_crash, complete=complete)
        self.supervisor = WorkerSupervisor()
        # Batches handed to the engine: attempted, succeeded, failed (the engine's status).
        self.batches = [0, 0, 0]
        self._engine_health = StreamHealth('batch')
        self._live, self.live_status = (None, 'off (no model of its own to quantize)') \
            if loaded.segmenter is None else live_int8_for(config, loaded.segmenter)
        self._live_reported = False
        self._set_live_status(self.live_status)
        self.uncertain = UncertainKeeper.from_config(config, log)

    def configure(self, config: NodeConfig) -> None:
        """Apply a runtime change (the worker uses the new policy from its next cycle)."""
        self._config = config
        self.scheduler.set_config(config.scheduler)

    def stop(self, timeout: float) -> bool:
        """Stop the worker (and any int8 calibration in the background); write the
        least-confident frames kept. False: an inference was still running after
        ``timeout``."""
        if self._live is not None:
            self._live.stop()
        stopped = self.scheduler.stop(timeout)
        if self.uncertain is not None:
            self.uncertain.write()
        return stopped

    def counters(self, camera: str | None = None) -> FrameCounters:
        """Frame counters of one camera or of all."""
        return self.scheduler.counters(camera)

    # ------------------------------------------------------------------ the worker

    def _on_skipped(self, frame: Frame, reason: str) -> None:
        self._log.warning('too_old', f'skipped a frame from camera "{frame.source}": {reason}')

    def _decode_all(self, frames: Sequence[Frame]) -> list[tuple[int, np.ndarray, str]]:
        decoded = []
        for index, frame in enumerate(frames):
            # One camera's bad frame fails that frame only: never the other cameras' frames
            # of this batch, whatever the decoder raised (OpenCV errors included).
            try:
                image, order = self._inputs.decode(frame, self._config.max_image_pixels)
                decoded.append((index, image, order))
            except LWRefineNetError as error:
                self._log.warning(f'bad_input:{frame.source}',
                                  f'bad frame from camera "{frame.source}" (counted as '
                                  f'failed): {error}')
            except Exception as error:  # noqa: BLE001 - see above; logged without traceback
                self._log.warning(f'bad_input:{frame.source}',
                                  f'bad frame from camera "{frame.source}" (counted as '
                                  f'failed): cannot decode it: {type(error).__name__}: '
                                  f'{" ".join(str(error).split())}')
        return decoded

    def _process(self, frames: list[Frame]) -> list[bool]:
        """Both stages on the worker (``overlap_outputs`` false); success per frame."""
        return self._publish(frames, self._forward(frames))

    def _forward(self, frames: list[Frame]) -> _Forwarded | None:
        """Worker, first stage: decode and run the forward pass in one batch. None: no frame
        decoded, or the forward pass failed (logged); the frames fail."""
        decoded = self._decode_all(frames)
        if not decoded:
            return None
        self._switch_if_ready()
        want_confidence, want_stats = self._outputs.wants_confidence(frames)
        want_confidence = want_confidence or self.uncertain is not None
        self.batches[0] += 1
        try:
            finish = self._begin_infer([image for _, image, _ in decoded],
                                       [order for _, _, order in decoded],
                                       want_confidence=want_confidence, want_stats=want_stats)
        except Exception as error:  # noqa: BLE001 - EngineError, CUDA OOM, anything: go on
            self._engine_failed(len(decoded), error)
            return None
        return _Forwarded(decoded, finish)

    def _publish(self, frames: list[Frame], forwarded: _Forwarded | None) -> list[bool]:
        """Second stage: post-process and publish; success per frame."""
        ok = [False] * len(frames)
        if forwarded is None:
            return ok
        decoded = forwarded.decoded
        try:
            results = forwarded.finish()
        except Exception as error:  # noqa: BLE001 - as in _forward
            self._engine_failed(len(decoded), error)
            return ok
        self.batches[1] += 1
        self._after_inference(frames, decoded, results)
        with self._outputs.lock:
            if not self._outputs.is_open:
                # Deactivated or shutting down during the inference: processed, not published.
                for index, _, _ in decoded:
                    ok[index] = True
                return ok
            for (index, image, order), result in zip(decoded, results):
                frame = frames[index]
                try:
                    self._outputs.publish(frame, image, order, result,
                                          self._inputs.camera(frame.source).camera_info)
                    ok[index] = True
                except Exception as error:  # noqa: BLE001 - one bad publish must go on
                    self._log.warning('publish', f'publishing results failed: {error}')
        return ok

    def _engine_failed(self, frames: int, error: Exception) -> None:
        self.batches[2] += 1
        self._log.warning('engine', f'inference failed for {frames} frame(s) '
                                    f'(counted as failed): {error}')

    # ------------------------------------------------------------------ int8, uncertain

    def _after_inference(self, frames: Sequence[Frame],
                         decoded: Sequence[tuple[int, np.ndarray, str]],
                         results: Sequence[Any]) -> None:
        """Hand the frames to live int8 and the uncertain-frames keeper (both cheap)."""
        live = self._live
        if live is not None and live.phase != 'done':
            live.observe([image for _, image, _ in decoded], [order for _, _, order in decoded],
                         [result.labels for result in results])
        if live is not None:
            self._report_live(live)
        if self.uncertain is not None:
            for (index, image, order), result in zip(decoded, results):
                self.uncertain.offer(frames[index], image, order, result.confidence)

    def _set_live_status(self, status: str) -> None:
        self.live_status = status
        engine = self._loaded.engine
        if hasattr(engine, 'int8_live'):
            engine.int8_live = status

    def _report_live(self, live: LiveInt8) -> None:
        """Keep the status current; say a refusal or failure once (WARN)."""
        if live.status != self.live_status:
            self._set_live_status(live.status)
        if live.outcome in ('refused', 'failed') and not self._live_reported:
            self._live_reported = True
            (self._logger() or _LOG).warning(live.status)

    def _switch_if_ready(self) -> None:
        """Switch to the agreed int8 engine (on the worker: never during a batch)."""
        if self._live is None:
            return
        candidate = self._live.take()
        if candidate is None:
            return
        status = self._live.status
        self._loaded = dataclasses.replace(self._loaded, engine=candidate.engine,
                                           segmenter=candidate, name=candidate.name)
        self._begin_infer = _first_half(self._loaded)
        self._set_live_status(status)
        self._live_reported = True
        (self._logger() or _LOG).info(f'now segmenting with {candidate.name}: {status}')

    # ------------------------------------------------------------------ keeping it alive

    def _on_crash(self, crash: WorkerCrash) -> None:
        # On the dying thread: say so now; the diagnostics timer restarts it.
        (self._logger() or _LOG).error(
            f'the frame worker thread died: {crash.error} (restarting it within '
            f'{self._config.diagnostics_period_s:g} s)')

    def supervise(self) -> Verdict:
        """Restart a dead worker; the worker's verdict for /diagnostics.

        Raises:
            NodeFailure: It died too often (ends the process non-zero, ros/runner.py).
        """
        crash = self.scheduler.restart()
        if crash is not None:
            self.supervisor.restarted(crash)
            (self._logger() or _LOG).error(
                f'restarted the frame worker after: {crash.error} '
                f'({self.supervisor.recent_restarts} restart(s) in the last '
                f'{self.supervisor.window_s:g} s)')
        return self.supervisor.verdict()

    def engine_verdict(self, stall_limit: float) -> Verdict:
        """The engine's level: failing batches, or a fallback taken at start-up."""
        attempted, succeeded, failed = self.batches
        verdict = self._engine_health.update(attempted, succeeded, failed, stall_limit)
        engine = self._loaded.engine
        reason = str(getattr(engine, 'reason', ''))
        device = str(getattr(engine, 'device', ''))
        fallback = None
        if self._config.device.startswith('cuda') and not device.startswith('cuda'):
            fallback = f'running on {device}: {self._config.device} is not available'
        elif 'fallback' in reason:
            fallback = f'running a fallback: {reason}'
        return worst(verdict, Verdict(WARN, fallback) if fallback else Verdict())

    def engine_values(self) -> dict[str, object]:
        """The engine's key-values for /diagnostics."""
        engine = self._loaded.engine
        return {'model': self._loaded.name, 'device': getattr(engine, 'device', ''),
                'backend': str(getattr(engine, 'reason', '')), 'batches': self.batches[0],
                'failed_batches': self.batches[2],
                'worker_restarts': self.supervisor.total_restarts,
                'int8_live': self._live.status if self._live is not None else self.live_status}
