"""One size convention: WIDTHxHEIGHT for every --size flag and size parameter, one parser."""

from __future__ import annotations

import argparse
import ast
from pathlib import Path

import pytest

from lw_refinenet_ros.cli import build_parser
from lw_refinenet_ros.engine.config import EngineConfig
from lw_refinenet_ros.errors import ConfigError
from lw_refinenet_ros.sizes import parse_size, parse_size_hw, size_argument, size_text

PACKAGE = Path(__file__).resolve().parents[2] / 'lw_refinenet_ros'


def test_width_comes_first() -> None:
    assert parse_size('640x480') == (640, 480)
    assert parse_size(' 64 X 48 ') == (64, 48)
    assert parse_size_hw('640x480') == (480, 640)  # numpy / engine order inside
    assert size_text(640, 480) == '640x480'
    assert EngineConfig(warmup_size='320x240').warmup_size == (240, 320)


def test_a_portrait_camera_size_of_an_odd_aspect_is_accepted() -> None:
    """Only the transposes of common landscape sizes are suspicious; other portraits pass."""
    assert parse_size('48x64') == (48, 64)
    assert parse_size('600x1000') == (600, 1000)


@pytest.mark.parametrize('text, hint', [('480x640', '640x480'), ('240x320', '320x240'),
                                        ('1080x1920', '1920x1080'), ('720x1280', '1280x720')])
def test_the_old_height_first_order_is_refused_with_the_corrected_spelling(
        text: str, hint: str) -> None:
    with pytest.raises(ConfigError, match=f'Write {hint}.*old HEIGHTxWIDTH order'):
        parse_size(text)
    with pytest.raises(ConfigError, match='old HEIGHTxWIDTH order'):
        EngineConfig(warmup_size=text)
    with pytest.raises(argparse.ArgumentTypeError, match=f'Write {hint}'):
        size_argument(text)


@pytest.mark.parametrize('text', ['640', '640x', 'x480', '640by480', '-4x4', '4x4x4', ''])
def test_malformed_sizes_name_the_format(text: str) -> None:
    with pytest.raises(ConfigError, match='WIDTHxHEIGHT'):
        parse_size(text, what='--size')


def test_minimum_is_enforced() -> None:
    with pytest.raises(ConfigError, match='at least 16x16'):
        parse_size('8x240', minimum=16)


@pytest.mark.parametrize('command', ['bench', 'quantize', 'demo', 'make-dataset', 'train'])
def test_every_size_flag_says_width_first(command: str) -> None:
    parser = build_parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    sub = subparsers.choices[command]
    (action,) = [a for a in sub._actions
                 if {'--size', '--conveyor-size'} & set(a.option_strings)]
    text = f'{action.metavar or ""} {action.help or ""}'
    assert 'WIDTHxHEIGHT' in text and 'HEIGHTxWIDTH' not in text and 'HxW' not in text


def test_the_package_has_one_size_parser() -> None:
    """No module other than sizes.py splits 'AxB' text itself (conveyor.parse_size delegates)."""
    definitions = []
    for path in PACKAGE.rglob('*.py'):
        for node in ast.walk(ast.parse(path.read_text(encoding='utf-8'))):
            if isinstance(node, ast.FunctionDef) and node.name in ('parse_size',
                                                                   'size_argument'):
                definitions.append(f'{path.relative_to(PACKAGE)}:{node.name}')
    assert sorted(definitions) == ['data/conveyor.py:parse_size', 'sizes.py:parse_size',
                                   'sizes.py:size_argument']
    conveyor = (PACKAGE / 'data' / 'conveyor.py').read_text(encoding='utf-8')
    assert 'sizes.parse_size(text, minimum=16' in conveyor
