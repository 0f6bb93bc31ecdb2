"""COCO instances JSON, as CVAT, Label Studio and Roboflow export it.

* ``file_name`` is looked up (as given, then by its base name) in ``--images DIR`` when
  given, else next to the JSON, in ``images/`` next to it, and in ``images/`` (and
  ``images/<subset>/``) beside the JSON's folder: CVAT's ``annotations/instances_default.json``
  + ``images/``, Roboflow's ``_annotations.coco.json`` among its images, Label Studio's
  ``result.json`` + ``images/``.
* Categories become contiguous class ids in the order of their ids, 0 = background for
  every unannotated pixel (a category named ``background`` is class 0 itself); ids may have
  gaps. ``--classes FILE`` fixes the order by name instead (one order for several exports).
* Segmentation as polygons, uncompressed RLE (counts list) or compressed RLE (string).
  Overlaps: the smaller region wins. ``iscrowd`` regions are ignored (255).
* Every non-crowd region is an instance, so object scores work on imported data.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Sequence

from lw_refinenet_ros.data.annotated import (
    AnnotatedDataset,
    AnnotatedImage,
    Problem,
    Shape,
    find_image,
    ignore_shape,
    image_size,
    outside_problem,
    size_problem,
)
from lw_refinenet_ros.data.masks import check_polygons, polygon_bounds, rle_string_to_counts
from lw_refinenet_ros.errors import ConfigError

BACKGROUND_NAMES = ('background', '_background_', '__background__')
REQUIRED_KEYS = ('images', 'annotations', 'categories')


def is_coco(data: Any) -> bool:
    """True when a loaded JSON has the three lists of a COCO instances file."""
    return isinstance(data, dict) and all(isinstance(data.get(k), list) for k in REQUIRED_KEYS)


def load_json(path: Path) -> Any:
    """Parse a JSON file; unreadable or invalid JSON is a ConfigError naming it."""
    try:
        with open(path, encoding='utf-8') as stream:
            return json.load(stream)
    except OSError as error:
        raise ConfigError(f'Cannot read {path}: {error.strerror or error}.') from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ConfigError(f'{path} is not valid JSON ({error}); export the annotations '
                          f'again.') from None


def image_folders(json_path: Path, images: str | os.PathLike[str] | None) -> list[Path]:
    """Where the images of ``json_path`` may be, in the order they are tried."""
    if images is not None:
        return [Path(images)]
    here = json_path.parent
    folders = [here, here / 'images', here.parent / 'images']
    stem = json_path.stem
    if stem.startswith('instances_'):
        folders.append(here.parent / 'images' / stem[len('instances_'):])
    folders.append(here.parent)
    return folders


def _color(value: Any) -> tuple[int, int, int] | None:
    if isinstance(value, str) and value.startswith('#') and len(value) == 7:
        try:
            return tuple(int(value[i:i + 2], 16) for i in (1, 3, 5))  # type: ignore[return-value]
        except ValueError:
            return None
    if isinstance(value, (list, tuple)) and len(value) == 3 and all(
            isinstance(v, int) and 0 <= v <= 255 for v in value):
        return (int(value[0]), int(value[1]), int(value[2]))
    return None


def _classes(path: Path, categories: list[Any], classes: str | os.PathLike[str] | None
             ) -> tuple[tuple[str, ...], tuple[tuple[int, int, int], ...], dict[int, int]]:
    """Class names, colours and category id -> class id."""
    from lw_refinenet_ros.data.files import load_class_file, voc_colors

    if not categories:
        raise ConfigError(f'{path} has an empty category list, so its annotations name no '
                          f'class; define the labels in the annotation tool (or add them to '
                          f'"categories") and export again.')
    by_id: dict[int, str] = {}
    given_colors: dict[str, tuple[int, int, int] | None] = {}
    for category in categories:
        if not isinstance(category, dict) or not isinstance(category.get('id'), int) or \
                not isinstance(category.get('name'), str) or not category['name'].strip():
            raise ConfigError(f'{path}: category {category!r} needs an integer "id" and a '
                              f'non-empty "name".')
        if category['id'] in by_id:
            raise ConfigError(f'{path}: category id {category["id"]} is used twice '
                              f'({by_id[category["id"]]!r} and {category["name"]!r}).')
        by_id[category['id']] = category['name'].strip()
        given_colors[category['name'].strip()] = _color(category.get('color'))
    names_in_file = list(by_id.values())
    duplicates = sorted({n for n in names_in_file if names_in_file.count(n) > 1})
    if duplicates:
        raise ConfigError(f'{path}: category names {duplicates} appear twice; give every '
                          f'class one name.')
    if classes is not None:
        names, file_colors = load_class_file(classes)
        index = {n: i for i, n in enumerate(names)}
        unknown = [n for n in names_in_file if n not in index]
        if unknown:
            raise ConfigError(f'{path}: categories {unknown} are not in the class file '
                              f'{classes} ({", ".join(names)}); add them there.')
        mapping = {cid: index[name] for cid, name in by_id.items()}
        return tuple(names), tuple(file_colors or voc_colors(len(names))), mapping
    background = next((n for n in names_in_file if n.lower() in BACKGROUND_NAMES), None)
    names = ['background' if background is None else background]
    names += [by_id[cid] for cid in sorted(by_id) if by_id[cid] != background]
    index = {n: i for i, n in enumerate(names)}
    mapping = {cid: index[name] for cid, name in by_id.items()}
    defaults = voc_colors(len(names))
    colors = tuple(given_colors.get(n) or defaults[i] for i, n in enumerate(names))
    return tuple(names), colors, mapping


def _rle_problem(segmentation: dict, width: int, height: int) -> str | None:
    size = segmentation.get('size')
    counts = segmentation.get('counts')
    if not (isinstance(size, list) and len(size) == 2):
        return 'its RLE has no "size": [height, width]'
    if list(size) != [height, width]:
        return f'its RLE size {size} is not the image size [{height}, {width}]'
    try:
        runs = rle_string_to_counts(counts) if isinstance(counts, str) else \
            [int(c) for c in counts]
    except (TypeError, ValueError) as error:
        return f'its RLE counts cannot be read ({error})'
    if sum(runs) != width * height or any(r < 0 for r in runs):
        return f'its RLE covers {sum(runs)} pixels, not {width}x{height}'
    return None


def read_coco(path: str | os.PathLike[str], *, images: str | os.PathLike[str] | None = None,
              classes: str | os.PathLike[str] | None = None,
              check_files: bool = True) -> AnnotatedDataset:
    """Read a COCO instances file; problems are collected in ``ds.problems``.

    Args:
        path: The JSON file.
        images: Folder holding the images (default: searched next to the JSON).
        classes: Optional class file fixing the class order by name.
        check_files: Also check that every image exists and has the declared size.

    Raises:
        ConfigError: Not a COCO file, no categories, or broken categories (nothing can be
            read then); per-image and per-annotation problems go to ``ds.problems``.
    """
    path = Path(path)
    data = load_json(path)
    if not is_coco(data):
        keys = sorted(data) if isinstance(data, dict) else type(data).__name__
        hint = (' It looks like a LabelMe file: pass its folder.'
                if isinstance(data, dict) and 'shapes' in data else '')
        raise ConfigError(f'{path} is not a COCO instances file: it needs the lists "images", '
                          f'"annotations" and "categories", and has {keys}.{hint} Export '
                          f'"COCO 1.0" / "COCO" (instances, with masks or polygons) from the '
                          f'annotation tool.')
    names, colors, category_class = _classes(path, data['categories'], classes)
    source = str(path)
    problems: list[Problem] = []
    folders = image_folders(path, images)
    items: dict[Any, AnnotatedImage] = {}
    for entry in data['images']:
        if not isinstance(entry, dict) or 'id' not in entry or \
                not isinstance(entry.get('file_name'), str):
            problems.append(Problem(source, f'image entry {entry!r} has no "id" and '
                                    f'"file_name"', 'export the annotations again'))
            continue
        width, height = entry.get('width'), entry.get('height')
        if not all(isinstance(v, int) and not isinstance(v, bool) and v > 0
                   for v in (width, height)):
            problems.append(Problem(source, f'image {entry["file_name"]} has width/height '
                                    f'{width!r}/{height!r}', 'positive integers are needed'))
            continue
        found = find_image(entry['file_name'], folders)
        if found is None:
            if check_files:
                problems.append(Problem(source, f'image {entry["file_name"]} not found in '
                                        f'{", ".join(str(f) for f in folders)}',
                                        'put the images there or pass --images DIR'))
            found = folders[0] / entry['file_name']
        elif check_files:
            problem = size_problem(found, image_size(found), (width, height), path.name,
                                   'export the annotations for these very images')
            if problem is not None:
                problems.append(problem)
        items[entry['id']] = AnnotatedImage(found, width, height, [], source)
    for number, annotation in enumerate(data['annotations']):
        problem = _add_annotation(annotation, number, items, category_class, names, source)
        if problem is not None:
            problems.append(problem)
    ds = AnnotatedDataset(list(items.values()), names, colors, root=path, problems=problems)
    ds.layout = 'coco'
    return ds


def _add_annotation(annotation: Any, number: int, items: dict[Any, AnnotatedImage],
                    category_class: dict[int, int], names: Sequence[str],
                    source: str) -> Problem | None:
    """Turn one annotation into a Shape on its image; a Problem when it cannot be used."""
    if not isinstance(annotation, dict):
        return Problem(source, f'annotation #{number} is not an object')
    label = f'annotation {annotation.get("id", "#" + str(number))}'
    item = items.get(annotation.get('image_id'))
    if item is None:
        return Problem(source, f'{label} refers to image_id {annotation.get("image_id")!r}, '
                       f'which is not in "images"', 'export the annotations again')
    if annotation.get('category_id') not in category_class:
        return Problem(source, f'{label} on {item.path.name} has category_id '
                       f'{annotation.get("category_id")!r}, which is not in "categories"',
                       'define the label in the annotation tool and export again')
    class_id = category_class[annotation['category_id']]
    label = f'{label} ({names[class_id]})'
    segmentation = annotation.get('segmentation')
    if not segmentation:
        return Problem(source, f'{label} on {item.path.name} has no segmentation (a box '
                       f'only)', 'draw it as a polygon or mask; boxes cannot train '
                       'segmentation')
    instance = 0 if class_id == 0 else sum(1 for s in item.shapes if s.instance) + 1
    if isinstance(segmentation, dict):
        wrong = _rle_problem(segmentation, item.width, item.height)
        if wrong is not None:
            return Problem(source, f'{label} on {item.path.name}: {wrong}',
                           'export the annotations again')
        shape = Shape(class_id, rle=segmentation['counts'], instance=instance, label=label)
    else:
        try:
            polygons = check_polygons(segmentation)
        except ValueError as error:
            return Problem(source, f'{label} on {item.path.name}: {error}')
        outside = outside_problem(source, item.path.name, label, polygon_bounds(polygons),
                                  item.width, item.height)
        if outside is not None:
            return outside
        shape = Shape(class_id, polygons=tuple(tuple(p) for p in polygons), instance=instance,
                      label=label)
    if annotation.get('iscrowd'):
        shape = ignore_shape(shape)
    item.shapes.append(shape)
    return None


def find_coco_file(folder: Path) -> Path | None:
    """The COCO file of an export folder: ``annotations/instances_default.json`` (CVAT),
    another single ``annotations/instances_*.json``, ``_annotations.coco.json`` (Roboflow)
    or ``result.json`` (Label Studio); None when there is none.

    Raises:
        ConfigError: Several instance files and none is the default: name one.
    """
    annotations = folder / 'annotations'
    if (annotations / 'instances_default.json').is_file():
        return annotations / 'instances_default.json'
    found = sorted(annotations.glob('instances_*.json')) if annotations.is_dir() else []
    if len(found) > 1:
        raise ConfigError(f'{annotations} holds several COCO files '
                          f'({", ".join(p.name for p in found)}); pass --data with the one to '
                          f'use.')
    if found:
        return found[0]
    for name in ('_annotations.coco.json', 'result.json', 'annotations.json'):
        if (folder / name).is_file():
            return folder / name
    return None
