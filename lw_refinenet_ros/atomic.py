"""Writing a file so that its real name only ever holds a whole file.

Every file the package writes for a later start to trust (checkpoints, the resume state, the
weights cards, the remembered backend choices, the images ``segment`` writes) goes through
:func:`atomic_file`: the bytes go to a temporary name in the destination's folder and are renamed
over the destination only when the writer finished without an error. A crash, a full disk or an
exception leaves the previous file (or none) under the real name and no temporary behind. The
rename is atomic because both names are in one folder (one file system).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
import json
import os
from pathlib import Path
import tempfile
from typing import IO, Any, Literal


@contextmanager
def atomic_file(target: str | os.PathLike[str], mode: Literal['wb', 'w'] = 'wb', *,
                durable: bool = False) -> Iterator[IO[Any]]:
    """Open a temporary file beside ``target`` for writing; rename it to ``target`` when the
    ``with`` block ends without an exception, remove it otherwise.

    Args:
        target: The destination; its folder must exist.
        mode: ``'wb'`` for bytes, ``'w'`` for UTF-8 text.
        durable: Also flush the data to the disk (``fsync``) before the rename, for records a
            power cut must not turn into an empty file (they are small; images are not synced).

    Raises:
        OSError: the temporary cannot be created or written, or the rename fails; nothing is
            left under either name.
    """
    target = Path(target)
    handle, temporary = tempfile.mkstemp(dir=target.parent, prefix='.tmp-',
                                         suffix=f'-{target.name}')
    try:
        with os.fdopen(handle, mode, **({} if 'b' in mode else {'encoding': 'utf-8'})) as stream:
            yield stream
            if durable:
                stream.flush()
                os.fsync(stream.fileno())
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_bytes_atomically(target: str | os.PathLike[str], data: bytes, *,
                           durable: bool = False) -> None:
    """Write ``data`` to ``target`` through :func:`atomic_file`."""
    with atomic_file(target, 'wb', durable=durable) as stream:
        stream.write(data)


def write_json_atomically(target: str | os.PathLike[str], record: Any, *,
                          durable: bool = True) -> None:
    """Write ``record`` as indented, key-sorted JSON through :func:`atomic_file`; values JSON
    cannot hold are written with ``str``. Durable by default: these are small records that
    a later start trusts."""
    with atomic_file(target, 'w', durable=durable) as stream:
        json.dump(record, stream, indent=1, sort_keys=True, default=str)
