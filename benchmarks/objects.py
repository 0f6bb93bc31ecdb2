#!/usr/bin/env python3
"""Objects benchmark: object precision/recall, pick success, id switches and cost per frame.

Conveyor videos are segmented by the default model (and, for reference, taken from the exact
ground-truth labels); objects are found and tracked on every frame and scored one-to-one
against the generator's instance ground truth (lw_refinenet_ros/evaluation/object_metrics.py
has the rules): every visible piece, and the pickable parts (at least half in view, off the
image border). The cost of objects + tracking is timed separately on 640x480 frames, the
issue's reference size, on the model's labels and on the exact labels: the median of
``--repeats`` runs per frame, then p50/p95 over the frames.

Seeds (lw_refinenet_ros/evaluation/seeds.py): ``--seeds validation`` (the default) for
choosing models and ``objects.*`` settings, ``--seeds test`` only for numbers to report.

Targets (issue 22, test seeds pooled): pickable precision and recall >= 0.985, pick point
inside the matched part >= 99.5 %, id switches <= 0.5 % of track-frames, objects + tracking
p95 <= 3 ms per 640x480 frame at 10 parts in view.

With a checkpoint that has the learned part-boundary output (``lw-refinenet
train-boundary``), ``model`` is today's rules on its labels and ``model_learned`` the same
labels split along its boundary map (``objects.split_boundary_threshold``), scored and timed
side by side.

A long video holds few distinct parts (each rides the belt for about 160 frames), so one
seed's score is decided by a handful of overlaps; several seeds are scored and their counts
pooled.

Usage::

    .venv/bin/python benchmarks/objects.py --json objects.json             # validation
    .venv/bin/python benchmarks/objects.py --seeds test --frames 1500 --json objects.json
    .venv/bin/python benchmarks/objects.py --seeds 31001 --density 8 --timing-only
    .venv/bin/python benchmarks/objects.py --quick        # smoke test
"""

from __future__ import annotations

from dataclasses import dataclass
import pathlib
import sys
import time
from typing import Any

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

from _common import (  # noqa: E402
    base_parser,
    machine_state,
    objects_parameters,
    percentiles,
    write_json,
)

from lw_refinenet_ros.data.conveyor import CLASS_NAMES, ConveyorScene  # noqa: E402
from lw_refinenet_ros.evaluation.object_metrics import (  # noqa: E402
    ObjectScorer,
    ground_truth_pieces,
)
from lw_refinenet_ros.evaluation.seeds import parse_seeds  # noqa: E402
from lw_refinenet_ros.objects.geometry import pick_point  # noqa: E402
from lw_refinenet_ros.objects.options import ObjectsConfig  # noqa: E402
from lw_refinenet_ros.objects.processor import ObjectProcessor  # noqa: E402
from lw_refinenet_ros.sizes import parse_size  # noqa: E402


@dataclass(frozen=True)
class _Piece:
    """What the scorer reads of an object (class, box, mask, pick pixel)."""

    class_id: int
    bbox: tuple[int, int, int, int]
    mask: np.ndarray
    pick: tuple[int, int]


def split_by_truth(objects: list[Any], truth: np.ndarray, instances: np.ndarray,
                   min_area: int) -> list[Any]:
    """Each object cut along the ground-truth pieces of its class that it covers (pieces
    under ``min_area`` pixels dropped, as the detector drops specks).

    Not a detector: the ceiling of *any* rule that splits same-class objects (image edges, an
    instance head) on these labels. What it still misses, the labels themselves lose.
    """
    truth_pieces = ground_truth_pieces(truth, instances, min_area)
    out: list[Any] = []
    for obj in objects:
        x, y, w, h = obj.bbox
        ids = truth_pieces.pieces[y:y + h, x:x + w]
        covered = ids[obj.mask & (truth[y:y + h, x:x + w] == obj.class_id)]
        found, inside = np.unique(covered[covered > 0], return_counts=True)
        # Only the pieces the object holds at least half of are merged parts; slivers of
        # others stay with the largest one.
        merged = [int(p) for p, n in zip(found, inside) if 2 * n >= truth_pieces.area[p]]
        if len(merged) < 2:
            out.append(obj)
            continue
        largest = max(merged, key=lambda p: truth_pieces.area[p])
        for piece in merged:
            mask = obj.mask & (ids == piece)
            if piece == largest:
                mask |= obj.mask & ~np.isin(ids, merged)
            if np.count_nonzero(mask) >= min_area:
                (px, py), _ = pick_point(mask)
                out.append(_Piece(obj.class_id, obj.bbox, mask, (px + x, py + y)))
    return out


def score_video(engine: Any, config: ObjectsConfig, seed: int, frames: int,
                size: tuple[int, int], fps: float, oracle: bool = False,
                density: float = 6.0) -> dict[str, Any]:
    """Score model labels and exact labels on the same video (and, with ``oracle``, the
    model's objects split along the true parts: :func:`split_by_truth`)."""
    scene = ConveyorScene(seed, size, density=density)
    processors = {'model': ObjectProcessor(config, CLASS_NAMES),
                  'model_learned': ObjectProcessor(config, CLASS_NAMES),
                  'exact_labels': ObjectProcessor(config, CLASS_NAMES)}
    scorers = {name: ObjectScorer(len(CLASS_NAMES)) for name in processors}
    if oracle and engine is not None:
        scorers['model_split_by_truth'] = ObjectScorer(len(CLASS_NAMES))
    for index in range(frames):
        image, truth = scene.next_frame()
        instances, full_areas = scene.instances_and_areas()
        stamp = index / fps
        inputs = {'exact_labels': (truth, None, None, None)}
        if engine is not None:
            result = engine(image, 'rgb', want_confidence=True, want_stats=False)
            # The exact labels on the grid a node running this model would use.
            inputs['exact_labels'] = (truth, None, None, result.network_size)
            # 'model': today's rules on the model's labels; 'model_learned': the same labels
            # split along the model's learned part boundaries (only a model with that output).
            inputs['model'] = (result.labels, result.confidence, None, result.network_size)
            if result.boundary is not None:
                inputs['model_learned'] = (result.labels, result.confidence, result.boundary,
                                           result.network_size)
        for name, (labels, confidence, boundary, network) in inputs.items():
            frame = processors[name].process(labels, stamp, confidence, image=image,
                                             boundary=boundary, network_size=network)
            scorers[name].add([r.object for r in frame.objects], truth, instances,
                              [r.track_id if r.confirmed else None for r in frame.objects],
                              full_areas)
            if name == 'model' and 'model_split_by_truth' in scorers:
                scorers['model_split_by_truth'].add(
                    split_by_truth([r.object for r in frame.objects], truth, instances,
                                   config.min_area),
                    truth, instances, None, full_areas)
    return {name: scorer.summary(CLASS_NAMES) for name, scorer in scorers.items()
            if scorer.pickable_frames and (name == 'exact_labels' or engine is not None)}


_COUNTS = ('true_positives', 'false_positives', 'false_negatives', 'picks_inside',
           'picks_matched')


def pooled(runs: Any) -> dict[str, Any]:
    """Scores over several videos from their summed counts, per labels source."""
    totals: dict[str, dict[str, int]] = {}
    for run in runs:
        for name, summary in run.items():
            into = totals.setdefault(name, {})
            for key in (*_COUNTS, 'id_switches', 'track_frames'):
                into[key] = into.get(key, 0) + summary[key]
            pickable = summary.get('pickable') or {}
            for key in _COUNTS:
                into['pickable_' + key] = into.get('pickable_' + key, 0) + pickable.get(key, 0)

    def ratio(a: int, b: int) -> float | None:
        return round(a / b, 5) if b else None

    def scores(t: dict[str, int], prefix: str) -> dict[str, float | None]:
        tp, fp, fn = (t[prefix + 'true_positives'], t[prefix + 'false_positives'],
                      t[prefix + 'false_negatives'])
        return {'precision': ratio(tp, tp + fp), 'recall': ratio(tp, tp + fn),
                'pick_success': ratio(t[prefix + 'picks_inside'], t[prefix + 'picks_matched'])}

    return {name: {'pickable': scores(t, 'pickable_'), 'all_visible': scores(t, ''),
                   'id_switch_rate': ratio(t['id_switches'], t['track_frames']), **t}
            for name, t in totals.items()}


def time_objects(engine: Any, config: ObjectsConfig, seed: int, frames: int,
                 size: tuple[int, int], repeats: int = 5, density: float = 6.0
                 ) -> dict[str, Any]:
    """Objects + tracking per frame on the model's labels (and confidence) and on the exact
    labels of ``size``, each with its camera image (``objects.split_edges`` reads it); the
    model itself is not timed.

    The sequence runs ``repeats`` times with a fresh tracker; ``median_ms`` takes each
    frame's median over the runs (a typical run, not the luckiest), then p50/p95 over the
    frames; ``all_runs_ms`` pools every run. ``median_cpu_ms`` is the same from the process's
    CPU time: on a machine shared with other jobs, wall time includes the waits for a core,
    CPU time does not (nothing else runs in this process while it is timed).
    """
    scene = ConveyorScene(seed, size, density=density)
    sources: dict[str, list[tuple[np.ndarray, np.ndarray, np.ndarray | None,
                                  np.ndarray | None, Any]]] = {'exact_labels': []}
    if engine is not None:
        sources['model'] = []
        sources['model_learned'] = []
    parts_in_view = []
    for _ in range(frames):
        image, truth = scene.next_frame()
        _, areas = scene.instances_and_areas()
        parts_in_view.append(sum(1 for area in areas.values() if area > 0))
        network = None
        if engine is not None:
            result = engine(image, 'rgb', want_confidence=True, want_stats=False)
            network = result.network_size
            sources['model'].append((image, result.labels, result.confidence, None, network))
            if result.boundary is not None:
                sources['model_learned'].append((image, result.labels, result.confidence,
                                                 result.boundary, network))
        # The exact labels on the grid a node running this model would use.
        sources['exact_labels'].append((image, truth, None, None, network))
    if not sources.get('model_learned', True):
        del sources['model_learned']
    out: dict[str, Any] = {'size': f'{size[0]}x{size[1]}', 'density': density,
                           'frames': frames, 'repeats': repeats,
                           'parts_in_view_mean': round(float(np.mean(parts_in_view)), 2)}
    for name, rendered in sources.items():
        runs = np.zeros((repeats, frames))
        cpu = np.zeros((repeats, frames))
        detect, track, counts = [], [], []
        for repeat in range(repeats):
            processor = ObjectProcessor(config, CLASS_NAMES)
            for index, (image, labels, confidence, boundary, network) in \
                    enumerate(rendered[:5]):
                processor.process(labels, index / 30.0, confidence, image=image,  # warm-up
                                  boundary=boundary, network_size=network)
            processor.tracker.reset()
            for index, (image, labels, confidence, boundary, network) in enumerate(rendered):
                start, start_cpu = time.perf_counter(), time.process_time()
                frame = processor.process(labels, 1000.0 + index / 30.0, confidence,
                                          image=image, boundary=boundary,
                                          network_size=network)
                runs[repeat, index] = (time.perf_counter() - start) * 1e3
                cpu[repeat, index] = (time.process_time() - start_cpu) * 1e3
                detect.append(frame.detect_ms)
                track.append(frame.track_ms)
                counts.append(len(frame.objects))
        out[name] = {'objects_per_frame': round(float(np.mean(counts)), 2),
                     'median_ms': percentiles(np.median(runs, axis=0).tolist()),
                     'median_cpu_ms': percentiles(np.median(cpu, axis=0).tolist()),
                     'all_runs_ms': percentiles(runs.ravel().tolist()),
                     'detect_ms': percentiles(detect), 'track_ms': percentiles(track)}
    return out


def main() -> int:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument('--seed', '--seeds', dest='seeds', default='validation',
                        help='videos to score: validation (default; for choosing), test (for '
                        'reporting), or comma-separated seeds (evaluation/seeds.py)')
    parser.add_argument('--frames', type=int, default=300, help='frames of each scored video')
    parser.add_argument('--size', default='320x240', help='scored video size (demo size)')
    parser.add_argument('--density', type=float, default=6.0,
                        help='mean parts per 320 px of belt, scored videos and timing '
                        "(default 6, the demo camera's; 8 is a crowded belt)")
    parser.add_argument('--timing-frames', type=int, default=150,
                        help='640x480 frames timed (default 150; 0: scores only)')
    parser.add_argument('--repeats', type=int, default=5,
                        help='timed runs over those frames (default 5; the median is reported)')
    parser.add_argument('--timing-only', action='store_true',
                        help='only time objects + tracking (no scored videos)')
    parser.add_argument('--weights', default=None, help='checkpoint (default: packaged model)')
    parser.add_argument('--oracle-split', action='store_true',
                        help="also score the model's objects split along the true parts "
                        '(the ceiling of any same-class splitting rule on its labels)')
    parser.add_argument('--no-model', action='store_true',
                        help='score and time exact labels only (no torch needed)')
    parser.add_argument('--param', action='append', default=[], metavar='NAME=VALUE',
                        help='objects.* parameter, e.g. objects.split_touching=false')
    args = parser.parse_args()
    values = objects_parameters(args.param)
    config = ObjectsConfig.from_mapping(values)
    frames = 40 if args.quick else args.frames
    width, height = parse_size(args.size, what='--size')
    engine = None
    model_name = None
    if not args.no_model:
        from lw_refinenet_ros.engine import EngineConfig
        from lw_refinenet_ros.segmenter import Segmenter

        # The node's path to an engine; objects are scored by this benchmark's own
        # processors, on model and on exact labels alike.
        # trained_scale as in the node: a 640x480 frame runs the network at 320x240.
        engine = Segmenter.load(args.weights, engine=EngineConfig(device=args.device),
                                trained_scale=True).engine
        model_name = args.weights or 'packaged default'
    seeds = list(parse_seeds(args.seeds))
    per_seed = {} if args.timing_only else {
        seed: score_video(engine, config, seed, frames, (width, height), 30.0,
                          args.oracle_split, args.density)
        for seed in seeds}
    result = {
        'benchmark': 'objects', 'machine': machine_state(), 'model': model_name,
        'seeds': seeds, 'seed_set': args.seeds if not args.seeds[0].isdigit() else None,
        'frames': frames, 'video_size': f'{width}x{height}', 'density': args.density,
        'parameters': values, 'scores': per_seed,
        'pooled': pooled(per_seed.values()) if per_seed else None,
        'timing_640x480': None if args.timing_frames <= 0 and not args.quick else time_objects(
            engine, config, seeds[0], 30 if args.quick else args.timing_frames, (640, 480),
            2 if args.quick else args.repeats, args.density),
    }
    write_json(args.json, result)
    return 0


if __name__ == '__main__':
    sys.exit(main())
