"""The node's topic names, with no ROS import: for code that must run without ROS.

:mod:`.topics` adds the message types and QoS (and so imports ROS); the names are defined
here once, so a benchmark driver that never touches ROS, or a view or demo module, imports
them instead of spelling them. Names are relative (``-r``/namespace remapping works); with
``cameras: [left, right]`` every camera topic is prefixed with the camera's namespace
(:func:`camera_topic`), except ``/diagnostics``, which is global.
"""

from __future__ import annotations

# Inputs (per camera).
IMAGE = 'image'
COMPRESSED_IMAGE = 'image/compressed'
CAMERA_INFO = 'camera_info'

# Outputs (per camera).
LABELS = 'segmentation/labels'
COLOR = 'segmentation/color'
OVERLAY = 'segmentation/overlay'
CONFIDENCE = 'segmentation/confidence'
STATS = 'segmentation/stats'
CLASS_MAP = 'segmentation/class_map'
OBJECTS = 'segmentation/objects'
MARKERS = 'segmentation/markers'

# The node's health (global).
DIAGNOSTICS = '/diagnostics'


def camera_prefix(camera: str) -> str:
    """``''`` for the single default camera, ``'left/'`` for camera ``left``."""
    return f'{camera.rstrip("/")}/' if camera else ''


def camera_topic(camera: str, name: str) -> str:
    """``name`` (one of the names above) in ``camera``'s namespace."""
    return camera_prefix(camera) + name
