"""The environment ``make setup`` builds is exactly the one ``requirements.lock`` describes.

A fresh clone must get the versions the tests ran with: every locked distribution is installed
at its locked version, nothing unlocked slipped in, and every requirement of pyproject.toml is
covered by the lock (so ``make lock`` has been re-run after a dependency was added).
"""

from __future__ import annotations

from importlib import metadata
import pathlib
import re
import site
import sys

import pytest
import tomllib

ROOT = pathlib.Path(__file__).resolve().parents[2]
LOCK = ROOT / 'requirements.lock'
PROJECT = 'lw-refinenet-ros'
# Installed in every venv by Python itself or by tools that are not the project's dependencies.
NOT_LOCKED = {PROJECT}


def _canonical(name: str) -> str:
    return re.sub(r'[-_.]+', '-', name).lower()


def _lock() -> dict[str, str]:
    pins = {}
    for line in LOCK.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith('#'):
            continue
        name, sep, version = line.partition('==')
        assert sep, f'{LOCK.name}: {line!r} is not name==version'
        pins[_canonical(name)] = version
    return pins


def _installed() -> dict[str, str]:
    """What the venv's site-packages hold (not whatever a test put on sys.path)."""
    return {_canonical(dist.metadata['Name']): dist.version
            for dist in metadata.distributions(path=site.getsitepackages())}


def _in_project_venv() -> bool:
    return pathlib.Path(sys.prefix).resolve() == (ROOT / '.venv').resolve()


def test_the_lock_is_a_list_of_exact_pins():
    pins = _lock()
    assert len(pins) > 50
    assert pins['torch'].startswith('2.13.0')
    assert PROJECT not in pins


def test_every_pyproject_requirement_is_locked():
    pyproject = tomllib.loads((ROOT / 'pyproject.toml').read_text())
    wanted = list(pyproject['build-system']['requires']) + pyproject['project']['dependencies']
    for extra in pyproject['project']['optional-dependencies'].values():
        wanted += extra
    pins = _lock()
    missing = [req for req in wanted
               if _canonical(re.split(r'[\[<>=!~; ]', req, maxsplit=1)[0]) not in pins]
    assert not missing, f'not in requirements.lock (run `make lock`): {missing}'


@pytest.mark.skipif(not _in_project_venv(), reason='checks the venv `make setup` built')
def test_the_venv_holds_exactly_the_locked_versions():
    pins, installed = _lock(), _installed()
    wrong = {name: (installed.get(name), version) for name, version in pins.items()
             if installed.get(name) != version}
    assert not wrong, f'installed vs locked: {wrong}'
    unlocked = sorted(set(installed) - set(pins) - NOT_LOCKED)
    assert not unlocked, f'installed but not locked (run `make lock`): {unlocked}'
