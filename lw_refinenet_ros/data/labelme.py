"""LabelMe JSON folders: one ``<image>.json`` per image, next to it or anywhere below.

Each file lists ``shapes`` (``label``, ``points``, ``shape_type``, optional ``group_id``)
and names its image in ``imagePath`` (relative to the JSON). Polygons, rectangles and
circles are regions; lines and points have no area and are reported. Shapes with the same
``group_id`` are one instance (a part cut in two by another lying on it), every other shape
is its own instance. A label ``__ignore__`` (the labelme2voc convention) is ignored (255).

Classes: from ``--classes FILE`` or a ``classes.yaml``/``labels.txt`` in the folder
(``__ignore__`` and ``_background_`` lines, as labelme's own ``labels.txt`` has them, are
understood), else background plus every label found, sorted by name.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from lw_refinenet_ros.constants import IGNORE_INDEX
from lw_refinenet_ros.data.annotated import (
    AnnotatedDataset,
    AnnotatedImage,
    Problem,
    Shape,
    find_image,
    image_size,
    outside_problem,
    size_problem,
)
from lw_refinenet_ros.data.coco import BACKGROUND_NAMES, load_json
from lw_refinenet_ros.errors import ConfigError

IGNORE_LABEL = '__ignore__'
AREA_SHAPES = ('polygon', 'rectangle', 'circle')


def is_labelme(data: Any) -> bool:
    """True when a loaded JSON looks like a LabelMe file."""
    return isinstance(data, dict) and isinstance(data.get('shapes'), list) and \
        ('imagePath' in data or 'imageData' in data)


def labelme_files(folder: Path) -> list[Path]:
    """The LabelMe JSON files under ``folder`` (recursively), sorted."""
    found = []
    for path in sorted(folder.rglob('*.json')):
        try:
            data = load_json(path)
        except ConfigError:
            continue
        if is_labelme(data):
            found.append(path)
    return found


def _polygon(shape: dict) -> list[float] | None:
    """A LabelMe shape as one flat COCO-style polygon (None: no area)."""
    points = np.asarray(shape.get('points') or [], np.float64).reshape(-1, 2)
    kind = shape.get('shape_type') or 'polygon'
    if kind == 'rectangle' and len(points) == 2:
        (x0, y0), (x1, y1) = points.min(0), points.max(0)
        points = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]])
    elif kind == 'circle' and len(points) == 2:
        radius = float(np.hypot(*(points[1] - points[0])))
        angles = np.linspace(0, 2 * np.pi, 48, endpoint=False)
        points = points[0] + radius * np.stack([np.cos(angles), np.sin(angles)], 1)
    elif kind != 'polygon' or len(points) < 3:
        return None
    # LabelMe's canvas, like COCO, puts pixel corners at integer coordinates.
    return points.reshape(-1).tolist()


def _class_names(folder: Path, labels: set[str], classes: str | os.PathLike[str] | None
                 ) -> tuple[list[str], tuple | None]:
    from lw_refinenet_ros.classes import find_dataset_class_file
    from lw_refinenet_ros.data.files import load_class_file

    path = Path(classes) if classes is not None else find_dataset_class_file(folder)
    if path is not None:
        names, colors = load_class_file(path)
        keep = [i for i, n in enumerate(names) if n != IGNORE_LABEL]
        names = tuple(names[i] for i in keep)
        colors = tuple(colors[i] for i in keep) if colors else None
        if names and names[0].lower() in BACKGROUND_NAMES:
            return list(names), colors
        return ['background', *names], ((0, 0, 0), *colors) if colors else None
    found = sorted(n for n in labels if n != IGNORE_LABEL and n.lower() not in BACKGROUND_NAMES)
    return ['background', *found], None


def read_labelme(folder: str | os.PathLike[str], *,
                 images: str | os.PathLike[str] | None = None,
                 classes: str | os.PathLike[str] | None = None,
                 check_files: bool = True) -> AnnotatedDataset:
    """Read a folder of LabelMe files; problems are collected in ``ds.problems``.

    Raises:
        ConfigError: No LabelMe file in the folder.
    """
    from lw_refinenet_ros.data.files import voc_colors

    folder = Path(folder)
    files = labelme_files(folder)
    if not files:
        raise ConfigError(f'{folder} holds no LabelMe JSON files (with "shapes" and '
                          f'"imagePath"); save the annotations from LabelMe next to the '
                          f'images, or pass a COCO file.')
    loaded = [(path, load_json(path)) for path in files]
    labels = {str(s.get('label', '')).strip() for _, d in loaded for s in d['shapes']
              if isinstance(s, dict)}
    names, colors = _class_names(folder, labels, classes)
    index = {n: i for i, n in enumerate(names)}
    for name in names:
        if name.lower() in BACKGROUND_NAMES:
            index[name] = 0
    problems: list[Problem] = []
    items = []
    for path, data in loaded:
        item, found = _item(path, data, images, index, problems, check_files)
        if item is not None:
            items.append(item)
    ds = AnnotatedDataset(items, names, colors or voc_colors(len(names)), root=folder,
                          problems=problems)
    ds.layout = 'labelme'
    return ds


def _item(path: Path, data: dict, images: str | os.PathLike[str] | None,
          index: dict[str, int], problems: list[Problem], check_files: bool
          ) -> tuple[AnnotatedImage | None, bool]:
    source = str(path)
    width, height = data.get('imageWidth'), data.get('imageHeight')
    image_path = data.get('imagePath') or f'{path.stem}.png'
    folders = [Path(images)] if images is not None else [path.parent]
    found = find_image(str(image_path), folders)
    if found is None:
        if check_files:
            problems.append(Problem(source, f'image {image_path} not found in '
                                    f'{", ".join(str(f) for f in folders)}',
                                    'put it next to the JSON or pass --images DIR'))
        found = folders[0] / Path(str(image_path)).name
    actual = image_size(found) if found.is_file() else None
    if not all(isinstance(v, int) and v > 0 for v in (width, height)):
        if actual is None:
            if found.is_file():
                problems.append(Problem(str(found), 'cannot be read as an image'))
            return None, False
        width, height = actual
    elif check_files and found.is_file():
        problem = size_problem(found, actual, (width, height), path.name,
                               'annotate the image that is there')
        if problem is not None:
            problems.append(problem)
    item = AnnotatedImage(found, width, height, [], source)
    groups: dict[Any, int] = {}
    for number, shape in enumerate(data['shapes']):
        if not isinstance(shape, dict):
            continue
        label = str(shape.get('label', '')).strip()
        what = f'shape #{number} ({label or "no label"})'
        if label != IGNORE_LABEL and label not in index:
            problems.append(Problem(source, f'{what} has a label that is not in the class '
                                    f'file', 'add it to the class file'))
            continue
        polygon = _polygon(shape)
        if polygon is None:
            problems.append(Problem(source, f'{what} is a {shape.get("shape_type")} with '
                                    f'{len(shape.get("points") or [])} point(s): no area',
                                    'draw a polygon, rectangle or circle'))
            continue
        points = np.asarray(polygon).reshape(-1, 2)
        outside = outside_problem(source, found.name, what,
                                  (float(points[:, 0].min()), float(points[:, 1].min()),
                                   float(points[:, 0].max()), float(points[:, 1].max())),
                                  width, height)
        if outside is not None:
            problems.append(outside)
            continue
        class_id = IGNORE_INDEX if label == IGNORE_LABEL else index[label]
        instance = 0
        if class_id not in (0, IGNORE_INDEX):
            key = shape.get('group_id')
            key = ('group', key) if key is not None else ('shape', number)
            instance = groups.setdefault(key, len(groups) + 1)
        item.shapes.append(Shape(class_id, polygons=(tuple(polygon),), instance=instance,
                                 label=what))
    return item, True
