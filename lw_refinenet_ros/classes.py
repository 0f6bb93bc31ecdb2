"""Class files: the names (and display colours) of a model's classes, read and written here only.

A class file travels with a dataset (``make-dataset`` writes one), goes into training
(``train --classes``), evaluation (``eval --classes``), offline segmentation (``segment
--classes-file``) and the node (``model.classes_file``). All of them read it through
:func:`read_class_file`, so a file one accepts the others accept too.

The format written (:func:`write_class_file`) is YAML::

    names: [background, belt, bolt]
    colors: [[0, 0, 0], [70, 70, 70], [220, 20, 60]]   # optional, RGB 0..255 per class

Also read, so that older files and hand-written ones keep working:

- a YAML list of names, or of ``{name: ..., color: [r, g, b]}`` entries (colour optional);
- a YAML mapping ``name: [r, g, b]`` in id order;
- any of these under a top-level ``classes:`` key; ``.json`` files with the same shapes;
- text: one class per line, ``name`` or ``name r g b``; ``#`` starts a comment.

Classes without a colour get the PASCAL VOC colour of their id.
"""

from __future__ import annotations

from dataclasses import dataclass
import os
from pathlib import Path
from typing import Any, Sequence

from lw_refinenet_ros.errors import ConfigError
from lw_refinenet_ros.palette import ClassMap, voc_palette

YAML_SUFFIXES = ('.yaml', '.yml', '.json')
# Looked for next to a dataset when no class file is named, in this order.
DATASET_CLASS_FILES = ('classes.yaml', 'classes.yml', 'classes.txt', 'labels.txt')

RGB = tuple[int, int, int]


@dataclass(frozen=True)
class ClassFile:
    """What a class file says: one name per class id, and the colours it gives.

    Attributes:
        names: Class names, index = label id.
        colors: One ``(r, g, b)`` or None (not given) per class.
        path: Where it was read from (for messages).
    """

    names: tuple[str, ...]
    colors: tuple[RGB | None, ...]
    path: Path | None = None

    @property
    def has_colors(self) -> bool:
        """True when every class has a colour from the file."""
        return all(color is not None for color in self.colors)

    def filled_colors(self) -> tuple[RGB, ...]:
        """The file's colours, VOC colours of their ids where the file gives none."""
        default = voc_palette(len(self.names))
        return tuple(color if color is not None else tuple(int(v) for v in default[i])
                     for i, color in enumerate(self.colors))  # type: ignore[misc]

    def class_map(self, num_classes: int | None = None) -> ClassMap:
        """As a :class:`~lw_refinenet_ros.palette.ClassMap`; with ``num_classes``, the file
        must list exactly that many classes (the model's K)."""
        where = str(self.path) if self.path is not None else 'class file'
        try:
            class_map = ClassMap(self.names, self.filled_colors())
        except ConfigError as error:
            raise ConfigError(f'{where}: {error}') from error
        if num_classes is not None:
            class_map.check_num_classes(num_classes, where)
        return class_map


def read_class_file(path: str | os.PathLike[str]) -> ClassFile:
    """Read a class file in any of the accepted forms (see the module docstring).

    Raises:
        ConfigError: Missing file, bad syntax, a bad colour, or no class names, with what
            was expected.
    """
    file = Path(path)
    if not file.is_file():
        raise ConfigError(f'Class file {file} does not exist; pass a YAML file like '
                          f'`names: [background, part]` (optionally `colors: [[0, 0, 0], '
                          f'[255, 0, 0]]`) or a text file with one class name per line.')
    if file.suffix.lower() in YAML_SUFFIXES:
        entries = _yaml_entries(file)
    else:
        entries = _text_entries(file)
    if not entries:
        raise ConfigError(f'Class file {file} lists no classes; expected `names: [...]` or '
                          f'one class name per line.')
    names = tuple(name for name, _ in entries)
    colors = tuple(_rgb(color, file, i, name) for i, (name, color) in enumerate(entries))
    empty = [i for i, name in enumerate(names) if not name.strip()]
    if empty:
        raise ConfigError(f'Class file {file}: class {empty[0]} has an empty name.')
    return ClassFile(names, colors, file)


def load_class_map(path: str | os.PathLike[str], num_classes: int | None = None) -> ClassMap:
    """Read a class file as a :class:`~lw_refinenet_ros.palette.ClassMap` (VOC colours where
    the file gives none); with ``num_classes``, it must list exactly that many classes."""
    return read_class_file(path).class_map(num_classes)


def write_class_file(path: str | os.PathLike[str], names: Sequence[str],
                     colors: Sequence[Sequence[int]] | None = None) -> Path:
    """Write the canonical YAML class file (``names``, and ``colors`` when given).

    Raises:
        ConfigError: Names and colours that would not read back (checked before writing).
    """
    import yaml  # deferred: most commands never write a class file

    file = Path(path)
    name_list = tuple(str(name) for name in names)
    if colors is not None and len(colors) != len(name_list):
        raise ConfigError(f'{len(colors)} colours for {len(name_list)} class names; give one '
                          f'colour per class or none.')
    rgbs = tuple(_rgb([int(v) for v in rgb], file, i, name_list[i])
                 for i, rgb in enumerate(colors)) if colors is not None else ()
    # Unique, non-empty names and valid colours, or nothing is written.
    ClassFile(name_list, rgbs or (None,) * len(name_list), file).class_map()
    data: dict[str, Any] = {'names': list(name_list)}
    if rgbs:
        data['colors'] = [list(rgb) for rgb in rgbs]  # type: ignore[arg-type]
    file.write_text(yaml.safe_dump(data, sort_keys=False, default_flow_style=None))
    return file


def find_dataset_class_file(*folders: Path) -> Path | None:
    """The first of :data:`DATASET_CLASS_FILES` in ``folders``, or None."""
    for folder in folders:
        for name in DATASET_CLASS_FILES:
            if (folder / name).is_file():
                return folder / name
    return None


# --------------------------------------------------------------------------- parsing


def _yaml_entries(file: Path) -> list[tuple[str, Any]]:
    import yaml  # deferred: text class files do not need it

    try:
        data = yaml.safe_load(file.read_text(encoding='utf-8'))
    except yaml.YAMLError as error:
        raise ConfigError(f'Class file {file} is not valid YAML: {error}') from None
    if isinstance(data, dict) and set(data) == {'classes'}:
        data = data['classes']
    if isinstance(data, dict) and 'names' in data:
        names = data['names']
        colors = data.get('colors', data.get('colours'))
        if not isinstance(names, list):
            raise ConfigError(f'Class file {file}: `names` must be a list, got '
                              f'{type(names).__name__}.')
        if colors is None:
            colors = [None] * len(names)
        elif not isinstance(colors, list) or len(colors) != len(names):
            given = len(colors) if isinstance(colors, list) else repr(colors)
            raise ConfigError(f'Class file {file}: {given} colours for {len(names)} names; '
                              f'give one [r, g, b] per class or none.')
        return [(str(name), color) for name, color in zip(names, colors)]
    if isinstance(data, dict):
        # {name: [r, g, b]} in id order (YAML mappings keep the file's order).
        return [(str(name), color) for name, color in data.items()]
    if isinstance(data, list):
        entries: list[tuple[str, Any]] = []
        for i, entry in enumerate(data):
            if isinstance(entry, dict) and 'name' in entry:
                entries.append((str(entry['name']), entry.get('color', entry.get('colour'))))
            elif isinstance(entry, (str, int, float)) and not isinstance(entry, bool):
                entries.append((str(entry), None))
            else:
                raise ConfigError(f'Class file {file}: entry {i} must be a name or '
                                  f'{{name: ..., color: [r, g, b]}}, got {entry!r}.')
        return entries
    raise ConfigError(f'Class file {file}: expected `names: [...]` (and optional `colors`), a '
                      f'list of names or a mapping name -> [r, g, b]; got '
                      f'{type(data).__name__}.')


def _text_entries(file: Path) -> list[tuple[str, Any]]:
    entries: list[tuple[str, Any]] = []
    for raw in file.read_text(encoding='utf-8').splitlines():
        line = raw.split('#', 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        if len(parts) >= 4:
            try:
                rgb = [int(value) for value in parts[-3:]]
            except ValueError:
                rgb = None
            if rgb is not None:
                entries.append((' '.join(parts[:-3]), rgb))
                continue
        entries.append((line, None))
    return entries


def _rgb(color: Any, file: Path, index: int, name: str) -> RGB | None:
    if color is None:
        return None
    if (not isinstance(color, (list, tuple)) or len(color) != 3
            or not all(isinstance(c, int) and not isinstance(c, bool) for c in color)
            or not all(0 <= c <= 255 for c in color)):
        raise ConfigError(f'Class file {file}: class {index} ({name!r}) has colour {color!r}; '
                          f'expected three integers 0..255 like [128, 0, 0].')
    return (int(color[0]), int(color[1]), int(color[2]))
