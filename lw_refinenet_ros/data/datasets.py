"""Segmentation dataset readers: PASCAL VOC, a generic image/label folder, Cityscapes, COCO
instances JSON and LabelMe folders (:mod:`.coco`, :mod:`.labelme`: what annotation tools
export), and the synthetic conveyor rendered on the fly.

Every dataset is a plain sequence (``len(ds)``, ``ds[i] -> (image RGB uint8 (H, W, 3),
labels uint8 (H, W))``, ``ds.class_names``, ``ds.colors``) with no torch dependency, so a
``torch.utils.data.DataLoader`` can wrap it directly and tests can read it without torch.
Label value 255 means "ignore" everywhere.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from lw_refinenet_ros.classes import find_dataset_class_file
from lw_refinenet_ros.constants import IGNORE_INDEX as IGNORE_INDEX  # re-exported
from lw_refinenet_ros.data.files import load_class_file as load_class_file  # re-exported
from lw_refinenet_ros.data.files import read_rgb as read_rgb  # re-exported
from lw_refinenet_ros.data.files import voc_colors as voc_colors  # re-exported
from lw_refinenet_ros.errors import ConfigError
from lw_refinenet_ros.palette import VOC_CLASSES as VOC_CLASSES  # re-exported

_LOG = logging.getLogger(__name__)

IMAGE_SUFFIXES = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff', '.ppm', '.webp')
LAYOUTS = ('auto', 'voc', 'folder', 'cityscapes', 'coco', 'labelme', 'conveyor')

CITYSCAPES_CLASSES: tuple[str, ...] = (
    'road', 'sidewalk', 'building', 'wall', 'fence', 'pole', 'traffic light', 'traffic sign',
    'vegetation', 'terrain', 'sky', 'person', 'rider', 'car', 'truck', 'bus', 'train',
    'motorcycle', 'bicycle')
CITYSCAPES_COLORS: tuple[tuple[int, int, int], ...] = (
    (128, 64, 128), (244, 35, 232), (70, 70, 70), (102, 102, 156), (190, 153, 153),
    (153, 153, 153), (250, 170, 30), (220, 220, 0), (107, 142, 35), (152, 251, 152),
    (70, 130, 180), (220, 20, 60), (255, 0, 0), (0, 0, 142), (0, 0, 70), (0, 60, 100),
    (0, 80, 100), (0, 0, 230), (119, 11, 32))
# Cityscapes labelIds (0..33) -> the 19 train ids of the official benchmark; the rest ignore.
CITYSCAPES_ID_TO_TRAIN_ID: dict[int, int] = {
    7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9, 23: 10, 24: 11,
    25: 12, 26: 13, 27: 14, 28: 15, 31: 16, 32: 17, 33: 18}


def _cityscapes_lut() -> np.ndarray:
    lut = np.full(256, IGNORE_INDEX, np.uint8)
    for label_id, train_id in CITYSCAPES_ID_TO_TRAIN_ID.items():
        lut[label_id] = train_id
    return lut


# --------------------------------------------------------------------------- image I/O


def read_label(path: str | os.PathLike[str]) -> np.ndarray:
    """Read a label PNG as uint8 class ids (H, W).

    Palette ('P') PNGs are read through Pillow so the *indices* are the labels (OpenCV would
    expand them to colours); greyscale PNGs hold the ids directly.
    """
    from PIL import Image

    try:
        with Image.open(path) as img:
            if img.mode in ('P', 'L'):
                return np.array(img, dtype=np.uint8)
            if img.mode in ('I', 'I;16', 'I;16B'):
                return np.array(img).astype(np.uint8)
            raise ConfigError(f'Label {path} is mode {img.mode}; expected a palette (P) or '
                              f'8-bit greyscale (L) PNG of class ids.')
    except OSError as error:
        raise ConfigError(f'Cannot read label image {path}: {error}') from None


class SegmentationDataset:
    """A list of (image path, label path) pairs with class names; ``ds[i] -> (rgb, labels)``."""

    layout = 'folder'

    def __init__(self, pairs: Sequence[tuple[Path, Path]], class_names: Sequence[str],
                 colors: Sequence[Sequence[int]] | None = None, *,
                 label_lut: np.ndarray | None = None, root: Path | None = None) -> None:
        self.pairs = list(pairs)
        self.class_names = tuple(class_names)
        self.colors = tuple(tuple(int(v) for v in c) for c in
                            (colors or voc_colors(len(self.class_names))))
        self.label_lut = label_lut
        self.root = root

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        image_path, label_path = self.pairs[index]
        image = read_rgb(image_path)
        labels = read_label(label_path)
        if self.label_lut is not None:
            labels = self.label_lut[labels]
        if labels.shape != image.shape[:2]:
            raise ConfigError(f'Label {label_path} is {labels.shape[1]}x{labels.shape[0]} but '
                              f'image {image_path} is {image.shape[1]}x{image.shape[0]}; '
                              f'labels must match their images pixel for pixel.')
        return image, labels

    def name(self, index: int) -> str:
        return self.pairs[index][0].stem


def _names_and_colors(classes: str | os.PathLike[str] | None, *search: Path,
                      default: Sequence[str] | None = None,
                      default_colors: Sequence[Sequence[int]] | None = None,
                      what: str = '') -> tuple[tuple[str, ...], tuple | None]:
    path = Path(classes) if classes is not None else find_dataset_class_file(*search)
    if path is not None:
        return load_class_file(path)
    if default is None:
        raise ConfigError(f'No class names for {what}: put a classes.yaml (names + colors) or '
                          f'classes.txt next to the data, or pass --classes FILE.')
    return tuple(default), (tuple(default_colors) if default_colors else None)


# --------------------------------------------------------------------------- layouts


def voc_dataset(root: str | os.PathLike[str], split: str = 'train', *,
                classes: str | os.PathLike[str] | None = None) -> SegmentationDataset:
    """PASCAL VOC layout: ``JPEGImages/``, ``SegmentationClass/`` (palette PNGs) and
    ``ImageSets/Segmentation/<split>.txt``.

    ``root`` may be the ``VOC2012`` folder or the ``VOCdevkit`` folder above it.
    """
    root = Path(root)
    if (root / 'VOC2012').is_dir() and not (root / 'JPEGImages').is_dir():
        root = root / 'VOC2012'
    expected = ('JPEGImages', 'SegmentationClass', 'ImageSets/Segmentation')
    missing = [name for name in expected if not (root / name).is_dir()]
    if missing:
        raise ConfigError(f'{root} does not look like PASCAL VOC: missing {", ".join(missing)}. '
                          f'Expected JPEGImages/*.jpg, SegmentationClass/*.png (palette PNGs) '
                          f'and ImageSets/Segmentation/{{train,val}}.txt.')
    split_file = root / 'ImageSets' / 'Segmentation' / f'{split}.txt'
    if not split_file.is_file():
        available = sorted(p.stem for p in (root / 'ImageSets' / 'Segmentation').glob('*.txt'))
        raise ConfigError(f'VOC split {split!r} not found ({split_file} missing); available: '
                          f'{", ".join(available) or "none"}.')
    pairs = []
    for stem in split_file.read_text().split():
        image = root / 'JPEGImages' / f'{stem}.jpg'
        if not image.is_file():
            candidates = list((root / 'JPEGImages').glob(f'{stem}.*'))
            image = candidates[0] if candidates else image
        label = root / 'SegmentationClass' / f'{stem}.png'
        if not image.is_file() or not label.is_file():
            raise ConfigError(f'VOC split {split} lists {stem} but {image.name if not image.is_file() else label.name} '  # noqa: E501
                              f'is missing under {root}.')
        pairs.append((image, label))
    if not pairs:
        raise ConfigError(f'VOC split file {split_file} is empty.')
    names, colors = _names_and_colors(classes, root, default=VOC_CLASSES,
                                      default_colors=voc_colors(len(VOC_CLASSES)))
    ds = SegmentationDataset(pairs, names, colors, root=root)
    ds.layout = 'voc'
    return ds


def folder_dataset(root: str | os.PathLike[str] | None = None, *,
                   images: str | os.PathLike[str] | None = None,
                   labels: str | os.PathLike[str] | None = None,
                   classes: str | os.PathLike[str] | None = None) -> SegmentationDataset:
    """Generic layout: ``root/images/<stem>.*`` with ``root/labels/<stem>.png`` (or two dirs).

    Labels are 8-bit class-id PNGs (greyscale or palette). Class names come from ``classes``,
    or ``classes.yaml``/``classes.txt`` in ``root``.
    """
    if root is not None:
        root = Path(root)
        images = Path(images) if images is not None else root / 'images'
        labels = Path(labels) if labels is not None else root / 'labels'
    if images is None or labels is None:
        raise ConfigError('The folder layout needs a root (with images/ and labels/) or both '
                          'an images and a labels folder.')
    images, labels = Path(images), Path(labels)
    for folder, what in ((images, 'images'), (labels, 'labels')):
        if not folder.is_dir():
            raise ConfigError(f'{folder} is not a folder: the folder layout expects '
                              f'{what}/ holding files with matching stems '
                              f'(images/0001.png + labels/0001.png).')
    label_files = {p.stem: p for p in labels.iterdir() if p.suffix.lower() == '.png'}
    pairs = []
    for image in sorted(images.iterdir()):
        if image.suffix.lower() in IMAGE_SUFFIXES and image.stem in label_files:
            pairs.append((image, label_files[image.stem]))
    if not pairs:
        raise ConfigError(f'No image/label pairs in {images} and {labels}: expected images '
                          f'and PNG labels with matching file stems.')
    search = [p for p in (root, images.parent) if p is not None]
    names, colors = _names_and_colors(classes, *search, what=str(root or images))
    ds = SegmentationDataset(pairs, names, colors, root=root)
    ds.layout = 'folder'
    return ds


def cityscapes_dataset(root: str | os.PathLike[str], split: str = 'train'
                       ) -> SegmentationDataset:
    """Cityscapes layout: ``leftImg8bit/<split>/<city>/*_leftImg8bit.png`` with
    ``gtFine/<split>/<city>/*_gtFine_labelIds.png``, labelIds mapped to the 19 train ids."""
    root = Path(root)
    image_root = root / 'leftImg8bit' / split
    label_root = root / 'gtFine' / split
    if not image_root.is_dir() or not label_root.is_dir():
        raise ConfigError(f'{root} does not look like Cityscapes split {split!r}: expected '
                          f'leftImg8bit/{split}/<city>/*_leftImg8bit.png and '
                          f'gtFine/{split}/<city>/*_gtFine_labelIds.png.')
    pairs = []
    for image in sorted(image_root.glob('*/*_leftImg8bit.png')):
        stem = image.name[:-len('_leftImg8bit.png')]
        label = label_root / image.parent.name / f'{stem}_gtFine_labelIds.png'
        if not label.is_file():
            raise ConfigError(f'Cityscapes image {image} has no label {label}.')
        pairs.append((image, label))
    if not pairs:
        raise ConfigError(f'No *_leftImg8bit.png files under {image_root}/<city>/.')
    ds = SegmentationDataset(pairs, CITYSCAPES_CLASSES, CITYSCAPES_COLORS,
                             label_lut=_cityscapes_lut(), root=root)
    ds.layout = 'cityscapes'
    return ds


class ConveyorDataset:
    """The synthetic conveyor rendered on the fly: item ``i`` is frame ``offset + i`` of seed.

    Set :attr:`epoch` before each pass to see fresh frames every epoch (the offset moves by
    ``len`` per epoch) while staying reproducible.
    """

    layout = 'conveyor'

    def __init__(self, seed: int, length: int, size: tuple[int, int] = (320, 240), *,
                 fresh_per_epoch: bool = True, density: float = 6.0) -> None:
        from lw_refinenet_ros.data import conveyor

        if not density > 0:
            raise ConfigError(f'The conveyor density (mean parts per 320 px of belt) must be '
                              f'> 0, got {density}.')
        self.seed = int(seed)
        self.density = float(density)
        self.length = int(length)
        self.size = size
        self.fresh_per_epoch = fresh_per_epoch
        self.epoch = 0
        self.class_names = conveyor.CLASS_NAMES
        self.colors = conveyor.CLASS_COLORS

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        return self.render(index)

    def render(self, index: int, **extras: bool) -> tuple[Any, ...]:
        """Item ``index`` as :func:`~lw_refinenet_ros.data.conveyor.render_conveyor_frame`
        draws it (``extras``: its ``return_parts``/``return_instances``). The one place
        that knows which frame an item is (seed, epoch offset, size, density), so that its
        ground truth is always that of the same frame."""
        from lw_refinenet_ros.data.conveyor import frame_rng, render_conveyor_frame

        if not 0 <= index < self.length:
            raise IndexError(index)
        offset = self.epoch * self.length if self.fresh_per_epoch else 0
        return render_conveyor_frame(frame_rng(self.seed, offset + index), self.size,
                                     density=self.density, **extras)

    def name(self, index: int) -> str:
        return f'conveyor_{self.seed}_{index:06d}'


def detect_layout(root: str | os.PathLike[str]) -> str:
    """Guess the layout of a folder (from its sub-folders) or of an annotation file."""
    from lw_refinenet_ros.data.coco import find_coco_file, is_coco, load_json
    from lw_refinenet_ros.data.labelme import is_labelme, labelme_files

    root = Path(root)
    if root.is_file():
        if root.suffix.lower() != '.json':
            raise ConfigError(f'{root} is a file but not an annotation file: pass a COCO '
                              f'instances .json, or a dataset folder.')
        data = load_json(root)
        if is_coco(data):
            return 'coco'
        if is_labelme(data):
            raise ConfigError(f'{root} is a single LabelMe file: pass the folder that holds '
                              f'the LabelMe files ({root.parent}).')
        keys = sorted(data) if isinstance(data, dict) else type(data).__name__
        raise ConfigError(f'{root} is not a COCO instances file: it needs the lists "images", '
                          f'"annotations" and "categories", and has {keys}. Export "COCO" '
                          f'(instances, with masks or polygons) from the annotation tool.')
    if (root / 'JPEGImages').is_dir() or (root / 'VOC2012' / 'JPEGImages').is_dir():
        return 'voc'
    if (root / 'leftImg8bit').is_dir():
        return 'cityscapes'
    if (root / 'images').is_dir() and (root / 'labels').is_dir():
        return 'folder'
    coco = find_coco_file(root)
    if coco is not None and is_coco(load_json(coco)):
        return 'coco'
    if labelme_files(root):
        return 'labelme'
    if (root / 'images').is_dir():
        return 'folder'
    raise ConfigError(f'Cannot tell the dataset layout of {root}: expected JPEGImages/ (VOC), '
                      f'leftImg8bit/ + gtFine/ (Cityscapes), images/ + labels/ (folder), a '
                      f'COCO file (annotations/instances_default.json, or pass the .json '
                      f'itself) or LabelMe .json files. Pass --layout to say which.')


def annotation_dataset(data: str | os.PathLike[str], layout: str, *,
                       images: str | os.PathLike[str] | None = None,
                       classes: str | os.PathLike[str] | None = None,
                       strict: bool = True):
    """A COCO file (or export folder) or a LabelMe folder as an
    :class:`~lw_refinenet_ros.data.annotated.AnnotatedDataset`.

    With ``strict`` any problem found (missing image, polygon outside the image, ...) is a
    ConfigError listing them; without, they are left in ``ds.problems`` (``data check``).
    """
    from lw_refinenet_ros.data.annotated import raise_problems
    from lw_refinenet_ros.data.coco import find_coco_file, read_coco
    from lw_refinenet_ros.data.labelme import read_labelme

    path = Path(data)
    if layout == 'coco':
        if path.is_dir():
            found = find_coco_file(path)
            if found is None:
                raise ConfigError(f'No COCO file in {path}: expected '
                                  f'annotations/instances_default.json (CVAT), '
                                  f'_annotations.coco.json (Roboflow) or result.json (Label '
                                  f'Studio); pass --data with the .json file.')
            path = found
        ds = read_coco(path, images=images, classes=classes)
    else:
        ds = read_labelme(path, images=images, classes=classes)
    if strict:
        raise_problems(ds.problems, str(path))
        if len(ds) == 0:
            raise ConfigError(f'{path} annotates no images; export it with its images.')
    return ds


def open_dataset(data: str | os.PathLike[str], layout: str = 'auto', split: str = 'train', *,
                 classes: str | os.PathLike[str] | None = None, conveyor_length: int = 1000,
                 size: tuple[int, int] = (320, 240),
                 images: str | os.PathLike[str] | None = None):
    """Open a dataset by layout name.

    ``images`` is the image folder of a COCO file or LabelMe folder (default: found next to
    the annotations); ``split`` applies to VOC and Cityscapes only.

    ``layout='conveyor'`` renders frames on the fly; ``data`` is then the seed (an integer,
    optionally written ``conveyor:SEED``), optionally followed by ``,density=D`` (mean parts
    per 320 px of belt, default 6; denser belts show more parts lying on each other).
    """
    if layout not in LAYOUTS:
        raise ConfigError(f'Unknown layout {layout!r}; expected one of {", ".join(LAYOUTS)}.')
    text = str(data)
    if layout == 'conveyor' or (layout == 'auto' and text.startswith('conveyor:')):
        spec = text.split(':', 1)[1] if text.startswith('conveyor:') else text
        seed_text, *options = spec.split(',')
        density = 6.0
        try:
            seed = int(seed_text)
            for option in options:
                key, _, value = option.partition('=')
                if key.strip() != 'density':
                    raise ValueError(option)
                density = float(value)
        except ValueError:
            raise ConfigError(f'The conveyor layout takes a seed and optionally a density '
                              f'(conveyor:SEED or conveyor:SEED,density=D), got '
                              f'{text!r}.') from None
        return ConveyorDataset(seed, conveyor_length, size, density=density)
    path = Path(data)
    if not path.exists():
        raise ConfigError(f'Dataset {path} does not exist.')
    if layout == 'auto':
        layout = detect_layout(path)
    if layout in ('coco', 'labelme'):
        return annotation_dataset(path, layout, images=images, classes=classes)
    if layout == 'voc':
        return voc_dataset(path, split, classes=classes)
    if layout == 'cityscapes':
        return cityscapes_dataset(path, split)
    return folder_dataset(path, classes=classes)


def scored_samples(dataset: Sequence, *, limit: int | None = None,
                   transform: Callable[[np.ndarray], np.ndarray] | None = None,
                   progress: bool = False,
                   desc: str = 'eval') -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """``(index, image, labels)`` of the first ``limit`` items, the image-only ``transform``
    applied: the one loop every evaluation (pixels, objects) walks, so that they all score
    the same frames the same way."""
    count = len(dataset) if limit is None else min(limit, len(dataset))
    indices: Any = range(count)
    if progress:
        from tqdm import tqdm

        indices = tqdm(indices, desc=desc, unit='img')
    for index in indices:
        image, labels = dataset[index]
        yield index, (image if transform is None else transform(image)), labels
