"""The bare OpenVINO forward pass of a cached IR: the ceiling of a node that runs it (issue 18).

Loads the newest cached IR of the given precision and size (the runtime cache the node fills,
``~/.cache/lw_refinenet_ros`` or ``--cache``) and times ``infer`` alone, nothing around it,
with OpenVINO's CPU thread pinning at its default, off and on, interleaved one call each. Per
variant: median wall ms and median CPU ms of this process (every thread) per frame, and the
frames/s the forward pass alone allows (1000 / wall). A node's frame also needs
post-processing, objects and publishing (``demo_node_split.py``), so its rate is below that.

    .venv/bin/python benchmarks/openvino_forward.py --precision int8 --size 320x240
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
import statistics
import time

import numpy as np
import openvino


def newest_ir(cache: Path, precision: str, height: int, width: int) -> Path:
    """The newest cached OpenVINO IR folder of ``precision`` at ``height`` x ``width``."""
    found = []
    for meta in (cache / 'openvino').glob('*/*.json'):
        try:
            parts = json.loads(meta.read_text()).get('parts', {})
        except (OSError, ValueError):
            continue
        if parts.get('precision') == precision and parts.get('size') == [height, width] \
                and (meta.parent / 'model.xml').is_file():
            found.append((meta.parent.stat().st_mtime, meta.parent))
    if not found:
        raise SystemExit(f'no {precision} IR for {width}x{height} in {cache}: run the node, '
                         f'`lw-refinenet segment` or `make demo` once first')
    return max(found)[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--precision', default='int8', choices=('int8', 'fp32'))
    parser.add_argument('--size', default='320x240', help='network input WIDTHxHEIGHT')
    parser.add_argument('--frames', type=int, default=80)
    parser.add_argument('--cache', default=str(Path.home() / '.cache' / 'lw_refinenet_ros'))
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split('x'))
    folder = newest_ir(Path(args.cache), args.precision, height, width)
    core = openvino.Core()
    network = core.read_model(str(folder / 'model.xml'))
    network.reshape([1, 3, height, width])
    base = {'PERFORMANCE_HINT': 'LATENCY', 'NUM_STREAMS': '1'}  # as the node compiles it
    variants = {'pinning default': {}, 'pinning off': {'ENABLE_CPU_PINNING': False},
                'pinning on': {'ENABLE_CPU_PINNING': True}}
    requests = {name: core.compile_model(network, 'CPU', {**base, **extra}).create_infer_request()
                for name, extra in variants.items()}
    frame = np.random.default_rng(0).random((1, 3, height, width), dtype=np.float32)
    wall: dict[str, list[float]] = {name: [] for name in requests}
    cpu: dict[str, list[float]] = {name: [] for name in requests}
    for _ in range(args.frames):
        for name, request in requests.items():
            cpu0, wall0 = time.process_time(), time.perf_counter()
            request.infer({0: frame})
            wall[name].append((time.perf_counter() - wall0) * 1e3)
            cpu[name].append((time.process_time() - cpu0) * 1e3)
            time.sleep(0.01)  # a camera's pause between frames, so idle threads go to sleep
    report = {'ir': str(folder), 'precision': args.precision, 'size': args.size,
              'load': os.getloadavg(), 'variants': {}}
    for name in requests:
        threads = requests[name].get_compiled_model().get_property('INFERENCE_NUM_THREADS')
        median_wall = statistics.median(wall[name])
        report['variants'][name] = {'threads': threads, 'wall_ms': round(median_wall, 1),
                                    'cpu_ms': round(statistics.median(cpu[name]), 1),
                                    'fps_ceiling': round(1000 / median_wall, 1)}
        print(f'{name}: {report["variants"][name]}')
    print(json.dumps(report))
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
