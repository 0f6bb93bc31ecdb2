"""A synthetic conveyor camera: a moving belt with parts, plus the exact ground truth.

The node publishes, with one shared header per frame (stamp = now, frame_id
``conveyor_camera_optical``):

- ``image`` (sensor_msgs/Image, rgb8): the rendered camera frame;
- ``ground_truth/labels`` (sensor_msgs/Image, mono8): the class id of every pixel, so the
  segmentation output can be scored live by pairing on the header stamp;
- ``ground_truth/instances`` (sensor_msgs/Image, mono16): the id of the part under every
  pixel (0 = no part), persistent while the part rides the belt, so objects and their track
  ids can be scored (each pass through the replay loop gives its parts new ids);
- ``ground_truth/objects`` (lw_refinenet_ros/SegmentedObjects): one entry per part in the
  frame: ``id`` its instance id, ``class_id``/``class_name``, ``pixel_count`` the pixels it
  would cover if nothing lay on it (so visible / unoccluded = how much of it is in view; the
  demo scores pickable parts with it), the other fields zero;
- ``camera_info`` (sensor_msgs/CameraInfo): a pinhole model (about 53 degrees horizontal FOV).

Why frames are cached: rendering one 320x240 frame costs about 14 ms of Python/OpenCV, close to
half a CPU core at 30 Hz, which the demo needs for inference on a 2-core machine. The node
renders ``loop_frames`` frames once (at startup with ``prerender``, about 2 s for 150 frames at
320x240, else live while publishing the first pass) and replays them from the cache, so
publishing costs a copy into ``array.array('B')`` (about 0.05 ms). The video therefore loops
every ``loop_frames / rate_hz`` seconds; set ``loop_frames`` to 0 to render every frame live
(an endless, never-repeating belt at the cost of the CPU time).

All publishers are reliable with depth :data:`QOS_DEPTH`: a reliable publisher matches both
best-effort subscribers (the segmentation node) and reliable ones (recorders).
"""

from __future__ import annotations

import array
import math
import signal
import threading
import time
from typing import Any

import numpy as np
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
import rclpy
from rclpy.duration import Duration
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rclpy.signals import SignalHandlerOptions
from sensor_msgs.msg import CameraInfo, Image

from lw_refinenet_ros.data.conveyor import CLASS_NAMES, ConveyorScene
from lw_refinenet_ros.heap import STREAM_MMAP_THRESHOLD, STREAM_TRIM_THRESHOLD, keep_freed_memory
from lw_refinenet_ros.msg import SegmentedObject, SegmentedObjects
from lw_refinenet_ros.ros.topic_names import CAMERA_INFO, IMAGE

FRAME_ID = 'conveyor_camera_optical'
#: Belt densities (mean parts per 320 px of belt) the camera accepts: the default model was
#: trained on 6 to 9; beyond 10 parts pile up deeper than on any training belt.
DENSITY_RANGE = (1.0, 10.0)
#: Reliable history of every publisher: a second of frames at 30 Hz, so that a recorder
#: starved of CPU for a moment (the demo's own process runs at a lower priority than the
#: node) acknowledges them late rather than losing them.
QOS_DEPTH = 30


def _int_range(low: int, high: int) -> list[IntegerRange]:
    return [IntegerRange(from_value=low, to_value=high, step=1)]


# name -> (default, description, extra descriptor fields); read once at startup.
PARAMETERS: dict[str, tuple[Any, str, dict[str, Any]]] = {
    'width': (320, 'Image width in pixels (320x240 keeps the demo real-time on 2 CPU cores)',
              {'integer_range': _int_range(16, 4096), 'read_only': True}),
    'height': (240, 'Image height in pixels',
               {'integer_range': _int_range(16, 4096), 'read_only': True}),
    'rate_hz': (30.0, 'Publishing rate (wall-clock timer)',
                {'floating_point_range': [FloatingPointRange(from_value=0.1, to_value=1000.0)],
                 'read_only': True}),
    'seed': (0, 'Scene seed: the same seed replays the same video',
             {'integer_range': _int_range(0, 2**31 - 1), 'read_only': True}),
    'loop_frames': (150, 'Frames rendered once and then replayed in a loop; 0 renders every '
                         'frame live (costs about 14 ms of CPU per 320x240 frame)',
                    {'integer_range': _int_range(0, 100000), 'read_only': True}),
    'prerender': (True, 'Render the loop at startup (no rendering cost while publishing)',
                  {'read_only': True}),
    'density': (6.0, f'Mean parts per 320 px of belt, {DENSITY_RANGE[0]:g} to '
                     f'{DENSITY_RANGE[1]:g} (8 is a crowded belt)',
                {'floating_point_range': [FloatingPointRange(
                    from_value=DENSITY_RANGE[0], to_value=DENSITY_RANGE[1])],
                 'read_only': True}),
    'belt_speed': (2.0, 'Belt speed in pixels per frame at 320x240 (scales with the size)',
                   {'floating_point_range': [FloatingPointRange(from_value=0.0, to_value=50.0)],
                    'read_only': True}),
    'wait_for_subscribers': (0, 'Publish nothing until image has this many subscribers (and '
                                'ground_truth/labels one): the demo uses it so the recorder '
                                'and the node see the belt from its first frame',
                             {'integer_range': _int_range(0, 100), 'read_only': True}),
    'frame_id': (FRAME_ID, 'frame_id of every published header', {'read_only': True}),
}


def _to_bytes_array(data: bytes) -> array.array:
    # array.array + frombytes is the fastest way to fill msg.data, and stays fast with
    # ROS_PYTHON_CHECK_FIELDS=1 (docs/architecture.md §7).
    buffer = array.array('B')
    buffer.frombytes(data)
    return buffer


def make_camera_info(width: int, height: int) -> CameraInfo:
    """A distortion-free pinhole model with fx = fy = width (about 53 degrees horizontal FOV)."""
    info = CameraInfo()
    info.width, info.height = width, height
    fx = fy = float(width)
    cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
    info.distortion_model = 'plumb_bob'
    info.d = [0.0] * 5
    info.k = [fx, 0.0, cx, 0.0, fy, cy, 0.0, 0.0, 1.0]
    info.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    info.p = [fx, 0.0, cx, 0.0, 0.0, fy, cy, 0.0, 0.0, 0.0, 1.0, 0.0]
    return info


class ConveyorCameraNode(Node):
    """Publishes the synthetic conveyor video, its ground truth and camera info.

    Args:
        node_name: ROS node name.
        **kwargs: Forwarded to ``rclpy.node.Node`` (e.g. ``context=`` in tests).
    """

    def __init__(self, node_name: str = 'conveyor_camera', **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        values = {}
        for name, (default, description, extra) in PARAMETERS.items():
            descriptor = ParameterDescriptor(description=description, **extra)
            values[name] = self.declare_parameter(name, default, descriptor).value
        self.width = int(values['width'])
        self.height = int(values['height'])
        self.rate_hz = float(values['rate_hz'])
        self.frame_id = str(values['frame_id'])
        self._loop_frames = int(values['loop_frames'])
        self._scene = ConveyorScene(int(values['seed']), (self.width, self.height),
                                    speed=float(values['belt_speed']),
                                    density=float(values['density']))
        self._cache: list[tuple[bytes, bytes, np.ndarray, dict[int, tuple[int, int]]]] = []
        self._id_stride = 0  # instance ids per loop pass (known once the loop is rendered)
        self._next = 0
        if self._loop_frames and values['prerender']:
            start = time.monotonic()
            while len(self._cache) < self._loop_frames:
                self._frame()
            self._next = 0
            self.get_logger().info(f'Rendered {self._loop_frames} frames in '
                                   f'{time.monotonic() - start:.1f} s')
        self._wait_for = int(values['wait_for_subscribers'])
        self.frames_published = 0

        qos = QoSProfile(depth=QOS_DEPTH, reliability=ReliabilityPolicy.RELIABLE)
        self._image_pub = self.create_publisher(Image, IMAGE, qos)
        self._truth_pub = self.create_publisher(Image, 'ground_truth/labels', qos)
        self._instances_pub = self.create_publisher(Image, 'ground_truth/instances', qos)
        self._parts_pub = self.create_publisher(SegmentedObjects, 'ground_truth/objects', qos)
        self._info_pub = self.create_publisher(CameraInfo, CAMERA_INFO, qos)
        self._info = make_camera_info(self.width, self.height)
        self._timer = self.create_timer(1.0 / self.rate_hz, self._on_timer)
        loop = (f'a {self._loop_frames}-frame loop' if self._loop_frames
                else 'rendered live (no loop)')
        self.get_logger().info(
            f'Conveyor camera {self.width}x{self.height} at {self.rate_hz:g} Hz, {loop}; '
            f'publishing image, ground_truth/labels, ground_truth/instances, '
            f'ground_truth/objects, camera_info')

    def _frame(self) -> tuple[bytes, bytes, np.ndarray, dict[int, tuple[int, int]]]:
        """Image and label bytes, instance ids and, by instance id, (class id, unoccluded
        pixels) of the next frame (cached once rendered).

        Replayed passes shift the instance ids: the parts of a new pass are new parts to a
        tracker (they jump back to where the loop started).
        """
        if self._loop_frames and len(self._cache) >= self._loop_frames:
            if not self._id_stride:
                self._id_stride = 1 + max(int(i.max()) for _, _, i, _ in self._cache)
            image, labels, instances, parts = self._cache[self._next % self._loop_frames]
            shift = (self._next // self._loop_frames) * self._id_stride % 60000
            if shift:
                instances = np.where(instances > 0, (instances.astype(np.int64) + shift - 1)
                                     % 65535 + 1, 0).astype(np.uint16)
                parts = {(i + shift - 1) % 65535 + 1: v for i, v in parts.items()}
            frame = (image, labels, instances, parts)
        else:
            image, labels = self._scene.next_frame()
            instances, areas = self._scene.instances_and_areas()
            classes = {p.instance_id: p.class_id for p in self._scene.parts}
            frame = (image.tobytes(), labels.tobytes(), instances,
                     {i: (classes[i], a) for i, a in areas.items() if a > 0})
            if self._loop_frames:
                self._cache.append(frame)
        self._next += 1
        return frame

    def _ready(self) -> bool:
        """Whether the expected subscribers have matched (always, without a wait)."""
        if not self._wait_for:
            return True
        if (self._image_pub.get_subscription_count() < self._wait_for
                or self._truth_pub.get_subscription_count() < 1):
            return False
        self.get_logger().info(f'{self._wait_for} subscribers matched: starting the belt')
        self._wait_for = 0
        return True

    def _on_timer(self) -> None:
        if not self._ready():
            return
        image_bytes, label_bytes, instances, part_areas = self._frame()
        header = self._info.header
        header.stamp = self.get_clock().now().to_msg()
        header.frame_id = self.frame_id
        image = Image(header=header, height=self.height, width=self.width, encoding='rgb8',
                      is_bigendian=0, step=self.width * 3)
        image.data = _to_bytes_array(image_bytes)
        truth = Image(header=header, height=self.height, width=self.width, encoding='mono8',
                      is_bigendian=0, step=self.width)
        truth.data = _to_bytes_array(label_bytes)
        parts = Image(header=header, height=self.height, width=self.width, encoding='mono16',
                      is_bigendian=0, step=self.width * 2)
        parts.data = _to_bytes_array(instances.astype('<u2', copy=False).tobytes())
        # Ground truth first: a scorer pairing by stamp then always has it when the
        # segmentation of the same frame arrives.
        self._truth_pub.publish(truth)
        self._instances_pub.publish(parts)
        self._parts_pub.publish(SegmentedObjects(header=header, objects=[
            SegmentedObject(id=int(i), class_id=int(c), class_name=CLASS_NAMES[c],
                            pixel_count=int(a)) for i, (c, a) in part_areas.items()]))
        self._image_pub.publish(image)
        self._info_pub.publish(self._info)
        self.frames_published += 1

    def flush(self, timeout_s: float = 1.0) -> bool:
        """Wait until reliable subscribers acknowledged every frame (call before exiting).

        Without it the last frame or two can vanish with the publisher when the process ends.
        """
        timeout = Duration(nanoseconds=int(timeout_s * 1e9))
        return all(pub.wait_for_all_acked(timeout)
                   for pub in (self._truth_pub, self._instances_pub, self._parts_pub,
                               self._image_pub, self._info_pub))

    @property
    def loop_seconds(self) -> float:
        """Length of the replayed loop in seconds (inf when rendering live)."""
        return self._loop_frames / self.rate_hz if self._loop_frames else math.inf


def main(args: list[str] | None = None) -> None:
    """Entry point of ``conveyor_camera_node``: publish until SIGINT/SIGTERM or shutdown.

    The signals only set a flag that the loop checks between callbacks. rclpy's default
    handling raises KeyboardInterrupt wherever the main thread is, possibly between publishing
    a frame and counting it, and the demo compares this count with the frames it recorded.
    """
    # Frame-sized messages reused, not faulted in per frame (heap.py).
    keep_freed_memory(STREAM_MMAP_THRESHOLD, STREAM_TRIM_THRESHOLD)
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    node = None
    try:
        node = ConveyorCameraNode()
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        while not stop.is_set() and rclpy.ok():
            executor.spin_once(timeout_sec=0.1)
    except ExternalShutdownException:
        pass
    finally:
        if node is not None:
            node.flush()
            name = node.get_name()
            node.destroy_node()
            # The demo reads this line from the log to report the published frame count.
            rclpy.logging.get_logger(name).info(f'published {node.frames_published} frames')
        rclpy.try_shutdown()


if __name__ == '__main__':
    main()
