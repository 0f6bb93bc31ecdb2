"""The test session's own cache folder (set in ``test/conftest.py``): runs leave ``~/.cache``
alone, and every test and child process of one run shares one folder so builds are reused."""

from __future__ import annotations

import os
from pathlib import Path
import subprocess
import sys

from lw_refinenet_ros.engine.config import EngineConfig, default_cache_dir


def test_default_cache_is_the_session_folder_not_the_users(session_cache_home: str) -> None:
    users_cache = Path.home() / '.cache'
    assert default_cache_dir() == Path(session_cache_home) / 'lw_refinenet_ros'
    assert EngineConfig().resolved_cache_dir() == default_cache_dir()
    if not os.environ.get('LWRF_TEST_CACHE_HOME'):  # a folder the caller chose may be anywhere
        assert users_cache not in default_cache_dir().parents
    assert Path(session_cache_home).is_dir()


def test_child_processes_share_the_session_folder(session_cache_home: str) -> None:
    code = ('from lw_refinenet_ros.engine.config import default_cache_dir; '
            'print(default_cache_dir())')
    printed = subprocess.run([sys.executable, '-c', code], check=True, capture_output=True,
                             text=True).stdout.strip()
    assert Path(printed) == Path(session_cache_home) / 'lw_refinenet_ros'
