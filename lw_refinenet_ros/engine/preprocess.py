"""Image -> normalised network input, written once for every backend.

The reference normalisation is ``(v / 255 - mean) / std`` in float64, rounded to float32.
There are only 256 byte values per channel, so the engine computes those 768 numbers once in
float64 and then gathers through the table: bit-identical to the reference and cheaper than
per-pixel arithmetic. On the CPU the gather is OpenCV's ``LUT`` straight into the batch
array a backend takes; on a CUDA device it is a ``torch.take`` after uploading the uint8
image, so that only a quarter of the bytes cross the bus.

Downscaling for ``max_side`` happens after normalisation (normalisation is affine per
channel, so this equals resizing the uint8 image first) with antialiased bilinear
interpolation, which avoids aliasing when shrinking: torch's on a device, the same filter in
numpy on the CPU (:mod:`.resample`, equal to float32 rounding), so that a CPU engine whose
network runs on OpenVINO or ONNX Runtime never imports torch.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from lw_refinenet_ros.constants import IMAGENET_MEAN, IMAGENET_STD
from lw_refinenet_ros.engine.resample import shrink_chw
from lw_refinenet_ros.errors import EngineError

COLOR_ORDERS: tuple[str, ...] = ('rgb', 'bgr')


def normalization_lut() -> np.ndarray:
    """(3, 256) float32: ``(v / 255 - mean[c]) / std[c]`` computed in float64, rounded once.

    This is exactly what the reference's float64 preprocessing followed by ``.float()`` gives
    for every byte value, so a gather through this table reproduces it bit for bit.
    """
    values = np.arange(256, dtype=np.float64) / 255.0
    mean = np.asarray(IMAGENET_MEAN, dtype=np.float64)[:, None]
    std = np.asarray(IMAGENET_STD, dtype=np.float64)[:, None]
    return ((values[None, :] - mean) / std).astype(np.float32)


def check_image(image: Any, index: int | None = None) -> np.ndarray:
    """Return ``image`` if it is a non-empty (H, W, 3) uint8 array, else raise EngineError."""
    where = 'image' if index is None else f'image {index}'
    if not isinstance(image, np.ndarray):
        raise EngineError(f'{where} must be a numpy array, got {type(image).__name__}.')
    if image.dtype != np.uint8:
        raise EngineError(f'{where} must be uint8 (0..255), got {image.dtype}; convert '
                          f'16-bit or float images before segmenting.')
    if image.ndim != 3 or image.shape[2] != 3:
        raise EngineError(f'{where} must be H x W x 3 (colour), got shape {image.shape}; '
                          f'convert mono or RGBA images to 3 channels first.')
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise EngineError(f'{where} is empty (shape {image.shape}).')
    return image


def network_size(height: int, width: int, max_side: int) -> tuple[int, int]:
    """The (height, width) the network runs at: native, or shrunk to ``max_side`` (0 = off)."""
    if not max_side or max(height, width) <= max_side:
        return height, width
    scale = max_side / max(height, width)
    return max(1, round(height * scale)), max(1, round(width * scale))


def _shrink(chw: Any, size: tuple[int, int]) -> Any:
    """Antialiased bilinear resize of a (3, h, w) float tensor (torch, any device)."""
    import torch.nn.functional as F

    return F.interpolate(chw[None], size=size, mode='bilinear', align_corners=False,
                         antialias=True)[0]


class CpuPreprocessor:
    """uint8 HWC images -> one C-contiguous (N, 3, h, w) float32 numpy batch."""

    def __init__(self) -> None:
        lut = normalization_lut()
        # cv2.LUT maps input channel i through table channel i: for BGR input, channel 0
        # (blue) takes the blue row, and the planes are then written in RGB order.
        self._tables = {'rgb': np.ascontiguousarray(lut.T[None]),
                        'bgr': np.ascontiguousarray(lut[::-1].T[None])}

    def __call__(self, images: list[np.ndarray], orders: list[str],
                 size: tuple[int, int]) -> np.ndarray:
        """Normalise ``images`` (all the same size) into a batch at network ``size``."""
        import cv2

        batch = np.empty((len(images), 3) + tuple(size), dtype=np.float32)
        for i, (image, order) in enumerate(zip(images, orders)):
            hwc = cv2.LUT(np.ascontiguousarray(image), self._tables[order])
            chw = hwc.transpose(2, 0, 1)
            if order == 'bgr':
                chw = chw[::-1]
            if tuple(image.shape[:2]) != tuple(size):
                # torch's antialiased bilinear in numpy (resample.py): no torch on the CPU.
                # On contiguous planes: on the transposed view its strided slices gather
                # across the interleaved channels (5.2 against 1.9 ms at 640x480).
                chw = shrink_chw(np.ascontiguousarray(chw), size)
            np.copyto(batch[i], chw)
        return batch


class TorchPreprocessor:
    """uint8 HWC images -> normalised (N, 3, h, w) float32 tensor on a torch device."""

    def __init__(self, device: Any) -> None:
        import torch

        self._device = device
        self._is_cuda = torch.device(device).type == 'cuda'
        self._lut = torch.from_numpy(normalization_lut().reshape(-1)).to(device)
        self._offsets = {
            'rgb': torch.tensor([0, 256, 512], device=device).view(3, 1, 1),
            'bgr': torch.tensor([512, 256, 0], device=device).view(3, 1, 1),
        }

    def one(self, image: np.ndarray, order: str, size: tuple[int, int]) -> Any:
        """One image -> (3, h, w) float32 tensor on the device."""
        import torch

        tensor = torch.from_numpy(np.ascontiguousarray(image))
        if self._is_cuda:
            tensor = tensor.pin_memory().to(self._device, non_blocking=True)
        index = tensor.permute(2, 0, 1).to(torch.int64) + self._offsets[order]
        x = torch.take(self._lut, index)
        if order == 'bgr':
            x = x.flip(0)
        if tuple(image.shape[:2]) != tuple(size):
            x = _shrink(x, size)
        return x

    def __call__(self, images: list[np.ndarray], orders: list[str],
                 size: tuple[int, int]) -> Any:
        """Normalise ``images`` (all the same size) into a device batch."""
        import torch

        tensors = [self.one(image, order, size) for image, order in zip(images, orders)]
        return tensors[0][None] if len(tensors) == 1 else torch.stack(tensors)
