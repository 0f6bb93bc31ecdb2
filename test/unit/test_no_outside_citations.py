"""Every document a comment or doc cites is in the repository.

The design notes the code was written from live in ``docs/architecture.md``; citing files
outside the repository ("shared/docs/...", "the architecture doc, section 6") leaves a reader
of a clone with a reference they cannot follow.
"""

from __future__ import annotations

from pathlib import Path
import re
import subprocess

ROOT = Path(__file__).resolve().parents[2]
OUTSIDE = re.compile(r'shared/(docs|reference)/|architecture (doc|notes)\b|ros2-from-pip|'
                     r'what-users-expect|lw-refinenet-architecture|style-guide\.md', re.I)
# This file names the patterns it looks for.
ALLOWED = {'test/unit/test_no_outside_citations.py'}


def _tracked_text_files() -> list[Path]:
    listed = subprocess.run(['git', 'ls-files', '-z'], cwd=ROOT, capture_output=True,
                            check=True).stdout.decode().split('\0')
    return [ROOT / name for name in listed if name and name not in ALLOWED
            and (ROOT / name).is_file()]


def test_no_tracked_file_cites_documents_outside_the_repository() -> None:
    found = []
    for path in _tracked_text_files():
        try:
            text = path.read_text(encoding='utf-8')
        except (UnicodeDecodeError, OSError):
            continue  # binary files (models, images) cite nothing
        for number, line in enumerate(text.splitlines(), 1):
            if OUTSIDE.search(line):
                found.append(f'{path.relative_to(ROOT)}:{number}: {line.strip()}')
    assert not found, ('cite docs/architecture.md (or another file in docs/) instead:\n'
                       + '\n'.join(found))


def test_the_pattern_catches_the_forms_used_before() -> None:
    for cited in ('see shared/docs/ros2-from-pip.md §4', '(architecture doc section 6)',
                  'architecture notes, section 9', 'shared/reference/lwrf_state_dict_layout.json',
                  'what-users-expect.md §3'):
        assert OUTSIDE.search(cited), cited
    assert not OUTSIDE.search('docs/architecture.md §7')
