"""launch/camera_segmentation.launch.{py,xml}: driver choice, topic wiring, optional rviz2."""

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
)
import pytest

LAUNCH = REPO / 'launch'
PY = LAUNCH / 'camera_segmentation.launch.py'
XML = LAUNCH / 'camera_segmentation.launch.xml'
EXPECTED_ARGUMENTS = {'camera', 'video_device', 'width', 'height', 'rviz', 'rviz_config',
                      'params_file', 'device', 'weights', 'use_compressed', 'use_shm'}
DRIVERS = {'v4l2_camera': ('v4l2_camera', 'v4l2_camera_node'),
           'usb_cam': ('usb_cam', 'usb_cam_node_exe')}


@pytest.fixture(autouse=True)
def _launch_stubs(monkeypatch: pytest.MonkeyPatch) -> None:
    """Stub launch/launch_ros modules (no wheels exist); undone after each test."""
    install_launch_stubs(monkeypatch)


def _camera_image_topic(node) -> str:
    """Where both drivers publish: ``image_raw`` relative to the driver's namespace."""
    return f'/{node.namespace.strip("/")}/image_raw'


def test_declares_documented_arguments() -> None:
    description = load_python_launch(PY)
    declared = [e for e in description.entities if type(e).__name__ == 'DeclareLaunchArgument']
    assert {d.name for d in declared} == EXPECTED_ARGUMENTS
    for argument in declared:
        assert len(argument.kwargs.get('description', '')) > 15, argument.name
    camera = next(d for d in declared if d.name == 'camera')
    assert camera.kwargs['choices'] == list(DRIVERS)


@pytest.mark.parametrize('camera', DRIVERS)
def test_driver_feeds_the_segmentation_node(camera: str) -> None:
    desc = describe(PY, camera=camera)
    package, executable = DRIVERS[camera]
    drivers = [n for n in desc.nodes if n.package in {p for p, _ in DRIVERS.values()}]
    assert [(n.package, n.executable) for n in drivers] == [(package, executable)]
    segmentation = desc.node('segmentation_node')
    assert (segmentation.package, segmentation.name) == (PACKAGE, NODE_NAME)
    remaps = dict(segmentation.remaps)
    assert remaps['image'] == _camera_image_topic(drivers[0])
    assert remaps['camera_info'] == f'/{drivers[0].namespace}/camera_info'
    assert drivers[0].params['video_device'] == '/dev/video0'


def test_driver_parameters() -> None:
    v4l2 = describe(PY, width='320', height='240', video_device='/dev/video2').node(
        'v4l2_camera_node')
    assert v4l2.params['image_size'] == '[320, 240]'
    assert v4l2.params['video_device'] == '/dev/video2'
    usb = describe(PY, camera='usb_cam', width='320', height='240').node('usb_cam_node_exe')
    assert (usb.params['image_width'], usb.params['image_height']) == ('320', '240')


@pytest.mark.parametrize('camera', DRIVERS)
def test_parameter_values_survive_launch_ros_typing(camera: str) -> None:
    for node in describe(PY, camera=camera, rviz='true').nodes:
        for value in node.params.values():
            launch_param_value(value)  # raises like launch_ros would
    v4l2 = describe(PY).node('v4l2_camera_node')
    assert launch_param_value(v4l2.params['image_size']) == [640, 480]


def test_rviz_is_optional() -> None:
    assert not [n for n in describe(PY).nodes if n.package == 'rviz2']
    rviz = describe(PY, rviz='true').node('rviz2')
    assert rviz.arguments[0] == '-d'
    config = Path(rviz.arguments[1])
    assert config.name == 'segmentation.rviz' and config.is_file(), config


def test_arguments_reach_the_included_node() -> None:
    node = describe(PY, device='cuda', weights='/w.pt', use_compressed='true',
                    params_file='/p.yaml').node('segmentation_node')
    assert launch_param_value(node.params['device']) == 'cuda'
    assert launch_param_value(node.params['model.weights']) == '/w.pt'
    assert node.params['input_type'] == 'compressed'
    assert node.param_files == ['/p.yaml']
    assert dict(node.remaps)['image/compressed'] == '/camera/image_raw/compressed'


def test_shm_profile_is_set_before_any_process() -> None:
    """Both ends must use shared memory, so the variable has to precede the driver."""
    entities = [type(e).__name__ for e in load_python_launch(PY).entities]
    first_process = min(entities.index(k) for k in ('Node', 'IncludeLaunchDescription'))
    assert entities.index('SetEnvironmentVariable') < first_process
    desc = describe_any(PY, {'use_shm': 'true'})
    assert Path(desc.env['FASTRTPS_DEFAULT_PROFILES_FILE']).name == 'fastdds_shm.xml'


def test_shm_profile_is_the_default_and_can_be_turned_off() -> None:
    """A best-effort camera stream between processes loses most large frames on the default
    transports (issue 14), so launching a driver with the node uses shared memory."""
    for path in (PY, XML):
        profile = describe_any(path).env['FASTRTPS_DEFAULT_PROFILES_FILE']
        assert Path(profile).name == 'fastdds_shm.xml', path
        assert 'FASTRTPS_DEFAULT_PROFILES_FILE' not in describe_any(
            path, {'use_shm': 'false'}).env, path


def test_xml_declares_same_arguments() -> None:
    reference, candidate = describe_any(PY), describe_any(XML)
    assert candidate.arguments == reference.arguments
    assert candidate.choices == reference.choices


@pytest.mark.parametrize('scenario', [
    {}, {'camera': 'usb_cam', 'rviz': 'true'},
    {'use_shm': 'true', 'use_compressed': 'true', 'width': '1280', 'height': '720'},
    {'use_shm': 'false'},
], ids=lambda s: ','.join(s) or 'defaults')
def test_xml_starts_same_processes(scenario: dict) -> None:
    reference, candidate = describe_any(PY, scenario), describe_any(XML, scenario)
    assert candidate.nodes == reference.nodes
    assert candidate.env == reference.env
