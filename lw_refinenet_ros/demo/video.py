"""The demo's video: the node's overlay with parts, pick point and a status line, as an MP4.

Five PNG snapshots and a 200 MB MCAP do not show what the run looked like; a short video does,
and plays in any player. :class:`DemoVideoNode` (in the demo process, next to the monitor)
receives ``segmentation/overlay`` and draws on each frame:

- a box and label per part: the instance with its track id and pick point from
  ``segmentation/objects`` (``#7 gear``, as on the node's own overlay, but readable), else, for
  a node without objects, one box per small class from ``segmentation/stats`` (stats aggregate
  all blobs of a class, so such a box may span several parts);
- the sorting robot's picks, marked ``PICK #7 gear`` for a moment when it commits to one (or,
  without a robot, the part its older stats rule ``choose_pick`` would take);
- a status line: time, frames processed/dropped by the node (its ``/diagnostics``), latency.

Frames are written at a constant rate on the camera's clock (a frame is repeated until the
next overlay arrives), so the video plays in real time although the node's rate varies. It also
keeps the time series that :mod:`lw_refinenet_ros.demo.plot` draws.

Decoding, drawing and encoding run on a :class:`~lw_refinenet_ros.demo.encoder.LowPriorityWorker`
(one thread at nice 19), not in the executor: the demo should measure the node, not its own
video. What is left when the run ends is encoded then; the summary says how long that took
and how much CPU the video cost.
"""

from __future__ import annotations

from collections import OrderedDict
import dataclasses
import math
from pathlib import Path
from typing import Any, Callable, Sequence

import cv2
from diagnostic_msgs.msg import DiagnosticArray
import numpy as np
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image

from lw_refinenet_ros.demo.encoder import LowPriorityWorker
from lw_refinenet_ros.demo.monitor import NODE_NAME, image_array, stamp_ns
from lw_refinenet_ros.demo.sorting_robot import choose_pick
from lw_refinenet_ros.msg import ClassMap, SegmentationStats, SegmentedObjects
from lw_refinenet_ros.ros.topic_names import CLASS_MAP, DIAGNOSTICS, OBJECTS, OVERLAY, STATS
from lw_refinenet_ros.view.payloads import object_label

#: Frames per second of the video (constant; the node's own rate varies).
VIDEO_FPS = 15
#: Frames narrower than this are enlarged (nearest neighbour) so the text stays readable.
MIN_VIDEO_WIDTH = 640
#: Classes covering more of the frame than this are scenery (belt, background): no box.
MAX_BOX_AREA_FRACTION = 0.25
#: Seconds a robot pick stays marked on the video.
PICK_SHOWN_S = 0.7
# Codecs OpenCV's bundled FFmpeg writes here, in order of preference: MPEG-4 Part 2 in .mp4
# (VLC, mpv, ffmpeg, QuickTime, Windows players), then Motion JPEG in .avi. OpenCV's pip
# wheels carry no H.264 encoder.
_CODECS = (('mp4v', '.mp4'), ('MJPG', '.avi'))
_WHITE, _BLACK = (255, 255, 255), (0, 0, 0)


@dataclasses.dataclass(frozen=True)
class Mark:
    """One part drawn on a frame, in input-image pixels."""

    class_id: int
    label: str
    bbox: tuple[int, int, int, int]   # x, y, width, height
    point: tuple[float, float] | None = None


@dataclasses.dataclass
class Timeline:
    """What the plot shows: per-frame latency and the node's counters over time (seconds
    from the first overlay)."""

    latency: list[tuple[float, float, float]] = dataclasses.field(default_factory=list)
    counters: list[tuple[float, int, int]] = dataclasses.field(default_factory=list)


def marks_from_stats(stats: SegmentationStats) -> list[Mark]:
    """Boxes for the small classes of one stats message (no instance ids in stats)."""
    marks = []
    for entry in stats.classes:
        if not entry.area_fraction <= MAX_BOX_AREA_FRACTION:  # also skips NaN
            continue
        box = entry.bbox
        marks.append(Mark(int(entry.class_id), entry.class_name,
                          (int(box.x_offset), int(box.y_offset), int(box.width),
                           int(box.height)), (float(entry.centroid_x), float(entry.centroid_y))))
    return marks


def marks_from_objects(msg: SegmentedObjects) -> list[Mark]:
    """One mark per part instance: ``#id class`` (the node's convention), its pick point."""
    return [Mark(int(o.class_id), object_label(o),
                 (int(o.bbox.x_offset), int(o.bbox.y_offset), int(o.bbox.width),
                  int(o.bbox.height)), (float(o.pick_x), float(o.pick_y))) for o in msg.objects]


def _remember(store: OrderedDict[int, Any], key: int, msg: Any, keep: int = 30) -> None:
    store[key] = msg
    while len(store) > keep:
        store.popitem(last=False)


def draw_frame(rgb: np.ndarray, marks: Sequence[Mark], colors: np.ndarray,
               status: str, pick: tuple[float, float, str] | None = None) -> np.ndarray:
    """The annotated video frame, BGR for OpenCV, enlarged to at least MIN_VIDEO_WIDTH.

    Args:
        rgb: The overlay, (H, W, 3) RGB.
        marks: Parts to box and label.
        colors: (K, 3) RGB class colours (boxes take their class's colour).
        status: Text of the status line at the bottom.
        pick: (x, y, text) of the pick point, or None.
    """
    scale = max(1, math.ceil(MIN_VIDEO_WIDTH / rgb.shape[1]))
    frame = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGR)
    if scale > 1:
        frame = cv2.resize(frame, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
    font = cv2.FONT_HERSHEY_SIMPLEX
    for mark in marks:
        r, g, b = (int(v) for v in colors[mark.class_id]) if mark.class_id < len(colors) \
            else _WHITE
        color = (b, g, r)
        x, y, w, h = (v * scale for v in mark.bbox)
        cv2.rectangle(frame, (x, y), (x + w - 1, y + h - 1), color, 2)
        (tw, th), _ = cv2.getTextSize(mark.label, font, 0.45, 1)
        top = max(0, y - th - 6)
        cv2.rectangle(frame, (x, top), (x + tw + 4, top + th + 6), color, -1)
        text_color = _BLACK if r + g + b > 380 else _WHITE
        cv2.putText(frame, mark.label, (x + 2, top + th + 2), font, 0.45, text_color, 1,
                    cv2.LINE_AA)
        if mark.point is not None:
            cv2.circle(frame, (round(mark.point[0] * scale), round(mark.point[1] * scale)), 3,
                       color, -1)
    if pick is not None:
        px, py = round(pick[0] * scale), round(pick[1] * scale)
        cv2.drawMarker(frame, (px, py), _WHITE, cv2.MARKER_CROSS, 22, 3)
        cv2.drawMarker(frame, (px, py), (0, 0, 255), cv2.MARKER_CROSS, 18, 2)
        (tw, th), _ = cv2.getTextSize(pick[2], font, 0.5, 1)
        left = min(px + 14, frame.shape[1] - tw - 6)
        top = max(0, py - 14 - th - 6)
        cv2.rectangle(frame, (left, top), (left + tw + 6, top + th + 8), _BLACK, -1)
        cv2.putText(frame, pick[2], (left + 3, top + th + 3), font, 0.5, _WHITE, 1,
                    cv2.LINE_AA)
    bar = 24
    cv2.rectangle(frame, (0, frame.shape[0] - bar), (frame.shape[1], frame.shape[0]), _BLACK,
                  -1)
    cv2.putText(frame, status, (6, frame.shape[0] - 7), font, 0.5, _WHITE, 1, cv2.LINE_AA)
    return frame


class ConstantRateVideo:
    """An OpenCV video written at a fixed fps from frames that arrive at irregular times."""

    def __init__(self, path: Path, fps: int = VIDEO_FPS, max_hold_s: float = 5.0) -> None:
        """``path`` without suffix decides the name; the codec decides ``.mp4``/``.avi``."""
        self._base = Path(path).with_suffix('')
        self.fps = fps
        self._max_hold = int(max_hold_s * fps)
        self._writer: Any = None
        self._last: np.ndarray | None = None
        self._next_slot = 0
        self._shape = (0, 0)
        self.path: Path | None = None
        self.frames = 0

    def _open(self, size: tuple[int, int]) -> None:
        for fourcc, suffix in _CODECS:
            path = self._base.with_suffix(suffix)
            writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), self.fps, size)
            if writer.isOpened():
                self._writer, self.path = writer, path
                self._shape = (size[1], size[0])
                return
            writer.release()
            path.unlink(missing_ok=True)
        raise RuntimeError(f'OpenCV cannot write a video here (tried {_CODECS})')

    def add(self, frame: np.ndarray, t_s: float) -> None:
        """Show ``frame`` from ``t_s`` seconds on (the previous one is held until then)."""
        if self._writer is None:
            self._open((frame.shape[1], frame.shape[0]))
        if frame.shape[:2] != self._shape:  # a resolution change mid-run: keep the file valid
            frame = cv2.resize(frame, (self._shape[1], self._shape[0]))
        slot = max(int(t_s * self.fps), self._next_slot)
        if self._last is not None:
            for _ in range(min(slot - self._next_slot, self._max_hold)):
                self._write(self._last)
        self._write(frame)
        self._next_slot = slot + 1
        self._last = frame

    def _write(self, frame: np.ndarray) -> None:
        self._writer.write(frame)
        self.frames += 1

    def close(self) -> Path | None:
        """Finish the file; its path, or None when no frame was ever added."""
        if self._writer is not None:
            self._writer.release()
            self._writer = None
        return self.path


class DemoVideoNode(Node):
    """Subscribes to the node's overlay, stats, objects and diagnostics; writes the video."""

    def __init__(self, path: Path, fps: int = VIDEO_FPS,
                 picks: Callable[[], Sequence[Any]] | None = None, **kwargs: Any) -> None:
        """Record to ``path`` (suffix from the codec).

        Args:
            path: Video file name; ``.mp4`` (or ``.avi``) is appended by the codec.
            fps: Frames per second of the file.
            picks: Returns the sorting robot's decisions so far (``ObjectPick``: stamp,
                track id, class, pick point); each is marked on the frames of the next
                :data:`PICK_SHOWN_S` seconds. None: the stats rule (``choose_pick``) instead.
            **kwargs: Forwarded to ``rclpy.node.Node``.
        """
        super().__init__('demo_video', **kwargs)
        self._picks = picks
        self.video = ConstantRateVideo(path, fps)  # used on the encoder thread only
        self.encoder = LowPriorityWorker('demo-video')
        self.timeline = Timeline()
        self._colors = np.zeros((0, 3), np.uint8)
        self._names: tuple[str, ...] = ()
        self._stats: OrderedDict[int, SegmentationStats] = OrderedDict()
        # Overlays whose stats have not arrived yet: the node publishes the stats first, but
        # two topics' callbacks may run in either order here.
        self._pending: OrderedDict[int, Image] = OrderedDict()
        self._objects: OrderedDict[int, SegmentedObjects] = OrderedDict()
        self._objects_seen_ns = 0
        self._start_ns: int | None = None
        self._processed = self._dropped = 0
        self._node_fqn = f'{self.get_namespace().rstrip("/")}/{NODE_NAME}'
        # Reliable, in this process: the video should have every overlay the node sends.
        qos = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
        self.create_subscription(Image, OVERLAY, self._on_overlay, qos)
        self.create_subscription(SegmentationStats, STATS, self._on_stats, qos)
        self.create_subscription(SegmentedObjects, OBJECTS, self._on_objects, qos)
        self.create_subscription(DiagnosticArray, DIAGNOSTICS, self._on_diagnostics, qos)
        latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self.create_subscription(ClassMap, CLASS_MAP, self._on_class_map, latched)

    def _seconds(self, stamp: Any) -> float:
        ns = stamp_ns(stamp)
        if self._start_ns is None:
            self._start_ns = ns
        return (ns - self._start_ns) / 1e9

    def _on_class_map(self, msg: ClassMap) -> None:
        size = max(msg.ids, default=-1) + 1
        colors = np.full((size, 3), 255, np.uint8)
        names = [str(i) for i in range(size)]
        for class_id, name, color in zip(msg.ids, msg.names, msg.colors):
            colors[class_id] = [round(255 * color.r), round(255 * color.g), round(255 * color.b)]
            names[class_id] = name
        self._colors, self._names = colors, tuple(names)

    def _on_stats(self, msg: SegmentationStats) -> None:
        key = stamp_ns(msg.header.stamp)
        _remember(self._stats, key, msg)
        self.timeline.latency.append((self._seconds(msg.header.stamp),
                                      float(msg.processing_latency_ms),
                                      float(msg.frame_age_ms)))
        if key in self._pending and self._ready(key):
            self._flush(until=key)

    def _on_objects(self, msg: SegmentedObjects) -> None:
        key = stamp_ns(msg.header.stamp)
        _remember(self._objects, key, msg)
        self._objects_seen_ns = key
        if key in self._pending and self._ready(key):
            self._flush(until=key)

    def _ready(self, key: int) -> bool:
        """Everything of frame ``key`` is here: its stats, and its objects while the node
        sends objects (within the last 2 s of camera time)."""
        objects_flowing = key - self._objects_seen_ns < 2_000_000_000
        return key in self._stats and (key in self._objects or not objects_flowing)

    def _on_diagnostics(self, msg: DiagnosticArray) -> None:
        for status in msg.status:
            if not status.name.startswith(self._node_fqn):
                continue
            values = {kv.key: kv.value for kv in status.values}
            try:
                processed = int(values['processed'])
                dropped = int(values['dropped_overwritten']) + int(values['dropped_too_old'])
            except (KeyError, ValueError):
                continue
            self._processed, self._dropped = processed, dropped
            if self._start_ns is not None:
                self.timeline.counters.append((self._seconds(msg.header.stamp), processed,
                                               dropped))

    def _on_overlay(self, msg: Image) -> None:
        key = stamp_ns(msg.header.stamp)
        self._seconds(msg.header.stamp)  # the first overlay may start the clock
        self._pending[key] = msg
        if self._ready(key):
            self._flush(until=key)
        elif len(self._pending) > 3:  # no stats for it (nobody computes them): draw anyway
            self._flush(until=next(iter(self._pending)))

    def _flush(self, until: int) -> None:
        """Draw pending overlays in stamp order, up to and including ``until``."""
        while self._pending:
            key = next(iter(self._pending))
            if key > until:
                break
            self._draw(self._pending.pop(key))

    def _draw(self, msg: Image) -> None:
        t = self._seconds(msg.header.stamp)
        key = stamp_ns(msg.header.stamp)
        stats, objects = self._stats.get(key), self._objects.get(key)
        marks: list[Mark] = []
        pick, latency = None, ''
        if objects is not None:
            marks = marks_from_objects(objects)
        elif stats is not None:
            marks = marks_from_stats(stats)
        if stats is not None:
            latency = f'latency {stats.frame_age_ms:.0f} ms'
        if self._picks is not None:
            pick = self._recent_pick(key / 1e9, objects)
        elif stats is not None:
            chosen = choose_pick(stats, self._names)
            if chosen is not None:
                pick = (*chosen.centroid, f'pick {chosen.class_name}')
        status = (f'{t:5.1f} s   processed {self._processed}   dropped {self._dropped}   '
                  f'{latency}')
        colors = self._colors

        def encode() -> None:
            self.video.add(draw_frame(image_array(msg), marks, colors, status, pick), t)

        self.encoder.submit(encode)

    def _recent_pick(self, stamp_s: float,
                     objects: SegmentedObjects | None) -> tuple[float, float, str] | None:
        """The robot's latest pick of the last PICK_SHOWN_S seconds, at the part's current
        pick point when the part is still in this frame."""
        recent = [p for p in self._picks() if 0.0 <= stamp_s - p.stamp <= PICK_SHOWN_S]
        if not recent:
            return None
        pick = recent[-1]
        x, y = pick.pick
        for obj in objects.objects if objects is not None else ():
            if obj.tracked and obj.id == pick.track_id:
                x, y = obj.pick_x, obj.pick_y
        return x, y, f'PICK #{pick.track_id} {pick.class_name}'

    def close(self) -> Path | None:
        """Finish the video (encoding what is still queued); its path (None if the node sent
        no overlay)."""
        if self._pending:
            self._flush(until=next(reversed(self._pending)))
        self.encoder.close()
        return self.video.close()
