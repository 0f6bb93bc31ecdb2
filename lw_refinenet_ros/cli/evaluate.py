"""``lw-refinenet eval``: mIoU, per-class IoU and pixel accuracy of a checkpoint on a dataset.

Inference runs through the node's engine with the same options (``--backend``,
``--precision``, ``--max-side``, ...), so the scores are those of the node configured alike.
Unset options take the checkpoint's model card defaults as the node and ``segment`` do (a
model trained at 320x240 runs with ``max_side`` 320, see
:func:`~lw_refinenet_ros.model.checkpoint.engine_defaults`); ``--max-side 0`` forces native
resolution. ``--data`` reads every layout ``train`` reads, COCO/LabelMe exports included
(``--images`` for their image folder).
Optional robustness perturbations (brightness, blur, noise) are applied to the images only;
``--robustness`` runs the fixed suite of ``evaluation/robustness.py`` and ``--fail-below`` turns
any result under a threshold into exit status 1 (a quality gate for a user's own model).
"""

from __future__ import annotations

import argparse

from lw_refinenet_ros.engine.config import add_engine_arguments, engine_config_from_args

HELP = 'evaluate a checkpoint: confusion matrix, per-class IoU, mIoU, pixel accuracy'


def add_arguments(parser: argparse.ArgumentParser) -> None:
    a = parser.add_argument
    a('--weights', help='checkpoint (default: the packaged conveyor model)')
    a('--data', default='conveyor:validation',
      help='dataset folder, conveyor:SEED (rendered on the fly), or conveyor:validation / '
           'conveyor:test: the seed that chooses models and settings, and the one kept for '
           'reported numbers (evaluation/seeds.py; default conveyor:validation)')
    a('--layout', default='auto',
      choices=('auto', 'voc', 'folder', 'cityscapes', 'coco', 'labelme', 'conveyor'))
    a('--images', help='folder holding the images of a COCO/LabelMe --data (default: next to '
      'the annotations, as for train)')
    a('--split', default='val', help='VOC/Cityscapes split (default val)')
    a('--classes', help='class names file (YAML or text); default from the data/checkpoint')
    a('--limit', type=int, help='evaluate only the first N images')
    a('--count', type=int, default=100, help='frames for conveyor:SEED data (default 100)')
    a('--brightness', type=float, default=1.0, help='multiply image intensities (robustness)')
    a('--blur', type=float, default=0.0, help='Gaussian blur sigma in pixels (robustness)')
    a('--noise', type=float, default=0.0, help='Gaussian noise sigma, 0..255 scale')
    a('--robustness', action='store_true',
      help='score clean and under the fixed brightness/blur/noise suite (one table)')
    a('--fail-below', type=float, metavar='MIOU',
      help='exit 1 if any reported mIoU is below this (e.g. 0.85)')
    a('--no-objects', action='store_true',
      help='skip the object scores (one-to-one precision/recall/F1 at mask IoU >= 0.5, for '
           'pickable parts and every visible piece; a second pass through the engine; see '
           'docs/objects.md)')
    a('--json', help='write the scores as JSON here')
    a('--confusion-png', help='write the row-normalised confusion matrix as PNG here')
    # Warm-up runs on the first image, at its size: no --warmup-size here.
    add_engine_arguments(parser.add_argument_group(
        'inference', 'the engine the node runs, with the node parameters of the same names'),
        exclude=('warmup_size',))


def run(args: argparse.Namespace) -> int:
    import dataclasses
    import json
    import sys

    from lw_refinenet_ros.data.datasets import load_class_file, open_dataset
    from lw_refinenet_ros.errors import ConfigError
    from lw_refinenet_ros.evaluation.metrics import save_confusion_png
    from lw_refinenet_ros.evaluation.robustness import (
        ROBUSTNESS_SUITE,
        Perturbation,
        evaluate_robustness,
    )
    from lw_refinenet_ros.evaluation.seeds import resolve_conveyor_data
    from lw_refinenet_ros.evaluation.segmentation import evaluate_model
    from lw_refinenet_ros.segmenter import Segmenter

    # The engine is built once the data is checked, warmed up on its first image. Options the
    # user leaves unset come from the checkpoint's model card (max_side: its trained scale),
    # so the scores are those of the node and `segment` running the file with no setting.
    segmenter = Segmenter.load(args.weights, engine=engine_config_from_args(args), lazy=True,
                               trained_scale=args.max_side is None)
    info = segmenter.info
    data = resolve_conveyor_data(args.data)
    if data != args.data:
        print(f'data: {args.data} = {data}')
    dataset = open_dataset(data, args.layout, args.split, classes=args.classes,
                           conveyor_length=args.count, images=args.images)
    if hasattr(dataset, 'fresh_per_epoch'):
        dataset.fresh_per_epoch = False
    if dataset.num_classes != info.num_classes:
        raise ConfigError(f'The data has {dataset.num_classes} classes but the checkpoint '
                          f'{info.num_classes}; pass the matching --classes file or weights.')
    names = list(info.class_names or dataset.class_names)
    if args.classes:
        names = list(load_class_file(args.classes)[0])
    # Warm-up and the timed choice of backend run on the first image of the data.
    segmenter.warm_up(dataset[0][0] if len(dataset) else None)
    engine = segmenter.engine
    print(f'engine: {_describe(engine)}'
          + (f"; max_side {segmenter.engine_config.max_side} from the checkpoint's trained "
             f'size' if args.max_side is None and segmenter.engine_config.max_side else ''))
    images = min(len(dataset), args.limit or len(dataset))
    requested = Perturbation('custom', args.brightness, args.blur, args.noise)
    if args.robustness:
        if not requested.is_identity:
            raise ConfigError('--robustness runs its own fixed suite; drop --brightness, '
                              '--blur and --noise (or drop --robustness).')
        results = evaluate_robustness(engine, dataset, info.num_classes, limit=args.limit)
    else:
        if requested.is_identity:
            requested = ROBUSTNESS_SUITE[0]  # 'clean'
        results = [(requested, evaluate_model(engine, dataset, info.num_classes,
                                              limit=args.limit, transform=requested.make(),
                                              progress=True))]
    for perturbation, scores in results:
        if len(results) > 1:
            print(f'{perturbation.name:>28s}: ', end='')
        print(f'mIoU {scores.miou:.4f}  pixel accuracy {scores.pixel_accuracy:.4f}  '
              f'({int(scores.present.sum())}/{len(names)} classes counted)')
        if len(results) == 1:
            for name, iou in zip(names, scores.iou):
                print(f'  {name:>16s}  ' + ('   n/a' if iou != iou else f'{iou:.4f}'))
    clean_scores = results[0][1]
    objects = None
    if not args.no_objects and not args.robustness:
        from lw_refinenet_ros.evaluation.object_metrics import evaluate_objects, format_summary

        scorer, kind = evaluate_objects(engine, dataset, names, limit=args.limit,
                                        transform=requested.make(), progress=True)
        objects = {**scorer.summary(names), 'ground_truth': kind}
        print(format_summary(objects) + f'\n  (ground truth: {kind})')
    if args.json:
        result = clean_scores.to_dict(names)
        result.update({'weights': str(args.weights or 'default'), 'data': str(data),
                       'images': images, 'engine': engine.describe(),
                       'perturbation': dataclasses.asdict(results[0][0]),
                       'objects': objects})
        if args.robustness:
            result['robustness'] = [{**dataclasses.asdict(p), **scores.to_dict(names)}
                                    for p, scores in results]
        with open(args.json, 'w') as stream:
            json.dump(result, stream, indent=1)
    if args.confusion_png:
        save_confusion_png(args.confusion_png, clean_scores.confusion, names)
    if args.fail_below is not None:
        failed = [p.name for p, scores in results if not scores.miou >= args.fail_below]
        if failed:
            print(f'FAILED: mIoU below {args.fail_below} for: {", ".join(failed)}',
                  file=sys.stderr)
            return 1
    return 0


def _describe(engine: object) -> str:
    """One line naming what ran: backend, precision, device (and why that backend)."""
    info = engine.describe()  # type: ignore[attr-defined]
    text = f'{info.get("backend", "torch")} {info.get("precision", "fp32")} on ' \
           f'{info.get("device")}'
    return f'{text} ({info["reason"]})' if info.get('reason') else text
