#!/usr/bin/env python3
"""Where a node's start-up goes, phase by phase, in wall and CPU seconds.

Runs what ``python -m lw_refinenet_ros.ros.node`` runs, in this process and without a camera:
imports, rclpy and the node (its DDS participant), parameters, the weights (or their card),
the engine (int8 offer and remembered decision, the runtime built or loaded from the cache,
the warm-up), the pipeline's publishers and subscriptions, then one 640x480 conveyor frame
through the node's inference path (what its worker runs for a camera frame). Each phase is
timed by wrapping the function that does it; CPU seconds are the process's (all threads), so
they are far less disturbed than wall seconds by other jobs sharing the machine. The time
from the process's start to this script's first line (the interpreter and ``site``) is read
from ``/proc``. Discovery by other participants and the frame's transport are not included:
``restart_time.py`` measures the whole.

Run it twice with the same ``--cache`` folder: the first start fills the cache (export,
compilation, timing), the second is a restart.

Usage: .venv/bin/python benchmarks/restart_breakdown.py --cache DIR [--size 640x480]
       [--json F] [-p NAME:=VALUE ...]
"""

from __future__ import annotations

import os
import pathlib
import resource
import sys
import time
from typing import Any, Callable

_T0 = time.perf_counter()


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _process_age() -> float | None:
    """Seconds since this process started (Linux), from /proc."""
    try:
        with open('/proc/self/stat', encoding='ascii') as handle:
            start_ticks = int(handle.read().rsplit(')', 1)[1].split()[19])
        with open('/proc/uptime', encoding='ascii') as handle:
            uptime = float(handle.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return uptime - start_ticks / os.sysconf('SC_CLK_TCK')


_AGE_AT_START, _CPU_AT_START = _process_age(), _cpu()

PHASES: list[tuple[str, float, float]] = []


def _phase(name: str, wall: float, cpu: float) -> None:
    PHASES.append((name, wall, cpu))


def _timed(owner: Any, attribute: str, name: str) -> None:
    """Wrap ``owner.attribute`` so each call adds a phase ``name``."""
    function: Callable[..., Any] = getattr(owner, attribute)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        wall, cpu = time.perf_counter(), _cpu()
        try:
            return function(*args, **kwargs)
        finally:
            _phase(name, time.perf_counter() - wall, _cpu() - cpu)

    setattr(owner, attribute, wrapper)


def main() -> int:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--cache', required=True, help='the runtime cache folder (kept)')
    parser.add_argument('--size', default='640x480', help='WIDTHxHEIGHT of the frame')
    parser.add_argument('--json', type=pathlib.Path, default=None)
    parser.add_argument('-p', '--param', action='append', default=[],
                        help='a node parameter, NAME:=VALUE (e.g. backend:=openvino)')
    args = parser.parse_args()
    os.environ['XDG_CACHE_HOME'] = str(pathlib.Path(args.cache).resolve())

    wall, cpu = time.perf_counter(), _cpu()
    import rclpy

    _phase('import rclpy', time.perf_counter() - wall, _cpu() - cpu)
    wall, cpu = time.perf_counter(), _cpu()
    from lw_refinenet_ros.ros.node import SegmentationNode

    _phase('import the node module', time.perf_counter() - wall, _cpu() - cpu)
    wall, cpu = time.perf_counter(), _cpu()
    # What the node imports once its participant exists (timed here, before the node, so
    # that the functions below can be wrapped).
    from lw_refinenet_ros.engine import inference, select
    from lw_refinenet_ros.ros import node as node_module
    from lw_refinenet_ros.ros import parameters, pipeline

    try:
        from lw_refinenet_ros.engine import weights_card
    except ImportError:  # before the weights cards (2026-12-07): the model package, and
        weights_card = None  # torch with it, are imported here
        import lw_refinenet_ros.model as model_package
    _phase('import the pipeline and engine modules', time.perf_counter() - wall,
           _cpu() - cpu)
    _timed(parameters, 'declare_parameters', 'parameters')
    for owner in (pipeline, node_module):  # (the node bound it at import before 2026-12-07)
        if hasattr(owner, 'load_engine'):
            _timed(owner, 'load_engine', 'load_engine: weights + engine, in all')
    if weights_card is not None:
        _timed(weights_card, 'open_weights', 'weights: card, or the file loaded')
    else:
        _timed(model_package, 'load_model', 'weights: the file loaded')
    _timed(inference, 'int8_offer', 'engine: int8 offer (imports the runtimes)')
    if hasattr(select, 'remembered_selection'):
        _timed(select, 'remembered_selection', 'engine: remembered runtime built')
    _timed(select, 'select_backend', 'engine: selection (build and time candidates)')
    _timed(inference.InferenceEngine, '_warmup', 'engine: warm-up and remember')
    _timed(pipeline.SegmentationPipeline, '__init__', 'pipeline: publishers, diagnostics')
    _timed(pipeline.SegmentationPipeline, 'subscribe', 'pipeline: class map, subscriptions')

    wall, cpu = time.perf_counter(), _cpu()
    rclpy.init(args=['restart_breakdown', '--ros-args',
                     *[part for value in args.param for part in ('-p', value)]])
    _phase('rclpy.init', time.perf_counter() - wall, _cpu() - cpu)
    wall, cpu = time.perf_counter(), _cpu()
    node = SegmentationNode()
    built_wall, built_cpu = time.perf_counter() - wall, _cpu() - cpu
    import numpy as np

    from lw_refinenet_ros.data.conveyor import render_conveyor_frame
    from lw_refinenet_ros.sizes import parse_size

    wall, cpu = time.perf_counter(), _cpu()
    frame = np.ascontiguousarray(render_conveyor_frame(7, parse_size(args.size))[0])
    render_wall, render_cpu = time.perf_counter() - wall, _cpu() - cpu  # the camera's work
    wall, cpu = time.perf_counter(), _cpu()
    node.pipeline.inference._infer([frame], ['rgb'], want_confidence=True, want_stats=True)
    _phase('first frame (decode excluded)', time.perf_counter() - wall, _cpu() - cpu)
    total_wall = time.perf_counter() - _T0 + (_AGE_AT_START or 0.0) - render_wall
    total_cpu = _cpu() - render_cpu
    torch_imported = 'torch' in sys.modules
    node.destroy_node()
    rclpy.try_shutdown()

    print(f'interpreter start (before this script): wall {_AGE_AT_START or 0:.2f} s, '
          f'cpu {_CPU_AT_START:.2f} s')
    for name, wall_s, cpu_s in PHASES:
        print(f'{name:48s} wall {wall_s:6.2f} s  cpu {cpu_s:6.2f} s')
    print(f'{"(node construction, all of the above in it)":48s} wall {built_wall:6.2f} s  '
          f'cpu {built_cpu:6.2f} s')
    print(f'{"process start to first labels (no transport)":48s} wall {total_wall:6.2f} s  '
          f'cpu {total_cpu:6.2f} s; torch imported: {torch_imported}; '
          f'load {os.getloadavg()[0]:.2f}')
    if args.json is not None:
        import json

        args.json.write_text(json.dumps({
            'benchmark': 'restart_breakdown', 'size': args.size,
            'interpreter_s': _AGE_AT_START, 'phases': PHASES, 'node_s': [built_wall, built_cpu],
            'total_s': [total_wall, total_cpu], 'torch_imported': torch_imported,
            'loadavg': os.getloadavg()}, indent=1) + '\n')
    sys.stdout.flush()
    os._exit(0)  # the node's process exits this way too (ros/runner.py)


if __name__ == '__main__':
    sys.exit(main())
