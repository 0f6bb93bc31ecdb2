"""A stand-in for the segmentation node with the same topics, for testing the demo harness.

It segments with a colour rule instead of a model (dark grey -> belt, bright grey ->
background, colourful -> bolt), so the demo's recording, pairing, scoring and robot can be
tested without torch inference or the packaged model. Run as ``lw-refinenet demo --node-module
fake_segmentation_node`` with this folder on PYTHONPATH.
"""

from __future__ import annotations

import array
import os

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from lw_refinenet_ros.msg import ClassMap, ClassStatistics, SegmentationStats, SegmentedObjects
import numpy as np
import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image, RegionOfInterest
from std_msgs.msg import ColorRGBA

from lw_refinenet_ros.data.conveyor import CLASS_COLORS, CLASS_NAMES
from lw_refinenet_ros.objects.options import ObjectsConfig
from lw_refinenet_ros.objects.processor import ObjectProcessor
from lw_refinenet_ros.palette import overlay
from lw_refinenet_ros.ros.object_outputs import objects_message
from lw_refinenet_ros.stats import compute_class_stats


def _data(array_: np.ndarray) -> array.array:
    out = array.array('B')
    out.frombytes(np.ascontiguousarray(array_).tobytes())
    return out


class FakeSegmentationNode(Node):
    def __init__(self, **kwargs) -> None:
        super().__init__('lw_refinenet', **kwargs)
        self.declare_parameter('device', 'cpu')
        self.declare_parameter('max_frame_age_ms', 500.0)
        self.declare_parameter('model.weights', '')
        self.counts = {'received': 0, 'processed': 0, 'dropped_overwritten': 0,
                       'dropped_too_old': 0, 'failed': 0}
        latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self._map_pub = self.create_publisher(ClassMap, 'segmentation/class_map', latched)
        self._labels_pub = self.create_publisher(Image, 'segmentation/labels', 5)
        # FAKE_NODE_NO_OVERLAY=1: no overlay topic (the demo then composes its snapshots).
        self._overlay_pub = (None if os.environ.get('FAKE_NODE_NO_OVERLAY') == '1'
                             else self.create_publisher(Image, 'segmentation/overlay', 5))
        self._stats_pub = self.create_publisher(SegmentationStats, 'segmentation/stats', 5)
        # Objects from the colour rule's labels, with the pick line the demo sets, so the
        # robot has parts to pick.
        line = self.declare_parameter('objects.pick_line.position_px', -1.0).value
        self._objects = ObjectProcessor(ObjectsConfig.from_mapping(
            {'objects.pick_line.position_px': float(line)}), CLASS_NAMES)
        self._objects_pub = self.create_publisher(SegmentedObjects, 'segmentation/objects', 5)
        self._diag_pub = self.create_publisher(DiagnosticArray, '/diagnostics', 5)
        colors = [ColorRGBA(r=r / 255, g=g / 255, b=b / 255, a=1.0) for r, g, b in CLASS_COLORS]
        self._map_pub.publish(ClassMap(ids=list(range(len(CLASS_NAMES))), names=list(CLASS_NAMES),
                                       colors=colors, model='fake colour rule'))
        best_effort = QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT)
        self.create_subscription(Image, 'image', self._on_image, best_effort)
        self.create_timer(0.5, self._publish_diagnostics)

    def _on_image(self, msg: Image) -> None:
        self.counts['received'] += 1
        rgb = np.frombuffer(msg.data, np.uint8).reshape(msg.height, msg.width, 3)
        spread = rgb.max(axis=2).astype(np.int16) - rgb.min(axis=2)
        labels = np.where(spread > 40, 2, np.where(rgb.mean(axis=2) > 80, 0, 1)).astype(np.uint8)
        out = Image(header=msg.header, height=msg.height, width=msg.width, encoding='mono8',
                    step=msg.width, data=_data(labels))
        self._labels_pub.publish(out)
        if self._overlay_pub is not None:
            colored = overlay(rgb, labels, np.array(CLASS_COLORS, np.uint8), 0.5)
            self._overlay_pub.publish(Image(header=msg.header, height=msg.height,
                                            width=msg.width, encoding='rgb8',
                                            step=msg.width * 3, data=_data(colored)))
        stats = SegmentationStats(header=msg.header, height=msg.height, width=msg.width,
                                  num_classes=len(CLASS_NAMES))
        for s in compute_class_stats(labels, None, len(CLASS_NAMES)):
            x0, y0, x1, y1 = s.bbox
            stats.classes.append(ClassStatistics(
                class_id=s.class_id, class_name=CLASS_NAMES[s.class_id],
                pixel_count=s.pixel_count, area_fraction=s.area_fraction,
                mean_confidence=float('nan'),
                bbox=RegionOfInterest(x_offset=x0, y_offset=y0, width=x1 - x0 + 1,
                                      height=y1 - y0 + 1),
                centroid_x=s.centroid[0], centroid_y=s.centroid[1]))
        self._stats_pub.publish(stats)
        stamp = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
        frame = self._objects.process(labels, stamp)
        self._objects_pub.publish(objects_message(frame, msg.header, (msg.width, msg.height)))
        self.counts['processed'] += 1

    def _publish_diagnostics(self) -> None:
        name = self.get_fully_qualified_name()
        status = DiagnosticStatus(name=f'{name}: segmentation', hardware_id=name,
                                  values=[KeyValue(key=k, value=str(v))
                                          for k, v in self.counts.items()])
        self._diag_pub.publish(DiagnosticArray(status=[status]))


def main() -> None:
    rclpy.init()
    node = FakeSegmentationNode()
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
