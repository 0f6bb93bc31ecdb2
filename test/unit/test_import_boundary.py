"""Only the ROS packages may talk to ROS: everything else runs in a plain venv.

The ROS packages are ``ros/`` (the product node), ``demo/`` (the conveyor demo and its camera
and robot nodes), ``view/`` (the Foxglove live view, a bridge from ROS topics) and the fake
node of ``testing/``. Each other module is imported in a fresh interpreter in which ``rclpy``
and every message package are blocked (``sys.modules[name] = None`` makes any import of them
fail), so an accidental ``import rclpy`` anywhere else fails this test. The demo's process
supervisor and scoring are checked too: the benchmarks use the supervisor without ROS.
"""

from __future__ import annotations

import pathlib
import subprocess
import sys

import pytest

PACKAGE_DIR = pathlib.Path(__file__).resolve().parents[2] / 'lw_refinenet_ros'
ROS_ONLY = ('lw_refinenet_ros.ros', 'lw_refinenet_ros.msg', 'lw_refinenet_ros.demo.',
            'lw_refinenet_ros.view', 'lw_refinenet_ros.testing.fake_node')
# Demo modules that must stay ROS-free (shared with benchmarks/, testable alone).
PLAIN_DEMO_MODULES = ('lw_refinenet_ros.demo.supervisor', 'lw_refinenet_ros.demo.scoring',
                      'lw_refinenet_ros.demo.object_scoring', 'lw_refinenet_ros.demo.encoder')
BLOCKED = ('rclpy', 'rosidl_runtime_py', 'std_msgs', 'sensor_msgs', 'diagnostic_msgs',
           'lifecycle_msgs', 'rcl_interfaces', 'builtin_interfaces', 'lw_refinenet_ros.msg')


def _plain_modules() -> list[str]:
    names = []
    for path in sorted(PACKAGE_DIR.rglob('*.py')):
        parts = path.relative_to(PACKAGE_DIR.parent).with_suffix('').parts
        if parts[-1] == '__init__':
            parts = parts[:-1]
        if parts[-1] == '__main__':
            continue
        name = '.'.join(parts)
        if not name.startswith(ROS_ONLY) or name in PLAIN_DEMO_MODULES:
            names.append(name)
    return names


def test_the_package_has_plain_modules_to_check() -> None:
    modules = _plain_modules()
    assert 'lw_refinenet_ros.errors' in modules
    assert 'lw_refinenet_ros.cli' in modules
    assert set(PLAIN_DEMO_MODULES) <= set(modules)
    assert 'lw_refinenet_ros.demo.runner' not in modules
    assert 'lw_refinenet_ros.view.bridge' not in modules
    assert 'lw_refinenet_ros.segmenter' in modules and 'lw_refinenet_ros.bench' in modules
    assert 'lw_refinenet_ros.testing.fake_engine' in modules


def test_plain_modules_import_without_ros() -> None:
    modules = _plain_modules()
    script = '\n'.join([
        'import importlib, sys',
        f'for name in {BLOCKED!r}:',
        '    sys.modules[name] = None',
        'failed = []',
        f'for module in {modules!r}:',
        '    try:',
        '        importlib.import_module(module)',
        '    except Exception as error:',
        '        failed.append(f"{module}: {type(error).__name__}: {error}")',
        'print("\\n".join(failed))',
        'sys.exit(1 if failed else 0)',
    ])
    result = subprocess.run([sys.executable, '-c', script], cwd=PACKAGE_DIR.parent,
                            capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, f'modules that need ROS outside ros/:\n{result.stdout}'


def test_blocking_really_blocks_rclpy() -> None:
    """Guard against a vacuous pass: with the block in place, importing rclpy must fail."""
    script = 'import sys\nsys.modules["rclpy"] = None\nimport rclpy\n'
    result = subprocess.run([sys.executable, '-c', script], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode != 0
    assert 'rclpy' in result.stderr


@pytest.mark.parametrize('module', ['lw_refinenet_ros.model'])
def test_model_imports_with_rclpy_blocked(module: str) -> None:
    script = f'import sys\nsys.modules["rclpy"] = None\nimport {module}\n'
    result = subprocess.run([sys.executable, '-c', script], cwd=PACKAGE_DIR.parent,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
