"""The node's second stage (ros/deferred.py): objects and images are published on a thread of
their own, one frame at a time and in order, never more than one frame behind the worker."""

from __future__ import annotations

import threading
import time

from lw_refinenet_ros.ros.deferred import DeferredPublisher
from lw_refinenet_ros.scheduler import busy_workers


def test_jobs_run_in_order_on_the_second_thread() -> None:
    ran: list[tuple[int, str]] = []
    publisher = DeferredPublisher(on_error=lambda error: None)
    publisher.start()
    for index in range(5):
        publisher.submit(lambda i=index: ran.append((i, threading.current_thread().name)))
    assert publisher.wait_idle(5.0)
    assert [i for i, _ in ran] == [0, 1, 2, 3, 4]
    assert {name for _, name in ran} == {'lw_refinenet_publisher'}
    assert publisher.stop(5.0)


def test_a_submit_waits_while_the_previous_frame_is_still_published() -> None:
    release = threading.Event()
    publisher = DeferredPublisher(on_error=lambda error: None)
    publisher.start()
    publisher.submit(release.wait)  # returns at once: the thread takes it
    second = threading.Thread(target=publisher.submit, args=(lambda: None,))
    second.start()
    second.join(0.3)
    assert second.is_alive(), 'the next frame must wait, not pile up behind the first'
    release.set()
    second.join(5.0)
    assert not second.is_alive()
    assert publisher.wait_idle(5.0) and publisher.done == 2
    assert publisher.stop(5.0)


def test_a_failing_job_is_reported_and_the_next_one_still_runs() -> None:
    errors: list[Exception] = []
    ran: list[str] = []
    publisher = DeferredPublisher(on_error=errors.append)
    publisher.start()
    publisher.submit(lambda: 1 / 0)
    publisher.submit(lambda: ran.append('next'))
    assert publisher.wait_idle(5.0)
    assert [type(error) for error in errors] == [ZeroDivisionError] and ran == ['next']
    assert publisher.stop(5.0)


def test_without_a_running_thread_the_job_runs_in_the_callers_thread() -> None:
    names: list[str] = []
    publisher = DeferredPublisher(on_error=lambda error: None)
    publisher.submit(lambda: names.append(threading.current_thread().name))
    publisher.start()
    assert publisher.stop(5.0)
    publisher.submit(lambda: names.append(threading.current_thread().name))
    here = threading.current_thread().name
    assert names == [here, here]


def test_stop_lets_the_job_in_hand_finish_and_start_runs_again() -> None:
    finished: list[str] = []
    publisher = DeferredPublisher(on_error=lambda error: None)
    publisher.start()
    publisher.submit(lambda: (time.sleep(0.2), finished.append('first')))
    assert any(t.name == 'lw_refinenet_publisher' for t in busy_workers())
    assert publisher.stop(5.0)
    assert finished == ['first']
    publisher.start()
    publisher.submit(lambda: finished.append(threading.current_thread().name))
    assert publisher.wait_idle(5.0) and finished == ['first', 'lw_refinenet_publisher']
    assert publisher.stop(5.0)
