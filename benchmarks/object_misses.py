#!/usr/bin/env python3
"""Why pickable parts are missed: every miss and every false positive, by cause and class.

``benchmarks/objects.py`` says how many pickable parts the detector finds; this says why the
others are lost, so that a change to the splitting rules aims at the biggest cause. Each
missed pickable piece (at least half of its part in view, off the border; see
lw_refinenet_ros/evaluation/object_metrics.py) is put in one bin:

* ``not_labelled``: less than half of the piece carries its class in the labels (the
  network's loss; no splitting rule can help);
* ``filtered``: no object lies on it, but one would with ``min_score`` 0 and ``min_area`` 1
  (a score or speck filter dropped it);
* ``merged``: one object covers at least half of the piece and at least half of another
  piece of its class (two parts left as one);
* ``over_split``: no object covers half of the piece, but several together do (the part was
  cut into pieces, none of which matches);
* ``mask_too_big``: one object covers half of the piece, but its IoU stays under 0.5 without
  another piece of its class under it (labels bleed, or a large don't-care sliver joined);
* ``mask_too_small``: the objects on it cover less than half of the piece;
* ``claimed_elsewhere``: an object matches it at IoU >= 0.5 but was taken by a better pair
  (and covers no other piece of its class: then it is ``merged``).

Unmatched objects (false positives) get ``merged`` (on two or more pieces of its class),
``fragment`` (on a piece another object matched, or on a piece cut apart), ``wrong_class``
(mostly on another class or on no part) or ``other``. Matched objects whose pick pixel is
not inside the matched part are counted as ``pick_outside``.

Only detection is run (no tracking: misses do not depend on it), on the network's grid as
in the node (``objects.detect_at``): the engine runs with ``trained_scale``, so a 640x480
video is segmented at 320x240 and its parts are found on every second label pixel. Exact
labels use the grid of the video's cached model run (none yet: every pixel). The frames of
each video, their exact labels and the model's labels and confidence are kept under
``--cache`` (one network pass per video and size); later runs with other ``--param``
settings or detector code read them back. Use validation seeds to choose; test seeds only
to report.

Usage::

    .venv/bin/python benchmarks/object_misses.py --labels exact --frames 150
    .venv/bin/python benchmarks/object_misses.py --labels model --density 8 --frames 150
    .venv/bin/python benchmarks/object_misses.py --labels exact --param objects.split_edges=false
"""

from __future__ import annotations

from collections import Counter
import pathlib
import pickle
import sys
from typing import Any

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

from _common import base_parser, objects_parameters, write_json  # noqa: E402

from lw_refinenet_ros.data.conveyor import CLASS_NAMES, ConveyorScene  # noqa: E402
from lw_refinenet_ros.evaluation.object_metrics import (  # noqa: E402
    GroundTruthPieces,
    ground_truth_pieces,
    match_frame,
    pickable_pieces,
)
from lw_refinenet_ros.evaluation.seeds import parse_seeds  # noqa: E402
from lw_refinenet_ros.objects.detect import (  # noqa: E402
    detect_objects,
    detection_step,
    part_class_lut,
)
from lw_refinenet_ros.objects.options import DetectorSettings, ObjectsConfig  # noqa: E402
from lw_refinenet_ros.sizes import parse_size  # noqa: E402


def load_video(seed: int, frames: int, size: tuple[int, int], density: float,
               cache: pathlib.Path, engine_factory: Any) -> list[dict[str, Any]]:
    """The video's frames with ground truth and (when ``engine_factory`` is given) the
    model's labels and confidence, from ``cache`` when an earlier run kept them."""
    want_model = engine_factory is not None
    path = cache / f'video_{seed}_{size[0]}x{size[1]}_d{density:g}_{frames}_v2.pkl'
    if path.exists():
        with path.open('rb') as handle:
            video = pickle.load(handle)
        if not want_model or 'model_labels' in video[0]:
            return video
    else:
        scene = ConveyorScene(seed, size, density=density)
        video = []
        for _ in range(frames):
            image, truth = scene.next_frame()
            instances, areas = scene.instances_and_areas()
            video.append({'image': image, 'truth': truth, 'instances': instances,
                          'areas': areas})
    if want_model:
        engine = engine_factory()
        for frame in video:
            result = engine(frame['image'], 'rgb', want_confidence=True, want_stats=False)
            frame['model_labels'] = result.labels.astype(np.uint8)
            frame['model_confidence'] = result.confidence.astype(np.float16)
            frame['network_size'] = tuple(result.network_size)
    cache.mkdir(parents=True, exist_ok=True)
    with path.open('wb') as handle:
        pickle.dump(video, handle, protocol=pickle.HIGHEST_PROTOCOL)
    return video


def _overlaps(objects: list[Any], truth: GroundTruthPieces) -> list[np.ndarray]:
    """Per object: pixels on each piece id (same class only), as a bincount."""
    out = []
    for obj in objects:
        x, y, w, h = obj.bbox
        ids = truth.pieces[y:y + h, x:x + w][obj.mask]
        count = np.bincount(ids, minlength=truth.area.size)
        count[truth.class_id != obj.class_id] = 0
        count[0] = 0
        out.append(count)
    return out


def classify_frame(objects: list[Any], relaxed: list[Any], labels: np.ndarray,
                   truth: GroundTruthPieces, pickable: GroundTruthPieces,
                   gt_instances: np.ndarray, causes: Counter) -> None:
    """Add the frame's missed pickable pieces, false positives and stray picks to
    ``causes`` (keys ``miss/<cause>/<class>``, ``fp/<cause>/<class>``, ...)."""
    match = match_frame(objects, pickable)
    overlap = _overlaps(objects, truth)
    matched_pieces = set()
    for index, instance in match.pairs:
        name = CLASS_NAMES[objects[index].class_id]
        causes[f'tp/{name}'] += 1
        px, py = objects[index].pick
        if int(gt_instances[py, px]) != instance:
            causes[f'pick_outside/{name}'] += 1
        matched_pieces.update(np.nonzero(overlap[index])[0].tolist())
    piece_of = {int(truth.instance[p]): p for p in range(1, truth.area.size)
                if not pickable.dont_care[p]}
    relaxed_overlap = None
    for instance, class_id in match.missed:
        piece = piece_of[instance]
        area = float(truth.area[piece])
        name = CLASS_NAMES[class_id]
        on = [(int(o[piece]), k) for k, o in enumerate(overlap) if o[piece] > 0]
        labelled = np.count_nonzero(labels[truth.pieces == piece] == class_id)
        cause = 'mask_too_small'
        if 2 * labelled < area:
            cause = 'not_labelled'
        elif not on:
            cause = 'mask_too_small'
            relaxed_overlap = (relaxed_overlap if relaxed_overlap is not None
                               else _overlaps(relaxed, truth))
            if any(2 * o[piece] >= area for o in relaxed_overlap):
                cause = 'filtered'
        else:
            best, k = max(on)
            obj_overlap = overlap[k]
            size = int(np.count_nonzero(objects[k].mask))
            iou = best / (size + area - best)
            if 2 * best >= area:
                others = [p for p in np.nonzero(obj_overlap)[0] if p != piece
                          and 2 * obj_overlap[p] >= truth.area[p]]
                if others:
                    cause = 'merged'
                elif iou >= 0.5:
                    cause = 'claimed_elsewhere'
                else:
                    cause = 'mask_too_big'
            elif len(on) > 1 and 2 * sum(n for n, _ in on) >= area:
                cause = 'over_split'
        causes[f'miss/{cause}/{name}'] += 1
    for index in match.false_positives:
        obj = objects[index]
        name = CLASS_NAMES[obj.class_id]
        o = overlap[index]
        size = int(np.count_nonzero(obj.mask))
        covered = [p for p in np.nonzero(o)[0] if 2 * o[p] >= truth.area[p]]
        if len(covered) >= 2:
            cause = 'merged'
        elif 2 * int(o.sum()) < size:
            cause = 'wrong_class'
        elif int(np.argmax(o)) in matched_pieces or o.max() < 0.5 * truth.area[np.argmax(o)]:
            cause = 'fragment'
        else:
            cause = 'other'
        causes[f'fp/{cause}/{name}'] += 1


def analyse(video: list[dict[str, Any]], source: str, config: ObjectsConfig,
            relaxed: DetectorSettings, causes: Counter) -> None:
    """Detect and classify every frame of one video on ``source`` labels, on the network's
    grid as the node does (``objects.detect_at``; exact labels on the model's grid too)."""
    parts = part_class_lut(CLASS_NAMES, config.ignore_classes, config.one_hole_classes)
    settings = DetectorSettings.from_config(config)
    detect_at = config.detect_at
    for frame in video:
        step = detection_step(frame['truth'].shape, frame.get('network_size'), detect_at)
        if source == 'exact':
            labels, confidence = frame['truth'], None
        else:
            labels = frame['model_labels']
            confidence = frame['model_confidence'].astype(np.float32)
        image = frame['image'] if settings.split_edges else None
        objects = detect_objects(labels, parts, settings, confidence, image, step=step)
        relaxed_objects = detect_objects(labels, parts, relaxed, None, image, step=step)
        truth = ground_truth_pieces(frame['truth'], frame['instances'])
        pickable = pickable_pieces(truth, frame['areas'])
        classify_frame(objects, relaxed_objects, labels, truth, pickable,
                       frame['instances'], causes)


def summarise(causes: Counter) -> dict[str, Any]:
    """Totals, pickable P/R and each cause's count (overall and per class)."""
    tp = sum(v for k, v in causes.items() if k.startswith('tp/'))
    fn = sum(v for k, v in causes.items() if k.startswith('miss/'))
    fp = sum(v for k, v in causes.items() if k.startswith('fp/'))
    by_cause: Counter = Counter()
    for key, value in causes.items():
        kind, *rest = key.split('/')
        if kind in ('miss', 'fp'):
            by_cause[f'{kind}/{rest[0]}'] += value
        elif kind == 'pick_outside':
            by_cause['pick_outside'] += value
    return {'true_positives': tp, 'false_positives': fp, 'false_negatives': fn,
            'precision': round(tp / max(tp + fp, 1), 5), 'recall': round(tp / max(tp + fn, 1), 5),
            'by_cause': dict(sorted(by_cause.items(), key=lambda kv: -kv[1])),
            'by_cause_and_class': dict(sorted((k, v) for k, v in causes.items()
                                              if not k.startswith('tp/')))}


def main() -> int:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument('--seeds', default='validation',
                        help='validation (default), test, or comma-separated seeds')
    parser.add_argument('--frames', type=int, default=150, help='frames of each video')
    parser.add_argument('--size', default='320x240')
    parser.add_argument('--density', type=float, default=6.0)
    parser.add_argument('--labels', choices=('exact', 'model'), default='exact',
                        help="exact ground-truth labels (no network) or the model's")
    parser.add_argument('--weights', default=None, help='checkpoint (default: packaged)')
    parser.add_argument('--cache', type=pathlib.Path, default=pathlib.Path('/tmp/lwrf_misses'),
                        help='where frames and engine outputs are kept between runs')
    parser.add_argument('--param', action='append', default=[], metavar='NAME=VALUE',
                        help='objects.* detector parameter, e.g. objects.split_edges=false')
    args = parser.parse_args()
    values = objects_parameters(args.param)
    config = ObjectsConfig.from_mapping(values)
    relaxed = DetectorSettings.from_config(ObjectsConfig.from_mapping(
        {**values, 'objects.min_score': 0.0, 'objects.min_area': 1}))
    factory = None
    if args.labels == 'model':
        def factory() -> Any:
            from lw_refinenet_ros.engine import EngineConfig
            from lw_refinenet_ros.segmenter import Segmenter

            # trained_scale as in the node: a 640x480 frame runs the network at 320x240.
            return Segmenter.load(args.weights, engine=EngineConfig(device=args.device),
                                  trained_scale=True).engine
    size = parse_size(args.size, what='--size')
    per_seed = {}
    pooled: Counter = Counter()
    for seed in parse_seeds(args.seeds):
        video = load_video(seed, 20 if args.quick else args.frames, size, args.density,
                           args.cache, factory)
        causes: Counter = Counter()
        analyse(video, args.labels, config, relaxed, causes)
        pooled.update(causes)
        per_seed[seed] = summarise(causes)
        print(seed, {k: per_seed[seed][k] for k in ('precision', 'recall', 'by_cause')},
              flush=True)
    result = {'benchmark': 'object_misses', 'labels': args.labels, 'seeds': args.seeds,
              'frames': args.frames, 'size': args.size, 'density': args.density,
              'parameters': values, 'pooled': summarise(pooled), 'per_seed': per_seed}
    write_json(args.json, result)
    return 0


if __name__ == '__main__':
    sys.exit(main())
