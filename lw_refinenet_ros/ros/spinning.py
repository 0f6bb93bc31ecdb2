"""Spinning until a signal, where a signal is never mistaken for a crash.

With rclpy's default signal handling, SIGINT raises KeyboardInterrupt wherever the main thread
is. When that is inside rclpy's C++ code (taking or converting a message), pybind reports it
as a RuntimeError ("Unable to convert call argument ..."), while rclpy's handler is still
shutting the context down (measured: ``context.ok()`` is still true right after the
interrupt and false a moment later). A process that treats that error as a crash exits 1
with a traceback after a plain Ctrl-C, seen in fresh-clone test runs of the node. This module
waits briefly for the shutdown before calling an exception a crash.
"""

from __future__ import annotations

import time
from typing import Callable, Sequence

import rclpy
from rclpy.context import Context
from rclpy.executors import Executor, ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node

# How long an exception from spin() may precede the context's shutdown by a signal and still
# count as that signal rather than a crash.
SIGNAL_SETTLE_S = 0.5


def context_stays_ok(context: Context, seconds: float = SIGNAL_SETTLE_S) -> bool:
    """Whether ``context`` is still ok after up to ``seconds`` (False as soon as it is not)."""
    deadline = time.monotonic() + seconds
    while context.ok():
        if time.monotonic() >= deadline:
            return True
        time.sleep(0.01)
    return False


def spin_until_shutdown(executor: Executor, context: Context) -> None:
    """``executor.spin()`` until SIGINT/SIGTERM or an external shutdown; re-raise real errors.

    An exception while ``context`` goes down within :data:`SIGNAL_SETTLE_S` is the shutdown the
    user asked for; one while the context stays up is a crash and propagates.
    """
    try:
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except Exception:
        if context_stays_ok(context):
            raise


def run_until_shutdown(build: Callable[[], Node], args: Sequence[str] | None = None) -> None:
    """Init rclpy, spin the node ``build()`` returns until a signal, then tear it all down.

    The small helper nodes (sorting robot, view) share this; the segmentation node has its own
    bounded-exit runner (``ros/runner.py``) because an inference may still be running.
    """
    rclpy.init(args=args)
    node = None
    try:
        node = build()
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        spin_until_shutdown(executor, rclpy.get_default_context())
    except (KeyboardInterrupt, ExternalShutdownException):
        pass  # a signal while the node was still being built
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
