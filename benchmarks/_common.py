"""Helpers shared by the end-to-end benchmarks (not part of the installed package).

Every benchmark records the machine state next to its numbers (load average, CPU count,
commit), because the development machine has 2 cores shared by several people: a number
without the load it was taken under cannot be compared with anything.

Processes are started with ``sys.executable`` so that children run in the same venv: a
different venv's python inherits the ROS wheel bootstrapper's variables and fails to import
rclpy (docs/architecture.md §7).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import glob
import json
import os
import pathlib
import random
import subprocess
import sys
import tempfile
import time
from typing import Any, Iterator, Sequence

from lw_refinenet_ros.demo import supervisor
from lw_refinenet_ros.percentiles import summary as percentile_summary

ROOT = pathlib.Path(__file__).resolve().parents[1]
BENCH_DIR = ROOT / 'benchmarks'
SHM_PROFILE = ROOT / 'config' / 'fastdds_shm.xml'

# Same shape as config/fastdds_shm.xml (docs/architecture.md §7); used only when the
# package's config/fastdds_shm.xml is missing, so the benchmark still runs (and says so).
_FALLBACK_SHM_XML = """<?xml version="1.0" encoding="UTF-8" ?>
<profiles xmlns="http://www.eprosima.com/XMLSchemas/fastRTPS_Profiles">
  <transport_descriptors>
    <transport_descriptor>
      <transport_id>shm_64mb</transport_id>
      <type>SHM</type>
      <segment_size>67108864</segment_size>
    </transport_descriptor>
    <transport_descriptor>
      <transport_id>udp</transport_id>
      <type>UDPv4</type>
    </transport_descriptor>
  </transport_descriptors>
  <participant profile_name="bench_shm" is_default_profile="true">
    <rtps>
      <userTransports>
        <transport_id>shm_64mb</transport_id>
        <transport_id>udp</transport_id>
      </userTransports>
      <useBuiltinTransports>false</useBuiltinTransports>
    </rtps>
  </participant>
</profiles>
"""


def shm_profile_path() -> tuple[str, str]:
    """Return (path, origin) of the shared-memory Fast DDS profile to use."""
    if SHM_PROFILE.is_file():
        return str(SHM_PROFILE), 'config/fastdds_shm.xml'
    path = pathlib.Path(tempfile.gettempdir()) / 'lwrf_bench_fastdds_shm.xml'
    path.write_text(_FALLBACK_SHM_XML)
    return str(path), 'benchmark fallback (config/fastdds_shm.xml missing)'


def child_env(profile: str | None, domain_id: int) -> dict[str, str]:
    """Environment for a ROS child process: own domain, localhost discovery, chosen profile."""
    # The source checkout first, so the code under test is the working tree, not a stale
    # installed copy (lw_refinenet_ros/__init__.py merges both through extend_path).
    env = supervisor.child_env(source_root=ROOT, ROS_DOMAIN_ID=str(domain_id),
                               RCUTILS_LOGGING_BUFFERED_STREAM='0', PYTHONUNBUFFERED='1')
    env.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    env.pop('FASTRTPS_DEFAULT_PROFILES_FILE', None)
    if profile is not None:
        env['FASTRTPS_DEFAULT_PROFILES_FILE'] = profile
    return env


def pick_domain() -> int:
    """A DDS domain in 1..100 unlikely to collide with the test suite or another benchmark."""
    return random.Random(os.getpid() ^ time.time_ns()).randint(1, 100)


def percentiles(values: Sequence[float]) -> dict[str, float | int | None]:
    """n/p50/p90/p95/p99/max/mean of ``values`` (ms), the package's one percentile definition
    (linear interpolation, as the node's diagnostics); None entries without samples."""
    return percentile_summary(values)


def machine_state() -> dict[str, Any]:
    """Load average and identity of the run, recorded next to every result."""
    try:
        commit = subprocess.run(['git', 'rev-parse', '--short', 'HEAD'], cwd=ROOT,
                                capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ''
    return {
        'time': datetime.datetime.now().isoformat(timespec='seconds'),
        'loadavg_1_5_15': [round(x, 2) for x in os.getloadavg()],
        'cpu_count': os.cpu_count(),
        'commit': commit,
        'python': sys.version.split()[0],
    }


def base_parser(description: str) -> argparse.ArgumentParser:
    """The options every benchmark shares: output files and the compute device."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument('--json', type=pathlib.Path, default=None,
                        help='write the results as JSON to this file')
    parser.add_argument('--plot', type=pathlib.Path, default=None,
                        help='write a PNG plot to this file (matplotlib Agg)')
    parser.add_argument('--device', default='cpu',
                        help='engine device for the real-engine runs: cpu, cuda, cuda:N '
                             '(GPU numbers were not measured in this session)')
    parser.add_argument('--quick', action='store_true',
                        help='shorter runs (smoke test of the benchmark itself)')
    return parser


def add_real_engine_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of the benchmarks that run the real node on the real engine (node_latency,
    overload), so both read the same model with the same thread budget."""
    parser.add_argument('--profile', choices=('shm', 'default'), default='shm')
    parser.add_argument('--weights', default=None,
                        help='checkpoint for the real engine (default: the packaged model, or '
                             'random mbv2 weights if there is none)')
    parser.add_argument('--num-threads', type=int, default=1,
                        help='torch CPU threads of the real engine in every node under test '
                             '(0: torch default); 1 leaves a core to camera, monitor and '
                             'executor')
    parser.add_argument('--node-args', nargs='*', default=[],
                        help='extra arguments for the node host, e.g. --ros-args -p x:=y')


def objects_parameters(items: Sequence[str]) -> dict[str, Any]:
    """``--param objects.NAME=VALUE`` items as a parameter mapping, each value of its
    default's type (``true``/``false`` for switches, commas between list entries: ``=,`` is
    an empty list)."""
    from lw_refinenet_ros.objects.options import ObjectsConfig

    default = ObjectsConfig.defaults()
    values: dict[str, Any] = {}
    for item in items:
        name, _, text = item.partition('=')
        current = getattr(default, name[len('objects.'):].replace('.', '_'))
        if isinstance(current, bool):
            values[name] = text.lower() == 'true'
        elif isinstance(current, tuple):
            values[name] = tuple(entry for entry in text.split(',') if entry)
        else:
            values[name] = type(current)(text)
    return values


def write_json(path: pathlib.Path | None, result: dict[str, Any]) -> None:
    """Write ``result`` to ``path`` (if given) and a compact copy to stdout."""
    text = json.dumps(result, indent=2, sort_keys=False, default=str)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text + '\n')
    print(text)


def spawn(args: Sequence[str], env: dict[str, str], **kwargs: Any) -> subprocess.Popen:
    """Start ``sys.executable args...`` from the checkout, in its own session (the demo's
    process supervisor, so both stop children the same way)."""
    return supervisor.start(args, env=env, cwd=ROOT, **kwargs)


def stop(process: subprocess.Popen, timeout: float = 5.0) -> tuple[int | None, float]:
    """SIGINT ``process`` (then SIGTERM, then SIGKILL of its group, ``timeout`` s apart);
    return (exit code, seconds)."""
    result = supervisor.stop(process, timeout_s=timeout)
    return result.exit_code, result.seconds


def wait_for_line(process: subprocess.Popen, marker: str, timeout: float) -> bool:
    """Read ``process.stdout`` until a line contains ``marker`` (the child is ready)."""
    return supervisor.wait_for_line(process, marker, timeout)


def shm_files() -> set[str]:
    """Fast DDS shared-memory files currently in /dev/shm."""
    return set(glob.glob('/dev/shm/fastrtps_*')) | set(glob.glob('/dev/shm/sem.fastrtps_*'))


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS (kB) and thread count of ``pid`` from /proc/<pid>/status; {} if it is gone."""
    values: dict[str, int] = {}
    try:
        with open(f'/proc/{pid}/status', encoding='ascii') as handle:
            for line in handle:
                key, _, rest = line.partition(':')
                if key in ('VmRSS', 'Threads'):
                    values[key] = int(rest.split()[0])
    except OSError:
        return {}
    return values


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds consumed so far by ``pid`` (from /proc/<pid>/stat)."""
    try:
        with open(f'/proc/{pid}/stat', encoding='ascii') as handle:
            fields = handle.read().rsplit(')', 1)[1].split()
    except OSError:
        return None
    ticks = os.sysconf('SC_CLK_TCK')
    return (int(fields[11]) + int(fields[12])) / ticks


@contextlib.contextmanager
def matplotlib_axes(path: pathlib.Path | None, rows: int = 1,
                    cols: int = 1) -> Iterator[Any]:
    """Yield matplotlib axes (Agg) and save the figure to ``path``; yields None without one."""
    if path is None:
        yield None
        return
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    figure, axes = plt.subplots(rows, cols, figsize=(9, 4.5 * rows), squeeze=False)
    try:
        yield axes
    finally:
        figure.tight_layout()
        path.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(path, dpi=90)
        plt.close(figure)
