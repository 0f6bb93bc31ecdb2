"""CPU seconds of the demo's processes over the timed run: what each one took from the cores.

On a 2-core machine the node shares the CPU with the camera, this process (monitor,
recorder, robot, video) and whatever else runs; frames per second alone cannot say which of
them took the time. The run's summary therefore gives each process's CPU seconds between the
first camera frame and the end of the run, read from the kernel's per-process counters
(``/proc/PID/stat``: user + system time of every thread; this process: ``os.times``). Where
``/proc`` is missing (not Linux) the figures are None. No ROS.
"""

from __future__ import annotations

import os
from pathlib import Path

_TICKS = os.sysconf('SC_CLK_TCK') if hasattr(os, 'sysconf') else 100


def process_cpu_s(pid: int | None = None) -> float | None:
    """User + system CPU seconds of process ``pid`` so far (None: this process); None when
    the process is gone or the platform has no ``/proc``."""
    if pid is None or pid == os.getpid():
        times = os.times()
        return times.user + times.system
    try:
        text = Path(f'/proc/{pid}/stat').read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after the last ')'.
    fields = text[text.rindex(')') + 2:].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS  # utime, stime (fields 14, 15)


class CpuWindow:
    """CPU seconds of named processes between :meth:`start` and :meth:`stop`."""

    def __init__(self, pids: dict[str, int | None]) -> None:
        self._pids = dict(pids)
        self._start: dict[str, float | None] = {}
        self._stop: dict[str, float | None] = {}

    def start(self) -> None:
        self._start = {name: process_cpu_s(pid) for name, pid in self._pids.items()}

    def stop(self) -> None:
        self._stop = {name: process_cpu_s(pid) for name, pid in self._pids.items()}

    def seconds(self) -> dict[str, float | None]:
        """Each process's CPU seconds in the window (None: not measured or gone)."""
        return {name: round(self._stop[name] - self._start[name], 2)
                if self._start.get(name) is not None and self._stop.get(name) is not None
                else None for name in self._pids}
