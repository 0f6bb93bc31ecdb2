"""``lw-refinenet make-dataset``: write a synthetic dataset with exact labels.

``conveyor`` writes the generic folder layout (images/, labels/, instances/, classes.yaml);
``recycling`` (a second domain: bottles, cans, cartons, film on a rubber belt) writes COCO
in CVAT's layout (images/ + annotations/instances_default.json), as an annotation tool
exports it, so that the import and the one-command training are exercised end to end.
"""

from __future__ import annotations

import argparse

HELP = ('generate a synthetic dataset with exact labels: conveyor (folder layout) or '
        'recycling (COCO, CVAT layout)')


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('kind', choices=('conveyor', 'recycling'), help='which generator')
    parser.add_argument('--out', required=True, help='output folder (conveyor: images/, '
                        'labels/, instances/, classes.yaml; recycling: images/, '
                        'annotations/instances_default.json)')
    parser.add_argument('--count', type=int, required=True, help='number of frames')
    parser.add_argument('--seed', type=int, default=0,
                        help='frame i is rendered from (seed, i): same whatever --count')
    parser.add_argument('--size', default='320x240', help='WIDTHxHEIGHT (default 320x240)')
    parser.add_argument('--start', type=int, default=0, help='index of the first frame')
    parser.add_argument('--clean', action='store_true',
                        help='no photometric variation (lighting, blur, noise)')
    parser.add_argument('--no-instances', action='store_true',
                        help='conveyor: do not write instances/ (16-bit part ids for object '
                        'scores)')


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from lw_refinenet_ros.data.conveyor import parse_size, write_conveyor_dataset

    size = parse_size(args.size)
    if args.kind == 'recycling':
        from lw_refinenet_ros.data.recycling import write_recycling_coco

        with tqdm(total=args.count, unit='img', desc='make-dataset') as bar:
            path = write_recycling_coco(args.out, args.count, args.seed, size,
                                        start=args.start, augment=not args.clean,
                                        progress=lambda n: bar.update(1))
        print(f'wrote {args.count} {size[0]}x{size[1]} frames (seed {args.seed}) and {path}')
        return 0
    with tqdm(total=args.count, unit='img', desc='make-dataset') as bar:
        out = write_conveyor_dataset(args.out, args.count, args.seed, size, start=args.start,
                                     augment=not args.clean,
                                     instances=not args.no_instances,
                                     progress=lambda n: bar.update(1))
    print(f'wrote {args.count} {size[0]}x{size[1]} frames (seed {args.seed}) to {out}')
    return 0
