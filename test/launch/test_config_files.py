"""config/: RViz2 layout, Fast DDS profiles and the node parameters file, as launched."""

from __future__ import annotations

import os
from pathlib import Path
import subprocess
import sys
import xml.etree.ElementTree as ET

from launch_eval import REPO, describe_any, install_launch_stubs, read_node_parameters
import pytest
import yaml

CONFIG = REPO / 'config'
DDS_NS = {'dds': 'http://www.eprosima.com/XMLSchemas/fastRTPS_Profiles'}
SEGMENT_64_MB = 64 * 1024 * 1024
NODE_OUTPUTS = ('segmentation/overlay', 'segmentation/color', 'segmentation/labels')


@pytest.fixture(autouse=True)
def _launch_stubs(monkeypatch: pytest.MonkeyPatch) -> None:
    """Stub launch/launch_ros modules (no wheels exist); undone after each test."""
    install_launch_stubs(monkeypatch)


# --------------------------------------------------------------------------- RViz2

def _rviz() -> dict:
    return yaml.safe_load((CONFIG / 'segmentation.rviz').read_text())


def test_rviz_file_is_an_rviz2_layout() -> None:
    rviz = _rviz()
    assert {'Panels', 'Visualization Manager', 'Window Geometry'} <= set(rviz)
    assert any(p['Class'] == 'rviz_common/Displays' for p in rviz['Panels'])
    manager = rviz['Visualization Manager']
    assert manager['Global Options']['Fixed Frame']
    names = [d['Name'] for d in manager['Displays']]
    assert len(names) == len(set(names)), 'display names must be unique (dock titles)'
    for display in manager['Displays']:
        assert display['Class'].startswith('rviz_default_plugins/')
        if display['Class'] == 'rviz_default_plugins/Image':
            assert display['Name'] in rviz['Window Geometry'], 'image docks need a geometry entry'


def test_rviz_shows_the_launched_topics() -> None:
    """Camera and node topics exactly as camera_segmentation.launch.py wires them."""
    images = {d['Topic']['Value']: d for d in _rviz()['Visualization Manager']['Displays']
              if d['Class'] == 'rviz_default_plugins/Image'}
    desc = describe_any(REPO / 'launch' / 'camera_segmentation.launch.py', {'rviz': 'true'})
    node = desc.node('segmentation_node')
    namespace = '/' + node.namespace.strip('/') if node.namespace.strip('/') else ''
    expected = {dict(node.remaps)['image']} | {f'{namespace}/{t}' for t in NODE_OUTPUTS}
    assert expected <= set(images), f'missing {expected - set(images)}'
    for topic, display in images.items():
        # Best effort connects to reliable and best-effort publishers alike; reliable would
        # receive nothing from a best-effort (sensor-data QoS) publisher.
        assert display['Topic']['Reliability Policy'] == 'Best Effort', topic


# --------------------------------------------------------------------------- Fast DDS profiles

def _profile(name: str) -> tuple[dict[str, ET.Element], ET.Element]:
    root = ET.parse(CONFIG / name).getroot()
    assert root.tag == f'{{{DDS_NS["dds"]}}}profiles'
    transports = {t.findtext('dds:transport_id', namespaces=DDS_NS): t
                  for t in root.findall('dds:transport_descriptors/dds:transport_descriptor',
                                        DDS_NS)}
    defaults = [p for p in root.findall('dds:participant', DDS_NS)
                if p.get('is_default_profile') == 'true']
    assert len(defaults) == 1, 'exactly one default participant profile'
    return transports, defaults[0]


def _used_transports(participant: ET.Element) -> list[str]:
    rtps = participant.find('dds:rtps', DDS_NS)
    assert rtps.findtext('dds:useBuiltinTransports', namespaces=DDS_NS) == 'false', (
        'built-in transports would bring back the 0.5 MB default segment')
    return [t.text for t in rtps.findall('dds:userTransports/dds:transport_id', DDS_NS)]


def test_shm_profile_has_64_mb_segment_and_udp() -> None:
    transports, participant = _profile('fastdds_shm.xml')
    used = _used_transports(participant)
    assert set(used) == set(transports)
    types = {transports[t].findtext('dds:type', namespaces=DDS_NS): transports[t] for t in used}
    assert set(types) == {'SHM', 'UDPv4'}
    assert int(types['SHM'].findtext('dds:segment_size', namespaces=DDS_NS)) == SEGMENT_64_MB


def test_udp_profile_is_udp_only() -> None:
    transports, participant = _profile('fastdds_udp.xml')
    used = _used_transports(participant)
    assert [transports[t].findtext('dds:type', namespaces=DDS_NS) for t in used] == ['UDPv4']


_PROBE = """
import rclpy
from rclpy.node import Node
from std_msgs.msg import String
rclpy.init()
node = Node('profile_probe')
node.create_publisher(String, 'profile_probe', 1)
node.destroy_node()
rclpy.try_shutdown()
"""


@pytest.mark.parametrize('name', ['fastdds_shm.xml', 'fastdds_udp.xml'])
def test_fast_dds_accepts_profile(name: str) -> None:
    """Fast DDS logs XMLPARSER errors for a bad profile and then carries on with defaults."""
    env = dict(os.environ, FASTRTPS_DEFAULT_PROFILES_FILE=str(CONFIG / name))
    result = subprocess.run([sys.executable, '-c', _PROBE], env=env, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert 'XMLPARSER' not in result.stderr and 'Error' not in result.stderr, result.stderr


# --------------------------------------------------------------------------- parameters file

def test_launch_overrides_are_node_parameters() -> None:
    """Every parameter the launch files set must exist in the node's parameters file."""
    node = describe_any(REPO / 'launch' / 'segmentation.launch.py').nodes[0]
    path = Path(node.param_files[0])
    if not path.is_file():
        pytest.fail(f'{path} missing: the node owner ships config/lw_refinenet.yaml')
    _, parameters = read_node_parameters(path)
    assert set(node.params) <= set(parameters), set(node.params) - set(parameters)


def test_params_file_key_matches_the_node_in_any_namespace() -> None:
    # Proven against rcl itself in test/ros/test_parameters.py; this keeps the key honest
    # for launch files that pass the file on.
    key, _ = read_node_parameters(CONFIG / 'lw_refinenet.yaml')
    assert key == '/**/lw_refinenet'
