"""sensor_msgs Image / CompressedImage <-> numpy, written here because PyPI's cv-bridge is a
broken ROS 1 port (docs/architecture.md §7).

Reading honours ``step`` (padded rows) and ``is_bigendian`` and checks every size before
touching the data (for compressed images, the size their header declares), so a malformed
message raises ImageConversionError (counted as a failed frame by the node) instead of
crashing or reading garbage; failures inside OpenCV are turned into that error too. Writing
fills ``msg.data`` through ``array.array('B').frombytes`` - the fastest way that also stays
fast with ROS_PYTHON_CHECK_FIELDS=1.
"""

from __future__ import annotations

import array
from typing import Any

import cv2
import numpy as np
from sensor_msgs.msg import CompressedImage, Image

from lw_refinenet_ros.errors import ImageConversionError

# encoding -> (numpy dtype, channels)
_LAYOUTS: dict[str, tuple[str, int]] = {
    'rgb8': ('u1', 3), 'bgr8': ('u1', 3), 'rgba8': ('u1', 4), 'bgra8': ('u1', 4),
    'mono8': ('u1', 1), '8UC1': ('u1', 1), '8UC3': ('u1', 3), '8UC4': ('u1', 4),
    'mono16': ('u2', 1), '16UC1': ('u2', 1), 'rgb16': ('u2', 3), 'bgr16': ('u2', 3),
    '32FC1': ('f4', 1),
    'yuv422': ('u1', 2), 'uyvy': ('u1', 2), 'yuv422_yuy2': ('u1', 2), 'yuyv': ('u1', 2),
    'bayer_rggb8': ('u1', 1), 'bayer_bggr8': ('u1', 1), 'bayer_gbrg8': ('u1', 1),
    'bayer_grbg8': ('u1', 1),
}
# OpenCV names Bayer patterns after the second row's first two pixels.
_BAYER = {'bayer_rggb8': cv2.COLOR_BayerBG2RGB, 'bayer_bggr8': cv2.COLOR_BayerRG2RGB,
          'bayer_gbrg8': cv2.COLOR_BayerGR2RGB, 'bayer_grbg8': cv2.COLOR_BayerGB2RGB}
_YUV = {'yuv422': cv2.COLOR_YUV2RGB_UYVY, 'uyvy': cv2.COLOR_YUV2RGB_UYVY,
        'yuv422_yuy2': cv2.COLOR_YUV2RGB_YUY2, 'yuyv': cv2.COLOR_YUV2RGB_YUY2}
SUPPORTED_ENCODINGS = tuple(_LAYOUTS)


def image_to_array(msg: Image, max_pixels: int = 1 << 30) -> np.ndarray:
    """View the message's pixels as (H, W, C) (or (H, W) for one channel) in native order.

    The result may share memory with the message; copy it to keep it.

    Raises:
        ImageConversionError: Unknown encoding, zero or too large size, ``step`` smaller
            than a row, data shorter than ``step * height``, odd width for YUV 4:2:2.
    """
    encoding = msg.encoding
    if encoding not in _LAYOUTS:
        raise ImageConversionError(
            f'unsupported encoding {encoding!r}; supported: {", ".join(SUPPORTED_ENCODINGS)}')
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    if height <= 0 or width <= 0:
        raise ImageConversionError(f'empty image ({width}x{height})')
    if height * width > max_pixels:
        raise ImageConversionError(f'image of {width}x{height} exceeds max_image_pixels '
                                   f'({max_pixels})')
    code, channels = _LAYOUTS[encoding]
    dtype = np.dtype(('>' if msg.is_bigendian else '<') + code) if code != 'u1' \
        else np.dtype(np.uint8)
    if channels == 2:  # YUV 4:2:2 packs two pixels in four bytes
        if width % 2:
            raise ImageConversionError(f'{encoding} needs an even width, got {width}')
    row_bytes = width * channels * dtype.itemsize
    if step < row_bytes:
        raise ImageConversionError(f'step {step} is smaller than one row of {width} '
                                   f'{encoding} pixels ({row_bytes} bytes)')
    data = msg.data
    size = len(data)
    if size < step * height:
        raise ImageConversionError(f'data has {size} bytes, expected step * height = '
                                   f'{step * height}; the message is truncated')
    buffer = np.frombuffer(data, np.uint8, count=step * height).reshape(height, step)
    pixels = buffer[:, :row_bytes]
    if dtype.itemsize > 1:
        pixels = np.ascontiguousarray(pixels).view(dtype).astype(dtype.newbyteorder('='))
    shape = (height, width) if channels == 1 else (height, width, channels)
    return pixels.reshape(shape)


def image_to_rgb(msg: Image, max_pixels: int = 1 << 30) -> tuple[np.ndarray, str]:
    """Convert any supported encoding to (H, W, 3) uint8 plus its colour order.

    Colour images keep their order (``'rgb'`` or ``'bgr'``) so that the engine does the
    swap on the device for free. Grey images are replicated to three channels; 16-bit
    images are scaled by 1/256 (full range); float images are taken as intensities in [0, 1].

    Raises:
        ImageConversionError: As :func:`image_to_array`, plus NaN/Inf in float images, and
            any failure inside OpenCV or numpy while converting (one bad frame is one
            error of the project's kind, never a crash of the caller's batch).
    """
    try:
        return _image_to_rgb(msg, max_pixels)
    except ImageConversionError:
        raise
    except (cv2.error, ValueError, TypeError, MemoryError, OverflowError) as error:
        raise ImageConversionError(f'cannot convert {msg.encoding!r} image of '
                                   f'{msg.width}x{msg.height}: {_cause(error)}') from error


def _cause(error: BaseException) -> str:
    """One line naming an exception from OpenCV or numpy (cv2.error messages span lines)."""
    text = ' '.join(str(error).split())
    return f'{type(error).__name__}: {text}' if text else type(error).__name__


def _image_to_rgb(msg: Image, max_pixels: int) -> tuple[np.ndarray, str]:
    pixels = image_to_array(msg, max_pixels)
    encoding = msg.encoding
    if encoding in _BAYER:
        return cv2.cvtColor(np.ascontiguousarray(pixels), _BAYER[encoding]), 'rgb'
    if encoding in _YUV:
        return cv2.cvtColor(np.ascontiguousarray(pixels), _YUV[encoding]), 'rgb'
    if pixels.dtype == np.float32:
        if not np.isfinite(pixels).all():
            raise ImageConversionError(f'{encoding} image contains NaN or Inf values')
        pixels = (np.clip(pixels, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    elif pixels.dtype == np.uint16:
        pixels = (pixels >> 8).astype(np.uint8)
    if pixels.ndim == 2:
        return np.repeat(pixels[:, :, None], 3, axis=2), 'rgb'
    order = 'bgr' if encoding.startswith('bgr') else 'rgb'
    return np.ascontiguousarray(pixels[:, :, :3]), order


def compressed_to_rgb(msg: CompressedImage, max_pixels: int = 1 << 30) -> tuple[np.ndarray, str]:
    """Decode a JPEG/PNG CompressedImage to (H, W, 3) uint8 in BGR order.

    The size the file declares in its header (PNG ``IHDR``, JPEG start-of-frame) is checked
    against ``max_pixels`` before anything is decoded, so a small message that claims to be a
    gigapixel image costs nothing; the decoded size is checked again afterwards.

    Raises:
        ImageConversionError: Empty data, not JPEG/PNG, a declared or decoded size over
            ``max_pixels``, corrupt data, or any failure inside the decoder.
    """
    data = np.frombuffer(msg.data, np.uint8)
    if data.size == 0:
        raise ImageConversionError(f'empty compressed image (format {msg.format!r})')
    declared = compressed_dimensions(data)
    if declared is not None and declared[0] * declared[1] > max_pixels:
        raise ImageConversionError(f'compressed image declares {declared[0]}x{declared[1]} '
                                   f'pixels, over max_image_pixels ({max_pixels}); refused '
                                   f'before decoding')
    try:
        image = cv2.imdecode(data, cv2.IMREAD_COLOR)
    except (cv2.error, MemoryError, ValueError) as error:
        raise ImageConversionError(f'cannot decode {data.size} bytes of compressed image '
                                   f'(format {msg.format!r}): {_cause(error)}') from error
    if image is None:
        raise ImageConversionError(f'cannot decode {data.size} bytes of compressed image '
                                   f'(format {msg.format!r}); only JPEG and PNG are supported')
    if image.shape[0] * image.shape[1] > max_pixels:
        raise ImageConversionError(f'decoded image of {image.shape[1]}x{image.shape[0]} '
                                   f'exceeds max_image_pixels ({max_pixels})')
    return image, 'bgr'


# --------------------------------------------------------------------------- headers

_PNG_SIGNATURE = b'\x89PNG\r\n\x1a\n'
# JPEG start-of-frame markers (baseline, extended, progressive, lossless; Huffman and
# arithmetic); C4 (DHT), C8 (JPG) and CC (DAC) share the range but are not frames.
_JPEG_SOF = frozenset((0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE,
                       0xCF))
# Markers that stand alone (no length field): TEM, RST0-7, SOI.
_JPEG_STANDALONE = frozenset((0x01, *range(0xD0, 0xD8), 0xD8))


def compressed_dimensions(data: bytes | memoryview | np.ndarray) -> tuple[int, int] | None:
    """(width, height) a PNG or JPEG declares in its header, read without decoding.

    Only the header bytes are looked at, through a view (no copy of the image): the PNG
    ``IHDR`` right after the signature, or the JPEG start-of-frame segment after the APPn,
    DQT and DHT segments that precede it.

    Args:
        data: The compressed file (bytes, or a uint8 array).

    Returns:
        The declared size, or None for a JPEG whose frame header leaves the height to a later
        DNL marker (the decoded size is then checked instead).

    Raises:
        ImageConversionError: Neither PNG nor JPEG, or a header too short or malformed to
            say its size (such a file cannot be decoded either).
    """
    head = memoryview(data).cast('B')
    size = len(head)
    if bytes(head[:8]) == _PNG_SIGNATURE:
        # Signature, then the IHDR chunk: length (4), type (4), width (4), height (4).
        if size < 24 or bytes(head[12:16]) != b'IHDR':
            raise ImageConversionError(f'cannot decode {size} bytes of compressed image: PNG '
                                       f'without an IHDR header')
        return int.from_bytes(head[16:20], 'big'), int.from_bytes(head[20:24], 'big')
    if bytes(head[:2]) == b'\xff\xd8':
        return _jpeg_dimensions(head, size)
    raise ImageConversionError(f'cannot decode {size} bytes of compressed image: not JPEG or '
                               f'PNG (starts with {bytes(head[:8])!r}); only JPEG and PNG are '
                               f'supported')


def _jpeg_dimensions(head: memoryview, size: int) -> tuple[int, int] | None:
    position = 2
    while position + 4 <= len(head):
        if head[position] != 0xFF:
            break
        marker = head[position + 1]
        if marker == 0xFF:  # fill byte before a marker
            position += 1
            continue
        if marker in _JPEG_STANDALONE:
            position += 2
            continue
        if marker in (0xD9, 0xDA):  # end of image, or scan data before any frame header
            break
        length = int.from_bytes(head[position + 2:position + 4], 'big')
        if length < 2:
            break
        if marker in _JPEG_SOF:
            if position + 9 > len(head):
                break
            height = int.from_bytes(head[position + 5:position + 7], 'big')
            width = int.from_bytes(head[position + 7:position + 9], 'big')
            if width == 0:
                break
            return (width, height) if height else None
        position += 2 + length
    raise ImageConversionError(f'cannot decode {size} bytes of compressed image: JPEG without '
                               f'a readable frame header (SOF)')


_OUT_ENCODINGS = {(np.dtype(np.uint8), 1): 'mono8', (np.dtype(np.uint16), 1): 'mono16',
                  (np.dtype(np.uint8), 3): 'rgb8', (np.dtype(np.float32), 1): '32FC1'}


def array_to_image(pixels: np.ndarray, header: Any, encoding: str | None = None) -> Image:
    """Wrap an (H, W) or (H, W, 3) array in a packed Image with the given header."""
    pixels = np.ascontiguousarray(pixels)
    channels = 1 if pixels.ndim == 2 else pixels.shape[2]
    if encoding is None:
        encoding = _OUT_ENCODINGS.get((pixels.dtype, channels))
        if encoding is None:
            raise ImageConversionError(f'no ROS encoding for {pixels.dtype} with {channels} '
                                       f'channel(s)')
    msg = Image()
    msg.header = header
    msg.height, msg.width = int(pixels.shape[0]), int(pixels.shape[1])
    msg.encoding = encoding
    msg.is_bigendian = 0
    msg.step = int(pixels.shape[1] * channels * pixels.dtype.itemsize)
    data = array.array('B')
    # Straight from the array's buffer: one copy, not two (tobytes() first made a bytes
    # object of its own, about 1 ms more per 640x480 colour image).
    data.frombytes(memoryview(pixels).cast('B'))
    msg.data = data
    return msg


def stamp_seconds(stamp: Any) -> float:
    """A ``builtin_interfaces/Time`` (a header stamp) in seconds; 0.0 for an unset stamp."""
    return stamp.sec + stamp.nanosec * 1e-9
