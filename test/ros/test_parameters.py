"""Parameters through a real rclpy: descriptors from the one table, YAML files applied with
--params-file, badly typed values refused at start-up with the reason."""

from __future__ import annotations

import pathlib
import time

import pytest
from rcl_interfaces.msg import ParameterType
import rclpy
import yaml

from lw_refinenet_ros.config import PARAMETERS, NodeConfig
from lw_refinenet_ros.errors import ConfigError
from lw_refinenet_ros.ros.node import SegmentationNode, main
from lw_refinenet_ros.testing.fake_engine import FakeEngine
from lw_refinenet_ros.testing.fake_node import fake_factory

ROOT = pathlib.Path(__file__).resolve().parents[2]
SHIPPED = ROOT / 'config' / 'lw_refinenet.yaml'


@pytest.fixture
def context_with_args():
    """rclpy contexts initialised with command-line arguments, shut down afterwards."""
    made = []

    def make(*args: str):
        context = rclpy.Context()
        rclpy.init(context=context, args=['node', '--ros-args', *args])
        made.append(context)
        return context
    yield make
    for context in made:
        context.try_shutdown()


def make_node(context) -> SegmentationNode:
    return SegmentationNode(engine_factory=fake_factory(FakeEngine()), context=context)


def test_the_shipped_yaml_loads_through_rclpy_as_the_defaults(context_with_args) -> None:
    node = make_node(context_with_args('--params-file', str(SHIPPED)))
    try:
        assert node.config == NodeConfig.defaults()
    finally:
        node.destroy_node()


def test_a_params_file_is_applied(context_with_args, tmp_path) -> None:
    document = yaml.safe_load(SHIPPED.read_text())
    values = document['/**/lw_refinenet']['ros__parameters']
    values.update({'overlay_alpha': 0.3, 'qos': 'reliable', 'cameras': ['cam_left', 'cam_right'],
                   'class_filter': ['red_part'], 'max_frame_age_ms': 250.0,
                   'publish.color': False, 'max_image_pixels': 4096})
    path = tmp_path / 'params.yaml'
    path.write_text(yaml.safe_dump(document))
    node = make_node(context_with_args('--params-file', str(path)))
    try:
        config = node.config
        assert (config.overlay_alpha, config.qos, config.cameras, config.class_filter) == (
            0.3, 'reliable', ('cam_left', 'cam_right'), ('red_part',))
        assert node.pipeline.scheduler.config.max_frame_age_ms == 250.0
        assert not config.publish_color and config.max_image_pixels == 4096
        assert node.pipeline.scheduler.sources == ('cam_left', 'cam_right')
        # The graph is filled by discovery: give it a deadline, not a single look.
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline and not (
                node.count_publishers('/cam_left/segmentation/labels') and
                node.count_publishers('/cam_right/segmentation/stats')):
            time.sleep(0.02)
        assert node.count_publishers('/cam_left/segmentation/labels') == 1
        assert node.count_publishers('/cam_right/segmentation/stats') == 1
    finally:
        node.destroy_node()


@pytest.mark.parametrize('key, applied', [('/**/lw_refinenet', True),
                                           ('lw_refinenet', False)])
def test_the_shipped_key_reaches_the_node_in_a_namespace(context_with_args, tmp_path, key,
                                                         applied) -> None:
    """rcl matches a plain "lw_refinenet:" section only in the root namespace; the shipped
    "/**/lw_refinenet:" must also reach the node launched with namespace:=robot1."""
    document = yaml.safe_load(SHIPPED.read_text())
    section = document.pop('/**/lw_refinenet')
    section['ros__parameters']['overlay_alpha'] = 0.25
    path = tmp_path / 'params.yaml'
    path.write_text(yaml.safe_dump({key: section}))
    context = context_with_args('-r', '__ns:=/robot1', '--params-file', str(path))
    node = make_node(context)
    try:
        assert node.get_namespace() == '/robot1'
        expected = 0.25 if applied else NodeConfig.defaults().overlay_alpha
        assert node.config.overlay_alpha == expected
    finally:
        node.destroy_node()


def test_every_parameter_has_a_descriptor_from_the_table(ros_context) -> None:
    node = make_node(ros_context)
    try:
        for spec in PARAMETERS:
            descriptor = node.describe_parameter(spec.name)
            assert descriptor.description == spec.description
            assert descriptor.read_only == (not spec.runtime), spec.name
            if spec.choices:
                assert all(c in descriptor.additional_constraints for c in spec.choices)
            if spec.minimum is not None:
                ranges = descriptor.floating_point_range or descriptor.integer_range
                assert ranges and ranges[0].from_value == spec.minimum, spec.name
                assert ranges[0].to_value == spec.maximum, spec.name
            if spec.constraint:
                assert descriptor.additional_constraints == spec.constraint, spec.name
        for name in ('model.weights', 'model.arch', 'device', 'device_fallback', 'cameras',
                     'backend', 'precision', 'cache_dir', 'agreement_min'):
            assert node.describe_parameter(name).read_only
        assert 'cuda:N' in node.describe_parameter('device').additional_constraints
        assert node.describe_parameter('cameras').type == ParameterType.PARAMETER_STRING_ARRAY
    finally:
        node.destroy_node()


@pytest.mark.parametrize('override,match', [
    ('cameras:=left', 'cameras'),                # a string where a list is expected
    ('overlay_alpha:=2.0', 'overlay_alpha'),     # out of range
    ('model.arch:=resnet18', 'model.arch'),      # not one of the choices
    ('device:=tpu', 'device'),
    ('backend:=tensorrt', 'backend'),
    ('max_side:=9000', 'max_side'),
    ('max_rate_hz:=fast', 'max_rate_hz'),        # a string where a number is expected
])
def test_invalid_values_stop_start_up_with_the_reason(context_with_args, override,
                                                      match) -> None:
    with pytest.raises(ConfigError, match=match):
        make_node(context_with_args('-p', override))


def test_engine_values_the_descriptors_accept_reach_the_engine_config(
        context_with_args) -> None:
    """Values at the edges of the descriptors (max_side 1 used to pass the descriptor and
    then fail in the engine) become the node's EngineConfig unchanged."""
    node = make_node(context_with_args('-p', 'max_side:=1', '-p', 'backend:=onnxruntime',
                                       '-p', 'precision:=int8', '-p', 'num_threads:=-1',
                                       '-p', 'agreement_min:=1.0', '-p', 'device:=cuda:3'))
    try:
        engine = node.config.engine
        assert (engine.max_side, engine.backend, engine.precision, engine.num_threads,
                engine.agreement_min, engine.device) == (1, 'onnxruntime', 'int8', -1, 1.0,
                                                         'cuda:3')
    finally:
        node.destroy_node()


def test_main_exits_non_zero_with_the_reason(capfd) -> None:
    assert main(['segmentation_node', '--ros-args', '-p', 'qos:=sometimes']) == 1
    assert 'qos must be one of' in capfd.readouterr().err
