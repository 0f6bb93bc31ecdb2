"""A signal that surfaces as an error inside rclpy is a shutdown, a real error is a crash."""

from __future__ import annotations

import threading

import pytest
import rclpy
from rclpy.executors import SingleThreadedExecutor

from lw_refinenet_ros.ros.spinning import context_stays_ok, spin_until_shutdown


def _spin_with_failing_timer(context, shutdown_after_s: float | None) -> None:
    node = rclpy.create_node('spinning_probe', context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)

    def fail() -> None:
        if shutdown_after_s is not None:  # like rclpy's signal handler, a moment later
            threading.Timer(shutdown_after_s, context.try_shutdown).start()
        raise RuntimeError('Unable to convert call argument 0 to Python object')

    node.create_timer(0.01, fail)
    try:
        spin_until_shutdown(executor, context)
    finally:
        executor.shutdown()
        node.destroy_node()


def test_an_error_while_the_context_goes_down_is_the_requested_shutdown(ros_context) -> None:
    _spin_with_failing_timer(ros_context, shutdown_after_s=0.05)  # returns, no exception
    assert not ros_context.ok()


def test_an_error_while_the_context_stays_up_is_a_crash(ros_context) -> None:
    with pytest.raises(RuntimeError, match='Unable to convert'):
        _spin_with_failing_timer(ros_context, shutdown_after_s=None)
    assert ros_context.ok()


def test_context_stays_ok_answers_as_soon_as_the_context_is_down(ros_context) -> None:
    assert context_stays_ok(ros_context, 0.05)
    ros_context.try_shutdown()
    assert not context_stays_ok(ros_context, 5.0)
