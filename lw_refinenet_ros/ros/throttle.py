"""Warnings throttled per kind of problem, not per call site.

rclpy's ``throttle_duration_sec`` keys on the call site, which would let one kind of problem
(one camera's bad frames) hide the others (another camera's, the engine's) and cannot follow
a runtime change of ``log_throttle_s``. Shared by the node's inputs, inference and outputs.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable

_LOG = logging.getLogger(__name__)


class ThrottledLog:
    """At most one warning per kind within ``period_s()`` seconds.

    Args:
        logger: Returns the logger to use now, or None once the node may be gone (the
            message then goes to Python logging, which needs no ROS entity).
        period_s: Returns the current period (``log_throttle_s`` may change at runtime).
    """

    def __init__(self, logger: Callable[[], Any], period_s: Callable[[], float]) -> None:
        self._logger = logger
        self._period_s = period_s
        self._last: dict[str, float] = {}
        self._lock = threading.Lock()

    def warning(self, kind: str, text: str) -> None:
        """Log ``text`` unless a warning of ``kind`` was logged within the period."""
        now = time.monotonic()
        with self._lock:
            if now - self._last.get(kind, -1e9) < self._period_s():
                return
            self._last[kind] = now
        (self._logger() or _LOG).warning(text)
