"""Image <-> array conversion for every common encoding, padded rows and bad messages."""

from __future__ import annotations

import cv2
from image_samples import BAYER_RED_SITE, bayer_mosaic, pack_yuv422
import numpy as np
import pytest
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header

from lw_refinenet_ros.errors import ImageConversionError
from lw_refinenet_ros.ros import conversions
from lw_refinenet_ros.ros.conversions import (
    array_to_image,
    compressed_dimensions,
    compressed_to_rgb,
    image_to_rgb,
)

RNG = np.random.default_rng(7)
RGB = RNG.integers(0, 256, (6, 8, 3), dtype=np.uint8)


def make_image(pixels: np.ndarray, encoding: str, pad: int = 0, bigendian: bool = False) -> Image:
    """A message with ``pad`` junk bytes after every row."""
    rows = pixels.reshape(pixels.shape[0], -1)
    if pixels.dtype.itemsize > 1:
        dtype = pixels.dtype.newbyteorder('>' if bigendian else '<')
        rows = pixels.astype(dtype).reshape(pixels.shape[0], -1).view(np.uint8)
    rows = np.ascontiguousarray(rows).view(np.uint8).reshape(pixels.shape[0], -1)
    padded = np.concatenate([rows, np.full((rows.shape[0], pad), 0xAB, np.uint8)], axis=1)
    msg = Image(height=pixels.shape[0], width=pixels.shape[1], encoding=encoding,
                is_bigendian=int(bigendian), step=padded.shape[1])
    msg.data = padded.tobytes()
    return msg


@pytest.mark.parametrize('pad', [0, 5])
@pytest.mark.parametrize('encoding,pixels,expected,order', [
    ('rgb8', RGB, RGB, 'rgb'),
    ('bgr8', RGB[:, :, ::-1], RGB[:, :, ::-1], 'bgr'),
    ('rgba8', np.dstack([RGB, np.full(RGB.shape[:2], 9, np.uint8)]), RGB, 'rgb'),
    ('bgra8', np.dstack([RGB[:, :, ::-1], np.full(RGB.shape[:2], 9, np.uint8)]),
     RGB[:, :, ::-1], 'bgr'),
    ('8UC3', RGB, RGB, 'rgb'),
    ('mono8', RGB[:, :, 1], np.repeat(RGB[:, :, 1:2], 3, 2), 'rgb'),
])
def test_eight_bit_encodings_honour_step(encoding, pixels, expected, order, pad) -> None:
    image, got_order = image_to_rgb(make_image(np.ascontiguousarray(pixels), encoding, pad))
    assert got_order == order
    np.testing.assert_array_equal(image, expected)


@pytest.mark.parametrize('bigendian', [False, True])
@pytest.mark.parametrize('encoding', ['mono16', '16UC1'])
def test_sixteen_bit_grey_is_scaled_to_eight_bits_in_either_byte_order(encoding,
                                                                       bigendian) -> None:
    pixels = (RGB[:, :, 0].astype(np.uint16) << 8) | 0x7F
    image, order = image_to_rgb(make_image(pixels, encoding, pad=2, bigendian=bigendian))
    np.testing.assert_array_equal(image[:, :, 0], RGB[:, :, 0])
    assert order == 'rgb' and image.shape == (6, 8, 3)


def test_float_images_are_intensities_and_nan_is_refused() -> None:
    pixels = (RGB[:, :, 0] / 255.0).astype(np.float32)
    image, _ = image_to_rgb(make_image(pixels, '32FC1'))
    np.testing.assert_array_equal(image[:, :, 2], RGB[:, :, 0])
    pixels[2, 3] = np.nan
    with pytest.raises(ImageConversionError, match='NaN'):
        image_to_rgb(make_image(pixels, '32FC1'))


@pytest.mark.parametrize('encoding', ['yuv422', 'yuv422_yuy2'])
def test_yuv422_decodes_a_flat_colour(encoding) -> None:
    # A flat grey frame: Y=128, U=V=128 decodes to (128,128,128) in both byte orders.
    packed = np.full((4, 8, 2), 128, np.uint8)
    image, order = image_to_rgb(make_image(packed, encoding, pad=3))
    assert order == 'rgb' and image.shape == (4, 8, 3)
    assert np.abs(image.astype(int) - 128).max() <= 2


@pytest.mark.parametrize('encoding,offset', [('bayer_rggb8', (0, 0)), ('bayer_bggr8', (1, 1)),
                                             ('bayer_gbrg8', (1, 0)), ('bayer_grbg8', (0, 1))])
def test_bayer_patterns_put_red_where_the_pattern_says(encoding, offset) -> None:
    """A pure red scene: only the R sites are bright, so the demosaiced image is red."""
    mosaic = np.zeros((8, 8), np.uint8)
    mosaic[offset[0]::2, offset[1]::2] = 200
    image, _ = image_to_rgb(make_image(mosaic, encoding))
    centre = image[2:6, 2:6].reshape(-1, 3).mean(axis=0)
    assert centre[0] > 150 and centre[1] < 50 and centre[2] < 50


@pytest.mark.parametrize('mutate,match', [
    (lambda m: setattr(m, 'encoding', 'weird8'), 'unsupported encoding'),
    (lambda m: setattr(m, 'step', 3), 'step'),
    (lambda m: setattr(m, 'data', bytes(m.data)[:10]), 'truncated'),
    (lambda m: setattr(m, 'height', 0), 'empty'),
    (lambda m: (setattr(m, 'encoding', 'yuv422'), setattr(m, 'width', 7),
                setattr(m, 'step', 14)), 'even width'),
])
def test_malformed_messages_raise_a_clear_error(mutate, match) -> None:
    msg = make_image(RGB, 'rgb8')
    mutate(msg)
    with pytest.raises(ImageConversionError, match=match):
        image_to_rgb(msg)


def test_huge_images_are_refused_before_reading() -> None:
    msg = make_image(RGB, 'rgb8')
    with pytest.raises(ImageConversionError, match='max_image_pixels'):
        image_to_rgb(msg, max_pixels=10)


def test_compressed_jpeg_and_png_decode_and_corrupt_data_is_refused() -> None:
    ok, png = cv2.imencode('.png', RGB[:, :, ::-1])
    image, order = compressed_to_rgb(CompressedImage(format='png', data=png.tobytes()))
    assert order == 'bgr'
    np.testing.assert_array_equal(image[:, :, ::-1], RGB)
    with pytest.raises(ImageConversionError, match='cannot decode'):
        compressed_to_rgb(CompressedImage(format='jpeg', data=b'\xff\xd8garbage'))
    with pytest.raises(ImageConversionError, match='empty'):
        compressed_to_rgb(CompressedImage(format='jpeg', data=b''))


def test_arrays_become_packed_images_with_the_given_header() -> None:
    header = Header(frame_id='cam')
    header.stamp.sec = 5
    labels = np.arange(12, dtype=np.uint16).reshape(3, 4)
    msg = array_to_image(labels, header)
    assert (msg.encoding, msg.step, msg.height, msg.width) == ('mono16', 8, 3, 4)
    assert msg.header.frame_id == 'cam' and msg.header.stamp.sec == 5
    np.testing.assert_array_equal(np.frombuffer(bytes(msg.data), '<u2').reshape(3, 4), labels)
    assert array_to_image(RGB, header).encoding == 'rgb8'


@pytest.mark.parametrize('encoding', ['yuv422', 'yuv422_yuy2'])
def test_yuv422_byte_orders_decode_colours_in_padded_rows(encoding) -> None:
    rgb = np.zeros((4, 8, 3), np.uint8)
    rgb[:, :4, 0] = 255  # red left half, blue top-right, black bottom-right
    rgb[:2, 4:, 2] = 255
    image, order = image_to_rgb(make_image(pack_yuv422(rgb, encoding), encoding, pad=6))
    assert order == 'rgb'
    assert np.abs(image.astype(int) - rgb).max() <= 3
    other = 'yuv422_yuy2' if encoding == 'yuv422' else 'yuv422'
    swapped, _ = image_to_rgb(make_image(pack_yuv422(rgb, encoding), other))
    assert np.abs(swapped.astype(int) - rgb).max() > 50  # the byte order really matters


@pytest.mark.parametrize('encoding,offset', [('bayer_rggb8', (0, 0)), ('bayer_bggr8', (1, 1)),
                                             ('bayer_gbrg8', (1, 0)), ('bayer_grbg8', (0, 1))])
def test_bayer_patterns_recover_every_channel(encoding, offset) -> None:
    """A flat (200, 100, 30) scene mosaiced by the pattern demosaics back to that colour."""
    assert BAYER_RED_SITE[encoding] == offset
    mosaic = bayer_mosaic(np.full((8, 10, 3), (200, 100, 30), np.uint8), encoding)
    image, order = image_to_rgb(make_image(mosaic, encoding, pad=2))
    assert order == 'rgb' and image.shape == (8, 10, 3)
    np.testing.assert_allclose(image[2:6, 2:8].reshape(-1, 3).mean(axis=0), (200, 100, 30),
                               atol=3)


@pytest.mark.parametrize('bigendian', [False, True])
@pytest.mark.parametrize('encoding', ['rgb16', 'bgr16'])
def test_sixteen_bit_colour_keeps_its_order(encoding, bigendian) -> None:
    pixels = RGB.astype(np.uint16) * 257
    pixels = pixels[:, :, ::-1] if encoding == 'bgr16' else pixels
    image, order = image_to_rgb(make_image(np.ascontiguousarray(pixels), encoding, pad=4,
                                           bigendian=bigendian))
    assert order == encoding[:3]
    np.testing.assert_array_equal(image, RGB[:, :, ::-1] if order == 'bgr' else RGB)


def test_big_endian_float_images_with_padding() -> None:
    pixels = (RGB[:, :, 1] / 255.0).astype(np.float32)
    image, _ = image_to_rgb(make_image(pixels, '32FC1', pad=3, bigendian=True))
    np.testing.assert_array_equal(image[:, :, 0], RGB[:, :, 1])


def test_jpeg_decodes_close_to_the_original() -> None:
    flat = np.zeros((16, 16, 3), np.uint8)
    flat[:, :8] = (200, 40, 40)
    ok, jpeg = cv2.imencode('.jpg', flat[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 95])
    image, order = compressed_to_rgb(CompressedImage(format='jpeg', data=jpeg.tobytes()))
    assert ok and order == 'bgr' and image.shape == (16, 16, 3)
    assert np.abs(image[2:14, 1:6, ::-1].astype(int) - (200, 40, 40)).max() <= 12


def _encoded(extension: str, width: int = 53, height: int = 37, *params: int) -> bytes:
    return cv2.imencode(extension, np.zeros((height, width, 3), np.uint8), list(params))[1] \
        .tobytes()


@pytest.mark.parametrize('data', [
    _encoded('.png'), _encoded('.jpg'), _encoded('.jpg', 53, 37, cv2.IMWRITE_JPEG_PROGRESSIVE, 1),
    # Fill bytes before a marker and an APP segment before the frame header.
    _encoded('.jpg')[:2] + b'\xff\xff\xe1\x00\x06exif' + _encoded('.jpg')[2:],
])
def test_declared_size_is_read_from_the_header(data: bytes) -> None:
    assert compressed_dimensions(data) == (53, 37)
    assert compressed_dimensions(np.frombuffer(data, np.uint8)) == (53, 37)


def test_a_jpeg_that_defers_its_height_is_checked_after_decoding() -> None:
    # Height 0 in the frame header: the size follows in a DNL marker, after the scan.
    data = bytes.fromhex('ffd8ffc0000b08000000350301110000')
    assert compressed_dimensions(data) is None


@pytest.mark.parametrize('data, match', [
    (b'GIF89a....', 'not JPEG or PNG'),
    (b'\x89PNG\r\n\x1a\n\x00\x00', 'IHDR'),
    (b'\xff\xd8\xff\xe0\x00\x10JFIF', 'frame header'),      # ends before any SOF
    (b'\xff\xd8\xff\xda\x00\x08scan', 'frame header'),     # scan data before a frame
    (b'\xff\xd8garbage', 'frame header'),
])
def test_headers_that_cannot_say_their_size_are_refused(data: bytes, match: str) -> None:
    with pytest.raises(ImageConversionError, match=f'cannot decode.*{match}'):
        compressed_dimensions(data)
    with pytest.raises(ImageConversionError, match='cannot decode'):
        compressed_to_rgb(CompressedImage(format='jpeg', data=data))


@pytest.mark.parametrize('extension', ['.png', '.jpg'])
def test_declared_size_over_the_limit_is_refused_before_decoding(extension, monkeypatch) -> None:
    monkeypatch.setattr(conversions.cv2, 'imdecode', lambda *args: pytest.fail('decoded'))
    message = CompressedImage(format=extension[1:], data=_encoded(extension, 200, 100))
    with pytest.raises(ImageConversionError, match='declares 200x100 pixels.*before decoding'):
        compressed_to_rgb(message, max_pixels=200 * 100 - 1)


def test_opencv_errors_become_conversion_errors_naming_the_cause(monkeypatch) -> None:
    def broken(*args: object) -> None:
        raise cv2.error('OpenCV(4.10) error: (-215:Assertion failed) !buf.empty()\n in imdecode')

    monkeypatch.setattr(conversions.cv2, 'imdecode', broken)
    with pytest.raises(ImageConversionError, match=r'cannot decode .*: error: OpenCV\(4.10\) '
                                                   r'error: \(-215:Assertion failed\) '
                                                   r'!buf.empty\(\) in imdecode'):
        compressed_to_rgb(CompressedImage(format='png', data=_encoded('.png')))
    monkeypatch.setattr(conversions.cv2, 'cvtColor', broken)
    with pytest.raises(ImageConversionError, match="cannot convert 'bayer_rggb8' image of 8x8"):
        image_to_rgb(make_image(np.zeros((8, 8), np.uint8), 'bayer_rggb8'))
