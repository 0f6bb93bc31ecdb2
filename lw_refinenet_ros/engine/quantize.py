"""int8 post-training quantization with NNCF, calibrated on frames like the camera's.

int8 is only as good as its calibration: the activation ranges come from images like the ones
the camera will see. They come from a folder of the user's frames (``calibration_dir``), or
as a list of frames in memory (:class:`Int8Calibration`: a node's camera frames, or the
conveyor generator's frames for the packaged default model), through :func:`prepare_int8`,
which callers may run in a background thread at low priority. NNCF quantizes the
OpenVINO fp32 IR (its OpenVINO path: no torch model is traced, no second torch is installed)
and the result is cached like any other build, keyed additionally by a hash of the
calibration images, so that new images give a new model and the same images never rebuild.

The images are preprocessed exactly as the engine does it (RGB, ImageNet normalisation) after
resizing to the network input size.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
from pathlib import Path
import threading
from typing import Any, Iterator, Sequence

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


#: Fewer frames than this give activation ranges too narrow to trust.
MIN_CALIBRATION_FRAMES = 8


@dataclasses.dataclass(frozen=True)
class Int8Calibration:
    """Frames to calibrate int8 on, held in memory, and where they came from.

    Attributes:
        frames: RGB uint8 (H, W, 3) frames (any size: resized to the network input as the
            engine does); at most :data:`MAX_CALIBRATION_IMAGES` are used.
        source: Words for logs and ``describe()`` (``'conveyor generator, seed 5100'``).
        identity: What the cache key holds; default: a hash of the frames' bytes.
    """

    frames: Sequence[np.ndarray]
    source: str
    identity: str = ''

    def __post_init__(self) -> None:
        if len(self.frames) < MIN_CALIBRATION_FRAMES:
            raise ConfigError(f'int8 calibration needs at least {MIN_CALIBRATION_FRAMES} '
                              f'frames, got {len(self.frames)} ({self.source}); gather more '
                              f'frames like the camera will see.')
        for index, frame in enumerate(self.frames):
            if not (isinstance(frame, np.ndarray) and frame.dtype == np.uint8
                    and frame.ndim == 3 and frame.shape[2] == 3):
                raise ConfigError(f'calibration frame {index} ({self.source}) is not an RGB '
                                  f'uint8 (H, W, 3) array.')
        if not self.identity:
            digest = hashlib.sha256()
            for frame in self.frames[:MAX_CALIBRATION_IMAGES]:
                digest.update(str(frame.shape).encode('ascii'))
                digest.update(np.ascontiguousarray(frame).tobytes())
            object.__setattr__(self, 'identity', digest.hexdigest())


def quantize_ir(fp32_xml: Path, out_xml: Path, files: list[Path], size: tuple[int, int],
                *, preset: str = 'mixed') -> int:
    """Quantize the fp32 IR ``fp32_xml`` to int8 at ``out_xml`` from image files; returns
    the images used.

    Raises:
        ConfigError: no calibration image could be read.
    """
    batches = list(_calibration_batches(files, size))
    if not batches:
        raise ConfigError(f'none of the {len(files)} calibration images could be read; '
                          f'pass a folder of PNG or JPEG camera frames.')
    return quantize_batches(fp32_xml, out_xml, batches, size, preset=preset)


def quantize_batches(fp32_xml: Path, out_xml: Path, batches: list[np.ndarray],
                     size: tuple[int, int], *, preset: str = 'mixed') -> int:
    """Quantize from preprocessed (1, 3, h, w) batches; returns how many were used."""
    import nncf
    import openvino

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


def int8_cache_match(request: BackendRequest, weights_id: str,
                     size: tuple[int, int]) -> dict[str, Any]:
    """The key parts every int8 IR of these weights, size and runtime shares (whatever it
    was calibrated on)."""
    return {k: v for k, v in ir_cache_parts(request, weights_id, size, 'any').items()
            if k != 'calibration'}


def find_int8(cache: ArtifactCache, request: BackendRequest, weights_id: str,
              size: tuple[int, int]) -> Path | None:
    """The newest valid int8 IR cached for these weights, size and runtime, or None."""
    return cache.find('openvino', int8_cache_match(request, weights_id, size), IR_FILES)


def cached_int8_ir(model: Any, request: BackendRequest, cache: ArtifactCache, weights_id: str,
                   size: tuple[int, int]) -> Path:
    """Folder holding the int8 IR for ``size``, from ``request.calibration_dir``, else from
    the :class:`Int8Calibration` in ``request.extra['calibration']``, else the newest one
    cached for these weights, size and runtime version.

    Built (fp32 IR, then NNCF) on a cache miss; the calibration's identity is in the key.

    Raises:
        ConfigError: a calibration folder without images, or none and nothing cached.
    """
    calibration = request.extra.get('calibration')
    if request.calibration_dir is None and isinstance(calibration, Int8Calibration):
        return _int8_from_frames(model, request, cache, weights_id, size, calibration)
    if request.calibration_dir is None:
        found = find_int8(cache, request, weights_id, size)
        if found is None:
            raise ConfigError(
                f'precision int8 needs an int8 model for {size[0]}x{size[1]} and none is '
                f'cached in {cache.root}: set calibration_dir (CLI --calibration-dir) to a '
                f'folder of your own camera images to build one, or build it first with '
                f'`lw-refinenet quantize --calibration DIR --size {size[1]}x{size[0]}`.')
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


def _int8_from_frames(model: Any, request: BackendRequest, cache: ArtifactCache,
                      weights_id: str, size: tuple[int, int],
                      calibration: Int8Calibration) -> Path:
    preset = str(request.extra.get('int8_preset', 'mixed'))
    parts = ir_cache_parts(request, weights_id, size, calibration.identity)
    parts['preset'] = preset
    frames = list(calibration.frames[:MAX_CALIBRATION_IMAGES])

    def build(folder: Path) -> None:
        fp32 = cached_ir(model, request, cache, weights_id, size)
        batches = [preprocess_for_network(np.ascontiguousarray(frame[:, :, ::-1]), size)
                   for frame in frames]
        quantize_batches(fp32 / IR_FILES[0], folder / IR_FILES[0], batches, size,
                         preset=preset)

    return cache.get_or_build('openvino', parts, IR_FILES, build,
                              what=f'OpenVINO int8 model {size[0]}x{size[1]} ({len(frames)} '
                                   f'frames: {calibration.source})')


def prepare_int8(model: Any, calibration: Int8Calibration, size: tuple[int, int],
                 cache_dir: Path | str, *, weights_id: str | None = None,
                 low_priority: bool = False) -> Path:
    """Build (or find) the int8 OpenVINO model of ``model`` at ``size`` (height, width)
    calibrated on ``calibration``, in the runtime cache; the next engine built with
    ``precision: auto`` offers it (behind the agreement gate).

    Safe to call from a background thread while an engine runs: with ``low_priority`` the
    calling thread's nice value is raised for the build (Linux), so the stream keeps the
    CPU. Nothing half-built is ever left in the cache (a failure raises and leaves none).

    Raises:
        ConfigError: OpenVINO/NNCF missing, too few or bad frames, an unwritable cache.
        EngineError: the conversion or quantization failed.
    """
    import importlib.util

    from lw_refinenet_ros.engine.export import model_fingerprint

    for package in ('openvino', 'nncf'):
        if importlib.util.find_spec(package) is None:
            raise ConfigError(f'int8 needs {package} (pip install {package}).')
    request = BackendRequest(precision='int8', input_size=tuple(size), cache_dir=Path(cache_dir),
                             extra={'calibration': calibration})
    weights_id = weights_id or model_fingerprint(model)
    cache = ArtifactCache(request.cache_dir)
    with _nice(10 if low_priority else 0):
        return _int8_from_frames(model, request, cache, weights_id, tuple(size), calibration)


class _nice:
    """Raise this thread's nice value for a block (Linux threads have their own)."""

    def __init__(self, increment: int) -> None:
        self.increment = increment
        self.previous: int | None = None

    def __enter__(self) -> None:
        if self.increment <= 0 or not hasattr(os, 'setpriority'):
            return
        tid = threading.get_native_id()
        try:
            self.previous = os.getpriority(os.PRIO_PROCESS, tid)
            os.setpriority(os.PRIO_PROCESS, tid, min(19, self.previous + self.increment))
        except OSError:
            self.previous = None

    def __exit__(self, *exc: object) -> None:
        if self.previous is None:
            return
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), self.previous)
        except OSError:  # lowering it back needs privileges the process may not have
            pass

