"""The node's least-confident-frames keeper: file names from the camera and stamp, the set
written while running only when it changed and the time has come, and a folder that cannot be
written warned about instead of stopping the worker."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from lw_refinenet_ros.data.uncertain import UncertainFrames
from lw_refinenet_ros.ros import uncertain
from lw_refinenet_ros.ros.uncertain import UncertainKeeper, frame_stem
from lw_refinenet_ros.scheduler import Frame


class Log:
    def __init__(self) -> None:
        self.warnings: list[tuple[str, str]] = []

    def warning(self, kind: str, text: str) -> None:
        self.warnings.append((kind, text))


def frame(source: str, stamp: float) -> Frame:
    return Frame(source=source, data=None, stamp=stamp, received=0.0, sequence=1)


def test_stems_name_the_camera_and_the_stamp() -> None:
    assert frame_stem(frame('', 12.5)) == 'camera_12.500000000'
    assert frame_stem(frame('/robot1/left', 3.0)) == 'robot1_left_3.000000000'


def test_the_set_is_written_when_it_changed_and_the_period_passed(tmp_path: Path) -> None:
    now = [0.0]
    keeper = UncertainKeeper(UncertainFrames(tmp_path / 'out', 2), Log(), clock=lambda: now[0])
    image = np.zeros((4, 6, 3), np.uint8)
    keeper.offer(frame('', 1.0), image, 'rgb', np.full((4, 6), 0.9, np.float32))
    assert not (tmp_path / 'out').exists()  # not yet: the period has not passed
    now[0] = uncertain.WRITE_EVERY_S
    keeper.offer(frame('', 2.0), image, 'rgb', np.full((4, 6), 0.4, np.float32))
    report = json.loads((tmp_path / 'out' / 'uncertain.json').read_text())
    assert [entry['image'] for entry in report['kept']] == ['camera_2.000000000.png',
                                                           'camera_1.000000000.png']
    keeper.offer(frame('', 3.0), image, 'rgb', None)  # no confidence: nothing to judge
    assert report['frames_seen'] == 2


def test_a_folder_that_cannot_be_written_is_a_warning(tmp_path: Path) -> None:
    blocked = tmp_path / 'file'
    blocked.write_text('not a folder')
    log = Log()
    keeper = UncertainKeeper(UncertainFrames(blocked, 1), log)
    keeper.offer(frame('', 1.0), np.zeros((4, 6, 3), np.uint8), 'bgr',
                 np.full((4, 6), 0.5, np.float32))
    keeper.write()
    assert len(log.warnings) == 1 and log.warnings[0][0] == 'uncertain'
    assert str(blocked) in log.warnings[0][1]
