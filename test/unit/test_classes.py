"""The one class-file module: every accepted form, clear errors, writing.

The round trip through make-dataset, train, eval, segment and the node is in
``test/ros/test_class_file_round_trip.py``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from lw_refinenet_ros.classes import (
    ClassFile,
    find_dataset_class_file,
    load_class_map,
    read_class_file,
    write_class_file,
)
from lw_refinenet_ros.errors import ConfigError
from lw_refinenet_ros.palette import voc_palette


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize('name, text', [
    ('names.yaml', 'names: [bg, box, can]\ncolors: [[0, 0, 0], [255, 128, 0], [1, 2, 3]]\n'),
    ('list.yaml', '- {name: bg, color: [0, 0, 0]}\n- {name: box, color: [255, 128, 0]}\n'
                  '- {name: can, color: [1, 2, 3]}\n'),
    ('mapping.yml', 'bg: [0, 0, 0]\nbox: [255, 128, 0]\ncan: [1, 2, 3]\n'),
    ('nested.yaml', 'classes:\n  bg: [0, 0, 0]\n  box: [255, 128, 0]\n  can: [1, 2, 3]\n'),
    ('names.json', json.dumps({'names': ['bg', 'box', 'can'],
                               'colors': [[0, 0, 0], [255, 128, 0], [1, 2, 3]]})),
    ('classes.txt', '# conveyor\nbg 0 0 0\nbox 255 128 0\n\ncan 1 2 3  # metal\n'),
])
def test_every_form_reads_the_same(tmp_path: Path, name: str, text: str) -> None:
    class_file = read_class_file(_write(tmp_path, name, text))
    assert class_file.names == ('bg', 'box', 'can')
    assert class_file.colors == ((0, 0, 0), (255, 128, 0), (1, 2, 3))
    assert load_class_map(class_file.path, num_classes=3).colors.tolist() == [
        [0, 0, 0], [255, 128, 0], [1, 2, 3]]


def test_missing_colours_get_voc_colours_of_their_ids(tmp_path: Path) -> None:
    text_file = _write(tmp_path, 'c.txt', 'background\nsmall box 10 20 30\ncan\n')
    class_map = load_class_map(text_file)
    assert class_map.names == ('background', 'small box', 'can')
    assert class_map.colors.tolist() == [voc_palette(3)[0].tolist(), [10, 20, 30],
                                         voc_palette(3)[2].tolist()]
    names_only = read_class_file(_write(tmp_path, 'n.yaml', 'names: [a, b]\n'))
    assert names_only.colors == (None, None) and not names_only.has_colors
    assert names_only.filled_colors() == tuple(tuple(c) for c in voc_palette(2).tolist())


@pytest.mark.parametrize('text, match', [
    ('- {name: a, color: [0, 0]}\n', 'three integers'),
    ('- {name: a, color: [0, 0, 256]}\n', 'three integers'),
    ('names: [a, b]\ncolors: [[0, 0, 0]]\n', '1 colours for 2 names'),
    ('names: a\n', '`names` must be a list'),
    ('- {name: a}\n- {name: a}\n', 'Duplicate'),
    ('- [1, 2]\n', 'entry 0'),
    ('42\n', 'expected `names: \\[...\\]`'),
    ('a: [1, 2\n', 'not valid YAML'),
    ('[]\n', 'lists no classes'),
])
def test_bad_files_say_what_was_expected(tmp_path: Path, text: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        load_class_map(_write(tmp_path, 'bad.yaml', text))


def test_missing_file_and_wrong_count(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match='does not exist.*names: \\[background, part\\]'):
        read_class_file(tmp_path / 'missing.yaml')
    with pytest.raises(ConfigError, match='model predicts 3'):
        load_class_map(_write(tmp_path, 'two.txt', 'a\nb\n'), num_classes=3)


def test_write_then_read_round_trips_and_refuses_bad_input(tmp_path: Path) -> None:
    path = write_class_file(tmp_path / 'classes.yaml', ['bg', 'part'],
                            np.array([[0, 0, 0], [9, 8, 7]], np.uint8))
    assert read_class_file(path) == ClassFile(('bg', 'part'), ((0, 0, 0), (9, 8, 7)), path)
    write_class_file(tmp_path / 'plain.yaml', ['x', 'y'])
    assert read_class_file(tmp_path / 'plain.yaml').colors == (None, None)
    with pytest.raises(ConfigError, match='Duplicate'):
        write_class_file(tmp_path / 'dup.yaml', ['a', 'a'])
    with pytest.raises(ConfigError, match='1 colours for 2'):
        write_class_file(tmp_path / 'short.yaml', ['a', 'b'], [[0, 0, 0]])
    assert not (tmp_path / 'dup.yaml').exists()


def test_dataset_class_file_lookup_order(tmp_path: Path) -> None:
    assert find_dataset_class_file(tmp_path) is None
    _write(tmp_path, 'labels.txt', 'a\n')
    _write(tmp_path, 'classes.yaml', 'names: [a]\n')
    assert find_dataset_class_file(tmp_path) == tmp_path / 'classes.yaml'
