"""Run a node as a process: rclpy init, executor, SIGINT/SIGTERM, a bounded exit, exit code.

The promise (docs/guarantees.md): SIGINT or SIGTERM ends the process with exit code 0 within
:data:`EXIT_BUDGET_S` seconds, whatever is running, and the DDS participant is destroyed so
that no Fast DDS shared-memory files stay in /dev/shm.

Why it needs more than ``spin(); destroy_node(); shutdown()``: an inference cannot be
interrupted, and on a CPU it can take seconds. The worker thread that runs it is a daemon
thread; if the interpreter finalises while that thread is inside torch's C++ code, CPython
(3.11/3.12) ends the thread with ``pthread_exit`` as it tries to re-take the GIL, the forced
unwind crosses a ``noexcept`` C++ frame and the process aborts ("terminate called without an
active exception", exit code -6). So the exit goes:

1. the rclpy signal handler shuts the context down; the executor returns;
2. the node is destroyed: its pipeline closes its outputs (a worker that finishes later
   touches no rclpy entity any more) and waits briefly for the worker;
3. rclpy shuts down and the context is destroyed, which destroys the DDS participant and
   with it the shared-memory segments;
4. if a worker is still inside an inference, the process leaves it behind with ``os._exit``
   (status 0, streams flushed) instead of finalising the interpreter under it;
5. otherwise, after a signal, the process also ends with ``os._exit(0)``: everything that
   must be released (node, participant, shared memory, log streams) already is, and the
   interpreter's own teardown of torch, OpenVINO and the ROS libraries took 0.9-1.3 s on a
   loaded 2-core machine (2.2 s with the real engine), enough on its own to break the 2 s
   promise. ``run_node(..., fast_exit=False)`` returns instead (start-up errors always do).

A watchdog thread backs this up for the cases where the main thread itself is stuck in C++
code: once the context is down it gives the orderly path the budget and then ends the
process itself. While the node is still being built (loading, a warm-up inference) that is
the interrupted start-up the user asked for: a WARN line and status 0. Once the node was
built, a teardown that overruns the budget is a fault (a deadlock): an ERROR line and status
:data:`FORCED_EXIT_CODE`.

An exception out of the executor counts as the signal only when it is one rclpy raises while
its context goes down (``ros/spinning.py``), and is then logged at WARN; any other is a crash
with its traceback and a non-zero status.
"""

from __future__ import annotations

import ctypes
import logging
import os
import sys
import threading
import time
from typing import Callable, Sequence

import rclpy
from rclpy.context import Context
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node

from lw_refinenet_ros.errors import LWRefineNetError
from lw_refinenet_ros.heap import keep_freed_memory
from lw_refinenet_ros.ros.health import NodeFailure
from lw_refinenet_ros.ros.spinning import shutdown_raced
from lw_refinenet_ros.scheduler import busy_workers

NODE_NAME = 'lw_refinenet'
# SIGINT/SIGTERM -> exit within this many seconds (the documented guarantee).
EXIT_BUDGET_S = 2.0
# Part of the budget kept for the final flush and the interpreter's own exit.
_EXIT_MARGIN_S = 0.3
# How long after shutdown began the process waits for an inference in flight to end; longer
# ones are left behind (their thread must not be running when the interpreter finalises).
WORKER_GRACE_S = 0.5
# Exit status when the watchdog had to end a built node's teardown (a deadlock, not a signal
# served in time).
FORCED_EXIT_CODE = 3

_LOG = logging.getLogger(__name__)


def _flush_streams() -> None:
    """Flush Python's and C's stdio buffers (``os._exit`` flushes neither)."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError, AttributeError):
            pass
    try:
        ctypes.CDLL(None).fflush(None)
    except (OSError, AttributeError):
        pass


def _leave(code: int, reason: str | None = None, level: str = 'info') -> None:
    """End the process now with ``code``, without finalising the interpreter; ``reason`` is
    logged at ``level`` first."""
    if reason:
        getattr(rclpy.logging.get_logger(NODE_NAME), level)(reason)
    logging.shutdown()
    _flush_streams()
    os._exit(code)


class ExitWatchdog:
    """Ends the process if it is still alive ``budget_s`` after shutdown began.

    Shutdown begins when the context stops being ok (the rclpy signal handler shuts it down
    from its own thread, so this sees a signal even while the main thread is busy in C++).
    Before :meth:`node_built` the exit is the interrupted start-up (status 0, WARN); after it,
    a stuck teardown (status :data:`FORCED_EXIT_CODE`, ERROR).
    """

    def __init__(self, context: Context, budget_s: float = EXIT_BUDGET_S,
                 poll_s: float = 0.05) -> None:
        self._context = context
        self._budget_s = budget_s
        self._poll_s = poll_s
        self._done = threading.Event()
        self._down_at: float | None = None
        self._built = False
        self._thread = threading.Thread(target=self._watch, name='lw_refinenet_exit_watchdog',
                                        daemon=True)

    def start(self) -> ExitWatchdog:
        self._thread.start()
        return self

    def since_shutdown(self, seconds: float) -> float:
        """Monotonic time ``seconds`` after shutdown began (from now if it has not)."""
        start = self._down_at if self._down_at is not None else time.monotonic()
        return start + seconds

    def note_shutdown(self) -> None:
        """Record the start of shutdown if the watchdog has not seen it yet."""
        if self._down_at is None:
            self._down_at = time.monotonic()

    def node_built(self) -> None:
        """The node exists: from now on a forced exit is a fault, not an interrupted start."""
        self._built = True

    def cancel(self) -> None:
        """The orderly exit is done (or the process is leaving): stand down."""
        self._done.set()

    def _watch(self) -> None:
        while not self._done.is_set():
            if not self._context.ok():
                self.note_shutdown()
                break
            self._done.wait(self._poll_s)
        deadline = self.since_shutdown(self._budget_s - _EXIT_MARGIN_S)
        if self._done.wait(max(0.0, deadline - time.monotonic())):
            return
        if not self._built:
            _leave(0, f'shutdown took longer than {self._budget_s:g} s (the main thread is '
                      f'busy in native code while the node is being built): start-up '
                      f'interrupted, exiting now', 'warning')
        _leave(FORCED_EXIT_CODE,
               f'shutdown took longer than {self._budget_s:g} s: the teardown of the node is '
               f'stuck (the main thread is busy in native code); forcing the exit with '
               f'status {FORCED_EXIT_CODE}', 'error')


def _wait_for_workers(deadline: float) -> list[threading.Thread]:
    """Give busy inference workers until ``deadline`` to finish; returns those still alive."""
    for thread in busy_workers():
        thread.join(max(0.0, deadline - time.monotonic()))
    return busy_workers()


def run_node(factory: Callable[[], Node], args: Sequence[str] | None = None, *,
             fast_exit: bool = True) -> int:
    """Init rclpy, build a node with ``factory()``, spin until SIGINT/SIGTERM; exit code.

    Returns 1 when the node cannot start (the reason is logged). After a signal (or an
    external shutdown) the node is torn down and the process ends with status 0 without
    returning (see the module docstring); with ``fast_exit=False`` this returns 0 instead,
    unless an inference is still running.
    """
    keep_freed_memory()  # frame buffers reused, not faulted in per frame (heap.py)
    rclpy.init(args=args)
    context = rclpy.get_default_context()
    watchdog = ExitWatchdog(context).start()
    node: Node | None = None
    executor: SingleThreadedExecutor | None = None
    code = 0
    try:
        try:
            node = factory()
        except LWRefineNetError as error:
            if context.ok():  # a start-up error, not one caused by a signal during start-up
                rclpy.logging.get_logger(NODE_NAME).fatal(f'cannot start: {error}')
                code = 1
        if node is not None and context.ok():
            # (Built after a signal: the start-up was interrupted, its overrun no fault.)
            watchdog.node_built()
        if node is not None and context.ok():
            executor = SingleThreadedExecutor(context=context)
            executor.add_node(node)
            executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except NodeFailure as error:
        # The node stopped working (its worker keeps dying): said at FATAL, never exit 0.
        rclpy.logging.get_logger(NODE_NAME).fatal(f'stopping: {error}')
        code = 1
    except Exception as error:
        # A signal can surface first as an error from inside rclpy's C++ code while rclpy is
        # still shutting the context down (see ros/spinning.py): not a crash, but logged.
        if not shutdown_raced(error, context, NODE_NAME):
            watchdog.cancel()  # a crash: the traceback and a non-zero status, not exit 0
            raise
    finally:
        watchdog.note_shutdown()
        _close(node, executor, context)
    # The node and the participant are gone: from here on the exit is bounded by this thread.
    watchdog.cancel()
    left = _wait_for_workers(watchdog.since_shutdown(WORKER_GRACE_S))
    if left:
        _leave(code, f'an inference was still running at exit ({len(left)} worker(s)); '
                     'left behind, exiting now')
    if fast_exit and code == 0:
        _leave(code)
    return code


def _close(node: Node | None, executor: SingleThreadedExecutor | None,
           context: Context) -> None:
    """Destroy the node, the executor and the context (and so the DDS participant)."""
    if node is not None:
        try:
            node.destroy_node()
        except Exception as error:  # noqa: BLE001 - go on to release the participant
            rclpy.logging.get_logger(NODE_NAME).warning(f'destroying the node failed: {error}')
    if executor is not None:
        executor.shutdown(timeout_sec=0)
    rclpy.try_shutdown(context=context)
    try:
        context.destroy()
    except Exception as error:  # noqa: BLE001 - still in use: the GC destroys it later
        _LOG.debug('context not destroyed yet: %s', error)
