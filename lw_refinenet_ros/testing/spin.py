"""Waiting on a ROS executor for a condition, with a deadline instead of a sleep.

No ROS import: it takes any executor with ``spin_once(timeout_sec=...)``, so the test suite's
``conftest.py`` can offer it without loading rclpy for tests that do not need ROS.
"""

from __future__ import annotations

import time
from typing import Any, Callable


def spin_until(executor: Any, predicate: Callable[[], bool], timeout: float = 5.0,
               period_s: float = 0.05) -> bool:
    """Spin ``executor`` until ``predicate()`` holds or ``timeout`` seconds pass.

    Returns the predicate's final value, so callers assert on it (a deadline, never a sleep).
    """
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            return predicate()
        executor.spin_once(timeout_sec=period_s)
    return True
