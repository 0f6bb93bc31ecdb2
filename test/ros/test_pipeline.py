"""The production engine factory: an unavailable CUDA device stops start-up with the reason
unless ``device_fallback`` allows the CPU, which the node then says in its log."""

from __future__ import annotations

import pytest
from rclpy.parameter import Parameter

from lw_refinenet_ros.config import NodeConfig
from lw_refinenet_ros.errors import EngineError
from lw_refinenet_ros.ros.node import SegmentationNode
from lw_refinenet_ros.ros.pipeline import load_engine
from lw_refinenet_ros.testing.fake_engine import FakeEngine
from lw_refinenet_ros.testing.fake_node import fake_factory


def test_cuda_without_a_gpu_stops_start_up_naming_the_parameter(tmp_path) -> None:
    import torch
    if torch.cuda.is_available():
        pytest.skip('needs a machine without CUDA')
    from lw_refinenet_ros.model import build_model, save_checkpoint
    torch.manual_seed(0)
    weights = tmp_path / 'tiny_mbv2.pt'
    save_checkpoint(weights, build_model('mbv2', 3).eval(), arch='mbv2')
    with pytest.raises(EngineError, match='device_fallback:=true'):
        load_engine(NodeConfig.from_mapping({'model.weights': str(weights), 'device': 'cuda'}))


def test_a_fallback_to_the_cpu_is_logged_by_the_node(ros_context, capfd) -> None:
    engine = FakeEngine()
    engine.device = 'cpu'  # what InferenceEngine reports after falling back
    node = SegmentationNode(engine_factory=fake_factory(engine), context=ros_context,
                            parameter_overrides=[Parameter('device', value='cuda'),
                                                 Parameter('device_fallback', value=True)])
    try:
        assert 'running on cpu because device_fallback is true' in capfd.readouterr().err
    finally:
        node.destroy_node()
