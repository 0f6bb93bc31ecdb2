"""`lw-refinenet eval` runs a checkpoint as the node does (its model card's max_side) and reads
COCO exports like `train` (--images for their image folder)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import torch

from lw_refinenet_ros.cli import main
from lw_refinenet_ros.data.conveyor import CLASS_NAMES, write_conveyor_dataset
from lw_refinenet_ros.model import build_model, save_checkpoint
from lw_refinenet_ros.model.checkpoint import model_card


def _checkpoint(path: Path, num_classes: int, names, *, input_size=None) -> Path:
    torch.manual_seed(0)
    save_checkpoint(path, build_model('mbv2', num_classes), arch='mbv2', class_names=names,
                    metadata=model_card(input_size=input_size))
    return path


def _eval(tmp_path: Path, *args: str) -> dict:
    out = tmp_path / 'scores.json'
    assert main(['eval', '--device', 'cpu', '--backend', 'torch', '--precision', 'fp32',
                 '--no-objects', '--json', str(out), *args]) == 0
    return json.loads(out.read_text())


def test_eval_runs_at_the_checkpoints_trained_scale_unless_max_side_is_given(tmp_path,
                                                                             capsys) -> None:
    data = write_conveyor_dataset(tmp_path / 'data', 2, seed=8, size=(64, 48))
    weights = _checkpoint(tmp_path / 'small.pt', len(CLASS_NAMES), CLASS_NAMES,
                          input_size=(32, 24))
    common = ['--weights', str(weights), '--data', str(data)]
    assert _eval(tmp_path, *common)['engine']['max_side'] == 32
    assert "max_side 32 from the checkpoint's trained size" in capsys.readouterr().out
    assert _eval(tmp_path, *common, '--max-side', '0')['engine']['max_side'] == 0
    assert _eval(tmp_path, *common, '--max-side', '48')['engine']['max_side'] == 48


def test_eval_without_a_model_card_keeps_native_resolution(tmp_path) -> None:
    data = write_conveyor_dataset(tmp_path / 'data', 2, seed=8, size=(64, 48))
    weights = _checkpoint(tmp_path / 'plain.pt', len(CLASS_NAMES), CLASS_NAMES)
    result = _eval(tmp_path, '--weights', str(weights), '--data', str(data))
    assert result['engine']['max_side'] == 0


def test_eval_reads_a_coco_export_with_its_images_elsewhere(tmp_path) -> None:
    images = tmp_path / 'photos'
    images.mkdir()
    entries = []
    for number in (1, 2):
        cv2.imwrite(str(images / f'f{number}.png'), np.full((24, 32, 3), 60 * number, np.uint8))
        entries.append({'id': number, 'file_name': f'f{number}.png', 'width': 32,
                        'height': 24})
    square = [[4, 4, 14, 4, 14, 14, 4, 14]]
    annotations = [{'id': n, 'image_id': n, 'category_id': 5, 'segmentation': square,
                    'iscrowd': 0, 'area': 100, 'bbox': [4, 4, 10, 10]} for n in (1, 2)]
    export = tmp_path / 'labels' / 'export.json'
    export.parent.mkdir()
    export.write_text(json.dumps({'images': entries, 'annotations': annotations,
                                  'categories': [{'id': 5, 'name': 'can'}]}))
    weights = _checkpoint(tmp_path / 'can.pt', 2, ['background', 'can'])
    result = _eval(tmp_path, '--weights', str(weights), '--data', str(export),
                   '--images', str(images))
    assert result['images'] == 2 and set(result['per_class']) == {'background', 'can'}
    assert result['per_class']['can']['gt_pixels'] == 2 * 100
    # Without --images the photos are not found next to the JSON: a clear error, exit 2.
    assert main(['eval', '--device', 'cpu', '--weights', str(weights), '--data',
                 str(export)]) == 2
