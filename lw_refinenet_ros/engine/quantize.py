"""int8 post-training quantization with NNCF, calibrated on a folder of the user's images.

int8 is only as good as its calibration: the activation ranges come from images like the ones
the camera will see, so the user names a folder of their own frames. NNCF quantizes the
OpenVINO fp32 IR (its OpenVINO path: no torch model is traced, no second torch is installed)
and the result is cached like any other build, keyed additionally by a hash of the
calibration images, so that new images give a new model and the same images never rebuild.

The images are preprocessed exactly as the engine does it (RGB, ImageNet normalisation) after
resizing to the network input size.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from lw_refinenet_ros.constants import IMAGENET_MEAN, IMAGENET_STD
from lw_refinenet_ros.engine.backends.base import BackendRequest
from lw_refinenet_ros.engine.cache import ArtifactCache, files_sha256
from lw_refinenet_ros.engine.openvino_ir import IR_FILES, cached_ir, ir_cache_parts
from lw_refinenet_ros.errors import ConfigError

_LOG = logging.getLogger(__name__)

IMAGE_SUFFIXES = ('.png', '.jpg', '.jpeg', '.bmp', '.ppm', '.pgm', '.tif', '.tiff', '.webp')
#: At most this many images are used (NNCF's own default subset size).
MAX_CALIBRATION_IMAGES = 300


def calibration_images(folder: Path) -> list[Path]:
    """The image files used for calibration, sorted by name.

    A folder with an ``images/`` sub-folder (the layout ``lw-refinenet make-dataset`` and
    ``train`` use) is read from there, so that label PNGs next to it are never taken for
    camera frames; otherwise the image files directly in ``folder``.

    Raises:
        ConfigError: the folder does not exist or holds no images (naming the suffixes).
    """
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise ConfigError(f'calibration folder {folder} does not exist or is not a folder; '
                          f'pass a folder of your own camera images (--calibration DIR).')
    source = folder / 'images' if (folder / 'images').is_dir() else folder
    files = sorted(p for p in source.iterdir()
                   if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ConfigError(
            f'calibration folder {source} holds no images ({", ".join(IMAGE_SUFFIXES)}); '
            f'int8 needs 50-300 frames like the ones the camera will see. Record some '
            f'(or generate them: lw-refinenet make-dataset conveyor --out DIR --count 100) '
            f'and pass that folder.')
    return files[:MAX_CALIBRATION_IMAGES]


def calibration_id(folder: Path) -> str:
    """Hash of the calibration images' names and contents (part of the int8 cache key)."""
    return files_sha256(calibration_images(folder))


def preprocess_for_network(image_bgr: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A BGR uint8 frame -> the (1, 3, h, w) float32 network input the engine would make."""
    import cv2

    height, width = size
    if image_bgr.shape[:2] != (height, width):
        shrink = image_bgr.shape[0] > height or image_bgr.shape[1] > width
        image_bgr = cv2.resize(image_bgr, (width, height),
                               interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    rgb = image_bgr[:, :, ::-1].astype(np.float64) / 255.0
    normalised = (rgb - np.asarray(IMAGENET_MEAN)) / np.asarray(IMAGENET_STD)
    return np.ascontiguousarray(normalised.transpose(2, 0, 1)[None], dtype=np.float32)


def _calibration_batches(files: list[Path], size: tuple[int, int]) -> Iterator[np.ndarray]:
    import cv2

    for path in files:
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            _LOG.warning('calibration: skipping %s (not a readable image)', path)
            continue
        yield preprocess_for_network(image, size)


def quantize_ir(fp32_xml: Path, out_xml: Path, files: list[Path], size: tuple[int, int],
                *, preset: str = 'mixed') -> int:
    """Quantize the fp32 IR ``fp32_xml`` to int8 at ``out_xml``; returns images used.

    Raises:
        ConfigError: no calibration image could be read.
    """
    import nncf
    import openvino

    batches = list(_calibration_batches(files, size))
    if not batches:
        raise ConfigError(f'none of the {len(files)} calibration images could be read; '
                          f'pass a folder of PNG or JPEG camera frames.')
    core = openvino.Core()
    network = core.read_model(str(fp32_xml))
    network.reshape([1, 3, size[0], size[1]])
    presets = {'mixed': nncf.QuantizationPreset.MIXED,
               'performance': nncf.QuantizationPreset.PERFORMANCE}
    _LOG.info('NNCF: calibrating int8 on %d images at %dx%d ...', len(batches), *size)
    quantized = nncf.quantize(network, nncf.Dataset(batches), preset=presets[preset],
                              subset_size=len(batches))
    openvino.save_model(quantized, str(out_xml), compress_to_fp16=False)
    return len(batches)


def cached_int8_ir(model: Any, request: BackendRequest, cache: ArtifactCache, weights_id: str,
                   size: tuple[int, int]) -> Path:
    """Folder holding the int8 IR for ``size`` and ``request.calibration_dir``.

    Built (fp32 IR, then NNCF) on a cache miss; the calibration images' hash is in the key.
    Without a calibration folder, the newest valid int8 model cached for these weights, size
    and runtime version is used (the one ``lw-refinenet quantize`` built).

    Raises:
        ConfigError: a calibration folder without images, or none and nothing cached.
    """
    if request.calibration_dir is None:
        match = {k: v for k, v in ir_cache_parts(request, weights_id, size, 'any').items()
                 if k != 'calibration'}
        found = cache.find('openvino', match, IR_FILES)
        if found is None:
            raise ConfigError(
                f'precision int8 needs an int8 model for {size[0]}x{size[1]} and none is '
                f'cached in {cache.root}: set calibration_dir (CLI --calibration-dir) to a '
                f'folder of your own camera images to build one, or build it first with '
                f'`lw-refinenet quantize --calibration DIR --size {size[0]}x{size[1]}`.')
        _LOG.info('int8: using the cached model calibrated earlier (%s)', found)
        return found
    files = calibration_images(Path(request.calibration_dir))
    identity = files_sha256(files)
    preset = str(request.extra.get('int8_preset', 'mixed'))
    parts = ir_cache_parts(request, weights_id, size, identity)
    parts['preset'] = preset

    def build(folder: Path) -> None:
        fp32 = cached_ir(model, request, cache, weights_id, size)
        quantize_ir(fp32 / IR_FILES[0], folder / IR_FILES[0], files, size, preset=preset)

    return cache.get_or_build('openvino', parts, IR_FILES, build,
                              what=f'OpenVINO int8 model {size[0]}x{size[1]} '
                                   f'({len(files)} calibration images)')
