"""A model that carries itself, and what to label next, in the running node.

- A checkpoint with a model card (class names, colours, the size it was trained at) runs in
  the node with no other setting: the node publishes its class names and runs the network at
  the trained scale (``max_side`` 0, ``model.trained_scale`` on), while ``max_side`` set by
  the user or ``model.trained_scale: false`` win.
- ``uncertain.save_dir``: the node keeps ``uncertain.count`` frames and writes them with
  ``uncertain.json`` when it stops.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from lw_refinenet_ros.msg import ClassMap as ClassMapMsg
import numpy as np
import pytest
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from std_msgs.msg import Header

from lw_refinenet_ros.data.conveyor import render_conveyor_frame
from lw_refinenet_ros.ros.conversions import array_to_image, image_to_array
from lw_refinenet_ros.ros.inference import load_engine
from lw_refinenet_ros.testing.fake_engine import FakeEngine
from lw_refinenet_ros.testing.fake_node import NodeHarness

WIDTH, HEIGHT = 64, 48
NAMES = ('floor', 'belt', 'gear', 'bolt', 'nut', 'washer', 'spring')


@pytest.fixture(scope='module')
def carded_checkpoint(tmp_path_factory: Any) -> Path:
    """The packaged model saved again with its own names, colours and a 32x24 training size."""
    from lw_refinenet_ros.model import load_model
    from lw_refinenet_ros.model.checkpoint import model_card, save_checkpoint

    model, info = load_model(None)
    names = NAMES[:info.num_classes] + tuple(
        f'part_{i}' for i in range(len(NAMES), info.num_classes))
    colors = [(10 * i, 200 - 10 * i, 7 * i) for i in range(info.num_classes)]
    path = tmp_path_factory.mktemp('card') / 'best.pt'
    save_checkpoint(path, model, arch=info.arch, class_names=names, colors=colors,
                    metadata=model_card(input_size=(32, 24)))
    return path


def run_node(ros_context: Any, parameters: dict[str, Any]) -> tuple[Any, list, list]:
    """Start the node on the production factory, send frames until labels and the class map
    arrived; returns the engine's description, the class maps and the labels."""
    options = {'device': 'cpu', 'backend': 'torch', 'precision': 'fp32',
               'warmup_size': f'{WIDTH}x{HEIGHT}', **parameters}
    harness = NodeHarness(ros_context, None, parameters=options, factory=load_engine)
    try:
        latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        class_maps = harness.listen('segmentation/class_map', ClassMapMsg, latched)
        labels = harness.listen('segmentation/labels')
        camera = harness.publisher('image')
        image = render_conveyor_frame(2, (WIDTH, HEIGHT), augment=False)[0]

        def publish() -> bool:
            camera.publish(array_to_image(image, Header(frame_id='camera'), 'rgb8'))
            return bool(labels and class_maps)

        assert harness.spin_until(publish, timeout=120)
        described = harness.node.pipeline.inference.engine_values()
        return harness.node.pipeline.inference._loaded.engine.describe(), class_maps, \
            labels + [described]
    finally:
        harness.close()


def test_a_checkpoint_with_a_model_card_runs_as_it_was_trained(
        ros_context: Any, carded_checkpoint: Path) -> None:
    described, class_maps, labels = run_node(ros_context,
                                             {'model.weights': str(carded_checkpoint)})
    assert tuple(class_maps[0].names)[:len(NAMES)] == NAMES
    assert (class_maps[0].colors[2].r, class_maps[0].colors[2].g) == \
        pytest.approx((20 / 255, 180 / 255))
    assert described['max_side'] == 32  # the trained 32x24, not the camera's 64x48
    assert image_to_array(labels[0]).shape == (HEIGHT, WIDTH)  # labels at camera size
    assert labels[-1]['model'].startswith('mbv2:best.pt')


@pytest.mark.parametrize('setting,expected', [({'max_side': 48}, 48),
                                              ({'model.trained_scale': False}, 0)])
def test_the_users_scale_wins(ros_context: Any, carded_checkpoint: Path,
                              setting: dict[str, Any], expected: int) -> None:
    described, _, _ = run_node(ros_context, {'model.weights': str(carded_checkpoint),
                                             **setting})
    assert described['max_side'] == expected


def test_the_node_keeps_the_least_confident_frames(ros_context: Any, tmp_path: Path) -> None:
    folder = tmp_path / 'next_round'
    harness = NodeHarness(ros_context, FakeEngine(), parameters={
        'uncertain.save_dir': str(folder), 'uncertain.count': 2})
    try:
        labels = harness.listen('segmentation/labels')
        camera = harness.publisher('image')
        sent = [0]

        def publish() -> bool:
            sent[0] += 1
            header = Header(frame_id='camera', stamp=harness.probe.get_clock().now().to_msg())
            image = np.full((HEIGHT, WIDTH, 3), sent[0] % 250, np.uint8)
            camera.publish(array_to_image(image, header, 'rgb8'))
            return len(labels) >= 4

        assert harness.spin_until(publish, timeout=60)
    finally:
        harness.close()  # stopping the node writes the set
    report = json.loads((folder / 'uncertain.json').read_text())
    assert report['frames_seen'] >= 4 and len(report['kept']) == 2
    for entry in report['kept']:
        assert (folder / entry['image']).is_file()
        assert entry['image'].startswith('camera_') and entry['mean_confidence'] == 0.75
