"""Fixtures for the launch-file tests; the stubs and the evaluator live in launch_eval.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterator

from launch_eval import NODE_NAME, LaunchDesc, describe_any, install_launch_stubs
import pytest
import yaml

# Keys under which a parameters file can address the node: rcl matches `lw_refinenet` only in
# the root namespace, `/**/lw_refinenet` in any namespace, `/**` every node.
NODE_KEYS = (NODE_NAME, f'/{NODE_NAME}', f'/**/{NODE_NAME}', '/**')


def flatten(mapping: dict[str, Any], prefix: str = '') -> dict[str, Any]:
    """Nested parameter dicts as dotted names, as rcl reads them (model: {arch} -> model.arch)."""
    flat: dict[str, Any] = {}
    for key, value in mapping.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f'{prefix}{key}.'))
        else:
            flat[f'{prefix}{key}'] = value
    return flat


def read_node_parameters(path: Path) -> tuple[str, dict[str, Any]]:
    """The node section of a parameters file: (key used, flattened ros__parameters)."""
    document = yaml.safe_load(Path(path).read_text())
    assert isinstance(document, dict), f'{path}: not a YAML mapping'
    keys = [k for k in NODE_KEYS if k in document]
    assert keys, (f'{path}: no section for the node; expected one of {NODE_KEYS}, '
                  f'got {list(document)}')
    section = document[keys[0]]
    assert isinstance(section, dict) and 'ros__parameters' in section, (
        f'{path}: section {keys[0]!r} has no ros__parameters')
    return keys[0], flatten(section['ros__parameters'])


@pytest.fixture
def launch_stubs(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, type]]:
    """Stub launch/launch_ros modules for this test; the real ones (if any) come back after."""
    yield install_launch_stubs(monkeypatch)


@pytest.fixture
def describe(launch_stubs: dict[str, type]) -> Callable[..., LaunchDesc]:
    """``describe(path, **arguments)`` for any launch format (stubs installed)."""
    def _describe(path: Path, **arguments: str) -> LaunchDesc:
        return describe_any(path, arguments)
    return _describe


@pytest.fixture
def params_section() -> Callable[[Path], tuple[str, dict[str, Any]]]:
    """``read_node_parameters`` as a fixture."""
    return read_node_parameters
