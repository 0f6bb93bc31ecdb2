"""The segmentation pipeline behind both node flavours (plain and lifecycle).

It owns, per camera, the input subscription and the output publishers, and one
:class:`~lw_refinenet_ros.scheduler.LatestFrameScheduler` whose single worker thread does all
inference and publishing (no GPU work ever runs on the executor thread). The subscription
callback only drops the message into the camera's slot; decoding happens on the worker, so a
frame that gets overwritten costs nothing and a malformed one is counted as failed there.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from typing import Any, Callable

from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray
import numpy as np
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_msgs.msg import ColorRGBA

from lw_refinenet_ros.config import NodeConfig
from lw_refinenet_ros.errors import (
    ConfigError,
    ImageConversionError,
    LWRefineNetError,
)
from lw_refinenet_ros.msg import ClassMap as ClassMapMsg
from lw_refinenet_ros.msg import ClassStatistics, SegmentationStats
from lw_refinenet_ros.palette import ClassMap, colorize, overlay
from lw_refinenet_ros.ros.conversions import array_to_image, compressed_to_rgb, image_to_rgb
from lw_refinenet_ros.ros.diagnostics import (
    LatencyWindow,
    camera_status,
    diagnostic_array,
    engine_status,
)
from lw_refinenet_ros.ros.health import (
    WARN,
    StreamHealth,
    Verdict,
    WorkerSupervisor,
    stall_limit_s,
    worst,
)
from lw_refinenet_ros.ros.object_outputs import ObjectOutputs, objects_config
from lw_refinenet_ros.ros.qos import LATCHED_QOS, OUTPUT_QOS, input_qos
from lw_refinenet_ros.ros.transport import LOSS_FIX, TransportHealth, TransportMonitor
from lw_refinenet_ros.scheduler import Frame, FrameCounters, LatestFrameScheduler, WorkerCrash

_LOG = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class LoadedModel:
    """What the pipeline needs from a model: an engine, its classes and a name for logs."""

    engine: Any  # InferenceEngine, or a fake with the same infer_batch in tests
    class_map: ClassMap
    name: str


EngineFactory = Callable[[NodeConfig], LoadedModel]


def load_engine(config: NodeConfig) -> LoadedModel:
    """The production factory: checkpoint -> model -> InferenceEngine on the chosen device."""
    from lw_refinenet_ros.engine import InferenceEngine
    from lw_refinenet_ros.model import DEFAULT_MODEL_PATH, load_model
    from lw_refinenet_ros.palette import load_class_map

    weights = config.model_weights or None
    model, info = load_model(weights,
                             arch=None if config.model_arch == 'auto' else config.model_arch,
                             num_classes=config.model_num_classes or None)
    num_classes = info.num_classes
    if config.model_classes_file:
        class_map = load_class_map(config.model_classes_file, num_classes)
    else:
        class_map = ClassMap.from_checkpoint(info.class_names, info.colors, num_classes)
    engine = InferenceEngine(model, config.engine, num_classes=num_classes)
    described = engine.describe()
    # The runtime in the name: the start-up log line and /diagnostics then say what runs.
    name = (f'{info.arch}:{(weights or str(DEFAULT_MODEL_PATH)).rsplit("/", 1)[-1]} via '
            f'{described["backend"]}/{described["precision"]}')
    return LoadedModel(engine, class_map, name)


def _stamp_seconds(stamp: Time) -> float:
    return stamp.sec + stamp.nanosec * 1e-9


@dataclasses.dataclass
class _Camera:
    """Topics, publishers and statistics of one input camera."""

    name: str
    prefix: str
    publishers: dict[str, Any]
    latency: LatencyWindow
    inference: LatencyWindow
    previous: FrameCounters
    transport: TransportMonitor = dataclasses.field(default_factory=TransportMonitor)
    subscription: Any = None
    info_subscription: Any = None
    camera_info: CameraInfo | None = None
    objects: Any = None  # ObjectOutputs: segmentation/objects and segmentation/markers
    health: StreamHealth = dataclasses.field(default_factory=StreamHealth)


class SegmentationPipeline:
    """Cameras -> latest-frame scheduler -> engine -> outputs, wired onto a node."""

    OUTPUTS = ('labels', 'color', 'overlay', 'confidence')

    def __init__(self, node: Node, config: NodeConfig, loaded: LoadedModel) -> None:
        self._node = node
        self._config = config
        self._loaded = loaded
        self._class_map = loaded.class_map
        self._filter_lut = self._make_filter(config)
        self._last_log: dict[str, float] = {}
        # Outputs open: the worker may publish. Closed (under the lock) before any entity is
        # destroyed, so a worker that finishes an inference after that touches no rclpy
        # entity (see ros/runner.py for why a shutdown must not wait for it).
        self._outputs_lock = threading.Lock()
        self._outputs_open = False
        names = list(config.cameras) or ['']
        self._cameras = {name: self._make_camera(name) for name in names}
        self._class_map_publishers = [
            self._publisher(ClassMapMsg, f'{c.prefix}segmentation/class_map', LATCHED_QOS)
            for c in self._cameras.values()]
        self._diagnostics = node.create_publisher(DiagnosticArray, '/diagnostics', 10)
        self._scheduler = LatestFrameScheduler(
            names, self._process, config.scheduler, on_skipped=self._on_skipped,
            on_crash=self._on_worker_crash)
        self._supervisor = WorkerSupervisor()
        # Batches handed to the engine: attempted, succeeded, failed (the engine's status).
        self._batches = [0, 0, 0]
        self._engine_health = StreamHealth('batch')
        self._diag_timer = node.create_timer(config.diagnostics_period_s,
                                             self._publish_diagnostics)
        device = str(getattr(loaded.engine, 'device', ''))
        if config.device.startswith('cuda') and not device.startswith('cuda'):
            node.get_logger().warning(f'device {config.device!r} is not available: running on '
                                      f'{device} because device_fallback is true')

    # ------------------------------------------------------------------ set-up

    def _publisher(self, message_type: Any, topic: str, qos: Any) -> Any:
        # On a lifecycle node the outputs are managed: enabled by activate, silent otherwise.
        create = getattr(self._node, 'create_lifecycle_publisher', self._node.create_publisher)
        return create(message_type, topic, qos)

    def _make_camera(self, name: str) -> _Camera:
        prefix = f'{name.rstrip("/")}/' if name else ''
        publishers = {output: self._publisher(Image, f'{prefix}segmentation/{output}',
                                              OUTPUT_QOS) for output in self.OUTPUTS}
        publishers['stats'] = self._publisher(SegmentationStats, f'{prefix}segmentation/stats',
                                              OUTPUT_QOS)
        objects = ObjectOutputs(self._node, prefix, objects_config(self._config),
                                self._class_map.names, self._class_map.colors, self._publisher)
        publishers['objects'], publishers['markers'] = objects.publishers
        return _Camera(name, prefix, publishers, LatencyWindow(), LatencyWindow(),
                       FrameCounters(), objects=objects)

    def _make_filter(self, config: NodeConfig) -> np.ndarray | None:
        if not config.class_filter:
            return None
        lut = np.zeros(max(self._class_map.num_classes, 1), bool)
        for item in config.class_filter:
            if item in self._class_map.names:
                lut[self._class_map.names.index(item)] = True
            elif item.isdigit() and int(item) < lut.size:
                lut[int(item)] = True
            else:
                raise ConfigError(f'class_filter entry {item!r} is neither a class name nor an '
                                  f'id; classes: {", ".join(self._class_map.names)}')
        return lut

    def subscribe(self) -> None:
        """Publish the class map, create the input subscriptions and start the worker."""
        self._publish_class_map()
        for camera in self._cameras.values():
            if self._config.input_type == 'compressed':
                topic, message_type = f'{camera.prefix}image/compressed', CompressedImage
            else:
                topic, message_type = f'{camera.prefix}image', Image
            qos = input_qos(self._node, topic, self._config.qos)
            # Loss and silence are per subscription: a re-activated node starts afresh.
            camera.transport = TransportMonitor()
            camera.subscription = self._node.create_subscription(
                message_type, topic, lambda msg, name=camera.name: self._on_image(name, msg),
                qos, event_callbacks=camera.transport.event_callbacks())
            if self._config.use_camera_info:
                camera.info_subscription = self._node.create_subscription(
                    CameraInfo, f'{camera.prefix}camera_info',
                    lambda msg, cam=camera: setattr(cam, 'camera_info', msg), qos)
        with self._outputs_lock:
            self._outputs_open = True
        self._scheduler.start()

    def unsubscribe(self, timeout: float = 0.5) -> bool:
        """Stop the worker, close the outputs, remove the input subscriptions.

        An inference in flight gets ``timeout`` seconds to finish and publish; returns False
        when it is still running then (it finishes on its own; its result is counted as
        processed but not published). When the context is already shut down (a signal),
        the outputs close first: nothing can be published any more.
        """
        if not self._node.context.ok():
            self._close_outputs()
        stopped = self._scheduler.stop(timeout)
        self._close_outputs()
        for camera in self._cameras.values():
            for attribute in ('subscription', 'info_subscription'):
                subscription = getattr(camera, attribute)
                if subscription is not None:
                    self._node.destroy_subscription(subscription)
                    setattr(camera, attribute, None)
        return stopped

    def _close_outputs(self) -> None:
        # Waits for a publish in progress; afterwards the worker touches no entity.
        with self._outputs_lock:
            self._outputs_open = False

    def destroy(self) -> None:
        """Stop everything this pipeline created on the node."""
        self.unsubscribe()
        self._node.destroy_timer(self._diag_timer)
        destroy = getattr(self._node, 'destroy_lifecycle_publisher',
                          self._node.destroy_publisher)
        for camera in self._cameras.values():
            for publisher in camera.publishers.values():
                destroy(publisher)
        for publisher in self._class_map_publishers:
            destroy(publisher)
        self._node.destroy_publisher(self._diagnostics)

    # ------------------------------------------------------------------ runtime

    @property
    def scheduler(self) -> LatestFrameScheduler:
        """The frame scheduler (its counters are the node's counters)."""
        return self._scheduler

    @property
    def class_map(self) -> ClassMap:
        """Names and colours of the model's classes."""
        return self._class_map

    def apply(self, config: NodeConfig) -> None:
        """Apply a validated runtime change (alpha, rates, outputs, filter, limits)."""
        self._filter_lut = self._make_filter(config)
        self._config = config
        self._scheduler.set_config(config.scheduler)
        for camera in self._cameras.values():
            camera.objects.configure(objects_config(config))

    def counters(self, camera: str | None = None) -> FrameCounters:
        """Frame counters of one camera (by namespace) or of all."""
        return self._scheduler.counters(camera)

    def _on_image(self, camera: str, msg: Any) -> None:
        self._cameras[camera].transport.note_message()
        self._scheduler.submit(camera, msg, _stamp_seconds(msg.header.stamp))

    def _log_throttled(self, kind: str, text: str) -> None:
        now = time.monotonic()
        if now - self._last_log.get(kind, -1e9) >= self._config.log_throttle_s:
            self._last_log[kind] = now
            # Once the outputs are closed the node may be gone: log without touching it.
            logger = self._node.get_logger() if self._outputs_open else _LOG
            logger.warning(text)

    def _on_skipped(self, frame: Frame, reason: str) -> None:
        self._log_throttled('too_old', f'skipped a frame from camera "{frame.source}": {reason}')

    def _decode(self, frame: Frame) -> tuple[np.ndarray, str]:
        msg = frame.data
        limit = self._config.max_image_pixels
        if isinstance(msg, CompressedImage):
            image, order = compressed_to_rgb(msg, limit)
        else:
            image, order = image_to_rgb(msg, limit)
        info = self._cameras[frame.source].camera_info
        if info is not None and (info.width, info.height) != (image.shape[1], image.shape[0]):
            raise ImageConversionError(
                f'camera_info says {info.width}x{info.height} but the image is '
                f'{image.shape[1]}x{image.shape[0]}; fix the camera driver calibration or set '
                f'use_camera_info false')
        return image, order

    def _process(self, frames: list[Frame]) -> list[bool]:
        """Worker: decode, infer in one batch, publish; returns success per frame."""
        ok = [False] * len(frames)
        decoded: list[tuple[int, np.ndarray, str]] = []
        for index, frame in enumerate(frames):
            # One camera's bad frame fails that frame only: never the other cameras' frames
            # of this batch, whatever the decoder raised (OpenCV errors included).
            try:
                image, order = self._decode(frame)
                decoded.append((index, image, order))
            except LWRefineNetError as error:
                self._log_throttled(f'bad_input:{frame.source}',
                                    f'bad frame from camera "{frame.source}" (counted as '
                                    f'failed): {error}')
            except Exception as error:  # noqa: BLE001 - see above; logged without traceback
                self._log_throttled(f'bad_input:{frame.source}',
                                    f'bad frame from camera "{frame.source}" (counted as '
                                    f'failed): cannot decode it: {type(error).__name__}: '
                                    f'{" ".join(str(error).split())}')
        if not decoded:
            return ok
        # Stats and confidence cost a few ms per frame: only while someone listens.
        want_stats = self._wants(frames, 'stats')
        want_confidence = want_stats or self._wants(frames, 'confidence') or any(
            self._cameras[f.source].objects.wants() for f in frames)  # object scores
        self._batches[0] += 1
        try:
            results = self._loaded.engine.infer_batch(
                [image for _, image, _ in decoded], [order for _, _, order in decoded],
                want_confidence=want_confidence, want_stats=want_stats)
        except Exception as error:  # noqa: BLE001 - EngineError, CUDA OOM, anything: go on
            self._batches[2] += 1
            self._log_throttled('engine', f'inference failed for {len(decoded)} frame(s) '
                                          f'(counted as failed): {error}')
            return ok
        self._batches[1] += 1
        with self._outputs_lock:
            if not self._outputs_open:
                # Deactivated or shutting down during the inference: processed, not published.
                for index, _, _ in decoded:
                    ok[index] = True
                return ok
            for (index, image, order), result in zip(decoded, results):
                try:
                    self._publish(frames[index], image, order, result)
                    ok[index] = True
                except Exception as error:  # noqa: BLE001 - one bad publish must go on
                    self._log_throttled('publish', f'publishing results failed: {error}')
        return ok

    def _wants(self, frames: list[Frame], output: str) -> bool:
        if not self._config.publishes(output) or not self._outputs_open:
            return False
        try:
            return any(self._cameras[f.source].publishers[output].get_subscription_count() > 0
                       for f in frames)
        except Exception:  # noqa: BLE001 - rclpy's RCLError once the context is shut down
            # Shutting down: nobody can receive this output any more.
            return False

    def _publish(self, frame: Frame, image: np.ndarray, order: str, result: Any) -> None:
        """Publish in order of who waits: labels and stats feed robots, so they go first;
        the colour, overlay and confidence images (for people and RViz) follow, and are only
        computed while someone subscribes."""
        camera = self._cameras[frame.source]
        header = frame.data.header
        publishers = camera.publishers
        labels = result.labels
        publishers['labels'].publish(array_to_image(labels, header))
        now = time.monotonic()
        processing_ms = (now - frame.received) * 1e3
        age_ms = (time.time() - frame.stamp) * 1e3 if frame.stamp > 0 else processing_ms
        camera.latency.add(age_ms)
        camera.inference.add(float(result.timings.get('total', float('nan'))))
        if result.stats is not None:
            publishers['stats'].publish(self._stats_message(header, labels, result.stats,
                                                            processing_ms, age_ms))
        want_color, want_overlay, want_confidence = (
            self._wants([frame], name) for name in ('color', 'overlay', 'confidence'))
        camera.objects.process(header, labels, result.confidence, camera.camera_info,
                               image=image)
        if want_color or want_overlay:
            colors = self._class_map.colors
            if want_color:
                publishers['color'].publish(array_to_image(colorize(labels, colors), header,
                                                           'rgb8'))
            if want_overlay:
                rgb = image[:, :, ::-1] if order == 'bgr' else image
                blended = overlay(rgb, labels, colors, self._config.overlay_alpha)
                if self._filter_lut is not None:
                    keep = self._filter_lut[np.minimum(labels, self._filter_lut.size - 1)]
                    blended = np.where(keep[:, :, None], blended, rgb)
                blended = camera.objects.draw(blended)  # ids and pick points
                publishers['overlay'].publish(array_to_image(blended, header, 'rgb8'))
        if want_confidence and result.confidence is not None:
            publishers['confidence'].publish(array_to_image(
                result.confidence.astype(np.float32, copy=False), header, '32FC1'))

    def _stats_message(self, header: Any, labels: np.ndarray, stats: list[Any],
                       processing_ms: float, age_ms: float) -> SegmentationStats:
        msg = SegmentationStats(header=header, height=int(labels.shape[0]),
                                width=int(labels.shape[1]),
                                num_classes=self._class_map.num_classes,
                                processing_latency_ms=float(processing_ms),
                                frame_age_ms=float(age_ms))
        names = self._class_map.names
        for stat in stats:
            if self._filter_lut is not None and not self._filter_lut[stat.class_id]:
                continue
            entry = ClassStatistics(class_id=stat.class_id, class_name=names[stat.class_id],
                                    pixel_count=stat.pixel_count,
                                    area_fraction=float(stat.area_fraction),
                                    mean_confidence=float(stat.mean_confidence),
                                    centroid_x=float(stat.centroid[0]),
                                    centroid_y=float(stat.centroid[1]))
            x_min, y_min, x_max, y_max = stat.bbox
            entry.bbox.x_offset, entry.bbox.y_offset = x_min, y_min
            entry.bbox.width, entry.bbox.height = x_max - x_min + 1, y_max - y_min + 1
            msg.classes.append(entry)
        return msg

    def _publish_class_map(self) -> None:
        msg = ClassMapMsg(ids=list(range(self._class_map.num_classes)),
                          names=list(self._class_map.names), model=self._loaded.name)
        msg.header.stamp = self._node.get_clock().now().to_msg()
        msg.colors = [ColorRGBA(r=r / 255.0, g=g / 255.0, b=b / 255.0, a=1.0)
                      for r, g, b in self._class_map.colors.tolist()]
        for publisher in self._class_map_publishers:
            publisher.publish(msg)

    def _transport_health(self, camera: _Camera) -> TransportHealth | None:
        """What the camera's subscription saw since the last report; logs a loss, throttled."""
        if camera.subscription is None:
            return None
        try:
            health = camera.transport.report(camera.subscription.get_publisher_count())
        except Exception:  # noqa: BLE001 - the subscription went away (shutting down)
            return None
        problem = health.problem()
        if problem is not None:
            topic = camera.subscription.topic_name
            advice = f'. To fix it: {LOSS_FIX}' if health.transport_suspected else ''
            self._log_throttled(f'transport:{camera.name}', f'{topic}: {problem}{advice}')
        return health

    def _on_worker_crash(self, crash: WorkerCrash) -> None:
        # On the dying thread: say so now; the diagnostics timer restarts it.
        logger = self._node.get_logger() if self._outputs_open else _LOG
        logger.error(f'the frame worker thread died: {crash.error} (restarting it within '
                     f'{self._config.diagnostics_period_s:g} s)')

    def _supervise(self) -> Verdict:
        """Restart a dead worker (exit via NodeFailure when it keeps dying); its verdict."""
        crash = self._scheduler.restart()
        if crash is not None:
            self._supervisor.restarted(crash)  # NodeFailure ends the process (ros/runner.py)
            self._node.get_logger().error(
                f'restarted the frame worker after: {crash.error} '
                f'({self._supervisor.recent_restarts} restart(s) in the last '
                f'{self._supervisor.window_s:g} s)')
        return self._supervisor.verdict()

    def _engine_verdict(self) -> Verdict:
        attempted, succeeded, failed = self._batches
        verdict = self._engine_health.update(attempted, succeeded, failed,
                                             self._stall_limit())
        engine = self._loaded.engine
        reason = str(getattr(engine, 'reason', ''))
        device = str(getattr(engine, 'device', ''))
        fallback = None
        if self._config.device.startswith('cuda') and not device.startswith('cuda'):
            fallback = f'running on {device}: {self._config.device} is not available'
        elif 'fallback' in reason:
            fallback = f'running a fallback: {reason}'
        return worst(verdict, Verdict(WARN, fallback) if fallback else Verdict())

    def _stall_limit(self) -> float:
        p95 = max((c.inference.percentiles(95)[0] for c in self._cameras.values()),
                  key=lambda v: -1.0 if v != v else v)
        return stall_limit_s(p95, self._config.max_rate_hz)

    def _publish_diagnostics(self) -> None:
        statuses = []
        period = self._config.diagnostics_period_s
        node_name = self._node.get_fully_qualified_name()
        worker = self._supervise()
        engine = self._loaded.engine
        statuses.append(engine_status(
            f'{node_name}: engine', node_name, self._engine_verdict(),
            {'model': self._loaded.name, 'device': getattr(engine, 'device', ''),
             'backend': str(getattr(engine, 'reason', '')),
             'batches': self._batches[0], 'failed_batches': self._batches[2],
             'worker_restarts': self._supervisor.total_restarts}))
        stall_limit = self._stall_limit()
        for camera in self._cameras.values():
            counters = self._scheduler.counters(camera.name)
            label = f' ({camera.name})' if camera.name else ''
            transport = self._transport_health(camera)
            health = camera.health.update(counters.received, counters.processed,
                                          counters.failed, stall_limit)
            if camera.subscription is None:
                health = Verdict()  # inactive (lifecycle): nothing is expected to flow
            statuses.append(camera_status(
                f'{node_name}: segmentation{label}', node_name, counters, camera.previous,
                period, camera.latency, camera.inference,
                {'model': self._loaded.name,
                 'backend': str(getattr(self._loaded.engine, 'reason', ''))},
                transport, worst(worker, health)))
            camera.previous = counters
        self._diagnostics.publish(diagnostic_array(self._node.get_clock().now().to_msg(),
                                                   statuses))
