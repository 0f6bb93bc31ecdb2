"""Shared test fixtures.

ROS isolation: every test run gets its own DDS domain and localhost-only discovery so that
parallel runs (and other machines) cannot cross-talk; values set by the caller win. rclpy is
imported lazily so that the unit tests run in a plain environment without ROS.
"""

from __future__ import annotations

import os
import time
from typing import Any, Callable, Iterator

import pytest

os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
os.environ.setdefault('ROS_DOMAIN_ID', str(1 + os.getpid() % 100))
os.environ.setdefault('RCUTILS_LOGGING_BUFFERED_STREAM', '0')


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


def spin_until(executor: Any, predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    """Spin ``executor`` until ``predicate()`` holds or ``timeout`` seconds pass.

    Returns the predicate's final value, so tests assert on it: a deadline, never a sleep.
    """
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            return predicate()
        executor.spin_once(timeout_sec=0.05)
    return True


@pytest.fixture
def spin() -> Callable[..., bool]:
    """The ``spin_until`` helper as a fixture, for tests that prefer injection."""
    return spin_until
