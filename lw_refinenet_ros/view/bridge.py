"""The ROS side of the live view: subscribe to the node's outputs, feed the Foxglove channels.

Three rules keep the view from ever slowing the segmentation node:

- it is a separate process (``lw-refinenet view``), with its own interpreter and GIL;
- every subscription to the node is best-effort with depth 1: a best-effort reader never
  acknowledges, so a stalled view cannot hold back the node's reliable writers;
- a ROS topic is subscribed only while a Foxglove client subscribes to a channel that needs it,
  and the node computes its colour/overlay/stats only while someone subscribes, so an open but
  idle view (or one showing only the overlay) costs the node nothing extra.

Images are compressed on one worker thread that always takes the newest frame of each topic
(latest wins, as in the node's scheduler), so a 30 Hz stream never queues up in the view, and
the small JSON topics are forwarded straight from the executor thread, never behind an image.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from typing import Any, Callable

from diagnostic_msgs.msg import DiagnosticArray
from foxglove.messages import CompressedImage, Timestamp
import numpy as np
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image

from lw_refinenet_ros.errors import LWRefineNetError
from lw_refinenet_ros.msg import ClassMap, SegmentationStats, SegmentedObjects
from lw_refinenet_ros.palette import colorize
from lw_refinenet_ros.ros.conversions import stamp_seconds
from lw_refinenet_ros.ros.qos import LATCHED_QOS
from lw_refinenet_ros.ros.spinning import run_until_shutdown
from lw_refinenet_ros.ros.topic_names import CLASS_MAP, COLOR, LABELS, OBJECTS, STATS
from lw_refinenet_ros.view.encode import encode_image, encode_pixels, label_array, scale_for
from lw_refinenet_ros.view.payloads import (
    annotations_from_objects,
    annotations_from_stats,
    class_colors,
    class_map_to_dict,
    diagnostics_to_dict,
    objects_to_dicts,
    stats_to_dict,
)
from lw_refinenet_ros.view.server import (
    DIAGNOSTICS_TOPIC,
    CameraChannels,
    ViewConfig,
    ViewServer,
)

_LOG = logging.getLogger(__name__)

#: Every subscription to the node's streams: never reliable, never a queue.
VIEW_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1,
                      reliability=ReliabilityPolicy.BEST_EFFORT)
# How often subscriptions are matched to the Foxglove clients' interest.
_RECONCILE_PERIOD_S = 0.2


@dataclasses.dataclass
class _Source:
    """One ROS topic the view may subscribe to, and the channels that need it."""

    topic: str
    message_type: Any
    callback: Callable[[Any], None]
    wanted: Callable[[], bool]
    qos: QoSProfile = dataclasses.field(default_factory=lambda: VIEW_QOS)
    subscription: Any = None


class _LatestImages:
    """Newest unsent frame per topic, consumed by the encoder thread."""

    def __init__(self) -> None:
        self._slots: dict[str, Any] = {}
        self._condition = threading.Condition()
        self._stopped = False
        self.replaced = 0

    def put(self, topic: str, msg: Any) -> None:
        with self._condition:
            if topic in self._slots:
                self.replaced += 1
            self._slots[topic] = msg
            self._condition.notify()

    def take(self, timeout: float) -> dict[str, Any]:
        with self._condition:
            if not self._slots and not self._stopped:
                self._condition.wait(timeout)
            slots, self._slots = self._slots, {}
            return slots

    def stop(self) -> None:
        with self._condition:
            self._stopped = True
            self._condition.notify_all()

    @property
    def stopped(self) -> bool:
        return self._stopped


class ViewBridge(Node):
    """Subscribes to the segmentation outputs and logs them to a :class:`ViewServer`."""

    def __init__(self, server: ViewServer, node_name: str = 'lw_refinenet_view',
                 **kwargs: Any) -> None:
        """Set up the sources; subscriptions follow the Foxglove clients' subscriptions."""
        super().__init__(node_name, **kwargs)
        self._server = server
        self._config = server.config
        self._class_maps: dict[str, dict[str, Any]] = {}
        self._colors: dict[str, dict[int, tuple[float, float, float]]] = {}
        self._sent: dict[str, int] = {}
        self._failed = 0
        self._last_error_log = 0.0
        self._images = _LatestImages()
        self._channel_of: dict[str, tuple[Any, str]] = {}
        self._palettes: dict[str, np.ndarray] = {}     # camera prefix -> (K, 3) RGB
        self._palette_of: dict[str, str] = {}          # colour topic -> camera prefix
        self._objects_seen: dict[str, float] = {}      # camera prefix -> monotonic time
        self._sources: list[_Source] = []
        for camera in server.cameras:
            self._add_camera(camera)
        diagnostics = server.diagnostics
        self._sources.append(_Source(DIAGNOSTICS_TOPIC, DiagnosticArray,
                                     lambda msg: self._log_json(diagnostics,
                                                                diagnostics_to_dict(msg)),
                                     diagnostics.has_sinks))
        self._worker = threading.Thread(target=self._encode_loop, name='view-encoder',
                                        daemon=True)
        self._worker.start()
        self._timer = self.create_timer(_RECONCILE_PERIOD_S, self._reconcile)
        self._reconcile()

    # ------------------------------------------------------------------ set-up

    def _add_camera(self, camera: CameraChannels) -> None:
        labels_topic = camera.prefix + LABELS
        color_topic = camera.prefix + COLOR
        for topic, (channel, kind) in camera.images.items():
            self._channel_of[topic] = (channel, kind)
            if topic not in (labels_topic, color_topic):
                self._sources.append(_Source(
                    topic, Image, lambda msg, t=topic: self._images.put(t, msg),
                    channel.has_sinks))
        # The colour mask is drawn here from the labels (always published) and the class map,
        # rather than subscribed: the node computes segmentation/color only for subscribers,
        # so this keeps that work off the node.
        labels, color = camera.images[labels_topic][0], camera.images[color_topic][0]

        def on_labels(msg: Any) -> None:
            if labels.has_sinks():
                self._images.put(labels_topic, msg)
            if color.has_sinks() and camera.prefix in self._palettes:
                self._images.put(color_topic, msg)

        self._sources.append(_Source(labels_topic, Image, on_labels,
                                     lambda: labels.has_sinks() or color.has_sinks()))
        self._palette_of[color_topic] = camera.prefix
        # Annotations: instances from segmentation/objects (ids, pick points) when the node
        # publishes them, else per-class boxes from segmentation/stats.
        self._sources.append(_Source(
            camera.prefix + OBJECTS, SegmentedObjects,
            lambda msg, c=camera: self._on_objects(c, msg), camera.annotations.has_sinks))
        stats_topic = camera.prefix + STATS
        # Stats feed the annotations only while no objects arrive: the node computes stats
        # just for subscribers, so the view does not ask for them without a reason.
        self._sources.append(_Source(
            stats_topic, SegmentationStats, lambda msg, c=camera: self._on_stats(c, msg),
            lambda c=camera: c.stats.has_sinks() or (c.annotations.has_sinks()
                                                     and not self._objects_recent(c))))
        # Always subscribed: it is tiny, latched (only a reliable transient-local reader gets
        # it), and needed to colour the annotations.
        self._sources.append(_Source(
            camera.prefix + CLASS_MAP, ClassMap,
            lambda msg, c=camera: self._on_class_map(c, msg), lambda: True, LATCHED_QOS))

    def _reconcile(self) -> None:
        """Subscribe to what some client watches, unsubscribe from what nobody does."""
        for source in self._sources:
            wanted = source.wanted()
            if wanted and source.subscription is None:
                source.subscription = self.create_subscription(
                    source.message_type, source.topic, source.callback, source.qos)
            elif not wanted and source.subscription is not None:
                self.destroy_subscription(source.subscription)
                source.subscription = None
        for topic in self._server.take_resends():
            for camera in self._server.cameras:
                document = self._class_maps.get(camera.prefix)
                if document is not None and camera.class_map.topic() == topic:
                    self._log_json(camera.class_map, document)

    # ------------------------------------------------------------------ callbacks

    def _count(self, topic: str) -> None:
        self._sent[topic] = self._sent.get(topic, 0) + 1

    def _log_json(self, channel: Any, document: dict[str, Any]) -> None:
        channel.log(document)
        self._count(channel.topic())

    def _on_class_map(self, camera: CameraChannels, msg: Any) -> None:
        document = class_map_to_dict(msg)
        self._class_maps[camera.prefix] = document
        self._colors[camera.prefix] = class_colors(document)
        self._palettes[camera.prefix] = _palette(msg)
        self._log_json(camera.class_map, document)

    def _on_stats(self, camera: CameraChannels, msg: Any) -> None:
        document = stats_to_dict(msg)
        if camera.stats.has_sinks():
            self._log_json(camera.stats, document)
        if camera.annotations.has_sinks() and not self._objects_recent(camera):
            scale = scale_for(document['width'], self._config.max_width)
            camera.annotations.log(annotations_from_stats(
                document, self._colors.get(camera.prefix, {}), scale))
            self._count(camera.annotations.topic())

    def _objects_recent(self, camera: CameraChannels) -> bool:
        """The node sent objects for this camera within the last 2 s."""
        return self._objects_seen.get(camera.prefix, -1e9) > time.monotonic() - 2.0

    def _on_objects(self, camera: CameraChannels, msg: Any) -> None:
        self._objects_seen[camera.prefix] = time.monotonic()
        scale = scale_for(int(msg.width), self._config.max_width)
        camera.annotations.log(annotations_from_objects(
            stamp_seconds(msg.header.stamp), objects_to_dicts(msg),
            self._colors.get(camera.prefix, {}), scale))
        self._count(camera.annotations.topic())

    def _encode_loop(self) -> None:
        config = self._config
        while not self._images.stopped:
            for topic, msg in self._images.take(timeout=0.5).items():
                channel, kind = self._channel_of[topic]
                try:
                    if topic in self._palette_of:
                        encoded = encode_pixels(
                            colorize(label_array(msg), self._palettes[self._palette_of[topic]]),
                            kind, max_width=config.max_width)
                    else:
                        encoded = encode_image(msg, kind, max_width=config.max_width,
                                               jpeg_quality=config.jpeg_quality)
                except LWRefineNetError as error:
                    self._failed += 1
                    now = time.monotonic()
                    if now - self._last_error_log > 5.0:
                        self._last_error_log = now
                        _LOG.warning('cannot show a frame of %s: %s', topic, error)
                    continue
                stamp = msg.header.stamp
                channel.log(CompressedImage(
                    timestamp=_foxglove_time(stamp), frame_id=msg.header.frame_id,
                    data=encoded.data, format=encoded.format))
                self._count(topic)

    # ------------------------------------------------------------------ state

    def sent(self) -> dict[str, int]:
        """Messages logged per Foxglove topic so far (benchmarks, tests)."""
        return dict(self._sent)

    @property
    def failed(self) -> int:
        """Frames that could not be encoded (malformed or unsupported images)."""
        return self._failed

    @property
    def replaced(self) -> int:
        """Frames replaced by a newer one before the encoder got to them."""
        return self._images.replaced

    def subscribed_topics(self) -> list[str]:
        """ROS topics subscribed right now."""
        return [s.topic for s in self._sources if s.subscription is not None]

    def destroy_node(self) -> None:
        """Stop the encoder thread, then the node."""
        self._images.stop()
        self._worker.join(timeout=2.0)
        super().destroy_node()


def _palette(msg: Any) -> np.ndarray:
    """ClassMap message -> (K, 3) uint8 RGB indexed by class id (unlisted ids black)."""
    palette = np.zeros((max(msg.ids, default=-1) + 1, 3), np.uint8)
    for class_id, color in zip(msg.ids, msg.colors):
        palette[class_id] = [round(255 * min(1.0, max(0.0, v)))
                             for v in (color.r, color.g, color.b)]
    return palette


def _foxglove_time(stamp: Any) -> Timestamp:
    return Timestamp(int(stamp.sec), int(stamp.nanosec))


def serve(config: ViewConfig, ros_args: list[str] | None = None,
          on_ready: Callable[[ViewServer], None] | None = None) -> int:
    """Run the view until SIGINT/SIGTERM: bind the server first, then start ROS.

    Raises:
        ConfigError: The port is in use or the address cannot be bound (before ROS starts).
    """
    server = ViewServer(config)

    def build() -> ViewBridge:
        bridge = ViewBridge(server)
        if on_ready is not None:
            on_ready(server)
        return bridge

    try:
        run_until_shutdown(build, ros_args)
    finally:
        server.stop()
    return 0
