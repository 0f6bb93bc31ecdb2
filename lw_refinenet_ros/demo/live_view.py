"""``lw-refinenet demo --foxglove [PORT]``: the live view as one more child process.

The view (:mod:`lw_refinenet_ros.view`) runs exactly as ``lw-refinenet view`` would, in its
own process, so watching the demo in Foxglove cannot slow the node or the monitor. It starts
first: a port already in use stops the demo before the camera and the node are started.
"""

from __future__ import annotations

from pathlib import Path
import re
import subprocess
import time

from lw_refinenet_ros.demo import supervisor
from lw_refinenet_ros.errors import ConfigError

#: What ``lw-refinenet view`` prints once its port is bound.
READY_MARKER = 'lw-refinenet view: serving'


def start_view(namespace: str, port: int, log_path: Path, address: str = '127.0.0.1',
               timeout_s: float = 60.0) -> tuple[subprocess.Popen, str]:
    """Start the view for the demo's namespace; the process and its ``ws://`` URL
    (``port`` 0: any free port, named in the URL).

    Raises:
        ConfigError: The view exited (port in use, bad address) or did not come up in time;
            the message is the view's own, plus its log.
    """
    process = supervisor.start(
        ['-m', 'lw_refinenet_ros', 'view', '--cameras', namespace, '--port', str(port),
         '--address', address], log_path=log_path)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        text = log_path.read_text(errors='replace') if log_path.exists() else ''
        ready = re.search(rf'{READY_MARKER} .* on (ws://\S+) ', text)
        if ready:  # the URL as bound: with port 0 the view picked a free port
            return process, ready.group(1)
        if process.poll() is not None:
            if 'is in use' in text:
                raise ConfigError(f'port {port} is in use on {address}: pass another one, e.g. '
                                  f'--foxglove {port + 1}')
            raise ConfigError(f'--foxglove: the live view could not start (exit code '
                              f'{process.returncode}):\n{supervisor.log_tail(log_path)}')
        time.sleep(0.05)
    supervisor.stop(process, timeout_s=3.0)
    raise ConfigError(f'--foxglove: the live view did not start within {timeout_s:g} s. End '
                      f'of {log_path}:\n{supervisor.log_tail(log_path)}')
