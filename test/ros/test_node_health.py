"""A node that stops working says so: the rate cap through the real worker thread, a worker
that dies, and /diagnostics levels over a failing and recovering camera."""

from __future__ import annotations

import time

import numpy as np
import pytest
from rclpy.parameter import Parameter
from sensor_msgs.msg import Image

from lw_refinenet_ros.ros.conversions import array_to_image
from lw_refinenet_ros.testing.fake_engine import FakeEngine
from lw_refinenet_ros.testing.fake_node import NodeHarness

CAMERA_HZ = 15.0


@pytest.fixture
def harness_factory(ros_context):
    made = []

    def make(*args, **kwargs) -> NodeHarness:
        harness = NodeHarness(ros_context, *args, **kwargs)
        harness.spin_period_s = 0.01
        made.append(harness)
        return harness
    yield make
    for harness in made:
        harness.close()


def frame(value: int = 200) -> Image:
    message = array_to_image(np.full((24, 32, 3), value, np.uint8), Image().header)
    now = time.time()
    message.header.stamp.sec, message.header.stamp.nanosec = int(now), int(now % 1 * 1e9)
    return message


class Camera:
    """Publishes ``make()`` at CAMERA_HZ while the harness spins (from its predicates)."""

    def __init__(self, harness: NodeHarness, make=frame, topic: str = 'image') -> None:
        self._publisher = harness.publisher(topic)
        self._make = make
        self._next = 0.0

    def tick(self) -> None:
        now = time.monotonic()
        if now >= self._next:
            self._publisher.publish(self._make())
            self._next = max(self._next + 1 / CAMERA_HZ, now - 1 / CAMERA_HZ)


def label_rate(harness: NodeHarness, camera: Camera, seconds: float) -> float:
    """Labels per second the node publishes while the camera runs for ``seconds``."""
    arrivals: list[float] = []
    harness.probe.create_subscription(Image, 'segmentation/labels',
                                      lambda _msg: arrivals.append(time.monotonic()), 50)
    # Let the subscription match and the first label through before measuring.
    assert harness.spin_until(lambda: (camera.tick(), len(arrivals) >= 2)[1], 20)
    start, count = time.monotonic(), len(arrivals)
    harness.spin_until(lambda: (camera.tick(), time.monotonic() - start >= seconds)[1],
                       seconds + 5)
    return (len(arrivals) - count) / (time.monotonic() - start)


@pytest.mark.slow
def test_the_rate_cap_holds_through_the_worker_thread_and_can_be_lifted(
        harness_factory) -> None:
    harness = harness_factory(FakeEngine(), parameters={'max_rate_hz': 5.0})
    camera = Camera(harness)
    assert 4.5 <= label_rate(harness, camera, 4.0) <= 5.5
    harness.node.set_parameters([Parameter('max_rate_hz', value=0.0)])
    assert label_rate(harness, camera, 3.0) > 7.0  # no cap: most of the camera's 15 Hz
    harness.node.set_parameters([Parameter('max_rate_hz', value=5.0)])
    assert 4.5 <= label_rate(harness, camera, 4.0) <= 5.5
    assert harness.node.pipeline.scheduler.worker_crash() is None
