"""The runtime artefact cache: hit, miss, stale, corrupt, foreign, unwritable, half-written."""

from __future__ import annotations

import gc
import json
import logging
import os
from pathlib import Path
import time

import pytest

from lw_refinenet_ros.engine import cache as cache_module
from lw_refinenet_ros.engine import export
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


def test_orphans_are_judged_by_their_lock_not_by_process_ids(tmp_path: Path) -> None:
    """A shared cache folder: a build in another container has a process id that means
    nothing here; its held lock keeps it. An unlocked build is abandoned and removed; a
    folder without a lock file is removed only once it is old."""
    import fcntl

    kind = tmp_path / 'kind'
    running = kind / '.tmp-999999999-busy'  # a "dead" PID here, alive elsewhere
    running.mkdir(parents=True)
    held = os.open(running / '.lock', os.O_RDWR | os.O_CREAT)
    fcntl.flock(held, fcntl.LOCK_EX)
    abandoned = kind / f'.tmp-{os.getpid()}-done'  # a live PID, but nobody holds the lock
    abandoned.mkdir()
    (abandoned / '.lock').write_text('')
    (abandoned / 'model.bin').write_bytes(b'half-written')
    fresh = kind / '.tmp-1-new'  # no lock file yet: too young to judge
    fresh.mkdir()
    old = kind / '.tmp-2-old'
    old.mkdir()
    long_ago = time.time() - 2 * cache_module.ORPHAN_AGE_S
    os.utime(old, (long_ago, long_ago))
    try:
        ArtifactCache(tmp_path)
        assert running.exists() and fresh.exists()
        assert not abandoned.exists() and not old.exists()
    finally:
        os.close(held)
    ArtifactCache(tmp_path)
    assert not running.exists()  # the lock is free now: that build is over


def test_a_build_holds_its_lock_until_it_is_renamed(tmp_path: Path) -> None:
    cache = ArtifactCache(tmp_path)
    seen: list[bool] = []

    def build_and_look(folder: Path) -> None:
        (folder / 'a.bin').write_bytes(b'x')
        ArtifactCache(tmp_path)  # another process starting meanwhile must not remove it
        seen.append(folder.exists())

    entry = cache.get_or_build('kind', {'w': 1}, ('a.bin',), build_and_look, what='test')
    assert seen == [True] and not (entry / '.lock').exists()
    assert not list((tmp_path / 'kind').glob('.tmp-*'))


def test_a_runtime_filled_folder_is_sealed_and_emptied_when_altered(tmp_path: Path) -> None:
    cache = ArtifactCache(tmp_path)
    parts = {'artifact': 'tensorrt-engines', 'gpu': 'NVIDIA H100', 'tensorrt': '10.3'}
    folder = cache.tool_folder('tensorrt', parts)
    (folder / 'engine.trt').write_bytes(b'engine')
    cache.seal(folder, parts)
    assert cache.tool_folder('tensorrt', parts) == folder
    assert (folder / 'engine.trt').read_bytes() == b'engine'
    (folder / 'engine.trt').write_bytes(b'enginX')
    again = cache.tool_folder('tensorrt', parts)
    assert again == folder and not (folder / 'engine.trt').exists()
    other_gpu = cache.tool_folder('tensorrt', {**parts, 'gpu': 'NVIDIA L4'})
    assert other_gpu != folder


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


# ----------------------------------------------------------------- what an export depends on

class TinyNet:
    """Built lazily so that torch is imported only by the tests that export."""

    @staticmethod
    def make():
        import torch
        from torch import nn

        torch.manual_seed(0)
        net = nn.Conv2d(3, 2, 3, stride=4, padding=1).eval()
        net.num_classes = 2
        return net


@pytest.mark.parametrize('what, change', [
    ('package', lambda m: m.setattr(export, 'package_version', lambda: '9.9.9')),
    ('model code', lambda m: m.setattr(export, 'model_code_hash', lambda: 'f' * 32)),
    ('exporter', lambda m: m.setattr('torch.__version__', '99.0.0')),
])
def test_an_export_made_by_another_version_is_rebuilt(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch,
                                                      what: str, change) -> None:
    """An ONNX file (and so every IR, int8 or optimised model built from it) exported by
    another package version, model code or torch is never reused."""
    net = TinyNet.make()
    cache = ArtifactCache(tmp_path)
    first = export.cached_onnx(net, cache, 'weights', (16, 16))
    assert export.cached_onnx(net, cache, 'weights', (16, 16)) == first  # same: a hit
    with monkeypatch.context() as patched:
        change(patched)
        other = export.cached_onnx(net, cache, 'weights', (16, 16))
        assert other != first and (other / 'model.onnx').is_file()
        parts = json.loads((other / MANIFEST).read_text())['parts']
    assert json.loads((first / MANIFEST).read_text())['parts'] != parts


def test_every_derived_artefact_carries_the_export_identity() -> None:
    from lw_refinenet_ros.engine.backends.base import BackendRequest
    from lw_refinenet_ros.engine.openvino_ir import ir_cache_parts

    identity = export.export_identity()
    assert set(identity) == {'package', 'model_code', 'exporter'}
    assert identity['exporter'].startswith('torch ')
    ir = ir_cache_parts(BackendRequest(), 'w', (48, 64), None)
    onnx = export.onnx_cache_parts('w', (48, 64))
    for parts in (ir, onnx):
        assert {k: parts[k] for k in identity} == identity


def test_tensorrt_folders_are_keyed_by_tensorrt_and_gpu() -> None:
    from lw_refinenet_ros.engine.backends.base import BackendRequest
    from lw_refinenet_ros.engine.backends.onnxruntime import tensorrt_cache_parts

    parts = tensorrt_cache_parts(BackendRequest(precision='fp16', device='cuda'), 'w',
                                 (480, 640), 0)
    assert {'tensorrt', 'gpu', 'runtime', 'package', 'model_code', 'exporter'} <= set(parts)


def test_the_model_code_hash_covers_the_network_not_checkpoint_io() -> None:
    names = {path.name for path in export.network_sources()}
    assert {'lwrefinenet.py', 'decoder.py', 'encoders.py', 'layers.py'} <= names
    assert not names & {'checkpoint.py', 'loading.py', 'weights.py', 'fusion.py', 'train.py'}
    assert len(export.model_code_hash()) == 32
