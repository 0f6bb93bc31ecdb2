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


def _domain_chosen_by_conftest(env: dict[str, str]) -> int:
    conftest = Path(__file__).resolve().parents[1] / 'conftest.py'
    code = (f'import os, runpy; runpy.run_path({str(conftest)!r}); '
            'print(os.environ["ROS_DOMAIN_ID"])')
    return int(subprocess.run([sys.executable, '-c', code], env=env, check=True,
                              capture_output=True, text=True).stdout.strip())


def test_each_parallel_worker_runs_its_nodes_in_a_domain_of_its_own(tmp_path) -> None:
    """``make test`` runs two pytest-xdist workers: their nodes must not discover each other."""
    controller = {k: v for k, v in os.environ.items()
                  if k not in ('ROS_DOMAIN_ID', 'LWRF_TEST_DOMAIN_BASE', 'PYTEST_XDIST_WORKER')}
    controller.update(LWRF_TEST_CACHE_HOME=str(tmp_path), ROS_DOMAIN_ID='41',
                      LWRF_TEST_DOMAIN_BASE='41')  # what the controller's conftest chose
    workers = [_domain_chosen_by_conftest({**controller, 'PYTEST_XDIST_WORKER': f'gw{n}'})
               for n in range(2)]
    assert len({41, *workers}) == 3 and all(0 <= d <= 101 for d in workers)
    # A domain the caller set is kept, workers or not.
    caller = {k: v for k, v in controller.items() if k != 'LWRF_TEST_DOMAIN_BASE'}
    assert _domain_chosen_by_conftest({**caller, 'PYTEST_XDIST_WORKER': 'gw1'}) == 41
