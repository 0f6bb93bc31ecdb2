"""The shipped shared-memory profile announces participants often enough for quick restarts.

A restarted node is matched by a running camera at the camera's next participant
announcement (Fast DDS's default period: 3 s), so the profile sets a short period
(docs/benchmarks.md "Restart"). That Fast DDS parses the profile without errors is checked by
test_config_files.py::test_fast_dds_accepts_profile.
"""

from __future__ import annotations

from pathlib import Path
import xml.etree.ElementTree as ET

PROFILE = Path(__file__).resolve().parents[2] / 'config' / 'fastdds_shm.xml'
NS = {'dds': 'http://www.eprosima.com/XMLSchemas/fastRTPS_Profiles'}
#: Fast DDS's default lease duration, which the profile keeps.
DEFAULT_LEASE_S = 20.0


def _seconds(element: ET.Element) -> float:
    return (float(element.findtext('dds:sec', '0', NS))
            + float(element.findtext('dds:nanosec', '0', NS)) * 1e-9)


def _discovery() -> ET.Element:
    root = ET.parse(PROFILE).getroot()
    (participant,) = [p for p in root.findall('dds:participant', NS)
                      if p.get('is_default_profile') == 'true']
    discovery = participant.find('dds:rtps/dds:builtin/dds:discovery_config', NS)
    assert discovery is not None, 'the default participant profile sets no discovery_config'
    return discovery


def test_the_default_participant_announces_itself_several_times_a_second() -> None:
    announcement = _discovery().find('dds:leaseAnnouncement', NS)
    assert announcement is not None, 'no leaseAnnouncement: Fast DDS would announce every 3 s'
    assert 0.1 <= _seconds(announcement) <= 0.5


def test_a_silent_participant_is_still_kept_for_the_default_lease() -> None:
    discovery = _discovery()
    lease = discovery.find('dds:leaseDuration', NS)
    lease_s = DEFAULT_LEASE_S if lease is None else _seconds(lease)
    assert lease_s >= 10 * _seconds(discovery.find('dds:leaseAnnouncement', NS))
