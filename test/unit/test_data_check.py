"""`lw-refinenet data check`: classes, pixel shares and every problem named by its file."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from lw_refinenet_ros.cli import main
from lw_refinenet_ros.data.check import check_dataset


def _image(path: Path, width: int = 20, height: int = 10) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.full((height, width, 3), 60, np.uint8))


def _export(root: Path) -> Path:
    """One good image, one never annotated, one too large, one missing, one polygon off."""
    for name in ('good.png', 'empty.png', 'off.png'):
        _image(root / 'images' / name)
    _image(root / 'images' / 'big.png', 40, 20)
    images = [{'id': i, 'file_name': n, 'width': 20, 'height': 10}
              for i, n in enumerate(('good.png', 'empty.png', 'big.png', 'gone.png', 'off.png'))]
    annotations = [
        {'id': 1, 'image_id': 0, 'category_id': 4, 'iscrowd': 0,
         'segmentation': [[0, 0, 10, 0, 10, 10, 0, 10]]},
        {'id': 2, 'image_id': 4, 'category_id': 4, 'iscrowd': 0,
         'segmentation': [[0, 0, 50, 0, 50, 10, 0, 10]]}]
    path = root / 'annotations' / 'instances_default.json'
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({'images': images, 'annotations': annotations,
                                'categories': [{'id': 4, 'name': 'can'},
                                               {'id': 9, 'name': 'film'}]}))
    return path


def test_check_reports_shares_and_names_each_problem_with_its_file(tmp_path) -> None:
    _export(tmp_path / 'export')
    report = check_dataset(tmp_path / 'export', preview_dir=tmp_path / 'previews', previews=1)
    assert report.layout == 'coco' and report.class_names == ('background', 'can', 'film')
    text = '\n'.join(str(p) for p in report.problems)
    assert 'gone.png not found' in text
    assert 'big.png: is 40x20 but instances_default.json annotates it at 20x10' in text
    assert 'annotation 2 (can) on off.png' in text and 'outside the 20x10 image' in text
    assert len(report.problems) == 3 and not report.ok
    # good.png is half can; empty.png and off.png (its one region refused) have none.
    assert report.pixels[1] == 100 and report.images_with[1] == 1 and report.pixels[2] == 0
    assert sorted(report.unannotated) == ['empty.png', 'off.png']
    assert 'classes never annotated: film' in report.format()
    assert len(report.previews) == 1 and Path(report.previews[0]).is_file()


def test_cli_exits_1_with_the_report_and_0_when_clean(tmp_path, capsys) -> None:
    _export(tmp_path / 'export')
    assert main(['data', 'check', str(tmp_path / 'export'), '--previews', '0',
                 '--json', str(tmp_path / 'r.json')]) == 1
    out = capsys.readouterr()
    assert 'gone.png not found' in out.out and 'Traceback' not in out.err
    assert json.loads((tmp_path / 'r.json').read_text())['images'] == 5
    clean = tmp_path / 'clean'
    _image(clean / 'images' / 'a.png')
    (clean / 'labels').mkdir()
    cv2.imwrite(str(clean / 'labels' / 'a.png'), np.ones((10, 20), np.uint8))
    (clean / 'classes.txt').write_text('background\npart\n')
    assert main(['data', 'check', str(clean), '--previews', '0']) == 0
    assert 'no problems found' in capsys.readouterr().out


def test_a_json_that_is_not_coco_is_an_error_message_not_a_traceback(tmp_path, capsys) -> None:
    path = tmp_path / 'notes.json'
    path.write_text('{"hello": 1}')
    assert main(['data', 'check', str(path)]) == 2
    err = capsys.readouterr().err
    assert 'notes.json is not a COCO instances file' in err and 'Traceback' not in err
