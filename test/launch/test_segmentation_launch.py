"""launch/segmentation.launch.{py,xml,yaml}: arguments, the node, and parity of the three forms."""

from __future__ import annotations

from pathlib import Path

from launch_eval import (
    NODE_NAME,
    PACKAGE,
    REPO,
    describe,
    describe_any,
    install_launch_stubs,
    launch_param_value,
    load_python_launch,
    read_node_parameters,
    render,
)
import pytest

LAUNCH = REPO / 'launch'
FORMATS = ('segmentation.launch.py', 'segmentation.launch.xml', 'segmentation.launch.yaml')
EXPECTED_ARGUMENTS = {'params_file', 'namespace', 'image_topic', 'camera_info_topic',
                      'use_compressed', 'device', 'weights', 'use_shm', 'lifecycle'}
# Argument sets that exercise every branch: defaults, compressed input with another topic,
# the lifecycle variant in a namespace, and the SHM profile with explicit device and weights.
SCENARIOS = (
    {},
    {'use_compressed': 'true', 'image_topic': '/front/image_raw'},
    {'lifecycle': 'true', 'namespace': 'robot1'},
    {'use_shm': 'true', 'device': 'cpu', 'weights': '/tmp/model.pt',
     'params_file': '/tmp/custom.yaml'},
)


@pytest.fixture(autouse=True)
def _launch_stubs(monkeypatch: pytest.MonkeyPatch) -> None:
    """Stub launch/launch_ros modules (no wheels exist); undone after each test."""
    install_launch_stubs(monkeypatch)


def test_python_launch_declares_documented_arguments() -> None:
    description = load_python_launch(LAUNCH / 'segmentation.launch.py')
    declared = [e for e in description.entities if type(e).__name__ == 'DeclareLaunchArgument']
    assert {d.name for d in declared} == EXPECTED_ARGUMENTS
    for argument in declared:
        text = argument.kwargs.get('description', '')
        assert len(text) > 20, f'argument {argument.name} needs a real description: {text!r}'
        assert 'default_value' in argument.kwargs, f'{argument.name} has no default'


def test_python_launch_node() -> None:
    description = load_python_launch(LAUNCH / 'segmentation.launch.py')
    nodes = [e for e in description.entities if type(e).__name__ == 'Node']
    assert len(nodes) == 1
    node = nodes[0].kwargs
    assert node['package'] == PACKAGE
    assert node['executable'] == 'segmentation_node'
    assert node['name'] == NODE_NAME
    assert type(node['condition']).__name__ == 'UnlessCondition'
    # The params file comes first, as a launch configuration that defaults to the shipped YAML.
    params_file = node['parameters'][0]
    assert type(params_file).__name__ == 'LaunchConfiguration'
    assert params_file.args[0] == 'params_file'
    defaults = {e.name: e.kwargs['default_value'] for e in description.entities
                if type(e).__name__ == 'DeclareLaunchArgument'}
    config = {name: render(value, {}) for name, value in defaults.items()}
    assert Path(config['params_file']).name == 'lw_refinenet.yaml'
    assert Path(config['params_file']).parent.name == 'config'
    remaps = {render(a, config): render(b, config) for a, b in node['remappings']}
    assert remaps['image'] == '/camera/image_raw'
    assert remaps['image/compressed'] == '/camera/image_raw/compressed'
    assert remaps['camera_info'] == '/camera/camera_info'


def test_python_launch_lifecycle_variant() -> None:
    plain = describe(LAUNCH / 'segmentation.launch.py')
    assert [n.kind for n in plain.nodes] == ['node']
    managed = describe(LAUNCH / 'segmentation.launch.py', lifecycle='true')
    assert [(n.kind, n.executable, n.name) for n in managed.nodes] == [
        ('lifecycle_node', 'lifecycle_segmentation_node', NODE_NAME)]
    # Same parameters and remappings either way: only the executable differs.
    assert managed.nodes[0].params == plain.nodes[0].params
    assert managed.nodes[0].remaps == plain.nodes[0].remaps


@pytest.mark.parametrize('value, expected', [('false', 'raw'), ('true', 'compressed'),
                                             ('True', 'compressed')])
def test_use_compressed_sets_input_type(value: str, expected: str) -> None:
    node = describe(LAUNCH / 'segmentation.launch.py', use_compressed=value).nodes[0]
    assert node.params['input_type'] == expected


@pytest.mark.parametrize('scenario', SCENARIOS, ids=lambda s: ','.join(s) or 'defaults')
def test_parameter_values_survive_launch_ros_typing(scenario: dict) -> None:
    """launch_ros aborts on values that YAML-parse to null, e.g. an unquoted empty weights."""
    for node in describe_any(LAUNCH / 'segmentation.launch.py', scenario).nodes:
        typed = {name: launch_param_value(value) for name, value in node.params.items()}
        assert typed['model.weights'] == scenario.get('weights', '')
        assert typed['device'] == scenario.get('device', 'auto')


def test_arguments_override_params_file() -> None:
    node = describe(LAUNCH / 'segmentation.launch.py', device='cuda:1',
                    weights='/data/w.pt').nodes[0]
    assert launch_param_value(node.params['device']) == 'cuda:1'
    assert launch_param_value(node.params['model.weights']) == '/data/w.pt'
    assert len(node.param_files) == 1  # the dict after it is what makes the arguments win


def test_use_shm_sets_fast_dds_profile() -> None:
    assert describe(LAUNCH / 'segmentation.launch.py').env == {}
    env = describe(LAUNCH / 'segmentation.launch.py', use_shm='true').env
    profile = Path(env['FASTRTPS_DEFAULT_PROFILES_FILE'])
    assert profile.name == 'fastdds_shm.xml'
    assert profile.is_file(), f'{profile} does not exist'


@pytest.mark.parametrize('other', FORMATS[1:])
def test_frontend_declares_same_arguments(other: str) -> None:
    reference = describe_any(LAUNCH / FORMATS[0])
    candidate = describe_any(LAUNCH / other)
    assert candidate.arguments == reference.arguments


@pytest.mark.parametrize('other', FORMATS[1:])
@pytest.mark.parametrize('scenario', SCENARIOS, ids=lambda s: ','.join(s) or 'defaults')
def test_frontend_starts_same_node(other: str, scenario: dict) -> None:
    reference = describe_any(LAUNCH / FORMATS[0], scenario)
    candidate = describe_any(LAUNCH / other, scenario)
    assert candidate.nodes == reference.nodes
    assert candidate.env == reference.env


@pytest.mark.parametrize('name', FORMATS)
def test_params_file_default_exists_with_node_section(name: str) -> None:
    node = describe_any(LAUNCH / name).nodes[0]
    assert len(node.param_files) == 1
    path = Path(node.param_files[0])
    assert path.is_file(), f'{name}: params file {path} does not exist'
    read_node_parameters(path)
