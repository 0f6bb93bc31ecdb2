"""The runtime artefact cache: hit, miss, stale, corrupt, foreign, unwritable, half-written."""

from __future__ import annotations

import gc
import json
import logging
import os
from pathlib import Path
import subprocess
import sys

import pytest

from lw_refinenet_ros.engine.cache import (
    MANIFEST,
    ArtifactCache,
    cache_key,
    ensure_writable,
    files_sha256,
)
from lw_refinenet_ros.errors import ConfigError, EngineError

PARTS = {'artifact': 'test', 'weights': 'abc', 'size': [48, 64], 'runtime': 'fake 1.0'}
FILES = ('model.bin', 'model.xml')


class Builder:
    """Writes two files and counts its calls."""

    def __init__(self, payload: bytes = b'weights' * 100) -> None:
        self.calls = 0
        self.payload = payload

    def __call__(self, folder: Path) -> None:
        self.calls += 1
        (folder / 'model.bin').write_bytes(self.payload)
        (folder / 'model.xml').write_text('<net/>')


def build(cache: ArtifactCache, builder: Builder, parts: dict | None = None) -> Path:
    return cache.get_or_build('kind', parts or PARTS, FILES, builder, what='test model')


def test_miss_builds_then_hit_reuses(tmp_path: Path) -> None:
    cache, builder = ArtifactCache(tmp_path / 'cache'), Builder()
    first = build(cache, builder)
    assert builder.calls == 1
    assert (first / 'model.bin').read_bytes() == builder.payload
    manifest = json.loads((first / MANIFEST).read_text())
    assert manifest['key'] == cache_key(PARTS) == first.name
    assert manifest['files']['model.bin']['size'] == len(builder.payload)
    # A second cache object on the same folder (the next start) hits without building.
    assert build(ArtifactCache(tmp_path / 'cache'), builder) == first
    assert builder.calls == 1


def test_a_build_is_logged_at_info_a_hit_at_debug(tmp_path: Path,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger='lw_refinenet_ros.engine.cache'):
        first = build(ArtifactCache(tmp_path), Builder())
        assert [r.levelno for r in caplog.records if 'building test model (not in the cache '
                'yet)' in r.getMessage()] == [logging.INFO]
        caplog.clear()
        build(ArtifactCache(tmp_path), Builder())
    # A build is news (INFO: why this start is slow); a hit is the normal case (DEBUG).
    assert [r.levelno for r in caplog.records
            if r.getMessage() == f'cache hit for test model: {first}'] == [logging.DEBUG]
    assert 'building' not in caplog.text


def test_key_ignores_order_but_not_values() -> None:
    assert cache_key({'a': 1, 'b': [2, 3]}) == cache_key({'b': [2, 3], 'a': 1})
    assert cache_key(PARTS) != cache_key({**PARTS, 'runtime': 'fake 1.1'})
    assert cache_key(PARTS) != cache_key({**PARTS, 'size': [64, 48]})


def test_new_weights_or_runtime_version_build_a_new_entry(tmp_path: Path) -> None:
    cache, builder = ArtifactCache(tmp_path), Builder()
    old = build(cache, builder)
    new = build(cache, builder, {**PARTS, 'runtime': 'fake 2.0'})
    assert builder.calls == 2 and new != old and old.exists()


@pytest.mark.parametrize('damage', ['truncate', 'flip_byte', 'delete_file', 'delete_manifest',
                                    'garbage_manifest', 'foreign_manifest', 'extra_file_listed'])
def test_damaged_entry_is_rebuilt_never_trusted(tmp_path: Path, damage: str,
                                                caplog: pytest.LogCaptureFixture) -> None:
    cache, builder = ArtifactCache(tmp_path), Builder()
    entry = build(cache, builder)
    weights = entry / 'model.bin'
    manifest_path = entry / MANIFEST
    if damage == 'truncate':
        weights.write_bytes(builder.payload[:10])
    elif damage == 'flip_byte':  # same size, other content: only the checksum sees it
        data = bytearray(builder.payload)
        data[5] ^= 0xFF
        weights.write_bytes(bytes(data))
    elif damage == 'delete_file':
        weights.unlink()
    elif damage == 'delete_manifest':
        manifest_path.unlink()
    elif damage == 'garbage_manifest':
        manifest_path.write_text('{not json')
    elif damage == 'foreign_manifest':  # an entry written for another model under this name
        manifest = json.loads(manifest_path.read_text())
        manifest['parts']['weights'] = 'someone else'
        manifest_path.write_text(json.dumps(manifest))
    elif damage == 'extra_file_listed':
        manifest = json.loads(manifest_path.read_text())
        manifest['files']['other.bin'] = {'size': 1, 'sha256': '0'}
        manifest_path.write_text(json.dumps(manifest))
    caplog.set_level('WARNING')
    rebuilt = build(cache, builder)
    assert builder.calls == 2
    assert rebuilt == entry
    assert (rebuilt / 'model.bin').read_bytes() == builder.payload
    assert 'not usable' in caplog.text and 'rebuilding' in caplog.text


def test_failed_build_leaves_nothing_behind(tmp_path: Path) -> None:
    cache = ArtifactCache(tmp_path)

    def broken(folder: Path) -> None:
        (folder / 'model.bin').write_bytes(b'half')
        raise EngineError('converter crashed')

    with pytest.raises(EngineError, match='converter crashed'):
        cache.get_or_build('kind', PARTS, FILES, broken, what='test model')
    assert list((tmp_path / 'kind').iterdir()) == []


def test_build_that_forgets_a_file_is_an_error_and_not_cached(tmp_path: Path) -> None:
    cache = ArtifactCache(tmp_path)

    def partial(folder: Path) -> None:
        (folder / 'model.xml').write_text('<net/>')

    with pytest.raises(EngineError, match='did not produce model.bin'):
        cache.get_or_build('kind', PARTS, FILES, partial, what='test model')
    assert list((tmp_path / 'kind').iterdir()) == []


def test_unwritable_cache_folder_stops_with_reason_and_fix(tmp_path: Path) -> None:
    blocker = tmp_path / 'a_file'
    blocker.write_text('not a folder')
    with pytest.raises(ConfigError) as error:
        ArtifactCache(blocker / 'cache')
    message = str(error.value)
    assert 'not writable' in message and 'cache_dir' in message and str(blocker) in message


@pytest.mark.skipif(os.geteuid() == 0, reason='root writes into read-only folders')
def test_read_only_cache_folder_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / 'ro'
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with pytest.raises(ConfigError, match='not writable'):
            ensure_writable(folder)
    finally:
        folder.chmod(0o700)


def test_orphaned_temporary_build_of_a_dead_process_is_removed(tmp_path: Path) -> None:
    dead = subprocess.run([sys.executable, '-c', 'import os; print(os.getpid())'],
                          capture_output=True, text=True, check=True)
    orphan = tmp_path / 'kind' / f'.tmp-{dead.stdout.strip()}-xyz'
    orphan.mkdir(parents=True)
    (orphan / 'model.bin').write_bytes(b'half-written')
    mine = tmp_path / 'kind' / f'.tmp-{os.getpid()}-abc'  # a live build: kept
    mine.mkdir()
    ArtifactCache(tmp_path)
    assert not orphan.exists() and mine.exists()


def test_no_cache_dir_builds_in_a_private_folder_removed_afterwards() -> None:
    cache, builder = ArtifactCache(None), Builder()
    entry = build(cache, builder)
    assert entry.is_dir() and not cache.persistent
    root = cache.root
    del cache
    gc.collect()
    assert not root.exists()


def test_files_sha256_depends_on_names_and_contents(tmp_path: Path) -> None:
    (tmp_path / 'a.png').write_bytes(b'1')
    (tmp_path / 'b.png').write_bytes(b'2')
    first = files_sha256([tmp_path / 'b.png', tmp_path / 'a.png'])
    assert first == files_sha256([tmp_path / 'a.png', tmp_path / 'b.png'])
    (tmp_path / 'b.png').write_bytes(b'3')
    assert files_sha256([tmp_path / 'a.png', tmp_path / 'b.png']) != first


def test_find_returns_the_newest_valid_entry_matching_some_parts(tmp_path: Path) -> None:
    cache, builder = ArtifactCache(tmp_path), Builder()
    old = build(cache, builder, {**PARTS, 'calibration': 'one'})
    new = build(cache, builder, {**PARTS, 'calibration': 'two'})
    os.utime(old / MANIFEST, (1, 1))
    assert cache.find('kind', {'weights': 'abc', 'size': [48, 64]}, FILES) == new
    assert cache.find('kind', {'weights': 'other'}, FILES) is None
    (new / 'model.bin').write_bytes(b'truncated')  # invalid entries are never returned
    assert cache.find('kind', {'weights': 'abc'}, FILES) == old
    assert cache.find('missing-kind', {}, FILES) is None
