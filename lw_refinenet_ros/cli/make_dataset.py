"""``lw-refinenet make-dataset``: write a synthetic dataset in the generic folder layout."""

from __future__ import annotations

import argparse

HELP = 'generate a synthetic dataset (conveyor belt with parts) with exact labels'


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('kind', choices=('conveyor',), help='which generator')
    parser.add_argument('--out', required=True, help='output folder (images/, labels/, '
                        'instances/, classes.yaml)')
    parser.add_argument('--count', type=int, required=True, help='number of frames')
    parser.add_argument('--seed', type=int, default=0,
                        help='frame i is rendered from (seed, i): same whatever --count')
    parser.add_argument('--size', default='320x240', help='WIDTHxHEIGHT (default 320x240)')
    parser.add_argument('--start', type=int, default=0, help='index of the first frame')
    parser.add_argument('--clean', action='store_true',
                        help='no photometric variation (lighting, blur, noise)')
    parser.add_argument('--no-instances', action='store_true',
                        help='do not write instances/ (16-bit part ids for object scores)')


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from lw_refinenet_ros.data.conveyor import parse_size, write_conveyor_dataset

    size = parse_size(args.size)
    with tqdm(total=args.count, unit='img', desc='make-dataset') as bar:
        out = write_conveyor_dataset(args.out, args.count, args.seed, size, start=args.start,
                                     augment=not args.clean,
                                     instances=not args.no_instances,
                                     progress=lambda n: bar.update(1))
    print(f'wrote {args.count} {size[0]}x{size[1]} frames (seed {args.seed}) to {out}')
    return 0
