"""Live int8 in the running node with a fake stream and a fake int8 build: the stream never
waits for the calibration (frames keep being processed while the build is held on an event),
the worker switches between batches when the labels agree, and a candidate that disagrees is
refused with one WARN naming the figure while the node runs on. A user's checkpoint
calibrates on camera frames; the packaged model on the conveyor generator's frames, built
before any camera frame, and still judged on camera frames."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import pytest
from std_msgs.msg import Header

from lw_refinenet_ros.data.calibration import conveyor_calibration
from lw_refinenet_ros.engine.config import EngineConfig
from lw_refinenet_ros.palette import ClassMap
from lw_refinenet_ros.ros import live_int8
from lw_refinenet_ros.ros.conversions import array_to_image
from lw_refinenet_ros.ros.pipeline import LoadedModel
from lw_refinenet_ros.testing.fake_engine import FakeEngine, red_threshold_labels
from lw_refinenet_ros.testing.fake_node import NodeHarness

OPTIONS = {'live_int8.frames': 8, 'live_int8.check_frames': 3, 'live_int8.gather_s': 0.0,
           'max_frame_age_ms': 0.0, 'agreement_min': 0.9}
#: A user's checkpoint (the fake factory never opens it): int8 from camera frames.
USER_MODEL = {'model.weights': 'my_model.pt'}
CAMERA = (24, 32)  # (height, width) of the fake camera's frames


class FakeSegmenter:
    """A segmenter around a fake engine, on the CPU at fp32 (or the int8 candidate)."""

    def __init__(self, engine: FakeEngine, precision: str) -> None:
        self.engine = engine
        self.engine_config = EngineConfig(warmup_size=CAMERA)
        self.precision = precision
        self.name = f'fake via fake/{precision}'

    def describe(self) -> dict[str, Any]:
        return {'device': 'cpu', 'backend': 'fake', 'precision': self.precision,
                'int8_model': None}

    def segment_batch(self, images, orders, **kwargs: Any) -> list:
        return self.engine.infer_batch(images, orders, **kwargs)


def other_labels(image: np.ndarray, order: str) -> np.ndarray:
    """Never the current engine's label."""
    return ((red_threshold_labels(image, order).astype(np.int32) + 1) % 3).astype(np.uint8)


class Built(threading.Event):
    """Set when the fake build starts; holds what it was given."""

    calibration: Any = None
    what = ''


def start(ros_context: Any, monkeypatch: pytest.MonkeyPatch, candidate: FakeSegmenter,
          release: threading.Event, options: dict[str, Any] | None = None
          ) -> tuple[NodeHarness, Built]:
    built = Built()

    def build(segmenter, runtime, calibration, sample, *, what):
        built.calibration, built.what = calibration, what
        built.set()
        assert release.wait(120)
        return candidate

    monkeypatch.setattr(live_int8, 'build_candidate', build)
    monkeypatch.setattr(live_int8, 'int8_runtime', lambda: 'openvino')
    current = FakeSegmenter(FakeEngine(device='cpu'), 'fp32')
    factory = lambda config: LoadedModel(current.engine, ClassMap.default(3),  # noqa: E731
                                         current.name, current)
    harness = NodeHarness(ros_context, current.engine, factory=factory,
                          parameters={**OPTIONS, **(USER_MODEL if options is None else options)})
    return harness, built


def camera(harness: NodeHarness) -> Any:
    publisher = harness.publisher('image')
    count = [0]

    def publish() -> None:
        count[0] += 1
        image = np.zeros(CAMERA + (3,), np.uint8)
        image[:, :count[0] % 32] = (255, 0, 0)
        publisher.publish(array_to_image(image, Header(frame_id='camera'), 'rgb8'))
    return publish


def test_the_stream_keeps_going_and_switches_when_the_labels_agree(
        ros_context: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    release = threading.Event()
    candidate = FakeSegmenter(FakeEngine(label_fn=red_threshold_labels, device='cpu'), 'int8')
    harness, built = start(ros_context, monkeypatch, candidate, release)
    try:
        inference = harness.node.pipeline.inference
        publish = camera(harness)
        assert harness.spin_until(lambda: (publish(), built.is_set())[1], 60)
        assert built.what == 'camera frames' and len(built.calibration.frames) == 8
        # The build is held: frames are still processed, by the current engine.
        processed = harness.counters()['processed']
        assert harness.spin_until(lambda: (publish(), harness.counters()['processed']
                                           >= processed + 10)[1], 60)
        assert not candidate.engine.calls and 'calibrating int8' in inference.live_status
        release.set()
        assert harness.spin_until(lambda: (publish(), inference.engine_values()['model'] ==
                                           'fake via fake/int8')[1], 60)
        # Its 3 check frames, then the stream's frames.
        assert harness.spin_until(lambda: (publish(), len(candidate.engine.calls) >= 3 + 5)[1],
                                  60)
        assert inference.live_status.startswith('int8 calibrated on 8 camera frames: '
                                                '100.00 % of labels equal to fake/fp32')
    finally:
        release.set()
        harness.close()


def test_a_candidate_that_disagrees_is_refused_once_with_the_figure(
        ros_context: Any, monkeypatch: pytest.MonkeyPatch,
        capfd: pytest.CaptureFixture[str]) -> None:
    release = threading.Event()
    release.set()
    candidate = FakeSegmenter(FakeEngine(label_fn=other_labels, device='cpu'), 'int8')
    harness, _ = start(ros_context, monkeypatch, candidate, release)
    try:
        inference = harness.node.pipeline.inference
        publish = camera(harness)
        assert harness.spin_until(lambda: (publish(), 'not used' in inference.live_status)[1],
                                  60)
        processed = harness.counters()['processed']
        assert harness.spin_until(lambda: (publish(), harness.counters()['processed']
                                           >= processed + 5)[1], 60)
    finally:
        harness.close()
    assert inference.engine_values()['model'] == 'fake via fake/fp32'
    assert 'below agreement_min 90 %; running on fake/fp32' in inference.live_status
    warnings = [line for line in capfd.readouterr().err.splitlines()
                if '[WARN]' in line and 'int8 not used' in line]
    assert len(warnings) == 1
    assert '0.00 % of labels equal to fake/fp32 on 3 other camera frames' in warnings[0]


def test_the_packaged_model_builds_on_conveyor_frames_before_any_camera_frame(
        ros_context: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    release = threading.Event()
    candidate = FakeSegmenter(FakeEngine(label_fn=red_threshold_labels, device='cpu'), 'int8')
    harness, built = start(ros_context, monkeypatch, candidate, release, options={})
    try:
        inference = harness.node.pipeline.inference
        assert built.wait(60)  # not one camera frame published
        assert harness.counters()['processed'] == 0
        # The demo's int8 check calibrates on the same frames: one cache entry for both.
        assert built.calibration.identity == conveyor_calibration(CAMERA).identity
        assert built.what == 'conveyor frames'
        assert inference.live_status == 'calibrating int8 on conveyor frames (background)'
        release.set()
        publish = camera(harness)
        assert harness.spin_until(lambda: (publish(), inference.engine_values()['model'] ==
                                           'fake via fake/int8')[1], 60)
        assert len(candidate.engine.calls) >= 3  # judged on the camera's frames
        assert inference.live_status.startswith(
            'int8 calibrated on 32 conveyor frames: 100.00 % of labels equal to fake/fp32 on '
            '3 other camera frames (agreement_min 90 %)')
    finally:
        release.set()
        harness.close()


def test_the_packaged_models_int8_is_refused_below_the_gate_on_camera_frames(
        ros_context: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    release = threading.Event()
    release.set()
    candidate = FakeSegmenter(FakeEngine(label_fn=other_labels, device='cpu'), 'int8')
    harness, built = start(ros_context, monkeypatch, candidate, release, options={})
    try:
        inference = harness.node.pipeline.inference
        publish = camera(harness)
        assert harness.spin_until(lambda: (publish(), 'not used' in inference.live_status)[1],
                                  60)
    finally:
        harness.close()
    assert built.what == 'conveyor frames'
    assert inference.engine_values()['model'] == 'fake via fake/fp32'
    assert inference.live_status == ('int8 not used: 0.00 % of labels equal to fake/fp32 on 3 '
                                     'other camera frames, below agreement_min 90 %; running '
                                     'on fake/fp32')
