"""The class file ``make-dataset`` writes is accepted by ``train``, ``eval``, ``segment`` and the
node's model loader, and every one of them uses its names and colours (issue: ``segment
--classes-file`` and ``model.classes_file`` used to refuse it)."""

from __future__ import annotations

import os
from pathlib import Path
import subprocess
import sys

import pytest

from lw_refinenet_ros.classes import read_class_file, write_class_file

ROOT = Path(__file__).resolve().parents[2]


def _cli(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        p for p in (str(ROOT), os.environ.get('PYTHONPATH')) if p), OMP_NUM_THREADS='1')
    result = subprocess.run([sys.executable, '-m', 'lw_refinenet_ros', *args], cwd=ROOT,
                            env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f'{args[0]}: {result.stdout[-2000:]}{result.stderr[-3000:]}'
    return result


@pytest.mark.slow
def test_make_dataset_class_file_works_in_train_eval_segment_and_the_node(
        tmp_path: Path) -> None:
    data = tmp_path / 'data'
    _cli('make-dataset', 'conveyor', '--out', str(data), '--count', '2', '--size', '64x48',
         '--seed', '5')
    classes = data / 'classes.yaml'
    # Rename a class so the test can tell the file's names from the checkpoint's.
    written = read_class_file(classes)
    names = ('floor_renamed', *written.names[1:])
    write_class_file(classes, names, written.filled_colors())

    run = tmp_path / 'run'
    _cli('train', '--data', str(data), '--classes', str(classes), '--recipe', 'reference',
         '--max-steps', '1',
         '--stage-epochs', '1', '--lrs', '1e-4', '--crop-size', '32', '--scale-min', '1',
         '--scale-max', '1', '--min-short-side', '0', '--batch-size', '2', '--workers', '0',
         '--device', 'cpu', '--threads', '1', '--out', str(run))
    weights = run / 'last.pt'
    from lw_refinenet_ros.model import load_model
    assert load_model(weights)[1].class_names == names

    scores = tmp_path / 'scores.json'
    _cli('eval', '--weights', str(weights), '--data', str(data), '--classes', str(classes),
         '--device', 'cpu', '--json', str(scores))
    assert 'floor_renamed' in scores.read_text()

    out = tmp_path / 'segmented'
    _cli('segment', str(data / 'images'), '--out', str(out), '--weights', str(weights),
         '--classes-file', str(classes), '--device', 'cpu', '--no-progress')
    assert any(out.rglob('*.png'))

    from lw_refinenet_ros.config import NodeConfig
    from lw_refinenet_ros.ros.pipeline import load_engine
    loaded = load_engine(NodeConfig.from_mapping({
        'model.weights': str(weights), 'model.classes_file': str(classes), 'device': 'cpu'}))
    assert loaded.class_map.names == names
    assert loaded.class_map.colors.tolist() == [list(c) for c in written.filled_colors()]
