"""What to label next, from a running node: the frames its model was least sure about.

With ``uncertain.save_dir`` set, every segmented frame's confidence goes to
:class:`~lw_refinenet_ros.data.uncertain.UncertainFrames` (the same keeper as ``lw-refinenet
segment --save-uncertain DIR N``), which keeps the ``uncertain.count`` frames with the lowest
mean confidence. They are written as PNGs with ``uncertain.json`` when the node stops, and
meanwhile at most every :data:`WRITE_EVERY_S` seconds when the set changed, so a node that
is killed still leaves a recent set.
"""

from __future__ import annotations

import re
import time
from typing import Any, Callable

import numpy as np

from lw_refinenet_ros.config import NodeConfig
from lw_refinenet_ros.data.uncertain import UncertainFrames
from lw_refinenet_ros.errors import LWRefineNetError
from lw_refinenet_ros.ros.throttle import ThrottledLog
from lw_refinenet_ros.scheduler import Frame

#: Seconds between two writes of a changed set while the node runs.
WRITE_EVERY_S = 30.0


def frame_stem(frame: Frame) -> str:
    """``<camera>_<stamp>`` with anything but letters, digits, ``-`` and ``.`` as ``_``:
    ``robot1_image_1712.250000000``; the default camera is ``camera``."""
    camera = frame.source.strip('/') or 'camera'
    return re.sub(r'[^A-Za-z0-9.-]', '_', f'{camera}_{frame.stamp:.9f}')


class UncertainKeeper:
    """The node's side of :class:`UncertainFrames`: stems, colour order and writing.

    Args:
        frames: The keeper (its folder and count).
        log: Throttled warnings (a folder that cannot be written).
        clock: Seconds (monotonic); tests pass their own.
    """

    def __init__(self, frames: UncertainFrames, log: ThrottledLog,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.frames = frames
        self._log = log
        self._clock = clock
        self._changed = False
        self._written = clock()

    @classmethod
    def from_config(cls, config: NodeConfig, log: ThrottledLog) -> UncertainKeeper | None:
        """The keeper ``uncertain.save_dir`` asks for, or None when it is empty."""
        if not config.uncertain_save_dir:
            return None
        return cls(UncertainFrames(config.uncertain_save_dir, config.uncertain_count), log)

    def offer(self, frame: Frame, image: np.ndarray, order: str, confidence: Any) -> None:
        """Consider one segmented frame (``image`` in ``order``); may write the set."""
        if confidence is None:
            return
        bgr = image if order == 'bgr' else image[:, :, ::-1]
        before = self.frames.kept()
        self.frames.offer(frame_stem(frame), np.ascontiguousarray(bgr).copy(), confidence)
        self._changed = self._changed or self.frames.kept() != before
        if self._changed and self._clock() - self._written >= WRITE_EVERY_S:
            self.write()

    def write(self) -> None:
        """Write the kept frames now (a failure is warned about, never raised)."""
        self._written = self._clock()
        if not self.frames.kept():
            return
        try:
            self.frames.write()
            self._changed = False
        except (LWRefineNetError, OSError) as error:
            self._log.warning('uncertain', f'cannot save the least confident frames in '
                                           f'{self.frames.folder}: {error}')
