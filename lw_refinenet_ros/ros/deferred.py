"""The second stage of a frame on a thread of its own: objects, markers, colour, overlay and
confidence are published while the worker already segments the next frame.

Why: the worker used to do everything for a frame in turn. At 640x480 on 2 cores the node
then processed 334-366 frames in a 20 s demo while 6.5 of the 40 CPU seconds stayed idle
(docs/benchmarks.md, "The heap, one post-processing thread"). It was held back by its one
thread, not by the CPU. The forward pass releases the GIL (the runtimes run in C++), and so
do most of OpenCV's and numpy's large operations, so the stages can overlap.

The worker still publishes labels and stats itself, before it returns a frame as processed:
robots get them as early as before, and "processed" still means "labels published". The
images follow one frame later at most. Jobs run one at a time, in frame order, because the
object tracker needs its frames in order. :meth:`DeferredPublisher.submit` waits while the
previous job runs, so the second stage never falls more than a frame behind and holds no
backlog.

A job takes the outputs' lock and checks that they are open, as the worker does, so a node
that closes its outputs (deactivate, shutdown) waits for a job in progress and is never
touched afterwards. The thread is registered with the scheduler's workers
(:func:`~lw_refinenet_ros.scheduler.track_worker`), so the process's exit waits for it as it
waits for an inference.
"""

from __future__ import annotations

import logging
import threading
from typing import Callable

from lw_refinenet_ros.scheduler import track_worker

_LOG = logging.getLogger(__name__)

Job = Callable[[], None]


class DeferredPublisher:
    """One background thread running one job at a time, in submission order.

    Args:
        on_error: Called (on the thread) with the exception of a job that raised; the
            thread goes on with the next job.
    """

    def __init__(self, on_error: Callable[[Exception], None]) -> None:
        self._on_error = on_error
        self._condition = threading.Condition()
        self._job: Job | None = None
        self._running = False
        self._stopping = False
        self._thread: threading.Thread | None = None
        #: Jobs finished (run to the end or raised), for tests and diagnostics.
        self.done = 0

    def start(self) -> None:
        """Start the thread (idempotent; also after :meth:`stop`). Call it from the thread
        that owns the node (activation), not from the worker: a thread started from the
        worker while it publishes could wait on its start forever."""
        with self._condition:
            if self._thread is not None and self._thread.is_alive():
                if not self._stopping:
                    return
                # A stopped thread still finishing its job: it ends once the slot is empty.
                self._condition.wait_for(lambda: not self._running and self._job is None)
            self._stopping = False
            self._thread = threading.Thread(target=self._run, name='lw_refinenet_publisher',
                                            daemon=True)
            track_worker(self._thread)
            self._thread.start()

    def submit(self, job: Job) -> None:
        """Run ``job`` on the thread once the previous one has finished (waits until then).

        Without a running thread (never started, or stopped) the job runs here and now, in
        the caller's thread."""
        with self._condition:
            thread = self._thread
            if thread is not None and thread.is_alive() and not self._stopping:
                while (self._job is not None or self._running) and not self._stopping:
                    self._condition.wait()
                if not self._stopping:
                    self._job = job
                    self._condition.notify_all()
                    return
        try:
            job()
        except Exception as error:  # noqa: BLE001 - as on the thread
            self._on_error(error)

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no job is queued or running; False when ``timeout`` ran out first."""
        with self._condition:
            return self._condition.wait_for(lambda: self._job is None and not self._running,
                                            timeout)

    def stop(self, timeout: float) -> bool:
        """Let the thread finish the job in hand and end; False when it is still busy after
        ``timeout`` seconds (it ends on its own once its job returns)."""
        with self._condition:
            thread = self._thread
            self._stopping = True
            self._condition.notify_all()
        if thread is None or thread is threading.current_thread():
            return True
        thread.join(timeout)
        return not thread.is_alive()

    def _run(self) -> None:
        me = threading.current_thread()
        while True:
            with self._condition:
                self._condition.wait_for(lambda: self._job is not None or self._stopping
                                         or self._thread is not me)
                job, self._job = self._job, None
                if job is None:
                    return
                self._running = True
            try:
                job()
            except Exception as error:  # noqa: BLE001 - one frame's outputs, never the thread
                self._on_error(error)
            finally:
                with self._condition:
                    self._running = False
                    self.done += 1
                    self._condition.notify_all()
