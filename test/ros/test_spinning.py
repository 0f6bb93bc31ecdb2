"""A signal that surfaces as an error inside rclpy is a shutdown (logged), a real error is a
crash: in the spinning helper and in the node's process runner."""

from __future__ import annotations

import os
import pathlib
import signal
import subprocess
import sys
import threading

import pytest
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.impl.implementation_singleton import rclpy_implementation

from lw_refinenet_ros.ros.spinning import (
    context_stays_ok,
    is_shutdown_error,
    spin_until_shutdown,
)

ROOT = pathlib.Path(__file__).resolve().parents[2]
PYBIND_INTERRUPTED = 'Unable to convert call argument 0 to Python object'


def _spin_with_failing_timer(context, shutdown_after_s: float | None,
                             error: BaseException | None = None) -> None:
    node = rclpy.create_node('spinning_probe', context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)

    def fail() -> None:
        if shutdown_after_s is not None:  # like rclpy's signal handler, a moment later
            threading.Timer(shutdown_after_s, context.try_shutdown).start()
        raise error or RuntimeError(PYBIND_INTERRUPTED)

    node.create_timer(0.01, fail)
    try:
        spin_until_shutdown(executor, context)
    finally:
        executor.shutdown()
        node.destroy_node()


def test_an_error_while_the_context_goes_down_is_the_requested_shutdown(ros_context,
                                                                         capfd) -> None:
    _spin_with_failing_timer(ros_context, shutdown_after_s=0.05)  # returns, no exception
    assert not ros_context.ok()
    warnings = [line for line in capfd.readouterr().err.splitlines() if '[WARN]' in line]
    assert len(warnings) == 1, warnings
    assert f'treated as the requested shutdown: RuntimeError: {PYBIND_INTERRUPTED}' \
        in warnings[0]


def test_an_rcl_error_while_the_context_goes_down_is_logged_with_its_type(ros_context,
                                                                          capfd) -> None:
    error = rclpy_implementation.RCLError('the context is shutting down')
    _spin_with_failing_timer(ros_context, shutdown_after_s=0.05, error=error)
    assert 'treated as the requested shutdown: RCLError: the context is shutting down' \
        in capfd.readouterr().err


def test_other_errors_are_crashes_even_when_a_signal_follows(ros_context) -> None:
    with pytest.raises(ValueError, match='a real bug'):
        _spin_with_failing_timer(ros_context, shutdown_after_s=0.05,
                                 error=ValueError('a real bug'))


def test_only_rclpy_shutdown_errors_qualify() -> None:
    assert is_shutdown_error(rclpy_implementation.RCLError('x'))
    assert is_shutdown_error(rclpy_implementation.InvalidHandle('x'))
    assert is_shutdown_error(RuntimeError(PYBIND_INTERRUPTED))
    assert not is_shutdown_error(RuntimeError('CUDA error: device-side assert'))
    assert not is_shutdown_error(ValueError(PYBIND_INTERRUPTED))


def test_an_error_while_the_context_stays_up_is_a_crash(ros_context) -> None:
    with pytest.raises(RuntimeError, match='Unable to convert'):
        _spin_with_failing_timer(ros_context, shutdown_after_s=None)
    assert ros_context.ok()


def test_context_stays_ok_answers_as_soon_as_the_context_is_down(ros_context) -> None:
    assert context_stays_ok(ros_context, 0.05)
    ros_context.try_shutdown()
    assert not context_stays_ok(ros_context, 5.0)


# A node process (the real runner) whose timer raises ``ERROR`` and, with ``SIGNAL``, sends
# itself SIGTERM a moment before: the exception races the signal's shutdown.
RACING_NODE = """
import os, signal, sys, threading
from rclpy.impl.implementation_singleton import rclpy_implementation
from rclpy.node import Node
from lw_refinenet_ros.ros.runner import run_node

ERROR, SIGNAL, STUCK = sys.argv[1], sys.argv[2] == 'signal', sys.argv[3] == 'stuck'

class Racing(Node):
    def __init__(self):
        super().__init__('racing')
        self.create_timer(0.2, self.fire)

    def fire(self):
        if SIGNAL:
            os.kill(os.getpid(), signal.SIGTERM)
            threading.Event().wait(0.05)  # the handler shuts the context down meanwhile
        if ERROR == 'rcl':
            raise rclpy_implementation.RCLError('publisher is invalid')
        if ERROR == 'value':
            raise ValueError('a real bug')
        if ERROR == 'none':
            return

    def destroy_node(self):
        if STUCK:
            threading.Event().wait(60)  # a teardown that never ends
        super().destroy_node()

sys.exit(run_node(Racing, sys.argv[3:]))
"""


def _run_racing(error: str, with_signal: bool, stuck: bool = False
                ) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        p for p in (str(ROOT), os.environ.get('PYTHONPATH')) if p))
    return subprocess.run(
        [sys.executable, '-c', RACING_NODE, error, 'signal' if with_signal else 'none',
         'stuck' if stuck else 'free'],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.slow
def test_a_node_process_whose_exception_races_a_signal_logs_it_and_exits_zero() -> None:
    result = _run_racing('rcl', with_signal=True)
    assert result.returncode == 0, result.stderr[-3000:]
    assert 'treated as the requested shutdown: RCLError: publisher is invalid' \
        in result.stderr, result.stderr[-3000:]
    assert 'Traceback' not in result.stderr


@pytest.mark.slow
def test_a_real_crash_racing_a_signal_exits_non_zero_with_its_traceback() -> None:
    result = _run_racing('value', with_signal=True)
    assert result.returncode not in (0, -signal.SIGABRT), result.stderr[-3000:]
    assert 'ValueError: a real bug' in result.stderr


@pytest.mark.slow
def test_a_watchdog_forced_exit_after_start_up_is_an_error_with_a_non_zero_status() -> None:
    from lw_refinenet_ros.ros.runner import FORCED_EXIT_CODE
    result = _run_racing('none', with_signal=True, stuck=True)
    assert result.returncode == FORCED_EXIT_CODE, result.stderr[-3000:]
    assert '[ERROR]' in result.stderr and 'teardown of the node is stuck' in result.stderr
