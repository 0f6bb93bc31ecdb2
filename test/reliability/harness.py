"""A live SegmentationNode with the shared fake engine, a camera publisher and output probes.

Everything the reliability tests need from the node goes through this module, so the tests
read as scenarios; it builds on the shared harness (:mod:`lw_refinenet_ros.testing`).
"""

from __future__ import annotations

import time
from typing import Any

from sensor_msgs.msg import CompressedImage, Image

from lw_refinenet_ros.testing.fake_engine import FakeEngine
from lw_refinenet_ros.testing.fake_node import (
    COUNTERS,
    NodeHarness,
    node_counters,
    probe_qos,
    reliable_qos,
)

__all__ = ['COUNTERS', 'FakeEngine', 'LiveNode', 'image_message', 'node_counters']



def image_message(width: int = 32, height: int = 24, encoding: str = 'rgb8',
                  stamp_ns: int | None = None, value: int = 90) -> Image:
    channels = {'rgb8': 3, 'bgr8': 3, 'mono8': 1, 'rgba8': 4, 'bgra8': 4}[encoding]
    message = Image(height=height, width=width, encoding=encoding, step=width * channels)
    stamp = time.time_ns() if stamp_ns is None else stamp_ns
    message.header.stamp.sec, message.header.stamp.nanosec = divmod(stamp, 10**9)
    message.header.frame_id = 'test_camera'
    message.data = bytes([value % 256]) * (width * channels * height)
    return message


class LiveNode(NodeHarness):
    """The node under test with a camera-side probe (raw and compressed publishers) and
    output probes, driven as scenarios: send a frame, wait until the node has counted it."""

    def __init__(self, context: Any, engine: FakeEngine, params: dict[str, Any] | None = None,
                 outputs: tuple[str, ...] = ('labels', 'stats')) -> None:
        super().__init__(context, engine, parameters=params or {})
        self.peer = self.probe
        self.spin_period_s = 0.01
        self.image_pub = self.publisher('image', Image, reliable_qos())
        self.compressed_pub = self.publisher('image/compressed', CompressedImage, reliable_qos())
        for name in outputs:
            self.subscribe(name)

    def subscribe(self, name: str) -> list:
        """Record ``segmentation/<name>`` under ``received[name]``."""
        from lw_refinenet_ros.msg import SegmentationStats
        message_type = SegmentationStats if name == 'stats' else Image
        topic = f'segmentation/{name}'
        self.listen(topic, message_type, probe_qos())
        self.received[name] = self.received.pop(topic)
        return self.received[name]

    def unsubscribe(self, name: str) -> None:
        self.unlisten(f'segmentation/{name}')

    def wait_matched(self, timeout: float = 10.0) -> bool:
        return self.spin_until(lambda: self.image_pub.get_subscription_count() > 0, timeout)

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
