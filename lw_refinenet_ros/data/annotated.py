"""Datasets read from annotation files (COCO, LabelMe): images plus regions drawn on demand.

An annotation tool exports shapes, not label images. :class:`AnnotatedDataset` holds, per
image, the image file, the size the annotations were made at and its shapes; ``ds[i]``
reads the image, checks its size and paints the shapes into class ids (0 = background,
255 = ignore) with :func:`~lw_refinenet_ros.data.masks.paint_regions`, and
``ds.instances(i)`` gives the instance ids of the same painting, so object scores work on
imported data.

Readers collect every problem they find (:class:`Problem`: the file, what is wrong and how
to fix it) instead of stopping at the first: ``lw-refinenet data check`` lists them all,
and training refuses to start while any is left (:func:`raise_problems`), so nothing is
trained on labels that are silently wrong.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from lw_refinenet_ros.constants import IGNORE_INDEX
from lw_refinenet_ros.data.masks import Region, paint_regions, polygons_to_mask, rle_decode
from lw_refinenet_ros.errors import ConfigError

#: How far (pixels) a vertex may lie outside the image before it counts as a mistake:
#: tools put vertices on the outer edge of border pixels, or a fraction past it.
OUTSIDE_TOLERANCE_PX = 2.0


@dataclass(frozen=True)
class Problem:
    """Something wrong in a dataset: where, what, and what to do about it."""

    file: str
    message: str
    fix: str = ''

    def __str__(self) -> str:
        return f'{self.file}: {self.message}' + (f' ({self.fix})' if self.fix else '')


def raise_problems(problems: Sequence[Problem], what: str) -> None:
    """Raise one ConfigError listing ``problems`` (the first ten), if there are any."""
    if not problems:
        return
    shown = '\n  '.join(str(p) for p in problems[:10])
    more = f'\n  ... and {len(problems) - 10} more' if len(problems) > 10 else ''
    raise ConfigError(f'{what}: {len(problems)} problem(s); nothing was trained on it:\n  '
                      f'{shown}{more}\nRun `lw-refinenet data check` on it for the full list.')


@dataclass(frozen=True)
class Shape:
    """One annotated shape, not yet rasterised.

    Attributes:
        class_id: Contiguous class id, or IGNORE_INDEX (crowd / ignore regions).
        polygons: Flat ``x, y`` lists (COCO convention, pixel corners at integers), or None.
        rle: Run lengths or a compressed RLE string (column-major), or None.
        instance: Instance number in the image (0 = none).
        label: The name it had in the file (for reports).
    """

    class_id: int
    polygons: tuple[tuple[float, ...], ...] | None = None
    rle: Any = None
    instance: int = 0
    label: str = ''

    def mask(self, height: int, width: int) -> np.ndarray:
        if self.polygons is not None:
            return polygons_to_mask(self.polygons, height, width)
        return rle_decode(self.rle, height, width)


@dataclass
class AnnotatedImage:
    """An image file, the size its annotations were made at, and its shapes."""

    path: Path
    width: int
    height: int
    shapes: list[Shape] = field(default_factory=list)
    source: str = ''  # the annotation file, for messages


class AnnotatedDataset:
    """``ds[i] -> (rgb uint8 (H, W, 3), labels uint8 (H, W))`` from annotation shapes.

    Attributes:
        items: One :class:`AnnotatedImage` per image.
        class_names, colors: Contiguous classes, 0 = background.
        problems: What the reader found wrong (empty for a clean dataset).
        layout: ``'coco'`` or ``'labelme'``.
        root: The annotation file or folder.
    """

    layout = 'annotated'

    def __init__(self, items: Sequence[AnnotatedImage], class_names: Sequence[str],
                 colors: Sequence[Sequence[int]], *, root: Path,
                 problems: Sequence[Problem] = ()) -> None:
        self.items = list(items)
        self.class_names = tuple(class_names)
        self.colors = tuple(tuple(int(v) for v in c) for c in colors)
        self.root = root
        self.problems = list(problems)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        image, labels, _ = self.load(index)
        return image, labels

    def name(self, index: int) -> str:
        return self.items[index].path.stem

    def image_sizes(self) -> list[tuple[int, int]]:
        """(width, height) of every image, as the annotation file declares it."""
        return [(item.width, item.height) for item in self.items]

    def paint(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """(labels uint8, instances uint16) of item ``index`` at its declared size."""
        item = self.items[index]
        regions = []
        for shape in item.shapes:
            try:
                mask = shape.mask(item.height, item.width)
            except ValueError as error:
                raise ConfigError(f'{item.source}: a {shape.label or "region"} on {item.path.name}'
                                  f' cannot be drawn: {error}.') from None
            regions.append(Region(shape.class_id, mask, shape.instance))
        return paint_regions(regions, item.height, item.width)

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(image, labels, instances); the image must have the size the annotations say."""
        from lw_refinenet_ros.data.files import read_rgb

        item = self.items[index]
        if not item.path.is_file():
            raise ConfigError(f'{item.source}: image {item.path} does not exist; put it there '
                              f'or pass --images DIR with the folder that holds it.')
        image = read_rgb(item.path)
        if image.shape[:2] != (item.height, item.width):
            raise ConfigError(f'{item.source}: {item.path} is {image.shape[1]}x{image.shape[0]}'
                              f' but was annotated at {item.width}x{item.height}; export the '
                              f'annotations again for these images (or use the images they '
                              f'were made on).')
        labels, instances = self.paint(index)
        return image, labels, instances

    def instances(self, index: int) -> np.ndarray:
        """Instance ids (uint16, 0 = no object) of item ``index``."""
        return self.paint(index)[1]


def outside_problem(source: str, image: str, what: str,
                    bounds: tuple[float, float, float, float], width: int,
                    height: int) -> Problem | None:
    """A Problem when shape ``bounds`` reach beyond the image by more than the tolerance."""
    x0, y0, x1, y1 = bounds
    tolerance = OUTSIDE_TOLERANCE_PX
    if x0 >= -tolerance and y0 >= -tolerance and x1 <= width + tolerance and \
            y1 <= height + tolerance:
        return None
    return Problem(source, f'{what} on {image} reaches ({x0:.0f}, {y0:.0f})-({x1:.0f}, '
                   f'{y1:.0f}), outside the {width}x{height} image',
                   'the annotation was made on an image of another size, or a vertex was '
                   'dragged off the image: fix it in the annotation tool and export again')


def ignore_shape(shape: Shape) -> Shape:
    """The same shape as an ignore region (255, no instance)."""
    return Shape(IGNORE_INDEX, shape.polygons, shape.rle, 0, shape.label)


def find_image(file_name: str, folders: Sequence[Path]) -> Path | None:
    """The first of ``folder/file_name`` and ``folder/<basename>`` that exists."""
    relative = Path(file_name)
    if relative.is_absolute() and relative.is_file():
        return relative
    for folder in folders:
        for candidate in (folder / relative, folder / relative.name):
            if candidate.is_file():
                return candidate
    return None


def size_problem(found: Path, actual: tuple[int, int] | None, declared: tuple[int, int],
                 annotation_file: str, fix: str) -> Problem | None:
    """The problem with an image whose header disagrees with its annotations, if any.

    COCO and LabelMe both declare each image's size; a mismatch means the masks would be
    drawn for a different picture, so it is reported (with the format's own ``fix``) rather
    than silently rescaled. ``fix`` says what to do about a mismatch.
    """
    if actual is None:
        return Problem(str(found), 'cannot be read as an image',
                       'replace the file or remove it from the annotations')
    if actual != declared:
        return Problem(str(found), f'is {actual[0]}x{actual[1]} but {annotation_file} annotates '
                       f'it at {declared[0]}x{declared[1]}', fix)
    return None


def image_size(path: Path) -> tuple[int, int] | None:
    """(width, height) from the image header, or None when the file cannot be read."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            return int(image.width), int(image.height)
    except (OSError, ValueError):
        return None
