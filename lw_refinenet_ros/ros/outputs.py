"""The node's outputs: per camera the publishers of :data:`~.topics.OUTPUT_TOPICS` and the
messages published on them.

One :class:`Outputs` builds every publisher from the one topic table (on a lifecycle node as
managed publishers, enabled by activate), turns a segmentation result into the messages and
publishes them in order of who waits: labels and stats feed robots, so they go first; the
colour, overlay and confidence images (for people and RViz) follow, and are only computed
while someone subscribes. It also holds the class filter and the per-camera latency windows
that /diagnostics reports.

The outputs are *open* while the node may publish. Closing them (under a lock) waits for a
publish in progress, after which the worker touches no rclpy entity (see ros/runner.py for
why a shutdown must not wait for an inference).
"""

from __future__ import annotations

import dataclasses
import threading
import time
from typing import Any, Sequence

import numpy as np
from std_msgs.msg import ColorRGBA

from lw_refinenet_ros.config import NodeConfig
from lw_refinenet_ros.errors import ConfigError
from lw_refinenet_ros.msg import ClassMap as ClassMapMsg
from lw_refinenet_ros.msg import ClassStatistics, SegmentationStats
from lw_refinenet_ros.palette import ClassMap, colorize, overlay
from lw_refinenet_ros.ros.conversions import array_to_image
from lw_refinenet_ros.ros.diagnostics import LatencyWindow
from lw_refinenet_ros.ros.object_outputs import ObjectOutputs, objects_config
from lw_refinenet_ros.ros.topics import OUTPUT_TOPICS, camera_prefix
from lw_refinenet_ros.scheduler import Frame

# The table's entries ObjectOutputs publishes itself (it owns the camera's object tracker).
_OBJECT_KEYS = ('objects', 'markers')


@dataclasses.dataclass
class CameraOutputs:
    """The publishers and output statistics of one camera."""

    name: str
    publishers: dict[str, Any]  # by OutputTopic.key
    objects: ObjectOutputs
    latency: LatencyWindow = dataclasses.field(default_factory=LatencyWindow)
    inference: LatencyWindow = dataclasses.field(default_factory=LatencyWindow)


class Outputs:
    """Every camera's publishers and the messages of one result.

    Args:
        node: The node (plain or lifecycle) to publish from.
        cameras: Camera names ('' for the single default camera).
        config: The configuration in force (see :meth:`configure`).
        class_map: The model's class names and colours.
        model_name: Named in the class map message.
    """

    def __init__(self, node: Any, cameras: Sequence[str], config: NodeConfig,
                 class_map: ClassMap, model_name: str) -> None:
        self._node = node
        self._class_map = class_map
        self._model_name = model_name
        self._config = config
        self._filter_lut = self._make_filter(config)
        self._lock = threading.Lock()
        self._open = False
        self._cameras = {name: self._make_camera(name) for name in cameras}

    # ------------------------------------------------------------------ set-up

    def _publisher(self, message_type: Any, topic: str, qos: Any) -> Any:
        # On a lifecycle node the outputs are managed: enabled by activate, silent otherwise.
        create = getattr(self._node, 'create_lifecycle_publisher', self._node.create_publisher)
        return create(message_type, topic, qos)

    def _make_camera(self, name: str) -> CameraOutputs:
        prefix = camera_prefix(name)
        publishers = {topic.key: self._publisher(topic.message_type, prefix + topic.name,
                                                 topic.qos)
                      for topic in OUTPUT_TOPICS if topic.key not in _OBJECT_KEYS}
        objects = ObjectOutputs(self._node, prefix, objects_config(self._config),
                                self._class_map.names, self._class_map.colors, self._publisher)
        publishers.update(zip(_OBJECT_KEYS, objects.publishers))
        return CameraOutputs(name, publishers, objects)

    def _make_filter(self, config: NodeConfig) -> np.ndarray | None:
        if not config.class_filter:
            return None
        names = self._class_map.names
        lut = np.zeros(max(self._class_map.num_classes, 1), bool)
        for item in config.class_filter:
            if item in names:
                lut[names.index(item)] = True
            elif item.isdigit() and int(item) < lut.size:
                lut[int(item)] = True
            else:
                raise ConfigError(f'class_filter entry {item!r} is neither a class name nor an '
                                  f'id; classes: {", ".join(names)}')
        return lut

    def configure(self, config: NodeConfig) -> None:
        """Apply a validated runtime change (filter, alpha, enabled outputs, objects).

        Raises:
            ConfigError: A class_filter entry the model does not have.
        """
        self._filter_lut = self._make_filter(config)
        self._config = config
        for camera in self._cameras.values():
            camera.objects.configure(objects_config(config))

    def camera(self, name: str) -> CameraOutputs:
        """One camera's publishers and latency windows."""
        return self._cameras[name]

    @property
    def is_open(self) -> bool:
        """Whether the worker may publish."""
        return self._open

    def open(self) -> None:
        """Allow publishing (after activate / subscribe)."""
        with self._lock:
            self._open = True

    def close(self) -> None:
        """Stop publishing; waits for a publish in progress, then no entity is touched."""
        with self._lock:
            self._open = False

    def destroy(self) -> None:
        """Destroy every publisher (the outputs must be closed)."""
        destroy = getattr(self._node, 'destroy_lifecycle_publisher',
                          self._node.destroy_publisher)
        for camera in self._cameras.values():
            for publisher in camera.publishers.values():
                destroy(publisher)

    # ------------------------------------------------------------------ publishing

    def wants(self, frames: Sequence[Frame], output: str) -> bool:
        """Whether ``output`` is enabled and someone subscribes to it for any of ``frames``."""
        if not self._config.publishes(output) or not self._open:
            return False
        try:
            return any(self._cameras[f.source].publishers[output].get_subscription_count() > 0
                       for f in frames)
        except Exception:  # noqa: BLE001 - rclpy's RCLError once the context is shut down
            return False  # shutting down: nobody can receive this output any more

    def wants_confidence(self, frames: Sequence[Frame]) -> tuple[bool, bool]:
        """(confidence, stats) the engine must compute for ``frames``: stats and confidence
        cost a few ms per frame, so only while someone listens (objects need confidence for
        their scores)."""
        want_stats = self.wants(frames, 'stats')
        want_confidence = want_stats or self.wants(frames, 'confidence') or any(
            self._cameras[f.source].objects.wants() for f in frames)
        return want_confidence, want_stats

    def publish_class_map(self) -> None:
        """Publish the (latched) class map on every camera's class_map topic."""
        msg = ClassMapMsg(ids=list(range(self._class_map.num_classes)),
                          names=list(self._class_map.names), model=self._model_name)
        msg.header.stamp = self._node.get_clock().now().to_msg()
        msg.colors = [ColorRGBA(r=r / 255.0, g=g / 255.0, b=b / 255.0, a=1.0)
                      for r, g, b in self._class_map.colors.tolist()]
        for camera in self._cameras.values():
            camera.publishers['class_map'].publish(msg)

    def publish(self, frame: Frame, image: np.ndarray, order: str, result: Any,
                camera_info: Any = None) -> None:
        """Publish every wanted output of one frame's result (the caller holds :attr:`lock`
        and has checked :attr:`is_open`); ``camera_info`` gives the objects metres."""
        camera = self._cameras[frame.source]
        header = frame.data.header
        publishers = camera.publishers
        labels = result.labels
        publishers['labels'].publish(array_to_image(labels, header))
        processing_ms = (time.monotonic() - frame.received) * 1e3
        age_ms = (time.time() - frame.stamp) * 1e3 if frame.stamp > 0 else processing_ms
        camera.latency.add(age_ms)
        camera.inference.add(float(result.timings.get('total', float('nan'))))
        if result.stats is not None:
            publishers['stats'].publish(self._stats_message(header, labels, result.stats,
                                                            processing_ms, age_ms))
        want_color, want_overlay, want_confidence = (
            self.wants([frame], name) for name in ('color', 'overlay', 'confidence'))
        camera.objects.process(header, labels, result.confidence, camera_info, image=image,
                               boundary=result.boundary, network_size=result.network_size)
        color = colorize(labels, self._class_map.colors) if want_color or want_overlay \
            else None
        if want_color:
            publishers['color'].publish(array_to_image(color, header, 'rgb8'))
        if want_overlay:
            publishers['overlay'].publish(array_to_image(
                self._overlay(camera, image, order, labels, color), header, 'rgb8'))
        if want_confidence and result.confidence is not None:
            publishers['confidence'].publish(array_to_image(
                result.confidence.astype(np.float32, copy=False), header, '32FC1'))

    @property
    def lock(self) -> threading.Lock:
        """Held while publishing one cycle's results; :meth:`close` waits for it."""
        return self._lock

    def _overlay(self, camera: CameraOutputs, image: np.ndarray, order: str,
                 labels: np.ndarray, color: np.ndarray | None = None) -> np.ndarray:
        rgb = image[:, :, ::-1] if order == 'bgr' else image
        blended = overlay(rgb, labels, self._class_map.colors, self._config.overlay_alpha,
                          color)
        if self._filter_lut is not None:
            keep = self._filter_lut[np.minimum(labels, self._filter_lut.size - 1)]
            blended = np.where(keep[:, :, None], blended, rgb)
        return camera.objects.draw(blended)  # ids and pick points

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
