"""``lw-refinenet segment``: segment images, folders and videos to files.

``--outputs`` names what is written for every image ``<stem>.<ext>`` to ``--out``, and a job
computes only that (:mod:`.segment_outputs`):

* ``labels``: ``<stem>_labels.png``, class ids at full resolution (mono8, or 16-bit when
  K > 256);
* ``color``: ``<stem>_color.png``, the labels in the class colours;
* ``overlay``: ``<stem>_overlay.png``, the colours blended over the image (``--alpha``);
* ``confidence``: ``<stem>_confidence.png``, the winning class's probability x 65535 (16-bit);
* ``objects``: ``<stem>_objects.json``, the parts (below).

The default is ``labels,color,overlay``, as before the flag existed. The files are encoded
and written on a second thread while the next frame is segmented; a write error stops the
job with the file's name and the reason (exit status 2).

Videos (``.mp4``, ``.avi``, ``.mkv``, ``.mov``, ``.webm``, ``.m4v``) are decoded with
``cv2.VideoCapture`` and every ``--video-stride``-th frame is written the same way as
``<stem>_<frame:06d>_labels.png`` etc. (frame = index in the video, from 0). Lossless PNGs
keep the label values exact, which a compressed output video would not.

``objects`` (or ``--objects``, the same) also finds the parts, as the node does for
``segmentation/objects`` (docs/objects.md), writes them to ``<stem>_objects.json`` and draws
boxes, pick points and ids into the overlay. The frames of one video are tracked (ids
persist, velocities in px/s from the video's frame rate); separate images are not. The
``--objects-*`` flags are the node's ``objects.*`` parameters (belt calibration and pick line
need camera_info, so they are node-only).

With ``precision: auto`` on a CPU, a job of enough still images calibrates int8 on some of
them and uses it only when it agrees with the start-up engine on others and is faster
(:mod:`.segment_int8`, ``--input-int8-*``).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Iterator

from lw_refinenet_ros.cli.segment_int8 import INPUT_INT8_PARAMETERS
from lw_refinenet_ros.cli.segment_outputs import DEFAULT_OUTPUTS, OUTPUTS
from lw_refinenet_ros.engine.config import add_engine_arguments, engine_config_from_args
from lw_refinenet_ros.objects.options import OBJECT_PARAMETERS
from lw_refinenet_ros.options import add_arguments as add_option_arguments
from lw_refinenet_ros.options import values_from_args

HELP = ('segment images, folders or videos; writes labels, colour and overlay PNGs (or what '
        '--outputs names)')

#: The objects.* parameters that make sense offline (no camera_info: no belt, no pick line).
OFFLINE_OBJECT_PARAMETERS = tuple(
    spec for spec in OBJECT_PARAMETERS
    if spec.name != 'objects.enabled'
    and not spec.name.startswith(('objects.belt.', 'objects.pick_line.')))

IMAGE_SUFFIXES = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff', '.webp', '.ppm', '.pgm')
VIDEO_SUFFIXES = ('.mp4', '.avi', '.mkv', '.mov', '.webm', '.m4v')


def add_arguments(parser: argparse.ArgumentParser) -> None:
    a = parser.add_argument
    a('inputs', nargs='+', metavar='INPUT', help='image files, folders or video files')
    a('--out', required=True, help='output folder (created if missing)')
    a('--weights', help='checkpoint (default: the packaged conveyor model)')
    a('--arch', help='require this architecture (default: read from the checkpoint)')
    a('--num-classes', type=int, help='require this many classes (default: from the file)')
    a('--classes-file', help='class names/colours (YAML or text); default: from the checkpoint')
    a('--alpha', type=float, default=0.5, help='overlay colour weight in [0, 1] (default 0.5)')
    a('--video-stride', type=int, default=1, help='segment every N-th video frame (default 1)')
    a('--no-progress', action='store_true', help='no progress bar')
    a('--save-uncertain', nargs=2, metavar=('DIR', 'N'),
      help='also keep the N frames with the lowest mean confidence in DIR (PNG + '
      'uncertain.json): the ones to label next')
    a('--outputs', metavar='LIST',
      help=f'comma-separated files to write per frame, only those are computed: '
      f'{"; ".join(f"{name}: {what}" for name, what in OUTPUTS.items())} '
      f'(default: {",".join(DEFAULT_OUTPUTS)})'.replace('%', '%%'))
    a('--objects', action='store_true',
      help='also find the parts: the same as adding objects to --outputs')
    add_option_arguments(parser.add_argument_group(
        'objects', 'with objects in --outputs (or --objects): the node parameters of the '
        'same names'), OFFLINE_OBJECT_PARAMETERS)
    add_option_arguments(parser.add_argument_group(
        'int8 from the inputs', "with precision auto on a CPU: int8 calibrated on the job's "
        'own images, used only when it agrees and is faster'), INPUT_INT8_PARAMETERS)
    # Warm-up runs on the first image, at its size: no --warmup-size here.
    add_engine_arguments(parser.add_argument_group(
        'inference', 'the same options as the node parameters of the same names'),
        exclude=('warmup_size',))


def _expand(inputs: list[str]) -> list[Path]:
    from lw_refinenet_ros.errors import ConfigError

    files: list[Path] = []
    for raw in inputs:
        path = Path(raw)
        if path.is_dir():
            found = sorted(p for p in path.iterdir()
                           if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES + VIDEO_SUFFIXES)
            if not found:
                raise ConfigError(f'folder {path} contains no images or videos '
                                  f'({", ".join(IMAGE_SUFFIXES + VIDEO_SUFFIXES)}).')
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            raise ConfigError(f'input {path} does not exist.')
    return files


def _frames(path: Path, stride: int) -> Iterator[tuple[str, object, float]]:
    """(output stem, BGR uint8 frame, seconds into the video; 0 for an image) of one file."""
    import cv2

    from lw_refinenet_ros.errors import ConfigError

    if path.suffix.lower() in VIDEO_SUFFIXES:
        capture = cv2.VideoCapture(str(path))
        if not capture.isOpened():
            raise ConfigError(f'cannot open video {path} (unsupported codec or broken file).')
        fps = capture.get(cv2.CAP_PROP_FPS)
        fps = fps if fps and fps > 0 else 30.0
        try:
            index = 0
            while True:
                ok, frame = capture.read()
                if not ok:
                    break
                if index % stride == 0:
                    yield f'{path.stem}_{index:06d}', frame, index / fps
                index += 1
        finally:
            capture.release()
        return
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise ConfigError(f'cannot read image {path} (not an image OpenCV can decode).')
    yield path.stem, image, 0.0


def _count_frames(path: Path, stride: int) -> int:
    import cv2

    if path.suffix.lower() not in VIDEO_SUFFIXES:
        return 1
    capture = cv2.VideoCapture(str(path))
    total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) if capture.isOpened() else 0
    capture.release()
    return max(1, -(-total // stride))


def run(args: argparse.Namespace) -> int:
    import sys
    import time

    import numpy as np
    from tqdm import tqdm

    from lw_refinenet_ros.cli.segment_int8 import InputInt8Settings, input_int8
    from lw_refinenet_ros.cli.segment_outputs import OutputPlan, OutputWriter, parse_outputs
    from lw_refinenet_ros.data.uncertain import UncertainFrames
    from lw_refinenet_ros.engine.preprocess import network_size
    from lw_refinenet_ros.errors import ConfigError
    from lw_refinenet_ros.objects.options import ObjectsConfig
    from lw_refinenet_ros.segmenter import Segmenter

    outputs = parse_outputs(args.outputs, objects=args.objects)
    if not 0.0 <= args.alpha <= 1.0:
        raise ConfigError(f'--alpha must be in [0, 1], got {args.alpha}.')
    if args.video_stride < 1:
        raise ConfigError(f'--video-stride must be >= 1, got {args.video_stride}.')
    int8_settings = InputInt8Settings.from_args(args)
    files = _expand(args.inputs)
    uncertain = UncertainFrames.from_args(args.save_uncertain)
    objects_config = None
    if 'objects' in outputs:
        objects_config = ObjectsConfig.from_mapping(
            values_from_args(args, OFFLINE_OBJECT_PARAMETERS))
    # The engine is built on the first frame, so that warm-up (and the timed choice of
    # backend) happens at the size of the input. Videos are tracked (frames carry a stamp);
    # separate images are separate scenes.
    # --max-side unset: the checkpoint's trained scale, read from its card when the file has
    # one (weights_card.py), so that a warm start imports no torch.
    segmenter = Segmenter.load(args.weights, arch=args.arch, num_classes=args.num_classes,
                               classes_file=args.classes_file,
                               engine=engine_config_from_args(args), objects=objects_config,
                               lazy=True, calibration=_default_int8_frames(args.weights),
                               trained_scale=args.max_side is None)
    plan = OutputPlan(outputs, np.ascontiguousarray(segmenter.class_map.colors[:, ::-1]),
                      args.alpha)
    want_confidence = plan.needs_confidence or uncertain is not None
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    stills = [path for path in files if path.suffix.lower() not in VIDEO_SUFFIXES]

    total = sum(_count_frames(path, args.video_stride) for path in files)
    bar = tqdm(total=total, unit='frame', disable=args.no_progress or total <= 1)
    latencies = []
    # int8 calibrated on the job's images runs the frames of its network size; others (and
    # every frame when it is not used) run on the start-up segmenter.
    int8: Any = None
    int8_size: tuple[int, int] | None = None
    start = ready = time.perf_counter()
    with OutputWriter(out_dir, plan, on_written=lambda: bar.update(1)) as writer:
        try:
            for path in files:
                is_video = path.suffix.lower() in VIDEO_SUFFIXES
                for each in (segmenter, int8):
                    if each is not None:
                        each.reset_stream()  # another file: nothing to track across
                for stem, frame, seconds in _frames(path, args.video_stride):
                    if segmenter.engine is None:
                        segmenter.warm_up(frame, 'bgr')
                        outcome = input_int8(segmenter, stills, frame, int8_settings)
                        if outcome.message:
                            print(f'lw-refinenet segment: {outcome.message}', file=sys.stderr)
                        int8, int8_size = outcome.segmenter, outcome.size
                        ready = time.perf_counter()
                    runner = int8 if int8 is not None and network_size(
                        frame.shape[0], frame.shape[1],
                        segmenter.engine_config.max_side) == int8_size else segmenter
                    result = runner.segment(frame, 'bgr', stamp=seconds if is_video else None,
                                            want_confidence=want_confidence, want_stats=False,
                                            want_objects=plan.needs_objects)
                    if uncertain is not None:
                        uncertain.offer(stem, frame, result.confidence)
                    latencies.append(result.timings['total'])
                    writer.submit(stem, frame, result)
        finally:
            bar.close()
    written = writer.written
    end = time.perf_counter()
    if segmenter.engine is None:
        print(f'segmented no frames from {len(files)} input(s)')
        return 0
    if uncertain is not None:
        print(f'kept the {len(uncertain.write())} least confident frame(s) in '
              f'{uncertain.folder} (uncertain.json): label them next')
    info = (int8 or segmenter).describe()
    print(f'segmented {written} frame(s) from {len(files)} input(s) into {out_dir} '
          f'({",".join(outputs)}) with {info["backend"]}/{info["precision"]} on '
          f'{info["device"]}: engine ready in {ready - start:.1f} s, then '
          f'{np.mean(latencies):.0f} ms/frame inference, '
          f'{written / max(end - ready, 1e-9):.1f} frames/s with decoding and writing')
    return 0


def _default_int8_frames(weights: str | None) -> Any:
    """For the packaged default model, its int8 calibration frames (the conveyor generator;
    built into an int8 model once, on the first run, then cached); None for other weights."""
    if weights:
        return None
    from lw_refinenet_ros.data.calibration import conveyor_calibration

    return conveyor_calibration
