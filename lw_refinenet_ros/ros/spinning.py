"""Spinning until a signal, where a signal is never mistaken for a crash.

With rclpy's default signal handling, SIGINT raises KeyboardInterrupt wherever the main thread
is. When that is inside rclpy's C++ code (taking or converting a message), pybind reports it
as a RuntimeError ("Unable to convert call argument ..."), while rclpy's handler is still
shutting the context down (measured: ``context.ok()`` is still true right after the
interrupt and false a moment later). A process that treats that error as a crash exits 1
with a traceback after a plain Ctrl-C, seen in fresh-clone test runs of the node. This module
waits briefly for the shutdown before calling an exception a crash.

Only what rclpy raises while its context goes down qualifies (:func:`is_shutdown_error`):
its RCLError and InvalidHandle, NotInitializedException, its executor's ShutdownException and
pybind's "Unable to convert call argument" RuntimeError. Any other exception is a crash even
when a signal follows it closely, and one that is treated as the shutdown is still logged (one
WARN line with its type and message), so no exception ends a process unseen.
"""

from __future__ import annotations

import time
from typing import Callable, Sequence

import rclpy
from rclpy.context import Context
from rclpy.exceptions import InvalidHandle, NotInitializedException
from rclpy.executors import (
    Executor,
    ExternalShutdownException,
    ShutdownException,
    SingleThreadedExecutor,
)
from rclpy.impl.implementation_singleton import rclpy_implementation
from rclpy.node import Node

# How long an exception from spin() may precede the context's shutdown by a signal and still
# count as that signal rather than a crash.
SIGNAL_SETTLE_S = 0.5

# What rclpy raises from calls its context is going down under.
SHUTDOWN_ERRORS: tuple[type[BaseException], ...] = (
    rclpy_implementation.RCLError, InvalidHandle, NotInitializedException, ShutdownException)
# pybind11's text when a signal interrupts a conversion inside rclpy's C++ code.
_PYBIND_INTERRUPTED = 'Unable to convert call argument'
# The logger of the line that reports an exception treated as the shutdown.
LOGGER_NAME = 'lw_refinenet'


def is_shutdown_error(error: BaseException) -> bool:
    """Whether ``error`` is one rclpy raises while its context goes down under a call."""
    return isinstance(error, SHUTDOWN_ERRORS) or (
        type(error) is RuntimeError and str(error).startswith(_PYBIND_INTERRUPTED))


def shutdown_raced(error: BaseException, context: Context,
                   logger_name: str = LOGGER_NAME) -> bool:
    """Whether ``error`` is the requested shutdown rather than a crash; logs it if so.

    True when ``error`` is one of rclpy's shutdown errors and ``context`` goes down within
    :data:`SIGNAL_SETTLE_S`; the error is then logged in one WARN line. False means a crash:
    the caller re-raises.
    """
    if not is_shutdown_error(error) or context_stays_ok(context):
        return False
    text = ' '.join(str(error).split())
    rclpy.logging.get_logger(logger_name).warning(
        f'treated as the requested shutdown: {type(error).__name__}: {text}')
    return True


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

    One of rclpy's shutdown errors while ``context`` goes down within :data:`SIGNAL_SETTLE_S`
    is the shutdown the user asked for (logged at WARN); anything else is a crash and
    propagates.
    """
    try:
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except Exception as error:
        if not shutdown_raced(error, context):
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
