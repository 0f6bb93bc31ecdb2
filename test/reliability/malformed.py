"""Hypothesis strategies for camera messages that are broken in every way a driver can break.

Each strategy yields ``(message_fields, why)`` where every example is *invalid by
construction* (the reason is in ``why``), so a node must count each one as failed: a plain
random message could be valid by chance, and then "failed" would be the wrong expectation.
Messages are returned as plain dicts so that this module needs no ROS import.
"""

from __future__ import annotations

import hypothesis.strategies as st

# Encodings a segmentation node may legitimately support: never used as "unsupported".
MAYBE_SUPPORTED = {'rgb8', 'bgr8', 'mono8', 'rgba8', 'bgra8', 'mono16', '8UC1', '8UC3',
                   '8UC4', '16UC1', '16UC3', 'rgb16', 'bgr16', 'rgba16', 'bgra16', '32FC1',
                   '32FC3', 'yuv422', 'uyvy', 'yuv422_yuy2', 'yuyv', 'bayer_rggb8',
                   'bayer_bggr8', 'bayer_gbrg8', 'bayer_grbg8', 'bayer_rggb16',
                   'bayer_bggr16', 'bayer_gbrg16', 'bayer_grbg16', 'nv12', 'nv21', 'i420'}
CHANNELS = {'rgb8': 3, 'bgr8': 3, 'mono8': 1, 'rgba8': 4, 'bgra8': 4}
# Encodings no image converter implements (a node that supports YUV, Bayer or float images
# must still refuse these).
UNSUPPORTED = ['', 'RGB8', 'rgb 8', 'rgb9', '8SC1', '64FC3', 'yuv420p10', 'bayer_xyzw8',
               'jpeg', 'png', 'hsv8', '\u00e9ncoding']
INT32_MAX = 2**31 - 1
UINT32_MAX = 2**32 - 1


@st.composite
def valid_images(draw: st.DrawFn, max_side: int = 24) -> dict:
    """A correct small Image (the base every corruption starts from, and the control)."""
    encoding = draw(st.sampled_from(sorted(CHANNELS)))
    width = draw(st.integers(1, max_side))
    height = draw(st.integers(1, max_side))
    padding = draw(st.sampled_from([0, 0, 1, 3]))
    step = width * CHANNELS[encoding] + padding
    data = draw(st.binary(min_size=step * height, max_size=step * height))
    return {'encoding': encoding, 'width': width, 'height': height, 'step': step,
            'is_bigendian': 0, 'data': data}


@st.composite
def malformed_images(draw: st.DrawFn) -> tuple[dict, str]:
    """An Image that no converter may accept, plus the reason."""
    image = draw(valid_images())
    needed = image['step'] * image['height']
    fault = draw(st.sampled_from(['short_data', 'empty_data', 'step_too_small', 'zero_size',
                                  'huge_size', 'encoding', 'text_encoding', 'combined']))
    if fault == 'short_data':
        image['data'] = image['data'][:draw(st.integers(0, needed - 1))]
    elif fault == 'empty_data':
        image['data'] = b''
    elif fault == 'step_too_small':
        image['step'] = draw(st.integers(0, image['width'] * CHANNELS[image['encoding']] - 1))
    elif fault == 'zero_size':
        if draw(st.booleans()):
            image['width'] = 0
        else:
            image['height'] = 0
    elif fault == 'huge_size':
        # Claims far more pixels than the data holds: must fail before allocating anything.
        image['width'] = draw(st.integers(10_000, INT32_MAX))
        image['height'] = draw(st.integers(10_000, INT32_MAX))
        image['step'] = min(UINT32_MAX, image['width'] * CHANNELS[image['encoding']])
    elif fault == 'encoding':
        image['encoding'] = draw(st.sampled_from(UNSUPPORTED))
    elif fault == 'text_encoding':
        # ROS strings end at a NUL on the wire ('rgb8\x00x' arrives as 'rgb8'): no NULs.
        image['encoding'] = draw(st.text(max_size=12).filter(
            lambda text: '\x00' not in text and text not in MAYBE_SUPPORTED))
    else:
        image['encoding'] = draw(st.sampled_from(UNSUPPORTED))
        image['data'] = image['data'][:needed // 2]
        image['step'] = draw(st.integers(0, UINT32_MAX))
    return image, fault


JPEG_MAGIC = b'\xff\xd8\xff'
PNG_MAGIC = b'\x89PNG\r\n\x1a\n'


@st.composite
def malformed_compressed(draw: st.DrawFn, valid_jpeg: bytes, valid_png: bytes) -> tuple[
        dict, str]:
    """A CompressedImage that cannot decode (no data, noise, or only a header's start)."""
    fault = draw(st.sampled_from(['empty', 'noise', 'truncated_jpeg', 'truncated_png',
                                  'magic_then_noise', 'text']))
    fmt = draw(st.sampled_from(['jpeg', 'png', 'rgb8; jpeg compressed bgr8',
                                'bgr8; png compressed', '', 'tiff', 'garbage']))
    if fault == 'empty':
        data = b''
    elif fault == 'noise':
        data = draw(st.binary(min_size=1, max_size=2048).filter(
            lambda b: not b.startswith((JPEG_MAGIC[:2], PNG_MAGIC[:4], b'BM', b'II', b'MM',
                                        b'GIF', b'RIFF', b'P'))))
    elif fault == 'truncated_jpeg':
        data = valid_jpeg[:draw(st.integers(1, 12))]
    elif fault == 'truncated_png':
        data = valid_png[:draw(st.integers(1, 24))]
    elif fault == 'magic_then_noise':
        magic = draw(st.sampled_from([JPEG_MAGIC, PNG_MAGIC]))
        data = magic + draw(st.binary(min_size=0, max_size=64))
    else:
        data = draw(st.text(max_size=64)).encode()
        if data.startswith((JPEG_MAGIC[:2], PNG_MAGIC[:4], b'BM', b'P', b'GIF', b'II', b'MM')):
            data = b'x' + data
    return {'format': fmt, 'data': data}, fault
