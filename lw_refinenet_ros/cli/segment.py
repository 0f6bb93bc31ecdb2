"""``lw-refinenet segment``: segment images, folders and videos to PNG files.

For every image ``<stem>.<ext>`` three PNGs are written to ``--out``:

* ``<stem>_labels.png``: class ids at full resolution (mono8, or 16-bit when K > 256);
* ``<stem>_color.png``: the labels in the class colours;
* ``<stem>_overlay.png``: the colours blended over the image (``--alpha``).

Videos (``.mp4``, ``.avi``, ``.mkv``, ``.mov``, ``.webm``, ``.m4v``) are decoded with
``cv2.VideoCapture`` and every ``--video-stride``-th frame is written the same way as
``<stem>_<frame:06d>_labels.png`` etc. (frame = index in the video, from 0). Lossless PNGs
keep the label values exact, which a compressed output video would not.

``--objects`` also finds the parts, as the node does for ``segmentation/objects``
(docs/objects.md), writes them to ``<stem>_objects.json`` and draws boxes, pick points and
ids into the overlay. The frames of one video are tracked (ids persist, velocities in px/s
from the video's frame rate); separate images are not. The ``--objects-*`` flags are the
node's ``objects.*`` parameters (belt calibration and pick line need camera_info, so they
are node-only).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Iterator

from lw_refinenet_ros.engine.config import add_engine_arguments, engine_config_from_args
from lw_refinenet_ros.objects.options import OBJECT_PARAMETERS
from lw_refinenet_ros.options import add_arguments as add_option_arguments
from lw_refinenet_ros.options import values_from_args

HELP = 'segment images, folders or videos; writes labels, colour and overlay PNGs'

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
    a('--objects', action='store_true',
      help='also find the parts: <stem>_objects.json (class, score, box, pick point, axes; '
      'track ids within a video) and boxes, pick points and ids in the overlay')
    add_option_arguments(parser.add_argument_group(
        'objects', 'with --objects: the node parameters of the same names'),
        OFFLINE_OBJECT_PARAMETERS)
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
    import collections
    import concurrent.futures
    import time

    import cv2
    import numpy as np
    from tqdm import tqdm

    from lw_refinenet_ros.data.uncertain import UncertainFrames
    from lw_refinenet_ros.errors import ConfigError
    from lw_refinenet_ros.model.weights import checkpoint_engine_defaults
    from lw_refinenet_ros.objects.options import ObjectsConfig
    from lw_refinenet_ros.palette import colorize, overlay
    from lw_refinenet_ros.segmenter import Segmenter

    if not 0.0 <= args.alpha <= 1.0:
        raise ConfigError(f'--alpha must be in [0, 1], got {args.alpha}.')
    if args.video_stride < 1:
        raise ConfigError(f'--video-stride must be >= 1, got {args.video_stride}.')
    files = _expand(args.inputs)
    uncertain = UncertainFrames.from_args(args.save_uncertain)
    objects_config = None
    if args.objects:
        import json

        from lw_refinenet_ros.objects.draw import draw_objects
        from lw_refinenet_ros.objects.processor import object_record

        objects_config = ObjectsConfig.from_mapping(
            values_from_args(args, OFFLINE_OBJECT_PARAMETERS))
    # The engine is built on the first frame, so that warm-up (and the timed choice of
    # backend) happens at the size of the input. Videos are tracked (frames carry a stamp);
    # separate images are separate scenes.
    segmenter = Segmenter.load(args.weights, arch=args.arch, num_classes=args.num_classes,
                               classes_file=args.classes_file,
                               engine=engine_config_from_args(args, **checkpoint_engine_defaults(
                                   args.weights, max_side=args.max_side)),
                               objects=objects_config,
                               lazy=True, calibration=_default_int8_frames(args.weights))
    colors_bgr = np.ascontiguousarray(segmenter.class_map.colors[:, ::-1])
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)

    total = sum(_count_frames(path, args.video_stride) for path in files)
    bar = tqdm(total=total, unit='frame', disable=args.no_progress or total <= 1)
    written = 0
    latencies = []
    start = ready = time.perf_counter()

    def write(stem: str, frame: np.ndarray, labels: np.ndarray, objects: Any) -> None:
        blended = overlay(frame, labels, colors_bgr, args.alpha)
        if objects is not None:
            draw_objects(blended, objects.objects, colors_bgr)
            target = out_dir / f'{stem}_objects.json'
            target.write_text(json.dumps(
                {'image': stem, 'width': int(labels.shape[1]), 'height': int(labels.shape[0]),
                 'belt_velocity_px': objects.belt_velocity_px,
                 'objects': [object_record(r) for r in objects.objects]}, indent=1) + '\n')
        for suffix, data in (('labels', labels), ('color', colorize(labels, colors_bgr)),
                             ('overlay', blended)):
            target = out_dir / f'{stem}_{suffix}.png'
            if not cv2.imwrite(str(target), data):
                raise ConfigError(f'cannot write {target}; check the --out folder.')

    # PNG encoding (OpenCV releases the GIL) runs on a second thread while the next frame is
    # segmented; at most a few frames wait, so memory stays bounded on long videos.
    pending: collections.deque = collections.deque()
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as writer:
        try:
            for path in files:
                is_video = path.suffix.lower() in VIDEO_SUFFIXES
                segmenter.reset_stream()  # another file: nothing to track across
                for stem, frame, seconds in _frames(path, args.video_stride):
                    if segmenter.engine is None:
                        segmenter.warm_up(frame, 'bgr')
                        ready = time.perf_counter()
                    result = segmenter.segment(frame, 'bgr', stamp=seconds if is_video else None,
                                               want_confidence=uncertain is not None,
                                               want_stats=False)
                    if uncertain is not None:
                        uncertain.offer(stem, frame, result.confidence)
                    latencies.append(result.timings['total'])
                    pending.append(writer.submit(write, stem, frame, result.labels,
                                                 result.objects))
                    while len(pending) > 2 or (pending and pending[0].done()):
                        pending.popleft().result()
                        written += 1
                        bar.update(1)
            while pending:
                pending.popleft().result()
                written += 1
                bar.update(1)
        finally:
            for future in pending:
                future.cancel()
            bar.close()
    end = time.perf_counter()
    if segmenter.engine is None:
        print(f'segmented no frames from {len(files)} input(s)')
        return 0
    if uncertain is not None:
        print(f'kept the {len(uncertain.write())} least confident frame(s) in '
              f'{uncertain.folder} (uncertain.json): label them next')
    info = segmenter.describe()
    print(f'segmented {written} frame(s) from {len(files)} input(s) into {out_dir} with '
          f'{info["backend"]}/{info["precision"]} on {info["device"]}: engine ready in '
          f'{ready - start:.1f} s, then {np.mean(latencies):.0f} ms/frame inference, '
          f'{written / max(end - ready, 1e-9):.1f} frames/s with decoding and PNG writing')
    return 0


def _default_int8_frames(weights: str | None) -> Any:
    """For the packaged default model, its int8 calibration frames (the conveyor generator;
    built into an int8 model once, on the first run, then cached); None for other weights."""
    if weights:
        return None
    from lw_refinenet_ros.data.calibration import conveyor_calibration

    return conveyor_calibration
