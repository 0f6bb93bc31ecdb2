"""Image sizes as text: ``WIDTHxHEIGHT``, everywhere, read by one parser.

Every ``--size`` flag and every size parameter (``warmup_size``) is written WIDTHxHEIGHT, the
order cameras, ``sensor_msgs/CameraInfo`` and video tools use (``640x480``). Code keeps its
own order internally (numpy shapes and the engine's ``warmup_size`` field are
``(height, width)``); the conversion happens here, once.

Before this convention, ``bench --size``, ``quantize --size`` and ``warmup_size`` read
HEIGHTxWIDTH. A size that only makes sense in that old order, a common landscape camera size
turned portrait (``480x640``, ``720x1280``), is refused with the corrected spelling instead of
silently running a portrait frame.
"""

from __future__ import annotations

import argparse

from lw_refinenet_ros.errors import ConfigError

#: Landscape camera and video sizes (width, height). Their transposes are what the old
#: HEIGHTxWIDTH order produces, so they are refused as a likely mistake.
COMMON_LANDSCAPE_SIZES: frozenset[tuple[int, int]] = frozenset({
    (160, 120), (320, 240), (424, 240), (640, 360), (640, 480), (800, 600), (848, 480),
    (960, 540), (1024, 768), (1280, 720), (1280, 800), (1280, 960), (1280, 1024),
    (1440, 1080), (1600, 1200), (1920, 1080), (1920, 1200), (2048, 1536), (2560, 1440),
    (3840, 2160), (4096, 2160),
})

EXAMPLE = '640x480'


def parse_size(text: str, *, minimum: int = 1, what: str = 'size') -> tuple[int, int]:
    """``'640x480'`` -> ``(640, 480)``: (width, height).

    Args:
        text: ``WIDTHxHEIGHT`` with positive integers (``x`` or ``X``; spaces around the
            numbers are allowed).
        minimum: Smallest width and height accepted.
        what: How to name the value in errors (``--size``, ``warmup_size``).

    Raises:
        ConfigError: Not two integers, below ``minimum``, or a common landscape size written
            in the old HEIGHTxWIDTH order (the message gives the corrected spelling).
    """
    parts = text.lower().split('x') if isinstance(text, str) else []
    if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
        raise ConfigError(f'{what} {text!r} is not WIDTHxHEIGHT with positive integers, '
                          f'e.g. {EXAMPLE}.')
    width, height = (int(p) for p in parts)
    if width < minimum or height < minimum:
        raise ConfigError(f'{what} {text!r} is too small: WIDTHxHEIGHT must be at least '
                          f'{minimum}x{minimum}.')
    if (height, width) in COMMON_LANDSCAPE_SIZES:
        raise ConfigError(f'{what} {text!r} would be {width} wide and {height} high (portrait): '
                          f'sizes are WIDTHxHEIGHT, as cameras and ROS write them. Write '
                          f'{height}x{width} (this is the old HEIGHTxWIDTH order of '
                          f'bench/quantize --size and warmup_size).')
    return width, height


def parse_size_hw(text: str, **kwargs: int | str) -> tuple[int, int]:
    """:func:`parse_size` as ``(height, width)``, the order of numpy shapes and of the
    engine's ``warmup_size`` field."""
    width, height = parse_size(text, **kwargs)  # type: ignore[arg-type]
    return height, width


def is_size_text(value: object) -> bool:
    """Whether ``value`` is a size :func:`parse_size` accepts."""
    try:
        parse_size(value)  # type: ignore[arg-type]
    except ConfigError:
        return False
    return True


def size_text(width: int, height: int) -> str:
    """``(640, 480)`` -> ``'640x480'``."""
    return f'{int(width)}x{int(height)}'


def size_argument(text: str) -> tuple[int, int]:
    """argparse ``type=`` for a ``WIDTHxHEIGHT`` flag: ``(width, height)`` or a usage error
    carrying :func:`parse_size`'s message."""
    try:
        return parse_size(text)
    except ConfigError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
