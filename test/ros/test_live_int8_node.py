"""The running node calibrates int8 on its own camera frames and switches to it (real
OpenVINO + NNCF, a user's checkpoint at 64x48: a copy of the packaged model's file, which the
node treats as any user's): the figure is in /diagnostics and ``describe()``, frames keep
flowing across the switch, and a restart finds the cached model instead of calibrating
again."""

from __future__ import annotations

from pathlib import Path
import re
import shutil
from typing import Any

from diagnostic_msgs.msg import DiagnosticArray
import pytest
from std_msgs.msg import Header

from lw_refinenet_ros.config import NodeConfig
from lw_refinenet_ros.data.conveyor import render_conveyor_frame
from lw_refinenet_ros.engine.live_calibration import LiveInt8
from lw_refinenet_ros.model.weights import DEFAULT_MODEL_PATH
from lw_refinenet_ros.ros.conversions import array_to_image
from lw_refinenet_ros.ros.inference import load_engine
from lw_refinenet_ros.ros.live_int8 import int8_runtime, live_int8_for
from lw_refinenet_ros.testing.fake_node import NodeHarness

WIDTH, HEIGHT = 64, 48


def engine_values(diagnostics: list[DiagnosticArray]) -> dict[str, str]:
    """The key-values of the newest engine status."""
    for array in reversed(diagnostics):
        for status in array.status:
            if status.name.endswith(': engine'):
                return {value.key: value.value for value in status.values}
    return {}


def test_the_node_switches_to_int8_from_its_camera_frames(
        ros_context: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert int8_runtime() == 'openvino'  # the project's environment installs OpenVINO + NNCF
    # The background build's lower priority is the unit tests' subject; here it must not
    # starve behind the other pytest worker's work on a 2-core machine.
    monkeypatch.setattr(LiveInt8, '_lower_priority', lambda self: None)
    weights = shutil.copyfile(DEFAULT_MODEL_PATH, tmp_path / 'my_model.pt')
    options = {'model.weights': str(weights), 'device': 'cpu', 'backend': 'openvino',
               'precision': 'auto',
               'warmup_size': f'{WIDTH}x{HEIGHT}', 'cache_dir': str(tmp_path / 'cache'),
               'agreement_min': 0.5, 'live_int8.frames': 8, 'live_int8.check_frames': 2,
               'live_int8.gather_s': 0.0, 'max_frame_age_ms': 0.0}
    harness = NodeHarness(ros_context, None, parameters=options, factory=load_engine)
    try:
        inference = harness.node.pipeline.inference
        assert inference.live_status == 'gathering camera frames (0/8)'
        labels = harness.listen('segmentation/labels')
        diagnostics = harness.listen('/diagnostics', DiagnosticArray)
        camera = harness.publisher('image')
        sent = [0]

        def publish() -> None:
            sent[0] += 1
            image = render_conveyor_frame(sent[0], (WIDTH, HEIGHT))[0]
            camera.publish(array_to_image(image, Header(frame_id='camera'), 'rgb8'))

        assert harness.spin_until(lambda: (publish(), 'int8' in inference.engine_values()[
            'model'])[1], timeout=600), inference.live_status
        status = inference.live_status
        assert status.startswith('int8 calibrated on 8 camera frames: ')
        # Judged against the start-up engine: fp32, or bf16 on a CPU with bf16 units.
        assert re.search(r'of labels equal to openvino/(fp32|bf16) on 2 other camera frames',
                         status), status
        engine = inference.engine_values()
        assert engine['model'].endswith('via openvino/int8')
        assert inference._loaded.segmenter.describe()['int8_live'] == status
        # Frames keep flowing through the int8 engine, and /diagnostics carries the figure.
        count = len(labels)
        assert harness.spin_until(lambda: (publish(), len(labels) >= count + 3 and
                                           engine_values(diagnostics).get('int8_live')
                                           == status)[1], timeout=60)
    finally:
        harness.close()
    # The next start with the same settings finds the cached int8 model: no calibration.
    restarted = load_engine(NodeConfig.from_mapping(options))
    live, reason = live_int8_for(NodeConfig.from_mapping(options), restarted.segmenter)
    assert live is None and 'int8 model was cached' in reason, reason
    assert restarted.segmenter.describe()['int8_model'].startswith('openvino')
    # Warmed up at another size, the start-up does not see it; the first camera frames do,
    # and the cached model is checked and used without calibrating again.
    other = NodeConfig.from_mapping({**options, 'warmup_size': '32x24'})
    segmenter = load_engine(other).segmenter
    live, _ = live_int8_for(other, segmenter)
    assert live is not None
    for index in range(8 + 2):
        image = render_conveyor_frame(100 + index, (WIDTH, HEIGHT))[0]
        (result,) = segmenter.segment_batch([image], ['rgb'])
        live.observe([image], ['rgb'], [result.labels])
    live._thread.join(600)
    assert live.status.startswith(f'int8 cached earlier for {WIDTH}x{HEIGHT}: '), live.status
    assert live.take().describe()['precision'] == 'int8'
