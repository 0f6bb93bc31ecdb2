"""Image pixels to metres on the belt, in the camera frame (numpy only).

The camera frame is the optical frame of sensor_msgs/CameraInfo: x right, y down, z forward
along the optical axis. Every part lies on the belt plane, so a pixel's viewing ray meets the
plane in exactly one point. The plane comes from one of two calibrations:

* ``plane``: the camera's height above the belt and its tilt (rotation about the camera x
  axis; 0 = looking straight down). The belt's downward normal in the camera frame is
  ``d = (0, sin(tilt), cos(tilt))`` and the plane is ``d . P = height``; a pixel's ray
  ``r = K^-1 (u, v, 1)`` meets it at ``P = r * height / (d . r)`` when ``d . r > 0``.
* ``homography``: ``H`` maps pixels ``(u, v, 1)`` to belt coordinates ``(X, Y, 1)`` in metres
  (what a checkerboard on the belt gives). Its inverse is ``K [r1 r2 t]`` up to scale, so the
  plane's pose is ``[r1 r2 t] = lambda K^-1 H^-1`` with ``lambda`` making ``r1`` and ``r2``
  unit vectors, and the belt point is ``X r1 + Y r2 + t``.

An impossible calibration (camera below the belt, tilt of 90 degrees or more, a singular
homography, one that disagrees with the intrinsics) raises :class:`CalibrationError`; the
caller turns the metric fields off and says why once.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from lw_refinenet_ros.errors import LWRefineNetError


class CalibrationError(LWRefineNetError):
    """The belt calibration cannot map pixels to metres (metric fields are disabled)."""


def intrinsics_matrix(k: Sequence[float]) -> np.ndarray:
    """3x3 camera matrix from CameraInfo's row-major ``k`` (nine numbers).

    Raises:
        CalibrationError: When ``k`` is missing or not invertible (an uncalibrated camera
            publishes zeros).
    """
    matrix = np.asarray(k, np.float64)
    if matrix.size != 9 or not np.all(np.isfinite(matrix)):
        raise CalibrationError(f'camera_info K must hold nine finite numbers, got {list(k)}.')
    matrix = matrix.reshape(3, 3)
    if matrix[0, 0] <= 0 or matrix[1, 1] <= 0 or abs(np.linalg.det(matrix)) < 1e-12:
        raise CalibrationError('camera_info K is not a valid camera matrix (fx, fy must be > 0; '
                               'an uncalibrated driver publishes zeros): calibrate the camera.')
    return matrix


class BeltGeometry:
    """Maps pixels to belt points in the camera frame (metres).

    Build it with :meth:`from_plane` or :meth:`from_homography`.

    Args:
        k: 3x3 camera matrix.
        normal: Unit downward belt normal in the camera frame (plane form), or None.
        height: Camera-to-belt distance along ``normal``, metres (plane form).
        pose: 3x3 ``[r1 r2 t]`` of the belt plane (homography form), or None.
        homography: 3x3 pixels -> belt metres (homography form), or None.
    """

    def __init__(self, k: np.ndarray, *, normal: np.ndarray | None = None,
                 height: float = 0.0, pose: np.ndarray | None = None,
                 homography: np.ndarray | None = None) -> None:
        self._k_inv = np.linalg.inv(k)
        self._normal = normal
        self._height = height
        self._pose = pose
        self._homography = homography

    @classmethod
    def from_plane(cls, k: np.ndarray, height_m: float, tilt_deg: float) -> BeltGeometry:
        """A belt ``height_m`` below the camera, seen at ``tilt_deg`` from straight down.

        Raises:
            CalibrationError: Camera not above the belt, or tilt of 90 degrees or more.
        """
        if not math.isfinite(height_m) or height_m <= 0:
            raise CalibrationError(f'objects.belt.camera_height_m is {height_m}: the camera must '
                                   f'be above the belt (height > 0 m).')
        if not math.isfinite(tilt_deg) or abs(tilt_deg) >= 90.0:
            raise CalibrationError(f'objects.belt.camera_tilt_deg is {tilt_deg}: a camera '
                                   f'tilted 90 degrees or more from straight down cannot see '
                                   f'the belt plane below it (use -90 < tilt < 90).')
        tilt = math.radians(tilt_deg)
        normal = np.array([0.0, math.sin(tilt), math.cos(tilt)])
        return cls(k, normal=normal, height=float(height_m))

    @classmethod
    def from_homography(cls, k: np.ndarray, homography: Sequence[float]) -> BeltGeometry:
        """A belt given by the homography from pixels to belt metres.

        Raises:
            CalibrationError: Singular homography, or one that the intrinsics cannot explain
                (its belt axes come out of very different lengths).
        """
        matrix = np.asarray(homography, np.float64)
        if matrix.size != 9:
            raise CalibrationError(f'objects.belt.homography must hold nine numbers, got '
                                   f'{matrix.size}.')
        matrix = matrix.reshape(3, 3)
        if not np.all(np.isfinite(matrix)) or abs(np.linalg.det(matrix)) < 1e-12 * max(
                1.0, float(np.abs(matrix).max()) ** 3):
            raise CalibrationError('objects.belt.homography is singular: it maps the image '
                                   'onto a line, not onto the belt plane; recompute it from at '
                                   'least four belt points.')
        pose = np.linalg.solve(k, np.linalg.inv(matrix))
        n1, n2 = np.linalg.norm(pose[:, 0]), np.linalg.norm(pose[:, 1])
        if n1 <= 0 or n2 <= 0 or not 0.5 < n1 / n2 < 2.0:
            raise CalibrationError(f'objects.belt.homography does not fit camera_info K (belt '
                                   f'axes scale {n1 / max(n2, 1e-300):.3g}:1, expected 1:1): '
                                   f'was it computed for this camera and resolution?')
        pose = pose * (2.0 / (n1 + n2))
        if pose[2, 2] < 0:
            pose = -pose  # the belt lies in front of the camera (t_z > 0)
        return cls(k, pose=pose, homography=matrix)

    def project(self, points: np.ndarray) -> np.ndarray:
        """Belt points (N, 3) in metres for pixels (N, 2); NaN rows where a ray misses it."""
        pixels = np.asarray(points, np.float64).reshape(-1, 2)
        ones = np.ones((pixels.shape[0], 1))
        homogeneous = np.hstack([pixels, ones])
        if self._homography is not None:
            belt = homogeneous @ self._homography.T
            with np.errstate(divide='ignore', invalid='ignore'):
                belt = belt / belt[:, 2:3]
            out = belt @ self._pose.T
            out[~np.isfinite(out).all(axis=1) | (out[:, 2] <= 0)] = np.nan
            return out
        rays = homogeneous @ self._k_inv.T
        along = rays @ self._normal
        with np.errstate(divide='ignore', invalid='ignore'):
            out = rays * (self._height / along)[:, None]
        out[along <= 1e-9] = np.nan  # at or above the horizon: the ray never meets the belt
        return out

    def velocity(self, points: np.ndarray, pixel_velocity: np.ndarray) -> np.ndarray:
        """Belt velocities (N, 3) in m/s for pixels (N, 2) moving at (N, 2) px/s.

        The projection is not linear, so the velocity is the derivative at each point,
        taken by a short step along the pixel velocity.
        """
        pixels = np.asarray(points, np.float64).reshape(-1, 2)
        moving = np.asarray(pixel_velocity, np.float64).reshape(-1, 2)
        step = 1e-3  # seconds
        return (self.project(pixels + moving * step) - self.project(pixels)) / step


def time_to_line(position: np.ndarray, velocity: np.ndarray, axis: int, line: float,
                 min_speed: float = 1e-9) -> np.ndarray:
    """When each point, moving at constant velocity, crosses the line ``coord[axis] = line``.

    Args:
        position: (N, D) positions.
        velocity: (N, D) velocities, same units per second.
        axis: Coordinate index the line is perpendicular to.
        line: The line's coordinate.
        min_speed: Slower motion along ``axis`` counts as standing still.

    Returns:
        Seconds from now, per point: positive ahead, negative if the crossing lies in the
        past under the current velocity; NaN when the point does not move along ``axis``
        (a stopped belt) or its position is unknown.
    """
    position = np.asarray(position, np.float64).reshape(len(position), -1)
    velocity = np.asarray(velocity, np.float64).reshape(len(velocity), -1)
    speed = velocity[:, axis]
    with np.errstate(divide='ignore', invalid='ignore'):
        seconds = (line - position[:, axis]) / speed
    seconds[~(np.abs(speed) >= min_speed)] = np.nan
    return seconds
