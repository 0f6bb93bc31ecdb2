"""The packaged model's int8 in the running node (real OpenVINO + NNCF at 64x48): it is built
on the conveyor generator's frames before any camera frame arrives, judged on camera frames,
switched to; the cache entry is the one the demo's int8 check builds and looks for (same
calibration identity, so neither builds it again), and a restart finds it without
calibrating. Which start-up verdicts still let the node judge a cached int8 on camera frames
is checked with described engines."""

from __future__ import annotations

import json
from pathlib import Path
import re
from typing import Any

import numpy as np
import pytest
from std_msgs.msg import Header

from lw_refinenet_ros.config import NodeConfig
from lw_refinenet_ros.data.calibration import conveyor_calibration
from lw_refinenet_ros.data.conveyor import render_conveyor_frame
from lw_refinenet_ros.engine import quantize
from lw_refinenet_ros.engine.config import EngineConfig
from lw_refinenet_ros.engine.live_calibration import LiveInt8, LiveInt8Settings
from lw_refinenet_ros.ros import live_int8
from lw_refinenet_ros.ros.conversions import array_to_image
from lw_refinenet_ros.ros.inference import load_engine
from lw_refinenet_ros.ros.live_int8 import build_candidate, conveyor_ready, why_not
from lw_refinenet_ros.segmenter import Segmenter
from lw_refinenet_ros.testing.fake_node import NodeHarness

WIDTH, HEIGHT = 64, 48


def no_calibration(*args: Any, **kwargs: Any) -> None:
    raise AssertionError('int8 was calibrated again although it is cached')


def test_the_packaged_model_switches_to_its_conveyor_int8_shared_with_the_demo(
        ros_context: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The background build's lower priority is the unit tests' subject; here it must not
    # starve behind the other pytest worker's work on a 2-core machine.
    monkeypatch.setattr(LiveInt8, '_lower_priority', lambda self: None)
    cache = tmp_path / 'cache'
    options = {'device': 'cpu', 'backend': 'openvino', 'precision': 'auto',
               'warmup_size': f'{WIDTH}x{HEIGHT}', 'cache_dir': str(cache),
               'agreement_min': 0.5, 'live_int8.check_frames': 2,
               'live_int8.gather_s': 0.0, 'max_frame_age_ms': 0.0}
    harness = NodeHarness(ros_context, None, parameters=options, factory=load_engine)
    try:
        inference = harness.node.pipeline.inference
        assert inference.live_status == 'calibrating int8 on conveyor frames (background)'
        # Built without a single camera frame; then it waits for camera frames to judge it.
        live = inference._live
        assert harness.spin_until(lambda: 'waiting' in live.status or
                                  'not used' in live.status, timeout=600)
        assert live.status == ('int8 calibrated on 32 conveyor frames; waiting for 2 other '
                               'frames to check it')
        assert harness.counters()['processed'] == 0
        assert inference.engine_values()['int8_live'] == live.status  # /diagnostics, no frame yet
        camera = harness.publisher('image')
        sent = [0]

        def publish() -> None:
            sent[0] += 1
            image = render_conveyor_frame(sent[0], (WIDTH, HEIGHT))[0]
            camera.publish(array_to_image(image, Header(frame_id='camera'), 'rgb8'))

        assert harness.spin_until(lambda: (publish(), 'int8' in inference.engine_values()[
            'model'])[1], timeout=120), inference.live_status
        status = inference.live_status
        assert status.startswith('int8 calibrated on 32 conveyor frames: ')
        # Judged against the start-up engine: fp32, or bf16 on a CPU with bf16 units.
        assert re.search(r'of labels equal to openvino/(fp32|bf16) on 2 other camera frames',
                         status), status
        assert inference._loaded.segmenter.describe()['int8_live'] == status
    finally:
        harness.close()

    # The demo's int8 check (demo/int8_check.py) calibrates on conveyor_calibration at the
    # network's size: that exact key is in the cache, so its build is a hit.
    monkeypatch.setattr(quantize, 'quantize_batches', no_calibration)
    size = (HEIGHT, WIDTH)  # below the packaged model's max_side: the network's size
    demo_calibration = conveyor_calibration(size)
    config = NodeConfig.from_mapping(options)
    segmenter = load_engine(config).segmenter
    entry = quantize.prepare_int8(segmenter.model, demo_calibration, size, cache)
    parts = json.loads((entry / 'manifest.json').read_text())['parts']
    assert parts['calibration'] == demo_calibration.identity
    demo = Segmenter.load(None, engine=EngineConfig(
        device='cpu', backend='openvino', precision='auto', cache_dir=str(cache),
        warmup_size=size), calibration=conveyor_calibration, trained_scale=True)
    assert demo.describe()['int8_model'].startswith('openvino: ')
    int8_entries = [path for path in (cache / 'openvino').glob('*/manifest.json')
                    if json.loads(path.read_text())['parts'].get('precision') == 'int8']
    assert len(int8_entries) == 1  # one model for the node and the demo

    # The next start: found in the cache, judged on camera frames, no calibration.
    live = LiveInt8(LiveInt8Settings(check_frames=2, gather_s=0.0, agreement_min=0.5),
                    lambda calibration, sample: build_candidate(
                        segmenter, 'openvino', calibration, sample, what='conveyor frames'),
                    current='openvino/fp32', low_priority=False,
                    ready=conveyor_ready(segmenter))
    for index in range(2):
        image = render_conveyor_frame(200 + index, (WIDTH, HEIGHT))[0]
        (result,) = segmenter.segment_batch([image], ['rgb'])
        live.observe([image], ['rgb'], [result.labels])
    live._thread.join(600)
    assert live.status.startswith(f'int8 cached earlier for {WIDTH}x{HEIGHT}: '), live.status
    assert live.take().describe()['precision'] == 'int8'


class Described:
    """A segmenter that only describes itself (what why_not reads)."""

    def __init__(self, **described: Any) -> None:
        self.engine = object()
        self.described = {'device': 'cpu', 'backend': 'openvino', 'precision': 'fp32',
                          'int8_model': None, 'selection_ms': {}, **described}

    def describe(self) -> dict[str, Any]:
        return self.described


def test_a_cached_int8_judged_at_start_up_is_judged_again_only_for_the_packaged_model(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(live_int8, 'int8_runtime', lambda: 'openvino')
    packaged = NodeConfig.from_mapping({})
    user = NodeConfig.from_mapping({'model.weights': 'my_model.pt'})
    cached = Described(int8_model='openvino: abc',
                       selection_ms={'openvino/fp32': 20.0, 'openvino/int8': 12.0})
    # The start-up's verdict came from one synthetic frame: camera frames judge again.
    assert why_not(packaged, cached) is None
    assert 'int8 model was cached and judged at start-up' in why_not(user, cached)
    # Timed no faster at start-up: a switch would cost frames, whatever the labels.
    slower = Described(int8_model='openvino: abc',
                       selection_ms={'openvino/fp32': 20.0, 'openvino/int8': 21.5})
    assert why_not(packaged, slower) == ('off (openvino/int8 was timed at start-up at 21.5 ms '
                                         'against 20.0 ms for openvino/fp32: not faster on '
                                         'this CPU)')
    assert why_not(packaged, Described(precision='int8')) == 'off (already running int8)'
    assert why_not(packaged, Described()) is None


def test_the_conveyor_calibration_is_made_for_the_engines_warm_up_size() -> None:
    class Warmed:
        engine_config = EngineConfig(warmup_size=(HEIGHT, WIDTH))

    ready = conveyor_ready(Warmed())
    sample = ready.sample()
    assert ready.what == 'conveyor frames' and sample.shape == (HEIGHT, WIDTH, 3)
    assert sample.dtype == np.uint8
    made = ready.make((HEIGHT, WIDTH))
    assert made.identity == conveyor_calibration((HEIGHT, WIDTH)).identity
    assert len(made.frames) == 32
