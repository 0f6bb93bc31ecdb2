"""A node that stops working says so: the rate cap through the real worker thread, a worker
that dies, and /diagnostics levels over a failing and recovering camera."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
import threading
import time

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
import numpy as np
import pytest
from rclpy.parameter import Parameter
from sensor_msgs.msg import Image

from lw_refinenet_ros.errors import EngineError
from lw_refinenet_ros.ros.conversions import array_to_image
from lw_refinenet_ros.ros.health import NodeFailure
from lw_refinenet_ros.testing.fake_engine import FakeEngine
from lw_refinenet_ros.testing.fake_node import NodeHarness

CAMERA_HZ = 15.0
ROOT = pathlib.Path(__file__).resolve().parents[2]


class WorkerKiller(BaseException):
    """Not an Exception: nothing on the frame path catches it, as with a bug in the worker
    loop itself, so the worker thread dies."""


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


def bad_frame() -> Image:
    message = frame()
    message.encoding = 'no_such_encoding'  # fails to decode: the frame counts as failed
    return message


def statuses(diagnostics: list, part: str = 'segmentation') -> list[DiagnosticStatus]:
    return [status for array in list(diagnostics) for status in array.status
            if part in status.name]


def level_seen(diagnostics: list, level: int, after: int = 0, part: str = 'segmentation'
               ) -> DiagnosticStatus | None:
    """The first status of ``part`` at ``level`` among the arrays from index ``after`` on."""
    return next((status for status in statuses(diagnostics[after:], part)
                 if status.level == level), None)


def test_a_worker_that_dies_is_an_error_within_5_s_and_is_restarted(harness_factory,
                                                                       capfd) -> None:
    killed = threading.Event()

    def kill_once() -> BaseException | None:
        if killed.is_set():
            return None
        killed.set()
        return WorkerKiller('killed on purpose')
    harness = harness_factory(FakeEngine(fail=kill_once),
                              parameters={'diagnostics_period_s': 0.5})
    camera = Camera(harness)
    diagnostics = harness.listen('/diagnostics', DiagnosticArray)
    labels = harness.listen('segmentation/labels')
    assert harness.spin_until(lambda: (camera.tick(), killed.is_set())[1], 20)
    after = len(diagnostics)
    assert harness.spin_until(
        lambda: (camera.tick(), level_seen(diagnostics, DiagnosticStatus.ERROR, after))[1]
        is not None, 5.0), 'no ERROR on /diagnostics within 5 s of the worker dying'
    error = level_seen(diagnostics, DiagnosticStatus.ERROR, after)
    assert 'worker thread died (WorkerKiller: killed on purpose)' in error.message
    # Restarted: segmenting again.
    count = len(labels)
    assert harness.spin_until(lambda: (camera.tick(), len(labels) >= count + 5)[1], 20)
    log = capfd.readouterr().err
    assert '[ERROR]' in log and 'frame worker thread died: WorkerKiller: killed on purpose' \
        in log, log[-2000:]


def test_a_worker_that_keeps_dying_stops_the_node(harness_factory) -> None:
    harness = harness_factory(FakeEngine(fail=lambda: WorkerKiller('always')),
                              parameters={'diagnostics_period_s': 0.2})
    camera = Camera(harness)
    with pytest.raises(NodeFailure, match='died 4 times'):
        harness.spin_until(lambda: (camera.tick(), False)[1], 60)


DYING_NODE = """
import sys
from lw_refinenet_ros.ros.node import SegmentationNode, run_node
from lw_refinenet_ros.testing.fake_engine import FakeEngine
from lw_refinenet_ros.testing.fake_node import fake_factory

class WorkerKiller(BaseException):
    pass

engine = FakeEngine(fail=lambda: WorkerKiller('always'))
sys.exit(run_node(lambda: SegmentationNode(engine_factory=fake_factory(engine)), sys.argv))
"""


@pytest.mark.slow
def test_a_node_process_whose_worker_keeps_dying_exits_non_zero(ros_context) -> None:
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    namespace = f'/dying_{os.getpid()}'
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        p for p in (str(ROOT), os.environ.get('PYTHONPATH')) if p))
    process = subprocess.Popen(
        [sys.executable, '-c', DYING_NODE, '--ros-args', '-r', f'__ns:={namespace}',
         '-p', 'diagnostics_period_s:=0.2'],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    probe = rclpy.create_node('dying_probe', context=ros_context)
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(probe)
    try:
        camera = probe.create_publisher(Image, f'{namespace}/image', 10)
        deadline = time.monotonic() + 120
        while process.poll() is None and time.monotonic() < deadline:
            camera.publish(frame())
            executor.spin_once(timeout_sec=1 / CAMERA_HZ)
        output = process.communicate(timeout=30)[0]
        assert process.returncode not in (0, None), output[-3000:]
        assert '[FATAL]' in output and 'died 4 times' in output, output[-3000:]
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
        executor.shutdown()
        probe.destroy_node()


@pytest.mark.slow
def test_a_camera_failing_every_frame_is_an_error_and_good_frames_end_it(
        harness_factory) -> None:
    harness = harness_factory(FakeEngine(), parameters={'diagnostics_period_s': 0.5})
    good = Camera(harness)
    diagnostics = harness.listen('/diagnostics', DiagnosticArray)
    labels = harness.listen('segmentation/labels')
    assert harness.spin_until(lambda: (good.tick(), len(labels) >= 3)[1], 20)
    bad = Camera(harness, bad_frame)
    after = len(diagnostics)
    assert harness.spin_until(
        lambda: (bad.tick(), level_seen(diagnostics, DiagnosticStatus.ERROR, after))[1]
        is not None, 10.0), 'a camera failing every frame did not reach ERROR within 10 s'
    levels = [s.level for s in statuses(diagnostics[after:])]
    assert levels[:1] != [DiagnosticStatus.ERROR] and DiagnosticStatus.WARN in levels
    assert 'every frame failed' in level_seen(diagnostics, DiagnosticStatus.ERROR,
                                              after).message
    recovered = len(diagnostics)

    def below_error() -> bool:
        good.tick()
        return any(s.level < DiagnosticStatus.ERROR for s in statuses(diagnostics[recovered:]))
    assert harness.spin_until(below_error, 6.0), 'still ERROR 6 s after good frames resumed'
    assert harness.spin_until(
        lambda: (good.tick(), level_seen(diagnostics, DiagnosticStatus.OK, recovered))[1]
        is not None, 10.0)


@pytest.mark.slow
def test_occasional_bad_frames_are_a_warning_not_an_error(harness_factory) -> None:
    harness = harness_factory(FakeEngine(), parameters={'diagnostics_period_s': 0.5})
    sent = [0]

    def mostly_good() -> Image:
        sent[0] += 1
        return bad_frame() if sent[0] % 6 == 0 else frame()
    camera = Camera(harness, mostly_good)
    diagnostics = harness.listen('/diagnostics', DiagnosticArray)
    assert harness.spin_until(lambda: (camera.tick(), len(diagnostics) >= 12)[1], 30)
    levels = {s.level for s in statuses(diagnostics)}
    assert DiagnosticStatus.WARN in levels and DiagnosticStatus.ERROR not in levels


@pytest.mark.slow
def test_a_failing_engine_is_an_error_in_its_own_status(harness_factory) -> None:
    failing = threading.Event()
    engine = FakeEngine(fail=lambda: EngineError('device lost') if failing.is_set() else None)
    harness = harness_factory(engine, parameters={'diagnostics_period_s': 0.5})
    camera = Camera(harness)
    diagnostics = harness.listen('/diagnostics', DiagnosticArray)
    assert harness.spin_until(
        lambda: (camera.tick(), level_seen(diagnostics, DiagnosticStatus.OK, 0, 'engine'))[1]
        is not None, 20)
    failing.set()
    after = len(diagnostics)
    assert harness.spin_until(lambda: (camera.tick(), level_seen(
        diagnostics, DiagnosticStatus.ERROR, after, 'engine'))[1] is not None, 10.0)
    assert 'every batch failed' in level_seen(diagnostics, DiagnosticStatus.ERROR, after,
                                              'engine').message
    failing.clear()
    after = len(diagnostics)
    assert harness.spin_until(lambda: (camera.tick(), level_seen(
        diagnostics, DiagnosticStatus.OK, after, 'engine'))[1] is not None, 6.0)


@pytest.mark.slow
def test_frames_arriving_while_nothing_is_processed_is_an_error(harness_factory) -> None:
    gate = threading.Event()
    gate.set()
    engine = FakeEngine(fail=lambda: (gate.wait(), None)[1])  # a hung inference
    harness = harness_factory(engine, parameters={'diagnostics_period_s': 0.5})
    camera = Camera(harness)
    diagnostics = harness.listen('/diagnostics', DiagnosticArray)
    labels = harness.listen('segmentation/labels')
    try:
        assert harness.spin_until(lambda: (camera.tick(), len(labels) >= 5)[1], 20)
        gate.clear()
        after = len(diagnostics)
        assert harness.spin_until(lambda: (camera.tick(), level_seen(
            diagnostics, DiagnosticStatus.ERROR, after))[1] is not None, 15.0)
        assert 'no frame processed for' in level_seen(diagnostics, DiagnosticStatus.ERROR,
                                                      after).message
        gate.set()
        after = len(diagnostics)
        assert harness.spin_until(lambda: (camera.tick(), level_seen(
            diagnostics, DiagnosticStatus.OK, after))[1] is not None, 10.0)
    finally:
        gate.set()


def test_an_engine_running_on_a_fallback_is_a_warning(harness_factory) -> None:
    engine = FakeEngine()
    engine.reason = 'torch/fp32 (fallback: openvino: not installed)'  # as select.py says it
    harness = harness_factory(engine, parameters={'diagnostics_period_s': 0.2})
    diagnostics = harness.listen('/diagnostics', DiagnosticArray)
    assert harness.spin_until(lambda: bool(statuses(diagnostics, 'engine')), 10)
    status = statuses(diagnostics, 'engine')[-1]
    assert status.level == DiagnosticStatus.WARN
    assert status.message == 'running a fallback: torch/fp32 (fallback: openvino: not installed)'
