"""Shared test fixtures.

ROS isolation: every test run gets its own DDS domain and localhost-only discovery so that
parallel runs (and other machines) cannot cross-talk; values set by the caller win. Under
pytest-xdist (``make test`` runs two workers) each worker moves to a domain of its own. rclpy is
imported lazily so that the unit tests run in a plain environment without ROS.

Cache isolation: ``XDG_CACHE_HOME`` points at one temporary folder per test session, set here
before any test builds an engine, so a test run never writes runtime models into the user's
``~/.cache`` and the models built by one test are cache hits for the next ones (child
processes inherit the variable). A caller's ``XDG_CACHE_HOME`` is deliberately ignored: it is
usually the user's own cache, the folder this guards. To keep built models across runs (a CI
cache step), set ``LWRF_TEST_CACHE_HOME`` to a folder; it is used instead and left in place.
Each pytest-xdist worker makes a folder of its own (this file runs again in each).
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
from typing import Any, Callable, Iterator

import pytest

from lw_refinenet_ros.testing.spin import spin_until  # noqa: F401  (tests import it from here)

os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
os.environ.setdefault('RCUTILS_LOGGING_BUFFERED_STREAM', '0')
if 'ROS_DOMAIN_ID' not in os.environ:
    # Chosen here, not by the caller: remembered so that parallel workers can move apart.
    os.environ['ROS_DOMAIN_ID'] = str(1 + os.getpid() % 100)
    os.environ['LWRF_TEST_DOMAIN_BASE'] = os.environ['ROS_DOMAIN_ID']
if os.environ.get('PYTEST_XDIST_WORKER') and os.environ.get('LWRF_TEST_DOMAIN_BASE'):
    # pytest-xdist workers ('gw0', 'gw1', ...) inherit the controller's domain; a domain each
    # keeps one worker's nodes from discovering the other's (valid ids are 0-101).
    _WORKER = int(os.environ['PYTEST_XDIST_WORKER'].lstrip('gw') or 0)
    os.environ['ROS_DOMAIN_ID'] = str(1 + (int(os.environ['LWRF_TEST_DOMAIN_BASE'])
                                           + 1 + _WORKER) % 100)

#: The session's cache folder when this file created it (removed at the end), else None.
_OWN_CACHE_HOME: str | None = None
if os.environ.get('LWRF_TEST_CACHE_HOME'):
    _SESSION_CACHE_HOME = os.environ['LWRF_TEST_CACHE_HOME']
else:
    _OWN_CACHE_HOME = _SESSION_CACHE_HOME = tempfile.mkdtemp(prefix='lwrf-test-cache-')
os.environ['XDG_CACHE_HOME'] = _SESSION_CACHE_HOME


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Remove the session's temporary cache folder (a caller's LWRF_TEST_CACHE_HOME stays)."""
    if _OWN_CACHE_HOME is not None:
        shutil.rmtree(_OWN_CACHE_HOME, ignore_errors=True)


@pytest.fixture(autouse=True)
def _no_sigchld_handler_left_behind() -> Iterator[None]:
    """Take back a SIGCHLD handler a test let a library install for the rest of the run.

    torch's DataLoader installs a Python SIGCHLD handler, for good, the first time a loader
    with worker processes starts in the main thread. Afterwards every child that exits (the
    suite starts thousands: nodes, CLIs, exports) runs it on the receiving thread's alternate
    signal stack, and in this long process that stack can be stale (OpenVINO's CPU plugin swaps
    in its own while a compiled model lives; see ``_in_a_pytest_of_its_own`` in
    test_trainer.py): runs of the suite died with SIGSEGV there. The loader tests now run in
    a pytest of their own; this guard keeps any other test's handler from outliving it.
    """
    before = signal.getsignal(signal.SIGCHLD)
    yield
    if signal.getsignal(signal.SIGCHLD) is not before:
        signal.signal(signal.SIGCHLD, before)


@pytest.fixture(scope='session')
def session_cache_home() -> str:
    """The ``XDG_CACHE_HOME`` every test of this session shares (see the module docstring)."""
    return _SESSION_CACHE_HOME


@pytest.fixture
def ros_context() -> Iterator[Any]:
    """A fresh, initialised rclpy context per test, shut down afterwards."""
    import rclpy
    context = rclpy.Context()
    rclpy.init(context=context)
    try:
        yield context
    finally:
        context.try_shutdown()


@pytest.fixture
def spin() -> Callable[..., bool]:
    """The ``spin_until`` helper as a fixture, for tests that prefer injection."""
    return spin_until
