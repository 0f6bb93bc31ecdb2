"""A file written through ``atomic_file`` is whole under its real name or not there at all."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lw_refinenet_ros.atomic import atomic_file, write_bytes_atomically, write_json_atomically


def _names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_a_finished_write_replaces_the_file_and_leaves_no_temporary(tmp_path) -> None:
    target = tmp_path / 'labels.png'
    target.write_bytes(b'old')
    write_bytes_atomically(target, b'new contents')
    assert target.read_bytes() == b'new contents'
    assert _names(tmp_path) == ['labels.png']


def test_an_error_inside_the_block_keeps_the_previous_file_and_removes_the_temporary(
        tmp_path) -> None:
    target = tmp_path / 'resume.pt'
    target.write_bytes(b'previous')
    with pytest.raises(RuntimeError, match='writer failed'):
        with atomic_file(target) as stream:
            stream.write(b'half a file')
            raise RuntimeError('writer failed')
    assert target.read_bytes() == b'previous'
    assert _names(tmp_path) == ['resume.pt']


def test_an_interrupted_first_write_leaves_nothing_under_the_real_name(tmp_path) -> None:
    with pytest.raises(KeyboardInterrupt):
        with atomic_file(tmp_path / 'model.pt') as stream:
            stream.write(b'partial')
            raise KeyboardInterrupt
    assert _names(tmp_path) == []


def test_json_records_are_sorted_text_and_values_json_cannot_hold_become_strings(
        tmp_path) -> None:
    target = tmp_path / 'decision.json'
    write_json_atomically(target, {'b': 1, 'a': tmp_path})
    text = target.read_text(encoding='utf-8')
    assert json.loads(text) == {'a': str(tmp_path), 'b': 1}
    assert text.index('"a"') < text.index('"b"')


def test_a_missing_folder_is_an_os_error_and_creates_nothing(tmp_path) -> None:
    with pytest.raises(OSError):
        write_bytes_atomically(tmp_path / 'absent' / 'x.png', b'data')
    assert _names(tmp_path) == []
