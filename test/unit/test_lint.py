"""Code style is part of the test suite: ruff with the project settings (99 columns)."""

import pathlib
import shutil
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.mark.linter
def test_ruff_reports_no_problems() -> None:
    ruff = shutil.which('ruff', path=str(pathlib.Path(sys.executable).parent)) or 'ruff'
    result = subprocess.run([ruff, 'check', '--no-cache', '.'], cwd=ROOT, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.linter
def test_python_line_length_is_99_in_the_config() -> None:
    """The limit the style guide states is the one ruff enforces."""
    assert 'line-length = 99' in (ROOT / 'pyproject.toml').read_text()
