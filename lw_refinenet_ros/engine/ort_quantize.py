"""ONNX Runtime static int8 (QDQ): the int8 path for machines without OpenVINO.

The exported fp32 ONNX file is quantized by ONNX Runtime's own tool (``quantize_static``, QDQ
format: QuantizeLinear/DequantizeLinear pairs that the CPU provider fuses into int8
kernels), calibrated on the same frames the OpenVINO path uses (a folder of the user's
images, or an :class:`~lw_refinenet_ros.engine.quantize.Int8Calibration` in memory).
Activations are unsigned and weights signed 8-bit, per output channel: the x86 "U8S8"
layout ONNX Runtime's CPU kernels are written for. The result is cached like every build,
keyed by the calibration's identity; without calibration, the newest cached one for these
weights, size and runtime is used.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from lw_refinenet_ros.engine.backends.base import BackendRequest
from lw_refinenet_ros.engine.cache import ArtifactCache, files_sha256
from lw_refinenet_ros.engine.export import INPUT_NAME, cached_onnx, export_identity
from lw_refinenet_ros.engine.quantize import (
    MAX_CALIBRATION_IMAGES,
    Int8Calibration,
    calibration_images,
    preprocess_for_network,
)
from lw_refinenet_ros.errors import ConfigError, EngineError

_LOG = logging.getLogger(__name__)

QDQ_FILE = 'model_int8.onnx'


def _runtime() -> str:
    """The ONNX Runtime in use (the module's own version: this module must not import the
    backend, which imports it)."""
    import onnxruntime

    return f'onnxruntime {onnxruntime.__version__}'


def qdq_cache_parts(weights_id: str, size: tuple[int, int],
                    calibration_id: str) -> dict[str, Any]:
    """Key of one QDQ int8 model (the calibration's identity included)."""
    return {'artifact': 'onnxruntime-qdq-int8', 'weights': weights_id, 'size': list(size),
            'runtime': _runtime(), 'calibration': calibration_id, **export_identity()}


def _batches(request: BackendRequest, size: tuple[int, int]) -> tuple[str, str,
                                                                       list[np.ndarray]]:
    """(identity, words, preprocessed batches) of the request's calibration source."""
    import cv2

    calibration = request.extra.get('calibration')
    if request.calibration_dir is not None:
        files = calibration_images(Path(request.calibration_dir))
        batches = []
        for path in files:
            image = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if image is not None:
                batches.append(preprocess_for_network(image, size))
        if not batches:
            raise ConfigError(f'none of the {len(files)} calibration images could be read; '
                              f'pass a folder of PNG or JPEG camera frames.')
        return files_sha256(files), f'{len(batches)} images', batches
    if isinstance(calibration, Int8Calibration):
        batches = [preprocess_for_network(np.ascontiguousarray(frame[:, :, ::-1]), size)
                   for frame in calibration.frames[:MAX_CALIBRATION_IMAGES]]
        return calibration.identity, calibration.source, batches
    raise ConfigError('no calibration frames')


class _Reader:
    """ONNX Runtime's CalibrationDataReader over preprocessed batches."""

    def __init__(self, batches: list[np.ndarray]) -> None:
        self._iterator: Iterator[np.ndarray] = iter(batches)

    def get_next(self) -> dict[str, np.ndarray] | None:
        batch = next(self._iterator, None)
        return None if batch is None else {INPUT_NAME: batch}


def cached_qdq_model(model: Any, request: BackendRequest, cache: ArtifactCache,
                     weights_id: str, size: tuple[int, int]) -> Path:
    """Path of the QDQ int8 ONNX file for ``size``: built from the request's calibration on
    a miss, or (with none) the newest one cached for these weights, size and runtime.

    Raises:
        ConfigError: no calibration and nothing cached; unreadable calibration images.
        EngineError: ONNX Runtime's quantizer failed.
    """
    has_source = request.calibration_dir is not None or \
        isinstance(request.extra.get('calibration'), Int8Calibration)
    if not has_source:
        match = {k: v for k, v in qdq_cache_parts(weights_id, size, 'any').items()
                 if k != 'calibration'}
        found = cache.find('onnxruntime', match, (QDQ_FILE,))
        if found is None:
            raise ConfigError(
                f'precision int8 on ONNX Runtime needs an int8 model for {size[0]}x{size[1]} '
                f'and none is cached in {cache.root}: set calibration_dir (CLI '
                f'--calibration-dir) to a folder of your own camera images to build one.')
        return found / QDQ_FILE
    identity, source, batches = _batches(request, size)

    def build(folder: Path) -> None:
        from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

        fp32 = cached_onnx(model, cache, weights_id, size) / 'model.onnx'
        try:
            quantize_static(str(fp32), str(folder / QDQ_FILE), _Reader(batches),
                            quant_format=QuantFormat.QDQ, per_channel=True,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
        except Exception as error:  # the quantizer raises many types
            raise EngineError(f'ONNX Runtime int8 quantization failed: {error}') from error

    folder = cache.get_or_build('onnxruntime', qdq_cache_parts(weights_id, size, identity),
                                (QDQ_FILE,), build,
                                what=f'ONNX Runtime int8 (QDQ) model {size[0]}x{size[1]} '
                                     f'({source})')
    return folder / QDQ_FILE


def find_qdq(cache: ArtifactCache, weights_id: str, size: tuple[int, int]) -> Path | None:
    """The newest valid QDQ int8 model cached for these weights, size and runtime."""
    match = {k: v for k, v in qdq_cache_parts(weights_id, size, 'any').items()
             if k != 'calibration'}
    return cache.find('onnxruntime', match, (QDQ_FILE,))
