"""The tracker on synthetic belt motion: births, deaths, occlusion, stopped and reversing belt."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from lw_refinenet_ros.objects.detect import DetectorSettings, detect_objects
from lw_refinenet_ros.objects.tracking import Tracker, TrackerSettings

SIZE = (160, 80)  # width, height
PARTS = np.array([False, False, True, True])
FPS = 30.0


def frame(parts: list[tuple[float, float, int]]) -> np.ndarray:
    """Label image with discs (x, y, class) of radius 8 on a belt."""
    labels = np.ones((SIZE[1], SIZE[0]), np.uint8)
    for x, y, class_id in parts:
        cv2.circle(labels, (int(round(x)), int(round(y))), 8, class_id, -1)
    return labels


def run(tracker: Tracker, positions: list[list[tuple[float, float, int]]], start: int = 0):
    """Track a sequence of frames; returns per frame the list of (track_id, x, confirmed)."""
    out = []
    for index, parts in enumerate(positions, start=start):
        objects = detect_objects(frame(parts), PARTS, DetectorSettings(min_area=20))
        tracked = tracker.update(objects, index / FPS, SIZE)
        out.append([(t.track_id, t.object.centroid[0], t.confirmed) for t in tracked])
    return out


def belt(xs0: list[float], speed: float, frames: int, y: float = 40.0, class_id: int = 2):
    return [[(x + speed * k, y, class_id) for x in xs0 if -8 < x + speed * k < SIZE[0] + 8]
            for k in range(frames)]


def ids_by_x(result) -> list[list[int]]:
    return [[tid for tid, _, _ in sorted(objs, key=lambda t: t[1])] for objs in result]


def test_ids_persist_while_parts_ride_the_belt() -> None:
    tracker = Tracker(TrackerSettings(confirm_frames=3))
    result = run(tracker, belt([30.0, 90.0], 3.0, 15))
    ids = ids_by_x(result)
    assert all(frame_ids == ids[0] for frame_ids in ids[:15])
    assert len(set(ids[0])) == 2
    # Confirmation after three detections.
    assert [c for _, _, c in result[1]] == [False, False]
    assert all(c for _, _, c in result[2])
    # The belt velocity comes from the tracks: 3 px/frame at 30 Hz = 90 px/s.
    vx, vy = tracker.belt_velocity
    assert vx == pytest.approx(90.0, rel=0.05) and abs(vy) < 2.0


def test_births_at_the_entry_edge_and_deaths_at_the_exit_edge() -> None:
    tracker = Tracker(TrackerSettings(confirm_frames=2, max_missed_frames=5))
    # One part leaves on the right while another enters on the left.
    result = run(tracker, belt([140.0, -20.0], 4.0, 14))
    first_ids = {tid for tid, _, _ in result[0]}
    last_ids = {tid for tid, _, _ in result[-1]}
    assert len(first_ids) == 1 and len(last_ids) == 1 and first_ids != last_ids
    # The part that left is gone from the tracker at once (predicted outside the image),
    # not kept for max_missed_frames.
    assert len(tracker.tracks) == 1
    # A new part gets a new id, never a reused one.
    tracker2 = Tracker(TrackerSettings(confirm_frames=1))
    run(tracker2, belt([20.0], 3.0, 3))
    again = run(tracker2, belt([20.0], 3.0, 1) + [[]] * 8 + belt([20.0], 3.0, 1), start=3)
    assert again[-1][0][0] != again[0][0][0]


def test_a_part_hidden_for_a_few_frames_keeps_its_id() -> None:
    tracker = Tracker(TrackerSettings(confirm_frames=2, max_missed_frames=5))
    frames = belt([40.0, 100.0], 3.0, 14)
    for k in range(5, 9):   # the left part is occluded for four frames
        frames[k] = [p for p in frames[k] if p[0] > 70]
    result = run(tracker, frames)
    before = min(result[4], key=lambda t: t[1])[0]
    after = min(result[9], key=lambda t: t[1])[0]
    assert before == after
    assert len({tid for objs in result for tid, _, _ in objs}) == 2


def test_an_unconfirmed_track_that_misses_a_frame_is_noise() -> None:
    tracker = Tracker(TrackerSettings(confirm_frames=3))
    run(tracker, [[(50.0, 40.0, 2)], []])
    assert tracker.tracks == []


def test_a_stopped_belt_keeps_ids_and_reports_no_motion() -> None:
    tracker = Tracker(TrackerSettings(confirm_frames=2))
    frames = belt([40.0, 100.0], 3.0, 6)
    last = frames[-1]
    frames += [last] * 20               # the belt stops
    result = run(tracker, frames)
    assert ids_by_x(result)[-1] == ids_by_x(result)[0]
    vx, _ = tracker.belt_velocity
    assert abs(vx) < 3.0


def test_a_reversing_belt_keeps_ids_and_flips_the_belt_velocity() -> None:
    tracker = Tracker(TrackerSettings(confirm_frames=2, max_distance_px=20.0))
    forward = belt([40.0, 100.0], 3.0, 8)
    end = [p[0] for p in forward[-1]]
    backward = belt(end, -3.0, 10)[1:]
    result = run(tracker, forward + backward)
    ids = ids_by_x(result)
    assert all(frame_ids == ids[0] for frame_ids in ids)
    vx, _ = tracker.belt_velocity
    assert vx == pytest.approx(-90.0, rel=0.1)


def test_a_class_flicker_does_not_end_the_track() -> None:
    tracker = Tracker(TrackerSettings(confirm_frames=1))
    frames = belt([50.0], 2.0, 6)
    frames[3] = [(x, y, 3) for x, y, _ in frames[3]]
    result = run(tracker, frames)
    assert len({objs[0][0] for objs in result}) == 1


def test_stamps_going_back_reset_the_tracker() -> None:
    tracker = Tracker(TrackerSettings(confirm_frames=1))
    objects = detect_objects(frame([(50.0, 40.0, 2)]), PARTS, DetectorSettings(min_area=20))
    first = tracker.update(objects, 100.0, SIZE)[0].track_id
    again = tracker.update(objects, 100.0, SIZE)[0].track_id       # same stamp: same part
    assert again == first
    replay = tracker.update(objects, 10.0, SIZE)[0]                # a bag restarted
    assert replay.track_id != first and replay.age == 0.0
