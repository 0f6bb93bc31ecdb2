"""Faults around a running node: it recovers every time and its counters stay consistent.

Engine exceptions (including a simulated CUDA out-of-memory), a camera that stops and comes
back, a stream that changes resolution or encoding, output subscribers that come and go.
"Recovers" means: the next good frame is processed and produces labels of the right size, and
received == processed + dropped_overwritten + dropped_too_old + failed.
"""

from __future__ import annotations

import time
from typing import Iterator

import pytest
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image

from lw_refinenet_ros.errors import EngineError

from . import harness


@pytest.fixture
def context(ros_context: object) -> Iterator[object]:
    yield ros_context


def _live(context: object, engine: harness.FakeEngine, **params: object) -> harness.LiveNode:
    node = harness.LiveNode(context, engine, params=dict(params))
    assert node.wait_matched(), 'the node did not subscribe to image'
    return node


def _cuda_oom() -> BaseException:
    import torch
    return torch.cuda.OutOfMemoryError(
        'CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 7.79 GiB total capacity)')


@pytest.mark.parametrize('error', [
    RuntimeError('boom'),
    EngineError('the engine failed on this frame'),
    ValueError('bad value inside the model'),
    'cuda_oom',
    RuntimeError('CUDA out of memory. Tried to allocate 512.00 MiB'),
    MemoryError(),
], ids=['runtime', 'engine_error', 'value', 'torch_cuda_oom', 'runtime_cuda_oom', 'memory'])
def test_an_engine_exception_is_counted_and_the_next_frame_processed(
        context: object, error: object) -> None:
    failure = _cuda_oom() if error == 'cuda_oom' else error
    engine = harness.FakeEngine(script={2: failure, 3: failure})
    node = _live(context, engine)
    try:
        node.send_good()  # call 1
        assert node.send_and_wait(harness.image_message(), 'failed')  # call 2 raises
        assert node.send_and_wait(harness.image_message(), 'failed')  # call 3 raises again
        labels = node.send_good(width=40, height=30)  # call 4: recovered
        assert (labels.width, labels.height) == (40, 30)
        counters = node.counters()
        assert counters['failed'] == 2 and counters['processed'] == 2, counters
        assert node.settled(), counters
    finally:
        node.close()


def test_engine_failing_for_a_long_stretch_then_recovering(context: object) -> None:
    """A device in trouble for many frames (e.g. repeated OOM) must not wedge the worker."""
    engine = harness.FakeEngine(script={n: RuntimeError('CUDA out of memory')
                                            for n in range(1, 21)})
    node = _live(context, engine)
    try:
        for _ in range(20):
            assert node.send_and_wait(harness.image_message(), 'failed'), node.counters()
        node.send_good()
        counters = node.counters()
        assert counters['failed'] == 20 and counters['processed'] == 1, counters
    finally:
        node.close()


def test_a_camera_that_stops_and_restarts(context: object) -> None:
    node = _live(context, harness.FakeEngine())
    try:
        for _ in range(3):
            node.send_good()
        # The camera process goes away (its publisher is destroyed) ...
        node.peer.destroy_publisher(node.image_pub)
        deadline = time.monotonic() + 0.5
        node.spin_until(lambda: time.monotonic() > deadline, 1.0)
        assert node.settled()
        # ... and comes back with a new publisher, best-effort like a camera driver this time.
        qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1,
                         reliability=ReliabilityPolicy.BEST_EFFORT)
        node.image_pub = node.peer.create_publisher(Image, 'image', qos)
        assert node.wait_matched()
        deadline = time.monotonic() + 10
        processed = node.counters()['processed']
        # Best-effort: keep sending until frames flow again (discovery of the new writer).
        while node.counters()['processed'] < processed + 3 and time.monotonic() < deadline:
            node.image_pub.publish(harness.image_message())
            node.spin_until(lambda: False, 0.05)
        assert node.counters()['processed'] >= processed + 3, node.counters()
        assert node.spin_until(node.settled, 5), node.counters()
    finally:
        node.close()


def test_resolution_and_encoding_switch_mid_stream(context: object) -> None:
    engine = harness.FakeEngine()
    node = _live(context, engine)
    try:
        sequence = [(32, 24, 'rgb8'), (64, 48, 'rgb8'), (17, 13, 'rgb8'), (64, 48, 'bgr8'),
                    (31, 7, 'bgr8'), (32, 24, 'rgb8')]
        for width, height, encoding in sequence:
            labels = node.send_good(width=width, height=height, encoding=encoding)
            assert (labels.width, labels.height) == (width, height)
        shapes = [call[0][:2] for call in engine.calls]
        assert shapes == [(h, w) for w, h, _ in sequence]
        orders = [call[1] for call in engine.calls]
        assert orders == ['bgr' if e == 'bgr8' else 'rgb' for _, _, e in sequence]
        counters = node.counters()
        assert counters['processed'] == len(sequence) and counters['failed'] == 0, counters
    finally:
        node.close()


def test_output_subscribers_appear_and_disappear(context: object) -> None:
    node = _live(context, harness.FakeEngine())
    try:
        node.send_good()
        for _ in range(2):
            node.subscribe('color')
            node.subscribe('overlay')
            assert node.spin_until(
                lambda: node.node.count_subscribers('segmentation/color') > 0, 5)
            count = len(node.received['color'])
            node.send_good()
            assert node.spin_until(lambda c=count: len(node.received['color']) > c, 5), \
                'no colour image while subscribed'
            node.unsubscribe('color')
            node.unsubscribe('overlay')
            assert node.spin_until(
                lambda: node.node.count_subscribers('segmentation/color') == 0, 5)
            node.send_good()
        counters = node.counters()
        assert counters['failed'] == 0 and node.settled(), counters
    finally:
        node.close()


def test_counters_stay_consistent_under_a_burst(context: object) -> None:
    """Frames faster than the engine: some overwritten, none lost from the books."""
    node = _live(context, harness.FakeEngine(delay_s=0.02))
    try:
        for _ in range(40):
            node.image_pub.publish(harness.image_message())
            node.executor.spin_once(timeout_sec=0.001)
        assert node.spin_until(node.settled, 10), node.counters()
        counters = node.counters()
        assert counters['received'] >= 1 and counters['failed'] == 0, counters
        node.send_good()
    finally:
        node.close()
