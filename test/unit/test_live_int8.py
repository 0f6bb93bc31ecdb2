"""int8 from a stream's own frames (engine/live_calibration.py) with a fake stream and a fake
builder: it switches only at or above the gate, refuses below it with the figure, checks on
frames the calibration never saw, never makes the stream wait, and gives up cleanly on too few
frames or a failed build. With a ready calibration (the packaged model's generated frames) the
build starts before any frame, the stream's frames only check it, and a camera that needs
another network size gets a candidate built for its size."""

from __future__ import annotations

import os
import threading
import time
from typing import Any

import numpy as np

from lw_refinenet_ros.engine.live_calibration import (
    LIVE_INT8_PARAMETERS,
    LiveInt8,
    LiveInt8Settings,
    ReadyCalibration,
)
from lw_refinenet_ros.engine.quantize import Int8Calibration

SIZE = (12, 16)  # (height, width)


def frame(index: int) -> np.ndarray:
    """A frame whose pixels all hold its index (so a frame is recognised wherever it goes)."""
    return np.full(SIZE + (3,), index % 250, dtype=np.uint8)


def true_labels(image: np.ndarray) -> np.ndarray:
    """What the current engine says: class 1 everywhere."""
    return np.ones(image.shape[:2], dtype=np.uint8)


class Result:
    def __init__(self, labels: np.ndarray) -> None:
        self.labels = labels


class Candidate:
    """An int8 engine whose labels differ from the current engine's on ``wrong`` of the
    pixels; it records the frames it was asked to segment."""

    def __init__(self, wrong: float) -> None:
        self.wrong = wrong
        self.seen: list[int] = []

    def segment_batch(self, images, orders, **_: Any) -> list[Result]:
        results = []
        for image in images:
            self.seen.append(int(image[0, 0, 0]))
            labels = true_labels(image)
            flat = labels.reshape(-1)
            flat[:round(self.wrong * flat.size)] = 0
            results.append(Result(labels))
        return results


class Builder:
    """The fake int8 build: records its calibration; may wait for a release or fail."""

    def __init__(self, candidate: Candidate, *, release: threading.Event | None = None,
                 error: Exception | None = None) -> None:
        self.candidate = candidate
        self.release = release
        self.error = error
        self.calibration: Any = None
        self.sample: np.ndarray | None = None
        self.calls = 0
        self.started = threading.Event()

    def __call__(self, calibration: Any, sample: np.ndarray) -> Candidate:
        self.calibration, self.sample = calibration, sample
        self.calls += 1
        self.started.set()
        if self.release is not None:
            assert self.release.wait(60)
        if self.error is not None:
            raise self.error
        return self.candidate


def stream(live: LiveInt8, first: int, count: int) -> int:
    """Feed ``count`` frames as the node's worker does; returns how many were processed."""
    processed = 0
    for index in range(first, first + count):
        image = frame(index)
        live.observe([image], ['rgb'], [true_labels(image)])
        processed += 1
    return processed


def settings(**changes: Any) -> LiveInt8Settings:
    values = dict(frames=10, check_frames=4, gather_s=0.0, agreement_min=0.99)
    values.update(changes)
    return LiveInt8Settings(**values)


def finish(live: LiveInt8) -> None:
    assert live._thread is not None
    live._thread.join(60)
    assert not live._thread.is_alive()


def test_switches_when_the_labels_agree_at_or_above_the_gate() -> None:
    candidate = Candidate(wrong=0.0)
    live = LiveInt8(settings(), Builder(candidate), current='openvino/fp32',
                    low_priority=False)
    stream(live, 0, 10 + 4)
    finish(live)
    assert live.outcome == 'switched' and live.agreement == 1.0
    assert '100.00 % of labels equal to openvino/fp32 on 4 other camera frames' in live.status
    assert live.take() is candidate
    assert live.take() is None  # offered once


def test_refuses_below_the_gate_and_says_the_figure() -> None:
    live = LiveInt8(settings(agreement_min=0.9), Builder(Candidate(wrong=0.25)),
                    current='openvino/fp32', low_priority=False)
    stream(live, 0, 14)
    finish(live)
    assert live.outcome == 'refused' and live.take() is None
    assert live.agreement == 0.75
    assert '75.00 % of labels equal' in live.status and 'below agreement_min 90 %' in \
        live.status and 'running on openvino/fp32' in live.status


def test_checks_on_frames_the_calibration_never_saw() -> None:
    candidate = Candidate(wrong=0.0)
    builder = Builder(candidate)
    live = LiveInt8(settings(), builder, current='torch/fp32', low_priority=False)
    stream(live, 0, 30)
    finish(live)
    calibrated = {int(f[0, 0, 0]) for f in builder.calibration.frames}
    assert calibrated == set(range(10))
    assert candidate.seen == [10, 11, 12, 13]
    assert builder.calibration.source == '10 live camera frames'


def test_the_stream_never_waits_for_the_calibration() -> None:
    release = threading.Event()
    builder = Builder(Candidate(wrong=0.0), release=release)
    live = LiveInt8(settings(), builder, current='openvino/fp32', low_priority=False)
    stream(live, 0, 10)
    assert builder.started.wait(60)  # the build runs, and is held there
    # While it is blocked, the stream goes on: every frame comes back from observe().
    assert stream(live, 10, 500) == 500
    assert live.outcome is None and live.take() is None
    assert 'calibrating int8 on 10 camera frames' in live.status
    release.set()
    finish(live)
    assert live.outcome == 'switched' and live.take() is not None


def test_frames_are_spread_over_gather_s() -> None:
    now = [0.0]
    live = LiveInt8(settings(frames=10, gather_s=10.0), Builder(Candidate(0.0)),
                    current='openvino/fp32', clock=lambda: now[0], low_priority=False)
    for _ in range(50):  # 50 frames within 0.5 s: one every 1 s is taken
        stream(live, 0, 1)
        now[0] += 0.01
    assert live.status == 'gathering camera frames (1/10)'


def test_too_few_frames_gives_up_once_and_builds_nothing() -> None:
    now = [0.0]
    builder = Builder(Candidate(0.0))
    live = LiveInt8(settings(frames=50, gather_s=1.0), builder, current='openvino/bf16',
                    clock=lambda: now[0], low_priority=False)
    for index in range(4):  # a slow camera: 4 frames in 3 s
        stream(live, index, 1)
        now[0] += 1.0
    assert live.outcome == 'failed' and live._thread is None and builder.calibration is None
    assert 'only 3 camera frames in 2 s (at least 8 needed); running on openvino/bf16' in \
        live.status
    assert live.phase == 'done'
    stream(live, 10, 5)  # later frames change nothing
    assert live.outcome == 'failed' and builder.calibration is None


def test_a_failed_build_leaves_the_stream_on_its_precision() -> None:
    builder = Builder(Candidate(0.0), error=OSError(28, 'No space left on device'))
    live = LiveInt8(settings(), builder, current='onnxruntime/fp32', low_priority=False)
    stream(live, 0, 14)
    finish(live)
    assert live.outcome == 'failed' and live.take() is None
    assert 'calibrating on 10 camera frames failed' in live.status
    assert 'No space left on device' in live.status and 'onnxruntime/fp32' in live.status


def test_stop_ends_a_calibration_waiting_for_check_frames() -> None:
    live = LiveInt8(settings(check_frames=100), Builder(Candidate(0.0)),
                    current='openvino/fp32', low_priority=False)
    stream(live, 0, 12)
    live.stop(timeout=60)
    assert live._thread is not None and not live._thread.is_alive()
    assert live.take() is None


def test_the_options_are_declared_once_with_sane_defaults() -> None:
    from lw_refinenet_ros.config import PARAMETER_SPECS

    defaults = {spec.name: spec.default for spec in LIVE_INT8_PARAMETERS}
    assert defaults == {'live_int8.enabled': True, 'live_int8.frames': 200,
                        'live_int8.check_frames': 30, 'live_int8.gather_s': 60.0}
    for spec in LIVE_INT8_PARAMETERS:
        assert PARAMETER_SPECS[spec.name] is spec  # the node's table holds them unchanged


class Generated:
    """A ready calibration source: 8 generated frames at the size asked for; records sizes."""

    def __init__(self, error: Exception | None = None) -> None:
        self.sizes: list[tuple[int, int]] = []
        self.error = error

    def __call__(self, size: tuple[int, int]) -> Int8Calibration:
        self.sizes.append(size)
        if self.error is not None:
            raise self.error
        frames = [np.full(size + (3,), 200 + i, np.uint8) for i in range(8)]
        return Int8Calibration(frames, 'generated', identity=f'generated at {size}')


def ready(make: Generated, shape: tuple[int, int] = SIZE) -> ReadyCalibration:
    return ReadyCalibration(make=make, what='conveyor frames',
                            sample=lambda: np.zeros(shape + (3,), np.uint8))


def test_a_ready_calibration_builds_before_any_frame_and_checks_on_the_stream() -> None:
    release = threading.Event()
    candidate = Candidate(wrong=0.0)
    builder, make = Builder(candidate, release=release), Generated()
    live = LiveInt8(settings(), builder, current='openvino/fp32', low_priority=False,
                    ready=ready(make), ready_wait_s=0)
    assert builder.started.wait(60)  # no frame was observed
    assert make.sizes == [SIZE] and builder.calibration.identity == f'generated at {SIZE}'
    assert live.phase == 'checking' and 'calibrating int8 on conveyor frames' in live.status
    release.set()
    waiting = 'int8 calibrated on 8 conveyor frames; waiting for 4 other frames to check it'
    deadline = time.monotonic() + 60
    while live.status != waiting and time.monotonic() < deadline:
        time.sleep(0.01)
    assert live.status == waiting  # built, not one frame seen
    stream(live, 0, 4)  # the first 4 frames are the check frames: no gathering
    finish(live)
    assert candidate.seen == [0, 1, 2, 3]
    assert live.outcome == 'switched' and live.take() is candidate
    assert live.status.startswith('int8 calibrated on 8 conveyor frames: 100.00 % of labels '
                                  'equal to openvino/fp32 on 4 other camera frames')


def test_a_ready_calibration_is_refused_below_the_gate_with_the_figure() -> None:
    live = LiveInt8(settings(agreement_min=0.9), Builder(Candidate(wrong=0.5)),
                    current='openvino/fp32', low_priority=False, ready=ready(Generated()),
                    ready_wait_s=0)
    stream(live, 0, 4)
    finish(live)
    assert live.outcome == 'refused' and live.take() is None and live.agreement == 0.5
    assert '50.00 % of labels equal to openvino/fp32 on 4 other camera frames, below ' \
           'agreement_min 90 %; running on openvino/fp32' in live.status


def test_a_camera_of_another_network_size_gets_a_candidate_built_for_it() -> None:
    builder, make = Builder(Candidate(wrong=0.0)), Generated()
    live = LiveInt8(settings(), builder, current='openvino/fp32', low_priority=False,
                    ready=ready(make, shape=(30, 40)), ready_wait_s=0)
    stream(live, 0, 4)  # frames of SIZE, not the expected 30x40
    finish(live)
    assert make.sizes == [(30, 40), SIZE] and builder.calls == 2
    assert builder.sample.shape == SIZE + (3,)
    assert live.outcome == 'switched'


def test_a_ready_calibration_that_fails_leaves_the_stream_on_its_precision() -> None:
    builder = Builder(Candidate(wrong=0.0))
    live = LiveInt8(settings(), builder, current='openvino/fp32', low_priority=False,
                    ready=ready(Generated(error=OSError(28, 'No space left on device'))),
                    ready_wait_s=0)
    finish(live)
    assert live.outcome == 'failed' and builder.calls == 0 and live.phase == 'done'
    assert live.status == ('int8 not used: calibrating on conveyor frames failed ([Errno 28] '
                           'No space left on device); running on openvino/fp32')
    stream(live, 0, 10)  # the stream goes on; nothing more happens
    assert live.take() is None and live._checks == []


def test_the_build_runs_at_a_lower_priority_than_the_stream() -> None:
    """The stream's frames come first: the build's thread is niced (Linux: per thread)."""
    nice_in_build: list[int] = []

    class NiceBuilder(Builder):
        def __call__(self, calibration: Any, sample: np.ndarray) -> Candidate:
            nice_in_build.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))
            return super().__call__(calibration, sample)

    stream_nice = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    live = LiveInt8(settings(), NiceBuilder(Candidate(wrong=0.0)), current='openvino/fp32')
    stream(live, 0, 14)
    finish(live)
    assert nice_in_build == [min(19, stream_nice + 10)]
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == stream_nice


def test_a_ready_build_waits_for_the_streams_first_frame_so_start_up_keeps_the_cpu() -> None:
    builder = Builder(Candidate(wrong=0.0))
    live = LiveInt8(settings(), builder, current='openvino/fp32', low_priority=False,
                    ready=ready(Generated()), ready_wait_s=60)
    assert not builder.started.wait(0.5)  # no frame yet: nothing built
    stream(live, 0, 1)  # the first frame (its labels are the restart's first labels)
    assert builder.started.wait(60)
    live.stop(timeout=60)


def test_a_ready_build_starts_without_frames_once_the_wait_is_over() -> None:
    builder = Builder(Candidate(wrong=0.0))
    live = LiveInt8(settings(), builder, current='openvino/fp32', low_priority=False,
                    ready=ready(Generated()), ready_wait_s=0.2)
    assert builder.started.wait(60)  # not one frame observed
    live.stop(timeout=60)
