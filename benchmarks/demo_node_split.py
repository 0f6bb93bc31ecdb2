"""Where the demo node's frame goes: preprocess, forward, post-processing, objects (issue 18).

Builds the packaged conveyor model the way the demo's node does (OpenVINO, the model card's
``max_side``, objects with outlines) once per precision and thread count, and segments the
same conveyor frames through each, interleaved one frame each, so that other jobs on a shared
machine slow every variant alike. Reports per stage the median wall milliseconds and the
median CPU milliseconds of this process (``time.process_time``: every thread, so a runtime
that spreads one frame over two cores shows it), and what the frames/s ceiling of the node's
inference alone is (1000 / median wall ms of the whole frame).

The int8 model is the packaged model's conveyor-calibrated one (the first run builds it into
the cache, about a minute on 2 cores; later runs load it).

    .venv/bin/python benchmarks/demo_node_split.py --size 320x240 --frames 40
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import time

from lw_refinenet_ros.data.calibration import conveyor_calibration
from lw_refinenet_ros.data.conveyor import frame_rng, render_conveyor_frame
from lw_refinenet_ros.engine.config import EngineConfig
from lw_refinenet_ros.objects.options import ObjectsConfig
from lw_refinenet_ros.segmenter import Segmenter

#: A test seed the demo does not use, so the frames are not the calibration frames.
FRAME_SEED = 7000


def _variants(threads: list[int]) -> list[tuple[str, int]]:
    return [(precision, count) for precision in ('fp32', 'int8') for count in threads]


def _segmenter(precision: str, threads: int, cache_dir: str) -> Segmenter:
    """The packaged model on OpenVINO at ``precision`` (the demo node's settings otherwise).

    int8 is the conveyor-calibrated model: built into the cache first if missing, then
    requested explicitly, with the agreement gate at 0.9 (``precision: auto`` holds a reduced
    precision to 99.5 % equal labels on one warm-up frame, which this int8 misses: the build
    line printed by :func:`main` gives the figure)."""
    engine = EngineConfig(backend='openvino', precision=precision, num_threads=threads,
                          max_side=320, cache_dir=cache_dir, remember_selection=False,
                          agreement_min=0.9)
    if precision == 'int8':
        Segmenter.load(engine=dataclasses.replace(engine, precision='auto'),
                       calibration=conveyor_calibration)  # builds it once, into the cache
    return Segmenter.load(engine=engine, objects=ObjectsConfig.defaults())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--size', default='320x240', help='frame WIDTHxHEIGHT')
    parser.add_argument('--frames', type=int, default=40, help='frames per variant')
    parser.add_argument('--threads', default='1,2', help='num_threads values to compare')
    parser.add_argument('--cache-dir', default='', help="runtime cache (default: the user's)")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split('x'))
    frames = [render_conveyor_frame(frame_rng(FRAME_SEED, i), (width, height))[0]
              for i in range(args.frames)]
    variants = _variants([int(t) for t in args.threads.split(',')])
    built = {}
    for precision, threads in variants:
        start = time.perf_counter()
        segmenter = _segmenter(precision, threads, args.cache_dir)
        segmenter.segment(frames[0], stamp=0.0)
        info = segmenter.describe()
        built[(precision, threads)] = segmenter
        print(f'{precision}/{threads} thread(s): built in {time.perf_counter() - start:.1f} s '
              f'-> {info.get("backend")}/{info.get("precision")} ({info.get("reason")})',
              flush=True)
    stages: dict[tuple[str, int], dict[str, list[float]]] = {
        key: {'wall': [], 'cpu': [], 'preprocess': [], 'forward': [], 'postprocess': [],
              'objects': [], 'equal_to_fp32': []} for key in built}
    for index, frame in enumerate(frames):
        fp32_labels = None
        for key, segmenter in built.items():
            cpu0, wall0 = time.process_time(), time.perf_counter()
            result = segmenter.segment(frame, stamp=(index + 1) / 30.0)
            wall = (time.perf_counter() - wall0) * 1e3
            record = stages[key]
            record['wall'].append(wall)
            record['cpu'].append((time.process_time() - cpu0) * 1e3)
            for name in ('preprocess', 'forward', 'postprocess'):
                record[name].append(result.timings[name])
            record['objects'].append(wall - result.timings['total'])
            if fp32_labels is None:
                fp32_labels = result.labels  # the first variant is fp32
            record['equal_to_fp32'].append(float((result.labels == fp32_labels).mean()) * 100)
    report = {'size': args.size, 'frames': args.frames, 'load': os.getloadavg(),
              'variants': {}}
    for (precision, threads), record in stages.items():
        medians = {name: round(statistics.median(values), 2) for name, values in record.items()}
        medians['equal_to_fp32_min'] = round(min(record['equal_to_fp32']), 2)
        medians['fps_ceiling'] = round(1000.0 / medians['wall'], 1)
        report['variants'][f'{precision}/{threads}'] = medians
        print(f'{precision}/{threads}: ' + ', '.join(f'{k} {v}' for k, v in medians.items()))
    print(json.dumps(report))
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
