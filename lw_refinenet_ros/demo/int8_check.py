"""The demo's int8: the packaged model's conveyor-calibrated int8, ready and checked before
the run.

Why: on a CPU without bf16 the node's fp32 is the demo's bottleneck (inference is about 90 %
of a 320x240 frame, docs/benchmarks.md "make demo on a CPU without bf16"), and int8 takes
about half its CPU time. The node would not use it during a 20 s run: its own int8 from the
camera frames needs minutes of gathering and calibration, and ``precision: auto`` gates a
reduced precision at 99.5 % equal labels on one synthetic warm-up frame, which this model's
int8 misses (97.8 % there, against 99.8 % on conveyor frames). So, for the packaged model on
the CPU with the precision left to the node, the demo first, in a child process that imports
the package exactly as the node will (same interpreter, same working directory):

1. finds the int8 model calibrated on conveyor frames (:func:`conveyor_calibration`) in the
   runtime cache, or builds it (the first ``make demo`` only: about 20-60 s on 2 cores; then
   cached, keyed with the weights, the size and the runtimes);
2. compares its labels with fp32's on :data:`CHECK_FRAMES` conveyor frames of
   :data:`CHECK_SEED` (neither the calibration seed nor the scene the demo scores);
3. answers with the figures; the demo asks the node for OpenVINO int8 only when the median
   share of equal labels is at least :data:`~lw_refinenet_ros.engine.select.AUTO_REDUCED_AGREEMENT`
   (the gate of ``precision: auto``) and the node's own check of the request (its synthetic
   warm-up frame, :data:`NODE_AGREEMENT_MIN`) will pass, so the node never refuses to start;
   the run's live mIoU against the ground truth shows
   what int8 costs in accuracy. Otherwise the node runs as it would have.

No ROS here (the child runs none).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import time
from typing import Any, Sequence

#: Conveyor frames int8 is compared with fp32 on (a few seconds on 2 cores at 320x240).
CHECK_FRAMES = 8
#: A seed of the conveyor generator that is neither the calibration seed (1000) nor the
#: demo's scene (1): the check must not see the frames it is judged on.
CHECK_SEED = 7000
#: The node's ``agreement_min`` when the demo asks for int8. The node checks the request on
#: its one synthetic warm-up frame, weaker evidence than the conveyor frames above (this
#: model: 97.8 % there); 0.95 still stops an int8 model that is broken.
NODE_AGREEMENT_MIN = 0.95


def check(width: int, height: int, cache_dir: str = '') -> dict[str, Any]:
    """Find or build the packaged model's conveyor int8 for a ``width`` x ``height`` camera
    and measure its labels against fp32 (see the module docstring). JSON-ready."""
    from lw_refinenet_ros.data.calibration import conveyor_calibration
    from lw_refinenet_ros.data.conveyor import frame_rng, render_conveyor_frame
    from lw_refinenet_ros.engine.config import EngineConfig
    from lw_refinenet_ros.engine.select import AUTO_REDUCED_AGREEMENT
    from lw_refinenet_ros.engine.warmup import warmup_frame
    from lw_refinenet_ros.segmenter import Segmenter

    start = time.perf_counter()
    # Both engines' choices are remembered (the cache's decisions), so a later check builds
    # them from the cache without timing or a torch reference: seconds, not tens of them.
    config = EngineConfig(device='cpu', backend='openvino', precision='auto',
                          cache_dir=cache_dir, warmup_size=(height, width))
    # precision auto with the conveyor frames: builds the int8 model once (cached), offers it
    # and, on the synthetic frame, keeps fp32 (or bf16 on a CPU with bf16 units): the reference
    # below. The trained scale, as the node applies it.
    reference = Segmenter.load(None, engine=config, calibration=conveyor_calibration,
                               trained_scale=True)
    int8_model = reference.describe().get('int8_model')
    result: dict[str, Any] = {'int8_model': int8_model, 'frames': CHECK_FRAMES,
                              'seed': CHECK_SEED, 'gate': AUTO_REDUCED_AGREEMENT,
                              'reference': f'{reference.describe()["backend"]}/'
                                           f'{reference.describe()["precision"]}'}
    if not int8_model:
        result.update(use=False, why='no int8 model (OpenVINO/NNCF missing or the build '
                                     'failed; the node log says why)')
        return result
    int8 = Segmenter.load(None, trained_scale=True, engine=dataclasses.replace(
        config, precision='int8', agreement_min=NODE_AGREEMENT_MIN))
    shares = []
    for index in range(CHECK_FRAMES):
        frame = render_conveyor_frame(frame_rng(CHECK_SEED, index), (width, height))[0]
        expected = reference.segment(frame, want_objects=False).labels
        got = int8.segment(frame, want_objects=False).labels
        shares.append(float((got == expected).mean()))
    median = statistics.median(shares)
    # The node checks an explicit int8 on its synthetic warm-up frame against
    # NODE_AGREEMENT_MIN and refuses to start below it: the same frame here, so that a model
    # the node would refuse is never asked for (the demo would stop instead of running fp32).
    synthetic = warmup_frame(height, width)
    node_gate = float((int8.segment(synthetic, want_objects=False).labels
                       == reference.segment(synthetic, want_objects=False).labels).mean())
    result.update(agreement_median=round(median, 5), agreement_min=round(min(shares), 5),
                  warmup_frame_agreement=round(node_gate, 5),
                  use=median >= AUTO_REDUCED_AGREEMENT and node_gate >= NODE_AGREEMENT_MIN,
                  seconds=round(time.perf_counter() - start, 1))
    if median < AUTO_REDUCED_AGREEMENT:
        result['why'] = (f'int8 labels {median:.2%} equal to {result["reference"]} on conveyor '
                         f'frames, below the gate {AUTO_REDUCED_AGREEMENT:.1%}')
    elif not result['use']:
        result['why'] = (f'the node would refuse it: {node_gate:.2%} equal labels on its '
                         f'warm-up frame, below {NODE_AGREEMENT_MIN:.0%}')
    return result


def node_parameters(result: dict[str, Any]) -> list[str]:
    """The node parameters that follow from :func:`check`'s answer (none: as it was)."""
    if not result.get('use'):
        return []
    return ['backend:=openvino', 'precision:=int8', f'agreement_min:={NODE_AGREEMENT_MIN}']


def main(args: Sequence[str] | None = None) -> int:
    """``python -c 'from lw_refinenet_ros.demo.int8_check import main; main()' W H [CACHE]``:
    the answer as the last line of stdout, JSON."""
    parser = argparse.ArgumentParser(prog='int8_check')
    parser.add_argument('width', type=int)
    parser.add_argument('height', type=int)
    parser.add_argument('cache_dir', nargs='?', default='')
    parsed = parser.parse_args(sys.argv[1:] if args is None else list(args))
    try:
        result = check(parsed.width, parsed.height, parsed.cache_dir)
    except Exception as error:  # noqa: BLE001 (any failure: the node runs as it would have)
        result = {'use': False, 'why': f'{type(error).__name__}: {error}'}
    print(json.dumps(result), flush=True)
    return 0
