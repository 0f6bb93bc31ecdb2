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


def test_misspelt_names_in_a_params_file_stop_start_up_naming_the_closest(
        context_with_args, tmp_path) -> None:
    path = tmp_path / 'typos.yaml'
    path.write_text(yaml.safe_dump({'/**/lw_refinenet': {'ros__parameters': {
        'overlay_alpa': 0.3, 'model': {'weigths': '/tmp/w.pt'}, 'max_rate': 5.0}}}))
    with pytest.raises(ConfigError) as raised:
        make_node(context_with_args('--params-file', str(path)))
    text = str(raised.value)
    for hint in ('overlay_alpa (did you mean overlay_alpha?)',
                 'model.weigths (did you mean model.weights?)',
                 'max_rate (did you mean max_rate_hz?)'):
        assert hint in text, text


def test_a_misspelt_name_on_the_command_line_stops_start_up(context_with_args) -> None:
    with pytest.raises(ConfigError, match=r'max_sid \(did you mean max_side\?\)'):
        make_node(context_with_args('-p', 'max_sid:=512'))


def test_rclpy_and_qos_override_parameters_are_not_unknown(context_with_args) -> None:
    node = make_node(context_with_args(
        '-p', 'use_sim_time:=false',
        '-p', 'qos_overrides./parameter_events.publisher.depth:=100'))
    node.destroy_node()


def _service_call(context, node, call):
    """Run ``call(client)`` against ``node``'s parameter services from a second node."""
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.parameter_client import AsyncParameterClient
    caller = rclpy.create_node('param_caller', context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    executor.add_node(caller)
    try:
        client = AsyncParameterClient(caller, node.get_fully_qualified_name())
        assert client.wait_for_services(timeout_sec=10)
        future = call(client)
        executor.spin_until_future_complete(future, timeout_sec=10)
        assert future.done()
        return future.result()
    finally:
        executor.remove_node(node)
        executor.shutdown()
        caller.destroy_node()


def test_a_misspelt_name_at_runtime_is_refused_naming_the_closest(ros_context) -> None:
    from rclpy.parameter import Parameter
    node = make_node(ros_context)
    try:
        response = _service_call(ros_context, node, lambda client: client.set_parameters(
            [Parameter('overlay_alpa', value=0.3)]))
        result = response.results[0]
        assert not result.successful
        assert 'overlay_alpa (did you mean overlay_alpha?)' in result.reason, result.reason
        assert node.config.overlay_alpha == 0.5
    finally:
        node.destroy_node()


def test_list_parameters_return_their_value_and_an_empty_list_resets_them(ros_context) -> None:
    from rclpy.parameter import Parameter
    node = SegmentationNode(engine_factory=fake_factory(FakeEngine()), context=ros_context,
                            parameter_overrides=[Parameter('class_filter',
                                                           value=['red_part'])])
    try:
        assert node.get_parameter('cameras').value == []
        assert node.get_parameter('class_filter').value == ['red_part']
        assert node.config.class_filter == ('red_part',)
        # What `ros2 param set /lw_refinenet class_filter "[]"` sends: an untyped empty list.
        response = _service_call(ros_context, node, lambda client: client.set_parameters(
            [Parameter('class_filter', value=[])]))
        assert response.results[0].successful, response.results[0].reason
        assert node.config.class_filter == ()
        got = _service_call(ros_context, node, lambda client: client.get_parameters(
            ['class_filter', 'cameras']))
        assert [value.type for value in got.values] == [ParameterType.PARAMETER_STRING_ARRAY] * 2
        assert [list(value.string_array_value) for value in got.values] == [[], []]
    finally:
        node.destroy_node()


def test_home_and_variables_in_path_parameters_are_expanded(context_with_args,
                                                             monkeypatch) -> None:
    monkeypatch.setenv('LWRF_TEST_MODELS', '/srv/models')
    node = make_node(context_with_args('-p', 'model.classes_file:=~/classes.yaml',
                                       '-p', 'cache_dir:=$LWRF_TEST_MODELS/cache'))
    try:
        assert node.config.model_classes_file == str(pathlib.Path.home() / 'classes.yaml')
        assert node.config.cache_dir == '/srv/models/cache'
        assert node.config.engine.cache_dir == '/srv/models/cache'
    finally:
        node.destroy_node()
