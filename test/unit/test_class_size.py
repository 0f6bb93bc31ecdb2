"""No class in the package over 250 lines: a class that long does several jobs (issue 20).

Classes still above the limit are listed by name while their owners split them; a new long
class fails, and so does a listed one that got short enough, so that the list only shrinks.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2] / 'lw_refinenet_ros'
MAX_LINES = 250
#: module path (relative to the package) :: class name, still being split.
KNOWN_LONG: frozenset[str] = frozenset()


def long_classes() -> dict[str, int]:
    found = {}
    for path in sorted(ROOT.rglob('*.py')):
        for node in ast.walk(ast.parse(path.read_text(encoding='utf-8'))):
            if isinstance(node, ast.ClassDef):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_LINES:
                    found[f'{path.relative_to(ROOT)}::{node.name}'] = length
    return found


def test_no_new_class_over_the_limit() -> None:
    found = long_classes()
    assert {name: n for name, n in found.items() if name not in KNOWN_LONG} == {}
    assert sorted(KNOWN_LONG - set(found)) == [], 'short enough now: delete it from KNOWN_LONG'
