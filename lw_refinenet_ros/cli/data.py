"""``lw-refinenet data check PATH``: what is in a dataset, and what is wrong with it.

Before a training: classes and their pixel shares, images without annotations, missing or
unreadable files, size mismatches, annotations outside the image (each named with its
file), and a few overlay previews to look at. Exit status 0 when nothing is wrong, 1 when
problems were found (so a script can stop before training on them).
"""

from __future__ import annotations

import argparse

HELP = 'inspect a dataset: classes, pixel shares, problems named by file, overlay previews'


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest='data_command', metavar='ACTION', required=True)
    check = sub.add_parser('check', help='check a dataset before training on it',
                           description='Read every image and label of a dataset and report '
                           'classes, pixel shares and problems (exit 1 if any).')
    check.add_argument('path', help='COCO .json or export folder, LabelMe folder, or a '
                       'VOC/folder/Cityscapes folder')
    check.add_argument('--layout', default='auto',
                       choices=('auto', 'voc', 'folder', 'cityscapes', 'coco', 'labelme'))
    check.add_argument('--images', help='image folder of a COCO/LabelMe dataset (default: '
                       'next to the annotations)')
    check.add_argument('--classes', help='class names/colours file')
    check.add_argument('--previews', type=int, default=4,
                       help='overlay previews to write (default 4; 0 = none)')
    check.add_argument('--out', default='data_check',
                       help='folder for the previews (default ./data_check)')
    check.add_argument('--json', help='also write the report as JSON here')


def run(args: argparse.Namespace) -> int:
    import json

    from lw_refinenet_ros.data.check import check_dataset

    report = check_dataset(args.path, layout=args.layout, images=args.images,
                           classes=args.classes, previews=args.previews,
                           preview_dir=args.out if args.previews > 0 else None)
    print(report.format())
    if args.json:
        with open(args.json, 'w') as stream:
            json.dump(report.as_dict(), stream, indent=1)
    return 0 if report.ok else 1
