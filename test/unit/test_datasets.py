"""Dataset readers on small fixtures generated here (VOC, folder, Cityscapes, conveyor)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from PIL import Image
import pytest

from lw_refinenet_ros.data.datasets import (
    CITYSCAPES_CLASSES,
    ConveyorDataset,
    cityscapes_dataset,
    detect_layout,
    folder_dataset,
    load_class_file,
    open_dataset,
    read_label,
    voc_colors,
    voc_dataset,
)
from lw_refinenet_ros.errors import ConfigError

H, W = 12, 16


def _image(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (H, W, 3), dtype=np.uint8)


def _write_rgb(path: Path, image: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), image[..., ::-1])


def _palette_png(path: Path, labels: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.fromarray(labels.astype(np.uint8), mode='P')
    palette = [v for rgb in voc_colors(256) for v in rgb]
    img.putpalette(palette)
    img.save(path)


def _make_voc(root: Path) -> dict[str, np.ndarray]:
    labels = {}
    for i, stem in enumerate(['2007_000001', '2007_000002', '2007_000003']):
        _write_rgb(root / 'JPEGImages' / f'{stem}.jpg', _image(i))
        lab = np.full((H, W), i, np.uint8)
        lab[0, :] = 255  # VOC object borders are 255 = ignore
        _palette_png(root / 'SegmentationClass' / f'{stem}.png', lab)
        labels[stem] = lab
    sets = root / 'ImageSets' / 'Segmentation'
    sets.mkdir(parents=True)
    (sets / 'train.txt').write_text('2007_000001\n2007_000002\n')
    (sets / 'val.txt').write_text('2007_000003\n')
    return labels


def test_voc_reader_reads_palette_indices(tmp_path) -> None:
    root = tmp_path / 'VOCdevkit' / 'VOC2012'
    labels = _make_voc(root)
    train = voc_dataset(tmp_path / 'VOCdevkit', 'train')
    val = voc_dataset(root, 'val')
    assert len(train) == 2 and len(val) == 1
    assert train.num_classes == 21 and train.class_names[15] == 'person'
    image, lab = val[0]
    assert image.shape == (H, W, 3) and image.dtype == np.uint8
    # Indices, not colours: class 2 stays 2 and borders stay 255.
    assert np.array_equal(lab, labels['2007_000003'])
    assert detect_layout(root) == 'voc'
    assert open_dataset(root, split='val').layout == 'voc'


def test_voc_reader_errors_name_the_expected_layout(tmp_path) -> None:
    (tmp_path / 'JPEGImages').mkdir()
    with pytest.raises(ConfigError, match='SegmentationClass'):
        voc_dataset(tmp_path)
    _make_voc(tmp_path / 'ok')
    with pytest.raises(ConfigError, match='available: train, val'):
        voc_dataset(tmp_path / 'ok', 'test')


def test_folder_reader_with_classes_yaml(tmp_path) -> None:
    for i in range(3):
        _write_rgb(tmp_path / 'images' / f'f{i}.png', _image(i))
        lab = np.full((H, W), i % 2, np.uint8)
        (tmp_path / 'labels').mkdir(exist_ok=True)
        cv2.imwrite(str(tmp_path / 'labels' / f'f{i}.png'), lab)
    _write_rgb(tmp_path / 'images' / 'unlabelled.png', _image(9))
    (tmp_path / 'classes.yaml').write_text('names: [floor, thing]\ncolors: [[0,0,0],[9,8,7]]\n')
    ds = folder_dataset(tmp_path)
    assert len(ds) == 3 and ds.class_names == ('floor', 'thing')
    assert ds.colors[1] == (9, 8, 7)
    image, lab = ds[1]
    assert np.array_equal(image, _image(1)) and np.all(lab == 1)
    # Two folders given explicitly plus a text class file.
    # A class without a colour gets the VOC colour of its id (as in the node and segment).
    (tmp_path / 'names.txt').write_text('# comment\nfloor 1 2 3\nthing\n')
    partial = folder_dataset(images=tmp_path / 'images', labels=tmp_path / 'labels',
                             classes=tmp_path / 'names.txt')
    assert partial.colors == ((1, 2, 3), (128, 0, 0))
    (tmp_path / 'names.txt').write_text('floor 1 2 300\nthing\n')
    with pytest.raises(ConfigError, match='three integers'):
        folder_dataset(images=tmp_path / 'images', labels=tmp_path / 'labels',
                       classes=tmp_path / 'names.txt')
    (tmp_path / 'names.txt').write_text('floor\nthing\n')
    ds2 = folder_dataset(images=tmp_path / 'images', labels=tmp_path / 'labels',
                         classes=tmp_path / 'names.txt')
    assert ds2.class_names == ('floor', 'thing') and len(ds2) == 3


def test_folder_reader_errors(tmp_path) -> None:
    with pytest.raises(ConfigError, match='images/'):
        folder_dataset(tmp_path)
    (tmp_path / 'images').mkdir()
    (tmp_path / 'labels').mkdir()
    with pytest.raises(ConfigError, match='matching'):
        folder_dataset(tmp_path)
    _write_rgb(tmp_path / 'images' / 'a.png', _image(0))
    cv2.imwrite(str(tmp_path / 'labels' / 'a.png'), np.zeros((H, W), np.uint8))
    with pytest.raises(ConfigError, match='classes'):
        folder_dataset(tmp_path)
    with pytest.raises(ConfigError, match='layout'):
        detect_layout(tmp_path / 'labels')


def test_cityscapes_reader_maps_label_ids_to_train_ids(tmp_path) -> None:
    for city, stem in (('aachen', 'aachen_000000_000019'), ('bonn', 'bonn_000001_000019')):
        _write_rgb(tmp_path / 'leftImg8bit' / 'val' / city / f'{stem}_leftImg8bit.png',
                   _image(3))
        ids = np.zeros((H, W), np.uint8)
        ids[:, :4] = 7    # road -> 0
        ids[:, 4:8] = 26  # car -> 13
        ids[:, 8:12] = 33  # bicycle -> 18
        ids[:, 12:] = 4   # static -> ignore
        path = tmp_path / 'gtFine' / 'val' / city / f'{stem}_gtFine_labelIds.png'
        path.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(path), ids)
    ds = cityscapes_dataset(tmp_path, 'val')
    assert len(ds) == 2 and ds.num_classes == 19 == len(CITYSCAPES_CLASSES)
    _, lab = ds[0]
    assert set(np.unique(lab[:, :4])) == {0} and set(np.unique(lab[:, 4:8])) == {13}
    assert set(np.unique(lab[:, 8:12])) == {18} and set(np.unique(lab[:, 12:])) == {255}
    assert detect_layout(tmp_path) == 'cityscapes'
    with pytest.raises(ConfigError, match='leftImg8bit'):
        cityscapes_dataset(tmp_path, 'train')


def test_conveyor_dataset_fresh_per_epoch_and_reproducible() -> None:
    ds = ConveyorDataset(3, 2, (48, 40))
    first = ds[1][0]
    assert np.array_equal(first, ConveyorDataset(3, 2, (48, 40))[1][0])
    ds.epoch = 1
    assert not np.array_equal(first, ds[1][0])
    with pytest.raises(IndexError):
        ds[2]
    assert open_dataset('conveyor:3', conveyor_length=2, size=(48, 40)).num_classes == 8
    with pytest.raises(ConfigError, match='seed'):
        open_dataset('conveyor:x')


def test_class_file_forms_and_label_modes(tmp_path) -> None:
    (tmp_path / 'list.yaml').write_text('- name: a\n  color: [1, 2, 3]\n- name: b\n  '
                                        'color: [4, 5, 6]\n')
    names, colors = load_class_file(tmp_path / 'list.yaml')
    assert names == ('a', 'b') and colors == ((1, 2, 3), (4, 5, 6))
    with pytest.raises(ConfigError, match='does not exist'):
        load_class_file(tmp_path / 'missing.yaml')
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / 'rgb.png')
    with pytest.raises(ConfigError, match='mode RGB'):
        read_label(tmp_path / 'rgb.png')


def test_a_denser_conveyor_puts_more_parts_on_the_belt() -> None:
    sparse = open_dataset('conveyor:8', conveyor_length=12, size=(160, 120))
    dense = open_dataset('conveyor:8,density=14', conveyor_length=12, size=(160, 120))
    assert (sparse.density, dense.density) == (6.0, 14.0)
    part_pixels = [sum(int(np.count_nonzero(ds[i][1] >= 2)) for i in range(12))
                   for ds in (sparse, dense)]
    assert part_pixels[1] > 1.5 * part_pixels[0]
    for bad in ('conveyor:8,density=0', 'conveyor:8,density=x', 'conveyor:8,speed=2'):
        with pytest.raises(ConfigError, match='density'):
            open_dataset(bad)
