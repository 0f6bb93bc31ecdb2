"""What keeping freed buffers in the heap saves per frame (lw_refinenet_ros/heap.py).

Runs the node's per-frame work on conveyor frames - the packaged model through the Segmenter
(OpenVINO at ``precision: auto``, which the output names; the model card's ``max_side``;
confidence, stats and objects), then the colour image and the overlay the node publishes - on
a worker thread, as the node does, in one child process per variant:

* ``kept``: as shipped (the first CPU post-processor raises glibc's mmap and trim thresholds);
* ``glibc``: the same with the thresholds left at glibc's defaults.

The variants alternate process by process (so a host that drifts slows both alike). Each
prints the median wall and CPU milliseconds per frame (the worker thread's own CPU, not the
runtime's threads) and the worker's minor page faults per frame.
Usage::

    .venv/bin/python benchmarks/heap_reuse.py [--size 640x480] [--frames 60] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import threading
import time

FRAME_SEED = 7000


def _child(size: str, frames: int, keep: bool) -> dict[str, float]:
    from lw_refinenet_ros.heap import keep_freed_memory, leave_to_glibc

    if not keep:
        leave_to_glibc()  # the thresholds stay glibc's
    import numpy as np

    from lw_refinenet_ros.data.calibration import conveyor_calibration
    from lw_refinenet_ros.data.conveyor import CLASS_COLORS, frame_rng, render_conveyor_frame
    from lw_refinenet_ros.engine.config import EngineConfig
    from lw_refinenet_ros.objects.options import ObjectsConfig
    from lw_refinenet_ros.palette import colorize, overlay
    from lw_refinenet_ros.segmenter import Segmenter

    width, height = (int(v) for v in size.split('x'))
    images = [render_conveyor_frame(frame_rng(FRAME_SEED, i), (width, height))[0]
              for i in range(frames)]
    colors = np.array(CLASS_COLORS, np.uint8)
    segmenter = Segmenter.load(engine=EngineConfig(backend='openvino', precision='auto'),
                               objects=ObjectsConfig.defaults(),
                               calibration=conveyor_calibration, trained_scale=True)
    walls: list[float] = []
    cpus: list[float] = []
    faults: list[int] = []

    def work() -> None:
        for index, image in enumerate(images * 2):
            fault0 = resource.getrusage(resource.RUSAGE_THREAD).ru_minflt
            cpu0, wall0 = time.thread_time(), time.perf_counter()
            result = segmenter.segment(image, stamp=(index + 1) / 30.0, want_stats=True)
            colorize(result.labels, colors)
            overlay(image, result.labels, colors, 0.5)
            if index >= len(images):  # the first pass warms up
                walls.append((time.perf_counter() - wall0) * 1e3)
                cpus.append((time.thread_time() - cpu0) * 1e3)
                faults.append(resource.getrusage(resource.RUSAGE_THREAD).ru_minflt - fault0)

    worker = threading.Thread(target=work)
    worker.start()
    worker.join()
    info = segmenter.describe()
    return {'wall_ms': statistics.median(walls), 'thread_cpu_ms': statistics.median(cpus),
            'faults_per_frame': statistics.mean(faults), 'applied': keep_freed_memory(),
            'engine': f'{info.get("backend", "")}/{info.get("precision", "")}'}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--size', default='640x480', help='frame WIDTHxHEIGHT')
    parser.add_argument('--frames', type=int, default=60)
    parser.add_argument('--rounds', type=int, default=3)
    parser.add_argument('--child', choices=('kept', 'glibc'), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_child(args.size, args.frames, args.child == 'kept')))
        return 0
    results: dict[str, list[dict[str, float]]] = {'kept': [], 'glibc': []}
    for round_index in range(args.rounds):
        for variant in results:
            done = subprocess.run([sys.executable, __file__, '--child', variant, '--size',
                                   args.size, '--frames', str(args.frames)],
                                  capture_output=True, text=True, check=True)
            answer = json.loads(done.stdout.strip().splitlines()[-1])
            results[variant].append(answer)
            print(f'round {round_index + 1} {variant}: ' + ', '.join(
                f'{k} {v:.2f}' if isinstance(v, float) else f'{k} {v}'
                for k, v in answer.items()), flush=True)
    for variant, answers in results.items():
        print(f'{variant}: median over rounds: wall '
              f'{statistics.median(a["wall_ms"] for a in answers):.2f} ms, thread CPU '
              f'{statistics.median(a["thread_cpu_ms"] for a in answers):.2f} ms, faults '
              f'{statistics.median(a["faults_per_frame"] for a in answers):.0f} per frame')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
