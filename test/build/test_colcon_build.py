"""The same folder builds in a ROS 2 colcon workspace, as a ROS user would use it.

Copies the package into a fresh ``src/``, runs ``colcon build`` with the pip-installed
Jazzy (the colcon route in docs/architecture.md §7) and checks that the install space
has the generated messages, the executables for ``ros2 run`` and the launch/config files.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
VENV = pathlib.Path(sys.prefix)


def _copy_sources(destination: pathlib.Path) -> None:
    files = subprocess.run(['git', 'ls-files', '--cached', '--others', '--exclude-standard'],
                           cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    for name in files:
        source = ROOT / name
        if source.is_file():
            target = destination / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)


def _clean_env() -> dict[str, str]:
    env = dict(os.environ)
    env['AMENT_PREFIX_PATH'] = str(VENV)
    env['CMAKE_PREFIX_PATH'] = str(VENV)
    return env


@pytest.mark.slow
def test_colcon_builds_the_package_with_messages_and_executables(tmp_path) -> None:
    colcon = VENV / 'bin' / 'colcon'
    assert colcon.exists(), 'colcon-common-extensions is a test dependency: run make setup'
    package = tmp_path / 'src' / 'lw_refinenet_ros'
    _copy_sources(package)
    build = subprocess.run(
        [str(colcon), 'build', '--cmake-args', f'-DPython3_EXECUTABLE={sys.executable}',
         '-DBUILD_TESTING=OFF'],
        cwd=tmp_path, env=_clean_env(), capture_output=True, text=True, timeout=600)
    log = tmp_path / 'log' / 'latest_build' / 'lw_refinenet_ros' / 'stderr.log'
    details = build.stdout[-3000:] + (log.read_text()[-3000:] if log.exists() else '')
    assert build.returncode == 0, details

    install = tmp_path / 'install' / 'lw_refinenet_ros'
    for executable in ('segmentation_node', 'lifecycle_segmentation_node'):
        launcher = install / 'lib' / 'lw_refinenet_ros' / executable
        assert launcher.exists() and os.access(launcher, os.X_OK)
        assert launcher.read_text().startswith(f'#!{sys.executable}')
    share = install / 'share' / 'lw_refinenet_ros'
    assert (share / 'package.xml').exists()
    assert (share / 'msg' / 'SegmentationStats.msg').exists()
    assert list((share / 'launch').glob('*.launch.py'))
    assert (share / 'config' / 'lw_refinenet.yaml').exists()

    # The built message type works from the install space, without the pip-installed copy.
    site = install / 'lib' / f'python{sys.version_info.major}.{sys.version_info.minor}' / \
        'site-packages'
    env = _clean_env()
    env['AMENT_PREFIX_PATH'] = f'{install}:{VENV}'
    env['PYTHONPATH'] = str(site)
    env['LD_LIBRARY_PATH'] = f"{install / 'lib'}:{env.get('LD_LIBRARY_PATH', '')}"
    check = subprocess.run(
        [sys.executable, '-c',
         'import lw_refinenet_ros.msg as m, sys; '
         'print(m.__file__); '
         'from rclpy.serialization import serialize_message as s; '
         'print(len(s(m.SegmentationStats(height=3))))'],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert check.returncode == 0, check.stderr
    assert str(site) in check.stdout.splitlines()[0]
