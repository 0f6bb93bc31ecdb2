"""A live SegmentationNode with an injected engine, a camera publisher and output probes.

Everything the reliability tests need from the node goes through this module, so the tests
read as scenarios and the node's API is touched in one place.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable

import numpy as np
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CompressedImage, Image

COUNTERS = ('received', 'processed', 'dropped_overwritten', 'dropped_too_old', 'failed',
            'pending')


class ScriptedEngine:
    """Engine double: valid results, or the exception a script says, per call number.

    ``script`` maps a 1-based call number to an exception instance (raised on that call);
    ``fail_when`` is an optional predicate on the image. Thread-safe call log.
    """

    def __init__(self, num_classes: int = 3, script: dict[int, BaseException] | None = None,
                 fail_when: Callable[[np.ndarray], BaseException | None] | None = None,
                 device: str = 'cpu', delay_s: float = 0.0) -> None:
        self.delay_s = delay_s
        self.num_classes = num_classes
        self.device = device
        self.script = dict(script or {})
        self.fail_when = fail_when
        self.calls: list[tuple[tuple[int, ...], str]] = []
        self._lock = threading.Lock()

    def __call__(self, image: np.ndarray, color_order: str = 'rgb', *,
                 want_confidence: bool = True, want_stats: bool = True) -> Any:
        from lw_refinenet_ros.engine import SegmentationResult
        from lw_refinenet_ros.stats import compute_class_stats
        with self._lock:
            self.calls.append((tuple(image.shape), color_order))
            number = len(self.calls)
        error = self.script.get(number)
        if error is None and self.fail_when is not None:
            error = self.fail_when(image)
        if error is not None:
            raise error
        if self.delay_s:
            time.sleep(self.delay_s)
        height, width = image.shape[:2]
        labels = np.zeros((height, width), np.uint8)
        labels[:, width // 2:] = 1
        confidence = np.full((height, width), 0.75, np.float32) if want_confidence else None
        stats = compute_class_stats(labels, confidence, self.num_classes) if want_stats else None
        return SegmentationResult(labels=labels, confidence=confidence, stats=stats,
                                  timings={'preprocess': 0.0, 'forward': 0.0,
                                           'postprocess': 0.0, 'total': 0.0},
                                  network_size=(height, width))

    def infer_batch(self, images: Any, color_orders: Any = 'rgb', **kwargs: Any) -> list:
        orders = [color_orders] * len(images) if isinstance(color_orders, str) else color_orders
        return [self(image, order, **kwargs) for image, order in zip(images, orders)]


def image_message(width: int = 32, height: int = 24, encoding: str = 'rgb8',
                  stamp_ns: int | None = None, value: int = 90) -> Image:
    channels = {'rgb8': 3, 'bgr8': 3, 'mono8': 1, 'rgba8': 4, 'bgra8': 4}[encoding]
    message = Image(height=height, width=width, encoding=encoding, step=width * channels)
    stamp = time.time_ns() if stamp_ns is None else stamp_ns
    message.header.stamp.sec, message.header.stamp.nanosec = divmod(stamp, 10**9)
    message.header.frame_id = 'test_camera'
    message.data = bytes([value % 256]) * (width * channels * height)
    return message


class LiveNode:
    """The node under test, a camera-side node and output probes on one executor."""

    def __init__(self, context: Any, engine: Any, params: dict[str, Any] | None = None,
                 outputs: tuple[str, ...] = ('labels', 'stats')) -> None:
        from lw_refinenet_ros.msg import SegmentationStats

        from lw_refinenet_ros.palette import ClassMap
        from lw_refinenet_ros.ros.node import SegmentationNode
        from lw_refinenet_ros.ros.pipeline import LoadedModel
        self.context = context
        self.engine = engine

        def factory(_config: Any) -> LoadedModel:
            return LoadedModel(engine, ClassMap.default(engine.num_classes), 'scripted engine')

        overrides = [Parameter(name, value=value) for name, value in (params or {}).items()]
        self.node = SegmentationNode(context=context, engine_factory=factory,
                                     parameter_overrides=overrides)
        self.peer = rclpy.create_node('reliability_peer', context=context)
        self.executor = SingleThreadedExecutor(context=context)
        self.executor.add_node(self.node)
        self.executor.add_node(self.peer)
        reliable = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10,
                              reliability=ReliabilityPolicy.RELIABLE)
        self.image_pub = self.peer.create_publisher(Image, 'image', reliable)
        self.compressed_pub = self.peer.create_publisher(CompressedImage, 'image/compressed',
                                                         reliable)
        self.received: dict[str, list] = {name: [] for name in outputs}
        probe_qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=50,
                               reliability=ReliabilityPolicy.BEST_EFFORT)
        types = {'labels': Image, 'color': Image, 'overlay': Image,
                 'confidence': Image, 'stats': SegmentationStats}
        self._subs = {}
        for name in outputs:
            self.subscribe(name, types[name], probe_qos)

    def subscribe(self, name: str, msg_type: Any = Image, qos: Any = None) -> Any:
        # Best-effort with a deep queue matches reliable and best-effort publishers alike.
        qos = qos or QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=50,
                                reliability=ReliabilityPolicy.BEST_EFFORT)
        self.received.setdefault(name, [])
        sub = self.peer.create_subscription(msg_type, f'segmentation/{name}',
                                            self.received[name].append, qos)
        self._subs[name] = sub
        return sub

    def unsubscribe(self, name: str) -> None:
        self.peer.destroy_subscription(self._subs.pop(name))

    def counters(self) -> dict[str, int]:
        """The node's frame counters (the same numbers /diagnostics reports)."""
        return node_counters(self.node)

    def spin_until(self, predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() >= deadline:
                return predicate()
            self.executor.spin_once(timeout_sec=0.01)
        return True

    def wait_matched(self, timeout: float = 10.0) -> bool:
        return self.spin_until(lambda: self.image_pub.get_subscription_count() > 0, timeout)

    def settled(self) -> bool:
        """Every received frame is accounted for (nothing in the mailbox or in flight)."""
        c = self.counters()
        return c['pending'] == 0 and c['received'] == (
            c['processed'] + c['dropped_overwritten'] + c['dropped_too_old'] + c['failed'])

    def send_and_wait(self, message: Any, counter: str, timeout: float = 5.0) -> bool:
        """Publish one message and spin until ``counter`` grew by one and nothing is pending."""
        before = self.counters()[counter]
        publisher = self.compressed_pub if isinstance(message, CompressedImage) \
            else self.image_pub
        publisher.publish(message)
        return self.spin_until(lambda: self.counters()[counter] > before and self.settled(),
                               timeout)

    def send_good(self, timeout: float = 10.0, compressed: bytes | None = None,
                  **kwargs: Any) -> Image:
        """A valid frame must be processed and produce labels with its stamp.

        With ``compressed`` (PNG/JPEG bytes) the frame is a CompressedImage.
        """
        message = image_message(**kwargs)
        if compressed is not None:
            message = CompressedImage(header=message.header, format='png')
            message.data = compressed
        stamp = (message.header.stamp.sec, message.header.stamp.nanosec)
        ok = self.send_and_wait(message, 'processed', timeout)
        assert ok, f'good frame not processed; counters {self.counters()}'
        assert self.spin_until(lambda: any(
            (m.header.stamp.sec, m.header.stamp.nanosec) == stamp
            for m in self.received['labels']), timeout), 'no labels for the good frame'
        return next(m for m in self.received['labels']
                    if (m.header.stamp.sec, m.header.stamp.nanosec) == stamp)

    def close(self) -> None:
        self.executor.shutdown(timeout_sec=1.0)
        self.node.destroy_node()
        self.peer.destroy_node()


def node_counters(node: Any) -> dict[str, int]:
    """The node's FrameCounters snapshot as a dict (the numbers /diagnostics reports)."""
    snapshot = node.counters()
    return {name: int(getattr(snapshot, name)) for name in COUNTERS}
