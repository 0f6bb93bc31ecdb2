"""COCO instances JSON and LabelMe folders as annotation tools export them (fixtures made here)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from lw_refinenet_ros.data.datasets import detect_layout, open_dataset
from lw_refinenet_ros.data.instances import instance_source
from lw_refinenet_ros.data.masks import (
    counts_to_rle_string,
    polygons_to_mask,
    rle_decode,
    rle_encode,
    rle_string_to_counts,
)
from lw_refinenet_ros.errors import ConfigError

H, W = 20, 30


def _rect(x0: float, y0: float, x1: float, y1: float) -> list[float]:
    return [x0, y0, x1, y0, x1, y1, x0, y1]


def _write_image(path: Path, width: int = W, height: int = H) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.full((height, width, 3), 90, np.uint8))


def _cvat_export(root: Path, annotations: list[dict], *, categories: list[dict] | None = None,
                 images: list[dict] | None = None) -> Path:
    """CVAT layout: annotations/instances_default.json + images/."""
    images = images if images is not None else [
        {'id': 1, 'file_name': 'a.png', 'width': W, 'height': H}]
    for entry in images:
        _write_image(root / 'images' / entry['file_name'], entry['width'], entry['height'])
    categories = categories if categories is not None else [
        {'id': 3, 'name': 'can'}, {'id': 7, 'name': 'bottle'}]
    path = root / 'annotations' / 'instances_default.json'
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({'images': images, 'annotations': annotations,
                                'categories': categories}))
    return path


def _ann(number: int, category: int, segmentation, *, image: int = 1, crowd: int = 0) -> dict:
    return {'id': number, 'image_id': image, 'category_id': category,
            'segmentation': segmentation, 'iscrowd': crowd, 'area': 0, 'bbox': [0, 0, 1, 1]}


# --------------------------------------------------------------------------- masks


def test_polygon_covers_the_pixels_whose_centres_lie_inside() -> None:
    mask = polygons_to_mask([_rect(2, 3, 8, 6)], H, W)
    expected = np.zeros((H, W), bool)
    expected[3:6, 2:8] = True
    assert np.array_equal(mask, expected)


def test_compressed_rle_strings_decode_as_coco_writes_them() -> None:
    # Worked by hand from the format: the 4th count is stored as the difference to the 2nd.
    assert rle_string_to_counts('05X1N') == [0, 5, 40, 3]
    assert counts_to_rle_string([0, 5, 40, 3]) == '05X1N'


def test_rle_is_column_major_and_round_trips() -> None:
    mask = np.zeros((4, 3), bool)
    mask[1:3, 0] = True  # column 0, rows 1-2: runs 1 off, 2 on, then 9 off
    assert rle_encode(mask) == [1, 2, 9]
    assert np.array_equal(rle_decode([1, 2, 9], 4, 3), mask)
    rng = np.random.default_rng(0)
    big = rng.random((H, W)) < 0.3
    counts = rle_encode(big)
    assert np.array_equal(rle_decode(counts, H, W), big)
    assert np.array_equal(rle_decode(counts_to_rle_string(counts), H, W), big)


def test_rle_that_does_not_cover_the_image_is_refused() -> None:
    with pytest.raises(ValueError, match='cover'):
        rle_decode([1, 2, 3], H, W)


# --------------------------------------------------------------------------- COCO


def test_cvat_export_gives_contiguous_classes_overlaps_crowds_and_instances(tmp_path) -> None:
    big = np.zeros((H, W), bool)
    big[2:18, 2:28] = True
    crowd = np.zeros((H, W), bool)
    crowd[0:2, 0:5] = True
    annotations = [
        _ann(1, 3, [_rect(5, 5, 10, 10)]),                      # small can on the bottle
        _ann(2, 7, {'size': [H, W], 'counts': counts_to_rle_string(rle_encode(big))}),
        _ann(3, 3, [_rect(20, 5, 25, 10)]),                     # a second can
        _ann(4, 7, {'size': [H, W], 'counts': rle_encode(crowd)}, crowd=1),
    ]
    path = _cvat_export(tmp_path, annotations)
    assert detect_layout(tmp_path) == 'coco' and detect_layout(path) == 'coco'
    ds = open_dataset(tmp_path)
    assert ds.layout == 'coco' and len(ds) == 1
    assert ds.class_names == ('background', 'can', 'bottle')  # ids 3 and 7 -> 1 and 2
    image, labels = ds[0]
    assert image.shape == (H, W, 3)
    assert labels[7, 7] == 1 and labels[7, 22] == 1   # smaller region wins the overlap
    assert labels[15, 15] == 2 and labels[19, 29] == 0
    assert np.all(labels[0:2, 0:5] == 255)             # iscrowd is ignored
    instances = ds.instances(0)
    ids = {int(instances[7, 7]), int(instances[7, 22]), int(instances[15, 15])}
    assert len(ids) == 3 and 0 not in ids and instances[0, 0] == 0
    of, kind = instance_source(ds, np.ones(3, bool))
    assert kind == 'annotations' and np.array_equal(of(0, labels)[0], instances)


def test_images_are_found_next_to_the_json_or_in_a_given_folder(tmp_path) -> None:
    roboflow = tmp_path / 'train'
    _write_image(roboflow / 'p.jpg')
    (roboflow / '_annotations.coco.json').write_text(json.dumps({
        'images': [{'id': 0, 'file_name': 'p.jpg', 'width': W, 'height': H}],
        'annotations': [_ann(1, 1, [_rect(1, 1, 4, 4)], image=0)],
        'categories': [{'id': 1, 'name': 'part'}]}))
    assert open_dataset(roboflow)[0][1][2, 2] == 1
    elsewhere = tmp_path / 'photos'
    _write_image(elsewhere / 'q.png')
    json_path = tmp_path / 'labels.json'
    json_path.write_text(json.dumps({
        'images': [{'id': 0, 'file_name': 'upload/1/q.png', 'width': W, 'height': H}],
        'annotations': [], 'categories': [{'id': 1, 'name': 'part'}]}))
    with pytest.raises(ConfigError, match=r'q\.png not found.*--images'):
        open_dataset(json_path)
    assert open_dataset(json_path, images=elsewhere)[0][1].max() == 0


def test_a_json_that_is_not_coco_names_the_file_and_what_to_export(tmp_path) -> None:
    path = tmp_path / 'x.json'
    path.write_text(json.dumps({'info': {}, 'items': []}))
    with pytest.raises(ConfigError, match=r'x\.json is not a COCO instances file.*Export'):
        open_dataset(path)


def test_an_empty_category_list_is_refused(tmp_path) -> None:
    path = _cvat_export(tmp_path, [], categories=[])
    with pytest.raises(ConfigError, match='empty category list'):
        open_dataset(path)


def test_a_polygon_outside_the_image_is_refused_with_the_file(tmp_path) -> None:
    path = _cvat_export(tmp_path, [_ann(9, 3, [_rect(5, 5, 60, 10)])])
    with pytest.raises(ConfigError, match=r'instances_default\.json.*annotation 9.*outside'):
        open_dataset(path)


def test_a_missing_image_and_a_size_mismatch_are_refused(tmp_path) -> None:
    path = _cvat_export(tmp_path, [], images=[
        {'id': 1, 'file_name': 'a.png', 'width': W, 'height': H},
        {'id': 2, 'file_name': 'b.png', 'width': W, 'height': H}])
    (tmp_path / 'images' / 'a.png').unlink()
    _write_image(tmp_path / 'images' / 'b.png', 2 * W, 2 * H)
    with pytest.raises(ConfigError) as error:
        open_dataset(path)
    assert 'a.png not found' in str(error.value)
    assert 'b.png: is 60x40' in str(error.value)


def test_box_only_annotations_are_refused(tmp_path) -> None:
    path = _cvat_export(tmp_path, [_ann(5, 3, [])])
    with pytest.raises(ConfigError, match='no segmentation'):
        open_dataset(path)


# --------------------------------------------------------------------------- LabelMe


def _labelme(folder: Path, stem: str, shapes: list[dict]) -> None:
    _write_image(folder / f'{stem}.png')
    (folder / f'{stem}.json').write_text(json.dumps({
        'version': '5.4.1', 'shapes': shapes, 'imagePath': f'{stem}.png', 'imageData': None,
        'imageHeight': H, 'imageWidth': W}))


def _shape(label: str, points: list, kind: str = 'polygon', group=None) -> dict:
    return {'label': label, 'points': points, 'shape_type': kind, 'group_id': group}


def test_labelme_folder_reads_polygons_rectangles_groups_and_ignore(tmp_path) -> None:
    _labelme(tmp_path, 'f1', [
        _shape('film', [[1, 1], [10, 1], [10, 8], [1, 8]]),
        _shape('can', [[12, 2], [16, 6]], 'rectangle', group=1),
        _shape('can', [[18, 2], [22, 6]], 'rectangle', group=1),   # same can, cut in two
        _shape('__ignore__', [[25, 15], [29, 19]], 'rectangle')])
    _labelme(tmp_path, 'f2', [_shape('can', [[1, 1], [5, 5]], 'rectangle')])
    assert detect_layout(tmp_path) == 'labelme'
    ds = open_dataset(tmp_path)
    assert ds.class_names == ('background', 'can', 'film') and len(ds) == 2
    _, labels = ds[0]
    # Pixel corners at integer points, as in COCO: a rectangle 12..16 covers pixels 12..15.
    assert labels[4, 12] == 1 and labels[4, 15] == 1 and labels[4, 16] == 0
    assert labels[4, 4] == 2 and labels[17, 27] == 255
    instances = ds.instances(0)
    assert instances[4, 14] == instances[4, 20] != 0 and instances[4, 4] != instances[4, 14]


def test_labelme_point_shapes_are_reported_not_trained(tmp_path) -> None:
    _labelme(tmp_path, 'f1', [_shape('can', [[3, 3]], 'point')])
    with pytest.raises(ConfigError, match=r'f1\.json: shape #0 \(can\) is a point'):
        open_dataset(tmp_path)


def test_labelme_image_of_another_size_or_unreadable_is_refused_with_the_file(tmp_path) -> None:
    _labelme(tmp_path, 'f1', [_shape('can', [[1, 1], [5, 5]], 'rectangle')])
    _labelme(tmp_path, 'f2', [_shape('can', [[1, 1], [5, 5]], 'rectangle')])
    _write_image(tmp_path / 'f1.png', 2 * W, 2 * H)
    (tmp_path / 'f2.png').write_bytes(b'not a png')
    with pytest.raises(ConfigError) as error:
        open_dataset(tmp_path)
    assert 'f1.png: is 60x40 but f1.json annotates it at 30x20' in str(error.value)
    assert 'annotate the image that is there' in str(error.value)
    assert 'f2.png: cannot be read as an image' in str(error.value)


def test_train_offers_every_layout_the_readers_know() -> None:
    from lw_refinenet_ros.cli.train import LAYOUTS as CLI_LAYOUTS
    from lw_refinenet_ros.data.datasets import LAYOUTS

    assert CLI_LAYOUTS == LAYOUTS


def test_train_command_reads_a_coco_file_with_its_images_elsewhere(tmp_path) -> None:
    from lw_refinenet_ros.cli import build_parser
    from lw_refinenet_ros.cli.train import build_config

    photos = tmp_path / 'photos'
    for name in ('a.png', 'b.png', 'c.png'):
        _write_image(photos / name)
    path = tmp_path / 'export.json'
    path.write_text(json.dumps({
        'images': [{'id': i, 'file_name': n, 'width': W, 'height': H}
                   for i, n in enumerate(('a.png', 'b.png', 'c.png'))],
        'annotations': [_ann(1, 1, [_rect(1, 1, 9, 9)], image=0)],
        'categories': [{'id': 1, 'name': 'part'}]}))
    args = build_parser().parse_args(['train', '--data', str(path), '--images', str(photos),
                                      '--out', str(tmp_path / 'run'), '--time-limit', '5'])
    config = build_config(args)
    assert config.images == str(photos) and config.schedule == 'time'
    assert config.init_weights == 'default' and config.holdout > 0
    assert config.batch_size == 2  # never more than the images left to train on
    with pytest.raises(ConfigError, match=r'a\.png not found'):
        build_config(build_parser().parse_args(['train', '--data', str(path)]))
