"""``lw-refinenet quantize``: build the int8 model (NNCF, OpenVINO) and report what it costs.

The int8 model is calibrated on a folder of the user's images and stored in the runtime cache,
where the node and every CLI command find it for ``precision int8`` (with the same
``calibration_dir``). Because int8 changes labels, the command then scores both the fp32 and
the int8 engine on the same labelled frames (the conveyor generator with an unseen seed by
default, or ``--eval DIR``) and prints the mIoU change and the per-frame times, measured
interleaved through the engine exactly as the node runs it.
"""

from __future__ import annotations

import argparse
from typing import Any

from lw_refinenet_ros.engine.config import (
    ENGINE_PARAMETER_SPECS,
    add_engine_arguments,
    engine_config_from_args,
)

HELP = 'build the int8 model from calibration images (NNCF) and report the mIoU change'


#: The engine options this command takes (as every model-running command spells them); the
#: rest are fixed: OpenVINO int8 on the CPU, compared with fp32 without an agreement gate.
ENGINE_OPTIONS = ('cache_dir', 'num_threads')


def _size(text: str) -> tuple[int, int]:
    """``--size WIDTHxHEIGHT`` as ``(height, width)``, at least 16x16."""
    from lw_refinenet_ros.errors import ConfigError
    from lw_refinenet_ros.sizes import parse_size_hw

    try:
        return parse_size_hw(text, minimum=16, what='--size')
    except ConfigError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    a = parser.add_argument
    a('--weights', help='checkpoint (default: the packaged conveyor model)')
    a('--calibration', required=True, metavar='DIR',
      help='folder of your own camera images (or a dataset folder with images/)')
    a('--size', type=_size, metavar='WIDTHxHEIGHT',
      help='network input size, e.g. 640x480 (default: the size of the first calibration '
           'image)')
    a('--eval', metavar='DIR', help='labelled dataset folder to score on (default: conveyor)')
    a('--eval-seed', type=int, default=9100,
      help='conveyor seed for the scoring frames when --eval is not given (default 9100, '
           'not a training seed)')
    a('--eval-count', type=int, default=24, help='frames to score (default 24)')
    a('--json', help='write the report here as JSON')
    add_engine_arguments(parser.add_argument_group(
        'inference', 'the node parameters of the same names'),
        exclude=tuple(n for n in ENGINE_PARAMETER_SPECS if n not in ENGINE_OPTIONS))


def run(args: argparse.Namespace) -> int:
    import dataclasses
    import json
    import time

    import cv2
    import numpy as np

    from lw_refinenet_ros.data.datasets import ConveyorDataset, open_dataset
    from lw_refinenet_ros.engine.quantize import calibration_images
    from lw_refinenet_ros.errors import ConfigError
    from lw_refinenet_ros.evaluation.metrics import ConfusionMeter
    from lw_refinenet_ros.evaluation.segmentation import engine_segmenter
    from lw_refinenet_ros.segmenter import Segmenter

    if args.eval_count < 1:
        raise ConfigError('--eval-count must be >= 1.')
    files = calibration_images(args.calibration)
    size = args.size
    if size is None:
        first = cv2.imread(str(files[0]), cv2.IMREAD_COLOR)
        if first is None:
            raise ConfigError(f'{files[0]} is not a readable image; pass --size '
                              f'WIDTHxHEIGHT.')
        size = tuple(first.shape[:2])
    loaded = Segmenter.load(args.weights, lazy=True)  # model and classes, no engine yet
    if args.eval:
        dataset = open_dataset(args.eval)
    else:
        dataset = ConveyorDataset(args.eval_seed, args.eval_count, (size[1], size[0]),
                                  fresh_per_epoch=False)
    count = min(len(dataset), args.eval_count)
    base = engine_config_from_args(args, device='cpu', warmup_size=size, agreement_min=0.0,
                                   backend_fallback=False)

    def engine(backend: str, precision: str, **options: str) -> Any:
        config = dataclasses.replace(base, backend=backend, precision=precision, **options)
        return Segmenter(loaded.model, loaded.class_map, engine=config).engine

    start = time.perf_counter()
    int8 = engine('openvino', 'int8', calibration_dir=str(args.calibration))
    build_s = time.perf_counter() - start
    fp32 = engine('openvino', 'fp32')
    reference = engine('torch', 'fp32')
    engines = {'torch fp32': reference, 'openvino fp32': fp32, 'openvino int8': int8}
    meters = {name: ConfusionMeter(loaded.num_classes) for name in engines}
    times: dict[str, list[float]] = {name: [] for name in engines}
    equal = {name: 0 for name in engines}
    pixels = 0
    segmenters = {name: engine_segmenter(engine) for name, engine in engines.items()}
    for index in range(count):
        image, labels = dataset[index]
        outputs = {}
        for name, segment in segmenters.items():  # interleaved: one frame, every engine
            tick = time.perf_counter()
            outputs[name] = segment(image)
            times[name].append((time.perf_counter() - tick) * 1e3)
            meters[name].update(labels, outputs[name])
        pixels += outputs['torch fp32'].size
        for name in engines:
            equal[name] += int((outputs[name] == outputs['torch fp32']).sum())
    rows = {}
    for name in engines:
        scores = meters[name].scores()
        rows[name] = {'miou': float(scores.miou), 'ms_median': float(np.median(times[name])),
                      'labels_equal_to_torch_fp32': equal[name] / max(pixels, 1)}
    change = (rows['openvino int8']['miou'] - rows['torch fp32']['miou']) * 100.0
    where = args.eval or f'conveyor seed {args.eval_seed}'
    print(f'int8 model for {size[1]}x{size[0]} from {len(files)} calibration images '
          f'({build_s:.1f} s incl. any cached build); engine: {int8.describe()}')
    print(f'scored on {count} frames of {where}:')
    for name, row in rows.items():
        print(f'  {name:14s} mIoU {row["miou"]:.4f}  {row["ms_median"]:7.1f} ms/frame  labels '
              f'{row["labels_equal_to_torch_fp32"]:.2%} equal to torch fp32')
    print(f'mIoU change int8 vs fp32: {change:+.2f} points; int8 speed-up over OpenVINO fp32: '
          f'x{rows["openvino fp32"]["ms_median"] / rows["openvino int8"]["ms_median"]:.2f}')
    if args.json:
        report = {'size': list(size), 'calibration_images': len(files), 'frames': count,
                  'data': where, 'results': rows,
                  'miou_change_points': change,
                  'engine': dataclasses.asdict(int8.config)
                  if dataclasses.is_dataclass(int8.config) else str(int8.config)}
        with open(args.json, 'w', encoding='utf-8') as handle:
            json.dump(report, handle, indent=2, default=str)
        print(f'wrote {args.json}')
    return 0
