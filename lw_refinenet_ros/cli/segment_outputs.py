"""The files ``lw-refinenet segment`` writes per frame, and the thread that writes them.

A job pays only for what it writes: ``--outputs`` names the files (:data:`OUTPUTS`), and the
caller asks the engine only for what they need (:meth:`OutputPlan.needs_confidence`, objects
only when asked). Colouring, blending, drawing, PNG/JSON encoding and the disk happen on one
writer thread while the next frame is segmented (OpenCV's encoder and the disk release the
GIL). The queue between the two is small and blocking: a slow disk slows the job down, it
never drops a frame or lets memory grow. The first write error stops the job: the next
:meth:`OutputWriter.submit` (or :meth:`OutputWriter.close`) raises it with the file's name and
the system's reason, and nothing more is written. Each file is written under a temporary
name and renamed, so a full disk never leaves a half PNG under a real name.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
from pathlib import Path
import queue
import threading
from typing import Any, Callable

import numpy as np

from lw_refinenet_ros.atomic import write_bytes_atomically
from lw_refinenet_ros.errors import ConfigError

#: Every output ``--outputs`` knows, with the file it writes per frame.
OUTPUTS: dict[str, str] = {
    'labels': '<stem>_labels.png: class ids (mono8, 16-bit above 256 classes)',
    'color': '<stem>_color.png: the labels in the class colours',
    'overlay': '<stem>_overlay.png: the colours blended over the image (--alpha); with '
               'objects, their boxes, pick points and ids drawn in',
    'confidence': '<stem>_confidence.png: 16-bit, winning-class probability x 65535',
    'objects': '<stem>_objects.json: every part (class, score, box, pick point, pixel '
               'count, axes; track ids within a video)',
}
#: What ``segment`` writes without ``--outputs`` (as before the flag existed).
DEFAULT_OUTPUTS: tuple[str, ...] = ('labels', 'color', 'overlay')
#: Frames waiting for the writer at most; the segmenting thread waits beyond that.
QUEUE_DEPTH = 2
#: Confidence in [0, 1] is stored as this many steps in a 16-bit PNG.
CONFIDENCE_SCALE = 65535


def parse_outputs(text: str | None, *, objects: bool = False) -> tuple[str, ...]:
    """The outputs of ``--outputs`` (a comma-separated list; None: :data:`DEFAULT_OUTPUTS`),
    in :data:`OUTPUTS` order, with ``objects`` added when ``objects`` (the ``--objects`` flag).

    Raises:
        ConfigError: an empty list or an unknown name (named, with the closest known one
            and the whole list).
    """
    names = list(DEFAULT_OUTPUTS) if text is None else \
        [name.strip() for name in text.split(',') if name.strip()]
    if not names:
        raise ConfigError(f'--outputs is empty; name at least one of {", ".join(OUTPUTS)}.')
    for name in names:
        if name not in OUTPUTS:
            close = difflib.get_close_matches(name, OUTPUTS, n=1)
            hint = f' (did you mean {close[0]}?)' if close else ''
            raise ConfigError(f'--outputs: unknown output {name!r}{hint}; the outputs are '
                              f'{", ".join(OUTPUTS)}.')
    if objects:
        names.append('objects')
    return tuple(name for name in OUTPUTS if name in names)


@dataclasses.dataclass(frozen=True)
class OutputPlan:
    """Which files to write, and how to colour them.

    Attributes:
        outputs: Names from :data:`OUTPUTS`.
        colors_bgr: (K, 3) uint8 class colours in OpenCV's channel order.
        alpha: Overlay colour weight in [0, 1].
    """

    outputs: tuple[str, ...]
    colors_bgr: np.ndarray
    alpha: float = 0.5

    @property
    def needs_confidence(self) -> bool:
        """Whether the engine must compute the confidence map for the files."""
        return 'confidence' in self.outputs

    @property
    def needs_objects(self) -> bool:
        """Whether parts must be looked for."""
        return 'objects' in self.outputs

    def files(self, stem: str, frame: np.ndarray, result: Any) -> list[tuple[str, bytes]]:
        """(file name, encoded bytes) of every requested output of one frame, computing
        only those (runs on the writer thread)."""
        import cv2

        from lw_refinenet_ros.palette import colorize, overlay

        labels = result.labels
        encoded: list[tuple[str, bytes]] = []

        def png(suffix: str, data: np.ndarray) -> None:
            ok, buffer = cv2.imencode('.png', data)
            if not ok:
                raise ConfigError(f'cannot encode {stem}_{suffix}.png as PNG.')
            encoded.append((f'{stem}_{suffix}.png', buffer.tobytes()))

        if 'labels' in self.outputs:
            png('labels', labels)
        if 'color' in self.outputs:
            png('color', colorize(labels, self.colors_bgr))
        if 'overlay' in self.outputs:
            blended = overlay(frame, labels, self.colors_bgr, self.alpha)
            if self.needs_objects and result.objects is not None:
                from lw_refinenet_ros.objects.draw import draw_objects

                draw_objects(blended, result.objects.objects, self.colors_bgr)
            png('overlay', blended)
        if self.needs_confidence:
            steps = np.clip(result.confidence, 0.0, 1.0) * CONFIDENCE_SCALE
            png('confidence', np.rint(steps).astype(np.uint16))
        if self.needs_objects and result.objects is not None:
            from lw_refinenet_ros.objects.processor import object_record

            objects = result.objects
            record = {'image': stem, 'width': int(labels.shape[1]),
                      'height': int(labels.shape[0]),
                      'belt_velocity_px': objects.belt_velocity_px,
                      'objects': [object_record(r) for r in objects.objects]}
            encoded.append((f'{stem}_objects.json',
                            (json.dumps(record, indent=1) + '\n').encode('utf-8')))
        return encoded


def write_file(target: Path, data: bytes) -> None:
    """Write ``data`` to ``target`` through a temporary name in the same folder and a rename,
    so that a failure leaves no partial file under the real name.

    Raises:
        ConfigError: the file cannot be written, naming it and the system's reason.
    """
    try:
        write_bytes_atomically(target, data)
    except OSError as error:
        raise ConfigError(f'cannot write {target}: {error.strerror or error}; segmenting '
                          f'stopped (check the --out folder: permissions, free space).'
                          ) from error


class OutputWriter:
    """Writes the plan's files of each submitted frame on one background thread.

    Args:
        folder: The ``--out`` folder (must exist).
        plan: What to write.
        on_written: Called on the writer thread after each frame's files are on disk.
        depth: Frames that may wait for the writer; :meth:`submit` blocks beyond that.

    Use as a context manager, or call :meth:`close` (which waits and raises the first write
    error) and, on an error of the caller's own, :meth:`abort`.
    """

    def __init__(self, folder: Path, plan: OutputPlan, *,
                 on_written: Callable[[], None] | None = None, depth: int = QUEUE_DEPTH) -> None:
        self.folder = Path(folder)
        self.plan = plan
        self.written = 0
        self._on_written = on_written
        self._queue: queue.Queue[tuple[str, np.ndarray, Any] | None] = queue.Queue(depth)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name='segment-writer', daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            if self._error is not None:
                continue  # drain: nothing more is written after the first error
            stem, frame, result = item
            try:
                for name, data in self.plan.files(stem, frame, result):
                    write_file(self.folder / name, data)
            except BaseException as error:  # noqa: BLE001 - handed to the segmenting thread
                self._error = error
                continue
            self.written += 1
            if self._on_written is not None:
                self._on_written()

    def _raise(self) -> None:
        if self._error is not None:
            raise self._error

    def submit(self, stem: str, frame: np.ndarray, result: Any) -> None:
        """Queue one frame's files (waits while the queue is full).

        Raises:
            ConfigError: an earlier write failed (file name and reason).
        """
        self._raise()
        while True:
            try:
                self._queue.put((stem, frame, result), timeout=0.5)
                return
            except queue.Full:
                self._raise()
                if not self._thread.is_alive():
                    raise ConfigError('the output writer stopped unexpectedly.') from None

    def close(self) -> int:
        """Wait until every queued frame is written; the number of frames written.

        Raises:
            ConfigError: a write failed (file name and reason).
        """
        self._queue.put(None)
        self._thread.join()
        self._raise()
        return self.written

    def abort(self) -> None:
        """Stop after the frame being written; queued frames are dropped (the caller
        failed, so the job ends anyway)."""
        self._error = self._error or ConfigError('segmenting stopped.')
        try:
            while True:
                self._queue.get_nowait()
        except queue.Empty:
            pass
        self._queue.put(None)
        self._thread.join()

    def __enter__(self) -> OutputWriter:
        return self

    def __exit__(self, kind: type[BaseException] | None, *rest: object) -> None:
        if kind is None:
            self.close()
        else:
            self.abort()
