"""The demo's monitor node: records every demo topic and scores the node's output live.

It subscribes (raw CDR, QoS copied from the publishers) to every camera and node topic, writes
them to ``demo.mcap``, and on the way:

- measures latency as (arrival of ``segmentation/labels``) - (camera header stamp);
- pairs ``segmentation/labels`` with ``ground_truth/labels`` of the same stamp and accumulates a
  confusion matrix (live mIoU, :mod:`lw_refinenet_ros.demo.scoring`);
- saves evenly spaced overlay PNGs;
- keeps the node's latest ``/diagnostics`` status (received/processed/dropped/failed counts).
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable

import cv2
from diagnostic_msgs.msg import DiagnosticArray
import numpy as np
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rclpy.serialization import deserialize_message
from sensor_msgs.msg import Image

from lw_refinenet_ros.data.conveyor import CLASS_COLORS, CLASS_NAMES
from lw_refinenet_ros.demo.object_scoring import (
    ObjectStampScorer,
    full_areas_from_message,
    objects_from_message,
)
from lw_refinenet_ros.demo.recorder import McapWriter, TopicRecorder
from lw_refinenet_ros.demo.scoring import StampPairingScorer, number, remember
from lw_refinenet_ros.msg import ClassMap, SegmentedObjects
from lw_refinenet_ros.palette import overlay
from lw_refinenet_ros.ros.conversions import image_to_array
from lw_refinenet_ros.ros.topic_names import (
    CAMERA_INFO,
    CLASS_MAP,
    COLOR,
    CONFIDENCE,
    DIAGNOSTICS,
    IMAGE,
    LABELS,
    MARKERS,
    OBJECTS,
    OVERLAY,
    STATS,
)

NODE_NAME = 'lw_refinenet'
NODE_TOPICS = (LABELS, COLOR, OVERLAY, CONFIDENCE, STATS, CLASS_MAP, OBJECTS, MARKERS,
               DIAGNOSTICS)
CAMERA_TOPICS = {CAMERA_INFO: 'sensor_msgs/msg/CameraInfo',
                 'ground_truth/labels': 'sensor_msgs/msg/Image',
                 'ground_truth/instances': 'sensor_msgs/msg/Image',
                 'ground_truth/objects': 'lw_refinenet_ros/msg/SegmentedObjects',
                 IMAGE: 'sensor_msgs/msg/Image'}


def stamp_ns(stamp: Any) -> int:
    """A ``builtin_interfaces/Time`` as integer nanoseconds (the pairing key)."""
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def image_array(msg: Image) -> np.ndarray:
    """A copy of an image's pixels as (H, W) or (H, W, 3), bgr8 turned to RGB (the node's
    decoder, :func:`~lw_refinenet_ros.ros.conversions.image_to_array`: padded rows, mono16)."""
    array = image_to_array(msg)
    if msg.encoding == 'bgr8':
        array = array[..., ::-1]
    return array.copy()


class DemoMonitor(Node):
    """Records every demo topic and scores the node's output against the ground truth.

    Args:
        writer: MCAP writer for the recording.
        out_dir: Where overlay PNGs go (scheduled by :meth:`start_window`).
        **kwargs: Forwarded to ``rclpy.node.Node``.
    """

    def __init__(self, writer: McapWriter, out_dir: Path, **kwargs: Any) -> None:
        super().__init__('demo_monitor', **kwargs)
        self.out_dir = out_dir
        # The node's outputs are subscribed with its QoS as they appear; the camera topics
        # only once the node's labels are matched (see subscribe_camera).
        self.recorder = TopicRecorder(self, writer, NODE_TOPICS, on_message=self._on_message)
        self.recorder.poll()
        self.create_timer(0.25, self.recorder.poll)
        self.class_names: tuple[str, ...] = CLASS_NAMES
        self.colors = np.array(CLASS_COLORS, np.uint8)
        self.scorer = StampPairingScorer(len(CLASS_NAMES))
        self.objects = ObjectStampScorer(len(CLASS_NAMES))  # parts: docs/objects.md
        self.latencies_ms: list[float] = []
        self.image_count = 0
        self.labels_count = 0
        self.first_image_ns: int | None = None
        self.diagnostics: dict[str, str] = {}
        self.snapshot_paths: list[Path] = []
        self._snapshot_times: list[int] = []
        self._images: OrderedDict[int, np.ndarray] = OrderedDict()
        self._overlay_topic = self.resolve_topic_name(OVERLAY)
        self._node_fqn = f'{self.get_namespace().rstrip("/")}/{NODE_NAME}'
        self._handlers: dict[str, Callable[[bytes, int], None]] = {
            self.resolve_topic_name(name): handler for name, handler in (
                (IMAGE, self._on_image), ('ground_truth/labels', self._on_truth),
                (LABELS, self._on_labels),
                (OVERLAY, self._on_overlay),
                (CLASS_MAP, self._on_class_map),
                ('ground_truth/instances', self._on_instances),
                ('ground_truth/objects', self._on_parts),
                (OBJECTS, self._on_objects),
                (DIAGNOSTICS, self._on_diagnostics))}

    def start_window(self, start_ns: int, duration_s: float, snapshots: int) -> None:
        """Schedule ``snapshots`` overlay PNGs evenly over the run starting at ``start_ns``."""
        step = duration_s * 1e9 / max(snapshots, 1)
        self._snapshot_times = [int(start_ns + (k + 0.5) * step) for k in range(snapshots)]

    def node_is_up(self) -> bool:
        """The segmentation node subscribes to ``image`` and its labels reach the recorder."""
        subscribers = self.get_subscriptions_info_by_topic(self.resolve_topic_name('image'))
        labels = self.recorder.subscriptions.get(self.resolve_topic_name(LABELS))
        return (any(info.node_name == NODE_NAME and info.node_namespace == self.get_namespace()
                    for info in subscribers)
                and labels is not None and labels.get_publisher_count() > 0)

    def node_counts_settled(self) -> bool:
        """The latest diagnostics were sent after the last frame: processed == labels seen."""
        return number(self.diagnostics.get('processed')) == self.labels_count > 0

    def subscribe_camera(self) -> None:
        """Record the camera topics (its QoS is known: reliable, volatile), image last.

        The camera holds the belt until the node and this ``image`` subscription are matched,
        so creating it only now (after :meth:`node_is_up`) means no label image is published
        before the recorder receives labels: nothing is missed at the start.
        """
        # Five seconds of frames at 30 Hz: this process runs at a lower priority than the
        # node, and a busy machine can leave its executor behind for a while.
        qos = QoSProfile(depth=150, reliability=ReliabilityPolicy.RELIABLE)
        for topic, type_name in CAMERA_TOPICS.items():
            self.recorder.subscribe(topic, type_name, qos)

    # ------------------------------------------------------------------ message handlers

    def _on_message(self, topic: str, data: bytes, now_ns: int) -> None:
        handler = self._handlers.get(topic)
        if handler is not None:
            handler(data, now_ns)

    def _on_image(self, data: bytes, now_ns: int) -> None:
        self.image_count += 1
        if self.first_image_ns is None:
            self.first_image_ns = now_ns
        if self._snapshot_times and self._overlay_topic not in self.recorder.subscribed:
            # No overlay from the node (yet): keep recent frames to compose snapshots from.
            msg = deserialize_message(data, Image)
            remember(self._images, stamp_ns(msg.header.stamp), image_array(msg))

    def _on_truth(self, data: bytes, now_ns: int) -> None:
        msg = deserialize_message(data, Image)
        truth = image_array(msg)
        self.scorer.add_truth(stamp_ns(msg.header.stamp), truth)
        self.objects.add('truth', stamp_ns(msg.header.stamp), truth)

    def _on_instances(self, data: bytes, now_ns: int) -> None:
        msg = deserialize_message(data, Image)
        self.objects.add('instances', stamp_ns(msg.header.stamp), image_array(msg))

    def _on_parts(self, data: bytes, now_ns: int) -> None:
        msg = deserialize_message(data, SegmentedObjects)
        self.objects.add('parts', stamp_ns(msg.header.stamp), full_areas_from_message(msg))

    def _on_objects(self, data: bytes, now_ns: int) -> None:
        msg = deserialize_message(data, SegmentedObjects)
        self.objects.add('objects', stamp_ns(msg.header.stamp), objects_from_message(msg))

    def _on_labels(self, data: bytes, now_ns: int) -> None:
        msg = deserialize_message(data, Image)
        stamp = stamp_ns(msg.header.stamp)
        self.labels_count += 1
        self.latencies_ms.append((now_ns - stamp) / 1e6)
        predicted = image_array(msg)
        self.scorer.add_labels(stamp, predicted)
        self.objects.add('labels', stamp, predicted)
        if self._snapshot_due(now_ns) and self._overlay_topic not in self.recorder.subscribed:
            # The node publishes no overlay: compose one from the camera frame.
            image = self._images.get(stamp)
            if image is not None and image.shape[:2] == predicted.shape:
                self._save_snapshot(overlay(image, predicted, self._palette(), 0.5))

    def _on_overlay(self, data: bytes, now_ns: int) -> None:
        if self._snapshot_due(now_ns):
            self._save_snapshot(image_array(deserialize_message(data, Image)))

    def _on_class_map(self, data: bytes, now_ns: int) -> None:
        msg = deserialize_message(data, ClassMap)
        size = max(msg.ids, default=-1) + 1
        names = [str(i) for i in range(size)]
        colors = np.zeros((size, 3), np.uint8)
        for class_id, name, color in zip(msg.ids, msg.names, msg.colors):
            names[class_id] = name
            colors[class_id] = [round(255 * color.r), round(255 * color.g), round(255 * color.b)]
        self.class_names = tuple(names)
        self.colors = colors
        self.scorer.grow(size)

    def _on_diagnostics(self, data: bytes, now_ns: int) -> None:
        for status in deserialize_message(data, DiagnosticArray).status:
            values = {kv.key: kv.value for kv in status.values}
            # Only our node: /diagnostics is global, other nodes in the domain publish too.
            if status.name.startswith(self._node_fqn):
                self.diagnostics = values

    # ------------------------------------------------------------------ helpers

    def _palette(self) -> np.ndarray:
        return self.colors if len(self.colors) >= len(CLASS_COLORS) else np.array(
            CLASS_COLORS, np.uint8)

    def _snapshot_due(self, now_ns: int) -> bool:
        return bool(self._snapshot_times) and now_ns >= self._snapshot_times[0]

    def _save_snapshot(self, rgb: np.ndarray) -> None:
        self._snapshot_times.pop(0)
        path = self.out_dir / f'overlay_{len(self.snapshot_paths):02d}.png'
        cv2.imwrite(str(path), np.ascontiguousarray(rgb[..., ::-1]))
        self.snapshot_paths.append(path)
        if not self._snapshot_times:
            self._images.clear()
