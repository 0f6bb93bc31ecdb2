"""Work the demo does for itself (drawing and encoding its video) on one low-priority thread.

On a 2-core machine the demo's bookkeeping competes with the node it measures: drawing and
encoding the video in the executor thread cost the node frames. :class:`LowPriorityWorker`
runs such jobs in order on one thread that lowers its own CPU priority (``os.nice``; on
Linux the nice value belongs to the calling thread, so the rest of the demo keeps its
priority), and OpenCV releases the GIL while it draws and encodes. Whatever is still queued
when the run ends is finished by :meth:`LowPriorityWorker.close`, after the run. No ROS.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from typing import Any, Callable

#: The nice value the worker asks for (the lowest priority).
LOWEST_PRIORITY = 19


class LowPriorityWorker:
    """Runs submitted jobs in order on one thread at nice :data:`LOWEST_PRIORITY`.

    Args:
        name: Thread name (shows in ``top -H``).
        niceness: Increment passed to ``os.nice`` in the thread.
        max_queued: Jobs allowed to wait; :meth:`submit` blocks beyond that (and counts it),
            so memory stays bounded when the machine never has a spare moment.
    """

    def __init__(self, name: str = 'demo-encoder', niceness: int = LOWEST_PRIORITY,
                 max_queued: int = 900) -> None:
        self._queue: queue.Queue[tuple[Callable[[], Any], float] | None] = queue.Queue(
            max_queued)
        self._niceness = int(niceness)
        self.nice: int | None = None  # the thread's nice value, once it runs
        self.cpu_s = 0.0              # CPU time the jobs took (the thread's own clock)
        self.jobs = 0
        self.blocked_submits = 0
        self.most_queued = 0
        self.errors: list[str] = []
        self.drain_s = 0.0            # time close() waited for the queue after the run
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, job: Callable[[], Any]) -> None:
        """Queue ``job`` (runs on the worker thread, after every job submitted before it)."""
        if self._closed:
            raise RuntimeError('LowPriorityWorker.submit after close()')
        item = (job, time.monotonic())
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            self.blocked_submits += 1
            self._queue.put(item)
        self.most_queued = max(self.most_queued, self._queue.qsize())

    def _run(self) -> None:
        try:
            os.nice(self._niceness)
        except OSError:  # not permitted here: run at the inherited priority
            pass
        self.nice = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
        while True:
            item = self._queue.get()
            if item is None:
                return
            job, _ = item
            start = time.thread_time()
            try:
                job()
            except Exception as error:  # a broken frame must not end the video
                if len(self.errors) < 5:
                    self.errors.append(f'{type(error).__name__}: {error}')
            self.cpu_s += time.thread_time() - start
            self.jobs += 1

    def close(self) -> None:
        """Finish every queued job, then stop the thread (safe to call twice)."""
        if self._closed:
            return
        self._closed = True
        start = time.monotonic()
        self._queue.put(None)
        self._thread.join()
        self.drain_s = round(time.monotonic() - start, 3)

    def describe(self) -> dict[str, Any]:
        """JSON-ready cost figures (for the demo summary)."""
        return {'nice': self.nice, 'cpu_s': round(self.cpu_s, 3), 'jobs': self.jobs,
                'most_queued': self.most_queued, 'blocked_submits': self.blocked_submits,
                'finished_after_run_s': self.drain_s, 'errors': self.errors}
