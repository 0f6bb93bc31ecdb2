"""Persistent ids for parts riding a belt (numpy only).

Each track follows one part with a constant-velocity model: the belt moves every part the
same way, so a new track starts with the belt velocity estimated from the others, and a part
hidden for a few frames (under the robot's arm, behind a taller part) is predicted along the
belt and picked up again. Association is greedy on the distance between a track's predicted
centroid and a detection's centroid, nearest pairs first, within ``max_distance_px``; parts
are sparse on a belt, so greedy equals the optimal assignment in practice and costs
microseconds.

Births and deaths: an unmatched detection starts a tentative track; a track is confirmed
after ``confirm_frames`` detections; a tentative track that misses a frame is dropped (noise),
a confirmed one after ``max_missed_frames`` misses or at once when its prediction has left
the image (the part went out of view).
"""

from __future__ import annotations

from dataclasses import dataclass
import math
from typing import Sequence

import numpy as np

from lw_refinenet_ros.objects.detect import DetectedObject


@dataclass(frozen=True)
class TrackerSettings:
    """Tracker parameters (``objects.tracking.*``).

    Attributes:
        max_distance_px: Gate between predicted and detected centroid, pixels.
        confirm_frames: Detections needed before a track is confirmed.
        max_missed_frames: Frames a confirmed track survives without a detection.
        velocity_gain: Weight of a new velocity measurement (0..1); lower is smoother.
    """

    max_distance_px: float = 40.0
    confirm_frames: int = 3
    max_missed_frames: int = 5
    velocity_gain: float = 0.5


@dataclass
class Track:
    """A part followed over frames (mutable: the tracker updates it in place).

    Attributes:
        track_id: Persistent id (>= 1).
        class_id: Class of the latest detection.
        position: (x, y) centroid at the latest detection (or prediction while missed), px.
        velocity: (vx, vy) in pixels per second.
        hits: Frames with a detection.
        missed: Consecutive frames without one.
        first_stamp: Time of the first detection, seconds.
        stamp: Time of ``position``, seconds.
        confirmed: Seen in at least ``confirm_frames`` frames.
        measured: The velocity has been measured at least once (not only the belt prior).
    """

    track_id: int
    class_id: int
    position: tuple[float, float]
    velocity: tuple[float, float]
    hits: int
    missed: int
    first_stamp: float
    stamp: float
    confirmed: bool = False
    measured: bool = False

    def predict(self, stamp: float) -> tuple[float, float]:
        """Where the part should be at ``stamp`` under constant velocity."""
        dt = stamp - self.stamp
        return (self.position[0] + self.velocity[0] * dt,
                self.position[1] + self.velocity[1] * dt)


@dataclass(frozen=True)
class TrackedObject:
    """A detection with its track.

    Attributes:
        object: The detection.
        track_id: Persistent id of the part.
        confirmed: The track is confirmed (report-worthy).
        age: Seconds since the track's first detection.
        hits: Frames in which the track was detected.
        velocity: (vx, vy) pixels per second.
    """

    object: DetectedObject
    track_id: int
    confirmed: bool
    age: float
    hits: int
    velocity: tuple[float, float]


class Tracker:
    """Frame-to-frame association of detections with persistent ids.

    Args:
        settings: Tracker parameters.
    """

    # A stamp this far behind the last one means a new recording or a clock reset.
    _RESET_AFTER_BACKWARD_S = 1.0
    # After a longer gap (nobody subscribed, camera stalled) the old tracks are stale.
    _RESET_AFTER_GAP_S = 2.0

    def __init__(self, settings: TrackerSettings = TrackerSettings()) -> None:
        self.settings = settings
        self.tracks: list[Track] = []
        self._next_id = 1
        self._last_stamp: float | None = None
        self._belt_velocity: tuple[float, float] = (0.0, 0.0)
        self._belt_known = False

    @property
    def belt_velocity(self) -> tuple[float, float] | None:
        """Belt velocity (px/s): median over confirmed, measured tracks; None until known."""
        return self._belt_velocity if self._belt_known else None

    def reset(self) -> None:
        """Forget every track (ids keep increasing so old ids are never reused)."""
        self.tracks = []
        self._last_stamp = None
        self._belt_known = False
        self._belt_velocity = (0.0, 0.0)

    def update(self, objects: Sequence[DetectedObject], stamp: float,
               image_size: tuple[int, int]) -> list[TrackedObject]:
        """Associate one frame's detections with the tracks.

        Args:
            objects: Detections of this frame.
            stamp: Frame time in seconds (header stamp).
            image_size: (width, height) of the frame, to retire tracks that left the view.

        Returns:
            One :class:`TrackedObject` per detection, in the order of ``objects``.
        """
        if self._last_stamp is not None and not (
                -self._RESET_AFTER_BACKWARD_S < stamp - self._last_stamp
                < self._RESET_AFTER_GAP_S):
            self.reset()
        if self._last_stamp is not None and stamp <= self._last_stamp:
            stamp = self._last_stamp + 1e-6  # same or slightly older stamp: no motion
        self._last_stamp = stamp
        pairs = self._associate(objects, stamp)
        gain = self.settings.velocity_gain
        assigned: dict[int, Track] = {}
        for track_index, object_index in pairs:
            track = self.tracks[track_index]
            obj = objects[object_index]
            dt = stamp - track.stamp
            if dt > 0 and not obj.touches_border:
                # Centroids of parts cut by the border move with the border, not the belt.
                measured = ((obj.centroid[0] - track.position[0]) / dt,
                            (obj.centroid[1] - track.position[1]) / dt)
                if track.measured:
                    track.velocity = (track.velocity[0] + gain * (measured[0] -
                                                                  track.velocity[0]),
                                      track.velocity[1] + gain * (measured[1] -
                                                                  track.velocity[1]))
                elif track.hits >= 1 and track.missed == 0:
                    track.velocity = measured
                    track.measured = True
            track.position = obj.centroid
            track.stamp = stamp
            track.class_id = obj.class_id
            track.hits += 1
            track.missed = 0
            if track.hits >= self.settings.confirm_frames:
                track.confirmed = True
            assigned[object_index] = track
        matched_tracks = {t for t, _ in pairs}
        survivors = []
        for index, track in enumerate(self.tracks):
            if index not in matched_tracks:
                track.missed += 1
                if not self._survives(track, stamp, image_size):
                    continue
            survivors.append(track)
        for index, obj in enumerate(objects):
            if index in assigned:
                continue
            track = Track(self._next_id, obj.class_id, obj.centroid, self._belt_velocity,
                          hits=1, missed=0, first_stamp=stamp, stamp=stamp,
                          confirmed=self.settings.confirm_frames <= 1)
            self._next_id += 1
            survivors.append(track)
            assigned[index] = track
        self.tracks = survivors
        self._estimate_belt()
        return [TrackedObject(obj, assigned[i].track_id, assigned[i].confirmed,
                              stamp - assigned[i].first_stamp, assigned[i].hits,
                              assigned[i].velocity) for i, obj in enumerate(objects)]

    def _associate(self, objects: Sequence[DetectedObject], stamp: float,
                   ) -> list[tuple[int, int]]:
        if not self.tracks or not objects:
            return []
        predicted = np.array([t.predict(stamp) for t in self.tracks])
        centroids = np.array([o.centroid for o in objects])
        distance = np.linalg.norm(predicted[:, None, :] - centroids[None, :, :], axis=2)
        classes_t = np.array([t.class_id for t in self.tracks])
        classes_o = np.array([o.class_id for o in objects])
        # A class flicker (model unsure between two classes) should not end the track, but a
        # same-class detection at the same distance is the better match.
        cost = distance + (classes_t[:, None] != classes_o[None, :]) * \
            (0.5 * self.settings.max_distance_px)
        cost[distance > self.settings.max_distance_px] = math.inf
        pairs: list[tuple[int, int]] = []
        order = np.argsort(cost, axis=None)
        used_t: set[int] = set()
        used_o: set[int] = set()
        for flat in order:
            t, o = divmod(int(flat), cost.shape[1])
            if not math.isfinite(cost[t, o]):
                break
            if t in used_t or o in used_o:
                continue
            used_t.add(t)
            used_o.add(o)
            pairs.append((t, o))
        return pairs

    def _survives(self, track: Track, stamp: float, image_size: tuple[int, int]) -> bool:
        """An unmatched track: keep it (occlusion) or drop it (noise, left the view)?"""
        if not track.confirmed or track.missed > self.settings.max_missed_frames:
            return False
        x, y = track.predict(stamp)
        width, height = image_size
        return 0.0 <= x < width and 0.0 <= y < height

    def _estimate_belt(self) -> None:
        velocities = [t.velocity for t in self.tracks
                      if t.confirmed and t.measured and t.missed == 0]
        if velocities:
            median = np.median(np.array(velocities), axis=0)
            self._belt_velocity = (float(median[0]), float(median[1]))
            self._belt_known = True
