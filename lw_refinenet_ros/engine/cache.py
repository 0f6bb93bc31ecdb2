"""On-disk cache of built runtime artefacts (ONNX files, OpenVINO IR, int8 models).

Building a runtime's model from the checkpoint takes seconds (export, conversion) to minutes
(int8 calibration, TensorRT engines), so each build is kept on disk and reused by the next
start. An entry is a folder named by a hash of everything that determines its contents (the
weights' hash and architecture, input size, precision, runtime name and version, the
calibration set's hash for int8), holding the artefact files and a ``manifest.json`` with each
file's size and SHA-256.

Nothing in the cache is trusted: an entry whose manifest is missing, unreadable, written for
another key, or whose files are missing, truncated or altered is removed and rebuilt. A build
happens in a temporary folder next to the entries and becomes visible with one ``rename``
after its manifest is written, so a crash mid-build leaves no entry behind (only a temporary
folder that a later start removes).

The folder may be shared between processes, users' containers and machines (a mounted
volume). A build holds an exclusive ``flock`` on a lock file inside its temporary folder for
as long as it runs; the kernel drops it when the process ends, however it ends. A temporary
folder whose lock can be taken is an orphan and is removed; one whose lock is held is another
build in progress, whatever its process id means in this PID namespace. A temporary folder
without a lock file (written by an older version, or a build in its first instant) is only
removed once it is :data:`ORPHAN_AGE_S` old.

Folders a runtime fills by itself (TensorRT's engine cache) are keyed the same way and sealed
with a manifest of the files it wrote (:meth:`ArtifactCache.tool_folder`,
:meth:`ArtifactCache.seal`); a sealed folder whose files no longer match is emptied.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
import shutil
import tempfile
import time
from typing import Any, Callable, Iterable, Mapping
import weakref

from lw_refinenet_ros.errors import ConfigError, EngineError

_LOG = logging.getLogger(__name__)

MANIFEST = 'manifest.json'
FORMAT_VERSION = 1
_TMP_PREFIX = '.tmp-'
_LOCK = '.lock'
#: Temporary folders without a lock file are removed once they are this old (seconds).
ORPHAN_AGE_S = 3600.0
_CHUNK = 1 << 20


def cache_key(parts: Mapping[str, Any]) -> str:
    """A stable hex key for the JSON-able ``parts`` (key order does not matter)."""
    text = json.dumps(dict(parts), sort_keys=True, separators=(',', ':'), default=str)
    return hashlib.sha256(text.encode('utf-8')).hexdigest()[:32]


def file_sha256(path: Path) -> str:
    """SHA-256 of one file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, 'rb') as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b''):
            digest.update(chunk)
    return digest.hexdigest()


def files_sha256(paths: Iterable[Path]) -> str:
    """One SHA-256 over the names and contents of ``paths`` (sorted by name)."""
    digest = hashlib.sha256()
    for path in sorted(paths, key=lambda p: p.name):
        digest.update(path.name.encode('utf-8'))
        digest.update(file_sha256(path).encode('ascii'))
    return digest.hexdigest()


def ensure_writable(folder: Path) -> Path:
    """Create ``folder`` if needed and prove that files can be written there.

    Raises:
        ConfigError: naming the folder, the operating system's reason and what to do.
    """
    folder = Path(folder).expanduser()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=_TMP_PREFIX + 'probe-'):
            pass
    except OSError as error:
        raise ConfigError(
            f'The runtime cache folder {folder} is not writable ({error.strerror or error}). '
            f'Set cache_dir (node parameter `cache_dir`, CLI --cache-dir) to a writable '
            f'folder, or fix its permissions.') from error
    return folder


def _try_lock(path: Path) -> int | None:
    """An open descriptor holding an exclusive flock on ``path``, or None if another open
    file (any process, this one included) holds it."""
    import fcntl

    try:
        handle = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError:
        return None
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(handle)
        return None
    return handle


class ArtifactCache:
    """Entries of built artefacts under one root folder.

    Args:
        root: The cache folder; ``None`` builds into a private temporary folder that is
            removed when this object is garbage-collected (caching disabled).

    Raises:
        ConfigError: ``root`` cannot be created or written.
    """

    def __init__(self, root: Path | str | None) -> None:
        if root is None:
            self.root = Path(tempfile.mkdtemp(prefix='lw_refinenet_cache-'))
            self.persistent = False
            weakref.finalize(self, shutil.rmtree, str(self.root), True)
        else:
            self.root = ensure_writable(Path(root))
            self.persistent = True
        self._remove_orphans()

    def entry_dir(self, kind: str, key: str) -> Path:
        """Where the entry ``kind``/``key`` lives (it may not exist)."""
        return self.root / kind / key

    def lookup(self, kind: str, parts: Mapping[str, Any],
               files: Iterable[str]) -> Path | None:
        """The folder of a valid entry for ``parts``, or None (an invalid one is removed)."""
        key = cache_key(parts)
        folder = self.entry_dir(kind, key)
        if not folder.exists():
            return None
        problem = self._problem(folder, key, parts, tuple(files))
        if problem is None:
            return folder
        _LOG.warning('cache entry %s is not usable (%s); rebuilding it.', folder, problem)
        shutil.rmtree(folder, ignore_errors=True)
        return None

    def get_or_build(self, kind: str, parts: Mapping[str, Any], files: Iterable[str],
                     build: Callable[[Path], None], *, what: str) -> Path:
        """The entry folder for ``parts``, building it with ``build(folder)`` on a miss.

        Args:
            kind: Sub-folder grouping entries of one artefact type (``'onnx'``, ``'openvino'``).
            parts: Everything the artefact depends on (the cache key).
            files: The file names ``build`` must create in the folder it is given.
            build: Writes the artefact files into the (temporary) folder it receives.
            what: Human words for the log (``'OpenVINO int8 model 480x640'``).

        Raises:
            EngineError: ``build`` failed or did not write every file in ``files``; nothing
                is left in the cache.
        """
        files = tuple(files)
        found = self.lookup(kind, parts, files)
        if found is not None:
            _LOG.debug('cache hit for %s: %s', what, found)
            return found
        key = cache_key(parts)
        final = self.entry_dir(kind, key)
        final.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f'{_TMP_PREFIX}{os.getpid()}-',
                                        dir=final.parent))
        lock = _try_lock(staging / _LOCK)  # held for the whole build: see the module docstring
        start = time.perf_counter()
        _LOG.info('building %s (not in the cache yet); this may take a while ...', what)
        try:
            build(staging)
            missing = [name for name in files if not (staging / name).is_file()]
            if missing:
                raise EngineError(f'building {what} did not produce {", ".join(missing)}.')
            self._write_manifest(staging, key, parts, files)
            (staging / _LOCK).unlink(missing_ok=True)  # still locked through the descriptor
            try:
                os.rename(staging, final)
            except OSError:
                # Another process finished the same entry first: use it if it is valid.
                if self._problem(final, key, parts, files) is not None:
                    raise
                shutil.rmtree(staging, ignore_errors=True)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        finally:
            if lock is not None:
                os.close(lock)
        _LOG.info('built %s in %.1f s%s', what, time.perf_counter() - start,
                  f'; cached in {final}' if self.persistent else '')
        return final

    def find(self, kind: str, match: Mapping[str, Any], files: Iterable[str]) -> Path | None:
        """The newest valid entry of ``kind`` whose key parts include every item of ``match``.

        For artefacts a user built earlier with inputs the caller does not have now (the int8
        model of a calibration folder that is not given at start-up). Invalid entries are
        skipped, never returned.
        """
        files = tuple(files)
        wanted = json.loads(json.dumps(dict(match), sort_keys=True, default=str))
        found: list[tuple[float, Path]] = []
        folder = self.root / kind
        if not folder.is_dir():
            return None
        for manifest_path in folder.glob(f'*/{MANIFEST}'):
            entry = manifest_path.parent
            try:
                parts = json.loads(manifest_path.read_text(encoding='utf-8')).get('parts', {})
            except (OSError, ValueError, AttributeError):
                continue
            if not isinstance(parts, dict) or cache_key(parts) != entry.name or \
                    any(parts.get(k) != v for k, v in wanted.items()):
                continue
            if self._problem(entry, entry.name, parts, files) is None:
                found.append((manifest_path.stat().st_mtime, entry))
        return max(found)[1] if found else None

    # ----------------------------------------------------------------- internals

    def _write_manifest(self, folder: Path, key: str, parts: Mapping[str, Any],
                        files: tuple[str, ...]) -> None:
        manifest = {
            'format': FORMAT_VERSION, 'key': key,
            'parts': json.loads(json.dumps(dict(parts), sort_keys=True, default=str)),
            'files': {name: {'size': (folder / name).stat().st_size,
                             'sha256': file_sha256(folder / name)} for name in files},
        }
        with open(folder / MANIFEST, 'w', encoding='utf-8') as handle:
            json.dump(manifest, handle, indent=1, sort_keys=True)
            handle.flush()
            os.fsync(handle.fileno())

    @staticmethod
    def _problem(folder: Path, key: str, parts: Mapping[str, Any],
                 files: tuple[str, ...]) -> str | None:
        try:
            with open(folder / MANIFEST, encoding='utf-8') as handle:
                manifest = json.load(handle)
        except FileNotFoundError:
            return 'no manifest'
        except (OSError, ValueError) as error:
            return f'unreadable manifest: {error}'
        if not isinstance(manifest, dict) or manifest.get('format') != FORMAT_VERSION:
            return 'manifest of another format'
        expected_parts = json.loads(json.dumps(dict(parts), sort_keys=True, default=str))
        if manifest.get('key') != key or manifest.get('parts') != expected_parts:
            return 'written for another model, size, precision or runtime version'
        listed = manifest.get('files')
        if not isinstance(listed, dict) or set(listed) != set(files):
            return 'manifest lists other files'
        for name in files:
            path = folder / name
            info = listed[name]
            if not path.is_file():
                return f'{name} is missing'
            if not isinstance(info, dict) or path.stat().st_size != info.get('size'):
                return f'{name} has the wrong size (truncated or replaced)'
            if file_sha256(path) != info.get('sha256'):
                return f'{name} has the wrong checksum (altered)'
        return None

    def _remove_orphans(self) -> None:
        """Delete temporary build folders nobody is building in (see the module docstring:
        by their lock, never by process ids, which mean nothing across containers)."""
        now = time.time()
        for kind_dir in (p for p in self.root.iterdir() if p.is_dir()):
            for tmp in kind_dir.glob(_TMP_PREFIX + '*'):
                lock_path = tmp / _LOCK
                if lock_path.is_file():
                    handle = _try_lock(lock_path)
                    if handle is None:
                        continue  # a build in progress, in some process somewhere
                    os.close(handle)
                else:
                    try:
                        age = now - tmp.stat().st_mtime
                    except OSError:
                        continue
                    if age < ORPHAN_AGE_S:
                        continue
                _LOG.debug('removing the abandoned temporary build %s', tmp)
                shutil.rmtree(tmp, ignore_errors=True)

    # ----------------------------------------------------------------- runtime-filled folders

    def tool_folder(self, kind: str, parts: Mapping[str, Any]) -> Path:
        """A folder for a runtime that writes its own files (TensorRT's engine cache), keyed
        by ``parts``; if it was sealed (:meth:`seal`) and a listed file is now missing,
        truncated or altered, it is emptied first, so the runtime rebuilds."""
        key = cache_key(parts)
        folder = self.entry_dir(kind, key)
        if (folder / MANIFEST).is_file():
            try:
                listed = json.loads((folder / MANIFEST).read_text(encoding='utf-8'))['files']
                files = tuple(listed)
            except (OSError, ValueError, KeyError, TypeError):
                files = ()
            problem = self._problem(folder, key, parts, files) if files else 'bad manifest'
            if problem is not None:
                _LOG.warning('cache folder %s is not usable (%s); emptying it.', folder, problem)
                shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def seal(self, folder: Path, parts: Mapping[str, Any]) -> None:
        """Write the manifest of every file a runtime left in ``folder`` (after it built)."""
        files = tuple(sorted(p.name for p in Path(folder).iterdir()
                             if p.is_file() and p.name != MANIFEST
                             and not p.name.startswith(_TMP_PREFIX)))
        if files:
            self._write_manifest(Path(folder), cache_key(parts), parts, files)
