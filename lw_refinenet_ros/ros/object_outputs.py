"""Objects -> ``segmentation/objects`` (SegmentedObjects) and ``segmentation/markers`` (RViz).

One :class:`ObjectOutputs` per camera owns the two publishers and the camera's
:class:`~lw_refinenet_ros.objects.processor.ObjectProcessor` (tracker state). The pipeline's
worker calls :meth:`ObjectOutputs.process` after publishing the labels; nothing is computed
while nobody subscribes to either topic, except when the overlay wants the objects drawn.

Markers: with a usable belt calibration they sit where the parts are, in metres in the
camera frame (``header.frame_id``): a box outline on the belt, a sphere at the pick point,
the id above it. Without one they are drawn on a "pixel plane" (1 pixel = 1 mm, z = 0) in the
same frame, so RViz still shows the layout.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Sequence

from builtin_interfaces.msg import Duration
from geometry_msgs.msg import Point, Point32
import numpy as np
from std_msgs.msg import ColorRGBA
from visualization_msgs.msg import Marker, MarkerArray

from lw_refinenet_ros.msg import SegmentedObject, SegmentedObjects
from lw_refinenet_ros.objects.draw import draw_objects
from lw_refinenet_ros.objects.options import ObjectsConfig
from lw_refinenet_ros.objects.processor import ObjectFrame, ObjectProcessor
from lw_refinenet_ros.ros.conversions import stamp_seconds
from lw_refinenet_ros.ros.topics import OUTPUTS

PIXEL_PLANE_M_PER_PX = 1e-3
"""Marker scale without a belt calibration: one pixel is drawn as one millimetre."""


def objects_config(config: Any) -> ObjectsConfig:
    """The ``objects.*`` settings of a NodeConfig (its ``objects`` field; defaults without)."""
    objects = getattr(config, 'objects', None)
    return objects if isinstance(objects, ObjectsConfig) else ObjectsConfig.defaults()


def objects_message(frame: ObjectFrame, header: Any, size: tuple[int, int]) -> SegmentedObjects:
    """The SegmentedObjects message of one frame (``size`` is (width, height))."""
    msg = SegmentedObjects(header=header, width=int(size[0]), height=int(size[1]),
                           metric_valid=bool(frame.metric_valid),
                           processing_ms=float(frame.detect_ms + frame.track_ms))
    if frame.belt_velocity_px is not None:
        msg.belt_velocity_valid = True
        msg.belt_velocity_x, msg.belt_velocity_y = (float(v) for v in frame.belt_velocity_px)
    else:
        msg.belt_velocity_x = msg.belt_velocity_y = math.nan
    for index, report in enumerate(frame.objects, start=1):
        obj = report.object
        entry = SegmentedObject(
            id=report.track_id or index, class_id=int(obj.class_id),
            class_name=report.class_name, score=float(obj.score),
            pixel_count=int(obj.pixel_count), pick_x=float(obj.pick[0]),
            pick_y=float(obj.pick[1]), pick_clearance=float(obj.clearance),
            centroid_x=float(obj.centroid[0]), centroid_y=float(obj.centroid[1]),
            orientation=float(obj.orientation), major_axis_length=float(obj.major_length),
            minor_axis_length=float(obj.minor_length),
            touches_border=bool(obj.touches_border), tracked=report.track_id > 0,
            confirmed=bool(report.confirmed), age=float(report.age), hits=int(report.hits),
            velocity_x=float(report.velocity_px[0]), velocity_y=float(report.velocity_px[1]),
            metric_valid=bool(report.metric_valid),
            time_to_pick_line=float(report.time_to_pick_line))
        x, y, w, h = obj.bbox
        entry.bbox.x_offset, entry.bbox.y_offset = int(x), int(y)
        entry.bbox.width, entry.bbox.height = int(w), int(h)
        entry.contour.points = [Point32(x=float(px), y=float(py), z=0.0)
                                for px, py in obj.contour.tolist()]
        entry.position.x, entry.position.y, entry.position.z = report.position_m
        entry.velocity.x, entry.velocity.y, entry.velocity.z = report.velocity_m
        msg.objects.append(entry)
    return msg


def _color(rgb: Sequence[int], alpha: float = 1.0) -> ColorRGBA:
    return ColorRGBA(r=rgb[0] / 255.0, g=rgb[1] / 255.0, b=rgb[2] / 255.0, a=alpha)


def _points(frame: ObjectFrame, pixels: np.ndarray) -> np.ndarray:
    """Marker coordinates (N, 3) of pixels: on the belt, else on the pixel plane."""
    if frame.geometry is not None:
        belt = frame.geometry.project(pixels)
        if np.isfinite(belt).all():
            return belt
    flat = np.zeros((len(pixels), 3))
    flat[:, :2] = np.asarray(pixels, np.float64) * PIXEL_PLANE_M_PER_PX
    return flat


def markers_message(frame: ObjectFrame, header: Any, colors: np.ndarray,
                    lifetime_s: float = 0.5) -> MarkerArray:
    """RViz markers: DELETEALL, then per object a box outline, a pick sphere and its id."""
    out = MarkerArray()
    clear = Marker(header=header, action=Marker.DELETEALL)
    out.markers.append(clear)
    lifetime = Duration(sec=int(lifetime_s), nanosec=int((lifetime_s % 1.0) * 1e9))
    for index, report in enumerate(frame.objects, start=1):
        obj = report.object
        marker_id = report.track_id or index
        rgb = [int(c) for c in colors[obj.class_id % len(colors)]]
        x, y, w, h = obj.bbox
        corners = np.array([[x - 0.5, y - 0.5], [x + w - 0.5, y - 0.5],
                            [x + w - 0.5, y + h - 0.5], [x - 0.5, y + h - 0.5],
                            [x - 0.5, y - 0.5], [obj.pick[0], obj.pick[1]]])
        points = _points(frame, corners)
        size = float(np.linalg.norm(points[1] - points[0]) / max(w, 1))  # metres per pixel
        box = Marker(header=header, ns='boxes', id=marker_id, type=Marker.LINE_STRIP,
                     action=Marker.ADD, lifetime=lifetime, color=_color(rgb))
        box.pose.orientation.w = 1.0
        box.scale.x = max(size, 1e-4)
        box.points = [Point(x=float(p[0]), y=float(p[1]), z=float(p[2])) for p in points[:5]]
        pick = Marker(header=header, ns='picks', id=marker_id, type=Marker.SPHERE,
                      action=Marker.ADD, lifetime=lifetime, color=_color((255, 255, 255)))
        pick.pose.position = Point(x=float(points[5][0]), y=float(points[5][1]),
                                   z=float(points[5][2]))
        pick.pose.orientation.w = 1.0
        pick.scale.x = pick.scale.y = pick.scale.z = max(6.0 * size, 1e-4)
        label = Marker(header=header, ns='ids', id=marker_id, type=Marker.TEXT_VIEW_FACING,
                       action=Marker.ADD, lifetime=lifetime, color=_color(rgb))
        label.pose.position = Point(x=float(points[0][0]), y=float(points[0][1]),
                                    z=float(points[0][2]))
        label.pose.orientation.w = 1.0
        label.scale.z = max(10.0 * size, 1e-4)
        label.text = (f'{report.class_name} #{report.track_id}' if report.track_id
                      else report.class_name)
        out.markers.extend((box, pick, label))
    return out


class ObjectOutputs:
    """The objects and markers publishers of one camera, with its object processor.

    Args:
        node: The node to create publishers on.
        prefix: Camera topic prefix ('' or 'cam1/').
        config: ``objects.*`` settings.
        class_names: The model's class names.
        colors: (K, 3) uint8 class colours (markers).
        create_publisher: The node's publisher factory (a lifecycle node passes its managed
            one); defaults to ``node.create_publisher``.
    """

    def __init__(self, node: Any, prefix: str, config: ObjectsConfig,
                 class_names: Sequence[str], colors: np.ndarray,
                 create_publisher: Callable[..., Any] | None = None) -> None:
        create = create_publisher or node.create_publisher
        self._node = node
        self._colors = np.asarray(colors)
        self.objects_publisher, self.markers_publisher = (
            create(OUTPUTS[key].message_type, prefix + OUTPUTS[key].name, OUTPUTS[key].qos)
            for key in ('objects', 'markers'))
        self.processor = ObjectProcessor(config, class_names,
                                         on_warning=lambda text: node.get_logger().warning(text))
        self.last_frame: ObjectFrame | None = None

    def draw(self, rgb: np.ndarray) -> np.ndarray:
        """Draw the last processed frame's objects (ids, pick points) onto ``rgb``."""
        if self.last_frame is not None:
            rgb = np.ascontiguousarray(rgb)
            draw_objects(rgb, self.last_frame.objects, self._colors)
        return rgb

    @property
    def publishers(self) -> tuple[Any, Any]:
        """Both publishers (for teardown)."""
        return self.objects_publisher, self.markers_publisher

    def configure(self, config: ObjectsConfig) -> None:
        """Apply a runtime parameter change."""
        self.processor.configure(config)

    def wants(self) -> bool:
        """Objects are on and someone listens to objects or markers."""
        return self.processor.config.enabled and any(self.subscribed())

    def subscribed(self) -> tuple[bool, bool]:
        """Whether anyone listens to (objects, markers)."""
        try:
            return (self.objects_publisher.get_subscription_count() > 0,
                    self.markers_publisher.get_subscription_count() > 0)
        except Exception:  # noqa: BLE001 - rclpy's RCLError once the context is shut down
            return False, False

    def process(self, header: Any, labels: np.ndarray, confidence: np.ndarray | None,
                camera_info: Any = None, force: bool = False,
                image: np.ndarray | None = None,
                boundary: np.ndarray | None = None,
                network_size: tuple[int, int] | None = None) -> ObjectFrame | None:
        """Compute and publish this frame's objects if anyone wants them (or ``force``).

        ``camera_info`` (sensor_msgs/CameraInfo or None) gives the intrinsics for metres;
        ``force`` computes them for the overlay even when no one subscribes; ``image`` (the
        frame, any channel order) lets overlapping parts be split along their edges;
        ``boundary`` (``result.boundary`` of a model with the learned part-boundary output)
        splits same-class parts along its seams instead; ``network_size`` (the result's)
        lets the parts be found on the network's grid (``objects.detect_at``).

        Returns:
            The frame's objects (also kept in ``last_frame`` for the overlay), or None when
            nothing was computed.
        """
        want_objects, want_markers = self.subscribed()
        self.last_frame = None
        if not self.processor.config.enabled or not (want_objects or want_markers or force):
            return None
        stamp = stamp_seconds(header.stamp)
        camera_k = None if camera_info is None else list(camera_info.k)
        frame = self.processor.process(labels, stamp, confidence, camera_k, image, boundary,
                                       network_size)
        self.last_frame = frame
        if want_objects:
            size = (labels.shape[1], labels.shape[0])
            self.objects_publisher.publish(objects_message(frame, header, size))
        if want_markers:
            self.markers_publisher.publish(markers_message(frame, header, self._colors))
        return frame
