"""`lw-refinenet segment --outputs`: a job writes, and computes, only the files it names.

End to end through the CLI's main function on tiny images and a tiny generated model; the
writer thread alone for the slow-disk and write-error cases; one real process for the exit
status.
"""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys
import threading
import time

import cv2
import numpy as np
import pytest
import torch

from lw_refinenet_ros.cli import main, segment_outputs
from lw_refinenet_ros.cli.segment_outputs import (
    OUTPUTS,
    OutputPlan,
    OutputWriter,
    parse_outputs,
)
from lw_refinenet_ros.errors import ConfigError
from lw_refinenet_ros.model import build_model, save_checkpoint

ROOT = pathlib.Path(__file__).resolve().parents[2]
ENGINE = ['--device', 'cpu', '--backend', 'torch', '--precision', 'fp32', '--no-progress']
SUFFIXES = {'labels': 'labels.png', 'color': 'color.png', 'overlay': 'overlay.png',
            'confidence': 'confidence.png', 'objects': 'objects.json'}


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp('ckpt') / 'tiny.pt'
    save_checkpoint(path, build_model('mbv2', 3).eval(), arch='mbv2',
                    class_names=['bg', 'box', 'can'],
                    colors=[(0, 0, 0), (255, 0, 0), (0, 0, 255)])
    return path


@pytest.fixture
def images(tmp_path: pathlib.Path) -> pathlib.Path:
    folder = tmp_path / 'in'
    folder.mkdir()
    rng = np.random.default_rng(1)
    for name in ('a', 'b'):
        cv2.imwrite(str(folder / f'{name}.png'),
                    rng.integers(0, 256, (30, 40, 3), dtype=np.uint8))
    return folder


def test_the_default_is_the_three_pngs_written_before_the_flag_existed() -> None:
    assert parse_outputs(None) == ('labels', 'color', 'overlay')
    assert parse_outputs(None, objects=True) == ('labels', 'color', 'overlay', 'objects')
    assert parse_outputs(' objects , labels') == ('labels', 'objects')


@pytest.mark.parametrize('name', sorted(OUTPUTS))
def test_each_output_alone_writes_only_its_files(name: str, images: pathlib.Path,
                                                 tmp_path: pathlib.Path,
                                                 checkpoint: pathlib.Path) -> None:
    out = tmp_path / 'out'
    assert main(['segment', str(images), '--weights', str(checkpoint), '--out', str(out),
                 '--outputs', name, *ENGINE]) == 0
    assert sorted(p.name for p in out.iterdir()) == \
        [f'{stem}_{SUFFIXES[name]}' for stem in ('a', 'b')]
    target = out / f'a_{SUFFIXES[name]}'
    if name == 'objects':
        record = json.loads(target.read_text())
        assert (record['image'], record['width'], record['height']) == ('a', 40, 30)
        assert isinstance(record['objects'], list)
    else:
        data = cv2.imread(str(target), cv2.IMREAD_UNCHANGED)
        assert data.shape[:2] == (30, 40)
    if name == 'confidence':
        # The winning class's probability, x 65535: never below 1/K of the scale.
        assert data.dtype == np.uint16 and data.min() >= 65535 // 3 - 1


def test_confidence_png_holds_the_engines_confidence(images: pathlib.Path,
                                                     tmp_path: pathlib.Path,
                                                     checkpoint: pathlib.Path) -> None:
    from lw_refinenet_ros.engine.config import EngineConfig
    from lw_refinenet_ros.segmenter import Segmenter

    out = tmp_path / 'out'
    assert main(['segment', str(images / 'a.png'), '--weights', str(checkpoint), '--out',
                 str(out), '--outputs', 'confidence', *ENGINE]) == 0
    stored = cv2.imread(str(out / 'a_confidence.png'), cv2.IMREAD_UNCHANGED) / 65535.0
    segmenter = Segmenter.load(checkpoint, engine=EngineConfig(device='cpu', backend='torch',
                                                               precision='fp32'))
    expected = segmenter.segment(cv2.imread(str(images / 'a.png')), 'bgr').confidence
    assert np.abs(stored - expected).max() <= 1 / 65535


def test_a_job_computes_only_what_it_writes(images: pathlib.Path, tmp_path: pathlib.Path,
                                            checkpoint: pathlib.Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from lw_refinenet_ros import palette
    from lw_refinenet_ros.segmenter import Segmenter

    asked: list[dict] = []
    original = Segmenter.segment

    def spy(self, image, order='rgb', **kwargs):  # type: ignore[no-untyped-def]
        asked.append(kwargs)
        return original(self, image, order, **kwargs)

    def no_colours(*args: object, **kwargs: object) -> None:
        raise AssertionError('colours computed for a job that writes none')

    monkeypatch.setattr(Segmenter, 'segment', spy)
    monkeypatch.setattr(palette, 'colorize', no_colours)
    monkeypatch.setattr(palette, 'overlay', no_colours)
    assert main(['segment', str(images), '--weights', str(checkpoint), '--out',
                 str(tmp_path / 'labels'), '--outputs', 'labels', *ENGINE]) == 0
    assert len(asked) == 2
    assert all(not k['want_confidence'] and not k['want_objects'] and not k['want_stats']
               for k in asked)
    asked.clear()
    assert main(['segment', str(images), '--weights', str(checkpoint), '--out',
                 str(tmp_path / 'conf'), '--outputs', 'labels,confidence', *ENGINE]) == 0
    assert all(k['want_confidence'] and not k['want_objects'] for k in asked)


def test_an_unknown_output_is_refused_with_the_closest_name_and_the_list(
        images: pathlib.Path, tmp_path: pathlib.Path, checkpoint: pathlib.Path,
        capsys: pytest.CaptureFixture) -> None:
    code = main(['segment', str(images), '--weights', str(checkpoint), '--out',
                 str(tmp_path / 'out'), '--outputs', 'labels,colour', *ENGINE])
    err = capsys.readouterr().err
    assert code == 2
    assert "unknown output 'colour' (did you mean color?)" in err
    assert 'labels, color, overlay, confidence, objects' in err
    assert not (tmp_path / 'out').exists()
    with pytest.raises(ConfigError, match='--outputs is empty'):
        parse_outputs(' , ')


def test_a_write_error_stops_the_command_with_the_file_and_the_reason(
        images: pathlib.Path, tmp_path: pathlib.Path, checkpoint: pathlib.Path) -> None:
    out = tmp_path / 'out'
    out.mkdir()
    # A folder where the colour PNG must go: the write fails (also for root, who may write
    # into read-only folders).
    (out / 'a_color.png').mkdir()
    process = subprocess.run(
        [sys.executable, '-m', 'lw_refinenet_ros', 'segment', str(images), '--weights',
         str(checkpoint), '--out', str(out), *ENGINE], cwd=ROOT, capture_output=True,
        text=True, timeout=300)
    assert process.returncode == 2
    assert f'cannot write {out / "a_color.png"}: Is a directory' in process.stderr
    assert 'segmented' not in process.stdout
    # Nothing half-written under a real name, no temporary file left behind.
    assert not [p for p in out.iterdir() if p.name.startswith('.')]


def _plan() -> OutputPlan:
    return OutputPlan(('labels',), np.zeros((3, 3), dtype=np.uint8))


class _Result:
    def __init__(self) -> None:
        self.labels = np.zeros((4, 5), dtype=np.uint8)
        self.confidence = None
        self.objects = None


def test_a_slow_disk_slows_the_job_but_loses_no_frame(tmp_path: pathlib.Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    real = segment_outputs.write_file
    waiting: list[int] = []

    def slow(target: pathlib.Path, data: bytes) -> None:
        time.sleep(0.02)
        real(target, data)

    monkeypatch.setattr(segment_outputs, 'write_file', slow)
    writer = OutputWriter(tmp_path, _plan(), depth=2)
    for index in range(12):
        writer.submit(f'f{index:02d}', np.zeros((4, 5, 3), dtype=np.uint8), _Result())
        waiting.append(writer._queue.qsize())
    assert writer.close() == 12
    assert len(list(tmp_path.glob('*_labels.png'))) == 12
    assert max(waiting) <= 2  # bounded: the segmenting side waited instead of piling up


def test_the_first_write_error_reaches_the_segmenting_thread(
        tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = segment_outputs.write_file
    attempts: list[str] = []
    lock = threading.Lock()

    def full_disk(target: pathlib.Path, data: bytes) -> None:
        with lock:
            attempts.append(target.name)
        if target.name.startswith('f03'):
            raise ConfigError(f'cannot write {target}: No space left on device')
        real(target, data)

    monkeypatch.setattr(segment_outputs, 'write_file', full_disk)
    writer = OutputWriter(tmp_path, _plan(), depth=1)
    with pytest.raises(ConfigError, match='f03_labels.png: No space left'):
        for index in range(50):
            writer.submit(f'f{index:02d}', np.zeros((4, 5, 3), dtype=np.uint8), _Result())
        writer.close()
    writer.abort()
    # Nothing is written after the failed frame.
    assert 'f03_labels.png' in attempts and attempts[-1] == 'f03_labels.png'
