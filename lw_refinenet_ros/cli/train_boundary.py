"""``lw-refinenet train-boundary``: add the learned part-boundary output to a trained model.

Trains only the boundary head (lw_refinenet_ros/training/boundary.py) on conveyor videos of
the training seeds; the class logits stay exactly those of the starting model. One flag per
field of :class:`~lw_refinenet_ros.training.boundary.BoundaryTrainConfig` (the table below
gives each its parser and help; the defaults are the dataclass's).
"""

from __future__ import annotations

import argparse
from typing import Any, Callable

HELP = ('teach a trained model where touching parts of one class meet (adds the '
        'part-boundary output the object detector splits with)')


def _numbers(kind: Callable[[str], Any]) -> Callable[[str], tuple[Any, ...]]:
    def parse(text: str) -> tuple[Any, ...]:
        try:
            return tuple(kind(v) for v in text.split(',') if v.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f'expected comma-separated numbers, got '
                                             f'{text!r}') from None
    return parse


def _size(text: str) -> tuple[int, int]:
    from lw_refinenet_ros.sizes import parse_size

    return parse_size(text, what='--size')


#: field -> (parser, help); the flag is ``--`` + the field with dashes.
OPTIONS: dict[str, tuple[Callable[[str], Any], str]] = {
    'weights': (str, 'checkpoint to start from (default: the packaged conveyor model)'),
    'out': (str, 'checkpoint to write (default runs/boundary/conveyor_mbv2_boundary.pt)'),
    'seeds': (_numbers(int), 'conveyor seeds of the training videos (default: the training '
              'seeds of evaluation/seeds.py; never validation or test seeds)'),
    'videos': (int, 'videos per seed (default 2)'),
    'frames': (int, 'frames kept per video (default 30)'),
    'frame_step': (int, 'belt frames between two kept frames (default 6)'),
    'densities': (_numbers(float), 'parts per 320 px of belt, cycled over the videos '
                  '(default 6,8,10)'),
    'size': (_size, "frame size WIDTHxHEIGHT (default 320x240, the default model's)"),
    'epochs': (int, 'passes over the kept frames (default 12)'),
    'batch': (int, 'frames per step (default 8)'),
    'lr': (float, 'Adam learning rate (default 3e-3)'),
    'pos_weight': (float, 'loss weight of a seam cell (default 10)'),
    'radius': (int, 'seam half-width in pixels (default 2)'),
    'threads': (int, 'torch CPU threads (default 1)'),
    'seed': (int, 'seed of the shuffling and the initial weights (default 0)'),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per option; None means the config's default."""
    for name, (kind, text) in OPTIONS.items():
        parser.add_argument('--' + name.replace('_', '-'), dest=name, type=kind, help=text)


def build_config(args: argparse.Namespace) -> Any:
    """The :class:`BoundaryTrainConfig` of the explicit flags."""
    from lw_refinenet_ros.training.boundary import BoundaryTrainConfig

    values = {name: getattr(args, name) for name in OPTIONS
              if getattr(args, name, None) is not None}
    config = BoundaryTrainConfig(**values)
    config.check()
    return config


def run(args: argparse.Namespace) -> int:
    from lw_refinenet_ros.training.boundary import train_boundary

    train_boundary(build_config(args), progress=print)
    return 0
