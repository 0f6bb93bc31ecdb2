"""Child processes for the demo and the benchmarks: start, watch, stop in order.

Both run ROS nodes as separate processes (their own interpreter and GIL, real DDS transport
between them) and must stop them in a fixed order without leaving strays behind. This module is
the one place that knows how: children run with ``sys.executable`` (the same venv; a different
venv's python inherits the ROS wheel bootstrapper's variables and cannot import rclpy), in a
new session (a terminal Ctrl-C reaches only the parent, which then stops the children itself,
in order), and are stopped SIGINT -> SIGTERM -> SIGKILL of the whole process group.

No ROS imports here: the benchmarks use this module from processes that never touch ROS.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
import os
from pathlib import Path
import signal
import subprocess
import sys
import time
from typing import Callable, Mapping, Sequence

# The checkout (or site-packages) holding this copy of the package: children put it first on
# PYTHONPATH, so they run the same code as the parent.
SOURCE_ROOT = Path(__file__).resolve().parents[2]
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGKILL)


def child_env(base: Mapping[str, str] | None = None, *, source_root: Path = SOURCE_ROOT,
              **overrides: str) -> dict[str, str]:
    """Environment for a child: ``base`` (default ``os.environ``), ``source_root`` first on
    PYTHONPATH (default: where this copy of the package lives; the benchmarks pass their
    checkout), unbuffered output (logs arrive while the child runs), then ``overrides``."""
    env = dict(os.environ if base is None else base)
    root = str(source_root)
    rest = [p for p in env.get('PYTHONPATH', '').split(os.pathsep) if p and p != root]
    env['PYTHONPATH'] = os.pathsep.join([root, *rest])
    env.setdefault('RCUTILS_LOGGING_BUFFERED_STREAM', '0')
    env.setdefault('PYTHONUNBUFFERED', '1')
    env.update(overrides)
    return env


def module_main_argv(module: str, args: Sequence[str] = ()) -> list[str]:
    """Interpreter arguments that run ``module.main()`` and exit with its return value."""
    return ['-c', f'import sys; from {module} import main; sys.exit(main())', *args]


def start(argv: Sequence[str], *, env: Mapping[str, str] | None = None,
          cwd: str | Path | None = None, log_path: Path | None = None,
          **popen_kwargs: object) -> subprocess.Popen:
    """Start ``sys.executable argv...`` in its own session.

    Args:
        argv: Interpreter arguments (a script path, ``-m module``, or :func:`module_main_argv`).
        env: The child's environment (default :func:`child_env`).
        cwd: Working directory of the child.
        log_path: When given, stdout and stderr go to this file (truncated).
        **popen_kwargs: Anything else for :class:`subprocess.Popen` (``stdout=PIPE``, ...).
    """
    if log_path is not None:
        log = open(log_path, 'wb')  # noqa: SIM115 (the child keeps its own descriptor)
        popen_kwargs.update(stdout=log, stderr=subprocess.STDOUT)
    try:
        return subprocess.Popen([sys.executable, *argv],
                                env=dict(child_env() if env is None else env),
                                cwd=None if cwd is None else str(cwd), start_new_session=True,
                                **popen_kwargs)  # type: ignore[call-overload]
    finally:
        if log_path is not None:
            log.close()


@dataclass(frozen=True)
class StopResult:
    """How a child ended: its exit code, the seconds from the first signal, the last signal
    that had to be sent (``SIGINT`` for a clean stop)."""

    exit_code: int
    seconds: float
    signal: signal.Signals | None


def stop(process: subprocess.Popen, timeout_s: float = 8.0,
         spin: Callable[[], None] | None = None) -> StopResult:
    """Stop ``process``: SIGINT, then SIGTERM, then SIGKILL to its process group.

    Each signal gets ``timeout_s`` seconds. ``spin`` runs while waiting (for example the
    parent's ROS executor) so the last messages the child sends before it exits are still
    received: a reliable sample not yet delivered is lost once its publisher is gone.
    """
    start_time = time.monotonic()
    sent: signal.Signals | None = None
    for sig in STOP_SIGNALS:
        if process.poll() is not None:
            break
        sent = sig
        with contextlib.suppress(ProcessLookupError):
            if sig == signal.SIGKILL:
                os.killpg(process.pid, sig)  # grandchildren too: nothing may survive
            else:
                process.send_signal(sig)
        deadline = time.monotonic() + timeout_s
        while process.poll() is None and time.monotonic() < deadline:
            if spin is not None:
                spin()
            else:
                time.sleep(0.02)
    code = process.wait()
    return StopResult(code, round(time.monotonic() - start_time, 3), sent)


def wait_for_line(process: subprocess.Popen, marker: str, timeout_s: float) -> bool:
    """Read the child's (text) stdout until a line contains ``marker``: the child is ready.

    False when the child exits or ``timeout_s`` passes first.
    """
    if process.stdout is None:
        raise ValueError('wait_for_line needs a child started with stdout=subprocess.PIPE.')
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            if process.poll() is not None:
                return False
            time.sleep(0.01)
            continue
        if marker in line:
            return True
    return False


def log_tail(path: Path, lines: int = 15) -> str:
    """The last ``lines`` lines of a child's log ('' when there is none), for error messages."""
    try:
        text = path.read_text(errors='replace').strip().splitlines()
    except OSError:
        return ''
    return '\n'.join(text[-lines:])


def shm_profile() -> Path | None:
    """The package's 64 MB shared-memory Fast DDS profile: installed share/ first, then the
    source checkout; None when neither has it."""
    prefixes = [p for p in os.environ.get('AMENT_PREFIX_PATH', '').split(os.pathsep) if p]
    candidates = [Path(p) / 'share' / 'lw_refinenet_ros' / 'config' / 'fastdds_shm.xml'
                  for p in (*prefixes, sys.prefix)]
    candidates.append(SOURCE_ROOT / 'config' / 'fastdds_shm.xml')
    return next((path for path in candidates if path.is_file()), None)
