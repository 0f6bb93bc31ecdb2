"""A measured graph: camera process -> system under test -> monitor process.

The system under test is the real node (real or fake engine), the naive node, or the bare
``sink --echo`` (the transport floor). The monitor runs in its own process with the same
Fast DDS profile, so the benchmark process itself never touches ROS and every hop is a real
inter-process hop, as in ros2_benchmark (playback node -> graph -> monitor node).
"""

from __future__ import annotations

import json
import pathlib
import subprocess
import tempfile
import time
from typing import Any, Sequence

import _common

from lw_refinenet_ros.ros.topic_names import DIAGNOSTICS, LABELS, STATS

OUTPUT_TOPICS = (f'labels:{LABELS}:image', f'stats:{STATS}:stats', f'diag:{DIAGNOSTICS}:diag')


def node_command(engine: str, *, fake_ms: float, device: str,
                 extra: Sequence[str] = ()) -> list[str]:
    """argv (after the interpreter) that starts the system under test."""
    if engine == 'echo':
        return ['benchmarks/_roles.py', 'sink', '--duration', '100000', '--echo',
                LABELS, *extra]
    if engine == 'naive':
        args = ['benchmarks/naive_node.py', '--device', device, *extra]
        return args + (['--fake-engine-ms', str(fake_ms)] if fake_ms else [])
    host = ['benchmarks/_node_host.py']
    if engine == 'fake':
        host += ['--fake-engine-ms', str(fake_ms)]
    return host + ['--device', device, *extra]


def real_model(weights: str | None, folder: pathlib.Path) -> tuple[str, str]:
    """(checkpoint path, description) for the real-engine runs.

    The given file, else the packaged default model, else random MobileNet-v2 weights with 3
    classes written to ``folder`` (speed does not depend on the weights' values).
    """
    if weights:
        return weights, weights
    from lw_refinenet_ros.model import DEFAULT_MODEL_PATH, build_model, save_checkpoint
    if DEFAULT_MODEL_PATH.is_file():
        return str(DEFAULT_MODEL_PATH), f'packaged default ({DEFAULT_MODEL_PATH.name})'
    path = folder / 'random_mbv2_3cls.pt'
    save_checkpoint(path, build_model('mbv2', 3).eval(), arch='mbv2')
    return str(path), 'random mbv2 weights, 3 classes (no packaged default model yet)'


def node_engine_args(weights: str, num_threads: int) -> list[str]:
    """ROS arguments giving the node the same model and thread count as the naive node."""
    return ['--ros-args', '-p', f'model.weights:={weights}', '-p',
            f'num_threads:={num_threads}']


class Session:
    """Start the system under test and a monitor; run cameras; collect and split results."""

    def __init__(self, argv: Sequence[str], *, profile: str | None, monitor_topics:
                 Sequence[str] = OUTPUT_TOPICS, name: str = 'sut') -> None:
        self.name = name
        self.domain = _common.pick_domain()
        self.env = _common.child_env(profile, self.domain)
        self.profile = profile
        self._tmp = tempfile.TemporaryDirectory()
        self.dir = pathlib.Path(self._tmp.name)
        self.monitor_log = self.dir / 'monitor.json'
        self.sut_log = open(self.dir / 'sut.log', 'w+', encoding='utf-8')  # noqa: SIM115
        self.sut = _common.spawn(argv, self.env, stdout=self.sut_log,
                                 stderr=subprocess.STDOUT, text=True)
        self.monitor = _common.spawn(
            ['benchmarks/_roles.py', 'monitor', '--duration', '100000', '--log',
             str(self.monitor_log), '--flush-every', '1.0', '--topics', *monitor_topics],
            self.env, stdout=subprocess.PIPE, text=True)
        if not _common.wait_for_line(self.monitor, 'READY', 60):
            raise RuntimeError('monitor did not start')
        self.runs: list[dict[str, Any]] = []
        self.exit: dict[str, Any] = {}

    def camera(self, *, width: int, height: int, rate: float, duration: float,
               qos: str = 'best_effort', depth: int = 1, encoding: str = 'rgb8',
               settle: float = 0.5, label: str = '', count: int = 0,
               conveyor_seed: int = -1, density: float = 6.0) -> dict[str, Any]:
        """Publish one paced run; returns the camera log (stamps, publish times). With a
        ``conveyor_seed`` >= 0 the frames are the conveyor generator's, else noise."""
        log = self.dir / f'camera{len(self.runs)}.json'
        camera = _common.spawn(
            ['benchmarks/_roles.py', 'camera', '--width', str(width), '--height', str(height),
             '--rate', str(rate), '--duration', str(duration), '--qos', qos, '--depth',
             str(depth), '--encoding', encoding, '--settle', str(settle), '--match-timeout',
             '120', '--count', str(count), '--log', str(log), '--conveyor-seed',
             str(conveyor_seed), '--density', str(density)],
            self.env, stdout=subprocess.PIPE, text=True)
        try:
            camera.wait(timeout=duration + 180)
        finally:
            _common.stop(camera)
        if self.sut.poll() is not None:
            raise RuntimeError(f'{self.name} exited with {self.sut.returncode}:\n'
                               f'{self.tail()}')
        run = json.loads(log.read_text())
        run.update({'width': width, 'height': height, 'rate_hz': rate, 'label': label,
                    'loadavg_1min': round(_common.machine_state()['loadavg_1_5_15'][0], 2)})
        self.runs.append(run)
        return run

    def drain(self, seconds: float = 1.0) -> None:
        """Give in-flight results time to arrive (inference of the last frames)."""
        time.sleep(seconds)

    def monitor_records(self) -> dict[str, Any]:
        for _ in range(50):
            try:
                return json.loads(self.monitor_log.read_text())
            except (OSError, ValueError):
                time.sleep(0.1)
        return {'records': {}, 'diagnostics': {}}

    def tail(self, lines: int = 30) -> str:
        self.sut_log.flush()
        text = (self.dir / 'sut.log').read_text(errors='replace')
        return '\n'.join(text.splitlines()[-lines:])

    def close(self) -> dict[str, Any]:
        code, seconds = _common.stop(self.sut, timeout=10)
        self.exit = {'exit_code': code, 'shutdown_s': seconds}
        _common.stop(self.monitor)
        data = self.monitor_records()
        self.sut_log.close()
        self._tmp.cleanup()
        return data


def summarize(run: dict[str, Any], records: dict[str, list], outputs: Sequence[str] = (
        'labels', 'stats'), extra_ms: float = 0.0) -> dict[str, Any]:
    """Latency per output and delivered % for the frames of one camera run."""
    sent = set(run['stamps_ns'])
    published = run['published']
    summary: dict[str, Any] = {
        'label': run.get('label', ''), 'rate_hz': run['rate_hz'],
        'size': f"{run['width']}x{run['height']}", 'published': published,
        'achieved_rate_hz': round(published / run['elapsed_s'], 2) if run['elapsed_s'] else 0,
        'loadavg_1min': run['loadavg_1min'],
    }
    for name in outputs:
        rows = [r for r in records.get(name, []) if r[0] in sent]
        first = {}
        for row in rows:
            first.setdefault(row[0], row)
        latencies = [(row[1] - row[0]) / 1e6 - extra_ms for row in first.values()]
        summary[name] = {
            'output_rate_hz': round(len(first) / run['elapsed_s'], 2) if run['elapsed_s'] else 0,
            'delivered': len(first),
            'delivered_pct': round(100.0 * len(first) / max(1, published), 2),
            'duplicates': len(rows) - len(first),
            'latency_ms': _common.percentiles(latencies),
        }
        if name == 'stats' and rows and len(rows[0]) > 2:
            summary[name]['node_processing_ms'] = _common.percentiles(
                [row[3] for row in first.values()])
    return summary
