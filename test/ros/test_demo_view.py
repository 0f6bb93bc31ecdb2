"""``lw-refinenet demo --foxglove``: the live view during a run, the video and the plot.

One short run against the stand-in node (``lw_refinenet_ros.testing.fake_node`` with the
conveyor colour rule): a Foxglove client
connects to the view while the demo runs and receives the overlay; afterwards the video is
decoded with OpenCV and the plot read back.
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
import re
import socket
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest
from rclpy.node import Node  # noqa: F401 - the demo and the view need rclpy importable

from lw_refinenet_ros.demo.plot import save_run_plot
from lw_refinenet_ros.demo.video import ConstantRateVideo, Mark, draw_frame
from lw_refinenet_ros.testing.foxglove_client import FoxgloveClient

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent


def _env() -> dict[str, str]:
    env = dict(os.environ, FAKE_NODE_RULE='conveyor')
    env['PYTHONPATH'] = os.pathsep.join(
        p for p in (str(ROOT), str(HERE), env.get('PYTHONPATH')) if p)
    return env


def _demo(out: Path, *extra: str) -> subprocess.Popen:
    namespace = f'/demo_view_{os.getpid()}'
    return subprocess.Popen(
        [sys.executable, '-u', '-m', 'lw_refinenet_ros', 'demo', '--out', str(out),
         '--namespace', namespace, '--device', 'cpu', '--node-module',
         'lw_refinenet_ros.testing.fake_node', '--snapshots', '1', *extra],
        cwd=ROOT, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


@pytest.mark.slow
def test_demo_serves_foxglove_and_leaves_a_video_and_a_plot(tmp_path: Path) -> None:
    out = tmp_path / 'demo'
    process = _demo(out, '--duration', '6', '--foxglove', '0')
    lines: list[str] = []
    try:
        url = None
        deadline = time.monotonic() + 90
        while url is None and time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            lines.append(line)
            match = re.search(r'Open connection -> (ws://\S+),', line)
            url = match.group(1) if match else None
        assert url, ''.join(lines)
        namespace = f'/demo_view_{os.getpid()}'
        overlay = f'{namespace}/segmentation/overlay'

        async def watch() -> list[object]:
            async with FoxgloveClient(url) as client:
                await client.subscribe(overlay, f'{namespace}/segmentation/annotations')
                frames = await client.receive(
                    lambda fs: sum(f.topic == overlay for f in fs) >= 3, timeout=60)
                return [client.decode(f) for f in frames if f.topic == overlay]

        images = asyncio.run(watch())
        assert len(images) >= 3, ''.join(lines)
        first = cv2.imdecode(np.frombuffer(images[0].data, np.uint8), cv2.IMREAD_COLOR)
        assert first is not None and first.shape == (240, 320, 3)
        stdout, _ = process.communicate(timeout=120)
        lines.append(stdout)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    text = ''.join(lines)
    assert process.returncode == 0, text
    summary = json.loads((out / 'summary.json').read_text())
    assert summary['foxglove'] == url
    video_path = Path(summary['video']['path'])
    plot_path = Path(summary['plot'])
    assert f'video      {video_path}' in text and f'plot       {plot_path}' in text

    capture = cv2.VideoCapture(str(video_path))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    capture.release()
    # Constant rate on the camera clock: about fps x seconds of overlay, whatever the node's
    # rate; the frame is the 320x240 overlay enlarged to 640x480 for a readable status line.
    assert len(frames) == summary['video']['frames'] >= 2 * summary['video']['fps']
    assert frames[0].shape == (480, 640, 3)
    assert frames[-1][-12:, :].mean() < frames[-1][:-24].mean()  # the dark status bar
    plot = cv2.imread(str(plot_path))
    assert plot is not None and plot.shape[0] > 300
    assert (out / 'logs' / 'view.log').read_text().count('serving') == 1


def test_foxglove_port_in_use_stops_the_demo_before_it_starts(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(('127.0.0.1', 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        process = _demo(tmp_path / 'demo', '--duration', '5', '--foxglove', str(port))
        stdout, _ = process.communicate(timeout=120)
    assert process.returncode == 2, stdout
    assert f'port {port} is in use' in stdout and f'--foxglove {port + 1}' in stdout
    assert 'Starting the segmentation node' not in stdout


def test_video_frames_are_held_to_a_constant_rate(tmp_path: Path) -> None:
    video = ConstantRateVideo(tmp_path / 'v', fps=10)
    rgb = np.zeros((60, 80, 3), np.uint8)
    colors = np.array([[0, 0, 0], [255, 0, 0]], np.uint8)
    for t in (0.0, 0.05, 0.5, 1.0):  # the second frame lands in the same slot as the first
        frame = draw_frame(rgb, [Mark(1, '#3 bolt', (10, 10, 20, 10), (20.0, 15.0))], colors,
                           f'{t:.1f} s', pick=(20.0, 15.0, 'pick bolt'))
        video.add(frame, t)
    path = video.close()
    assert path is not None and path.suffix in ('.mp4', '.avi')
    # slots 0, 1 (the early frame), 2-4 held, 5, 6-9 held, 10: 11 frames for 1 s at 10 fps.
    assert video.frames == 11
    capture = cv2.VideoCapture(str(path))
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 11
    ok, frame = capture.read()
    assert ok and frame.shape == (480, 640, 3)  # 80x60 enlarged 8x
    # The bolt's box is drawn in its class colour (red, BGR (0, 0, 255)) at 8x: x=80..239.
    assert frame[80:82, 80:240, 2].mean() > 150 and frame[80:82, 80:240, 0].mean() < 100


def test_plot_is_written_with_and_without_data(tmp_path: Path) -> None:
    full = save_run_plot(tmp_path / 'a.png', [(0.0, 50.0, 60.0), (0.1, 55.0, 70.0)],
                         [(0.0, 0, 0), (1.0, 9, 20)], 'cpu')
    empty = save_run_plot(tmp_path / 'b.png', [], [])
    for path in (full, empty):
        image = cv2.imread(str(path))
        assert image is not None and image.shape[:2] == (600, 900)


def test_video_node_draws_a_frame_whose_stats_arrive_after_it(tmp_path: Path,
                                                               ros_context: object) -> None:
    from lw_refinenet_ros.msg import ClassStatistics, SegmentationStats
    from std_msgs.msg import Header

    from lw_refinenet_ros.demo.video import DemoVideoNode
    from lw_refinenet_ros.ros.conversions import array_to_image

    node = DemoVideoNode(tmp_path / 'v', context=ros_context)
    try:
        for frame in range(3):
            header = Header(frame_id='camera')
            header.stamp.sec, header.stamp.nanosec = 100, frame * 100_000_000
            stats = SegmentationStats(header=header, width=160, height=120,
                                      frame_age_ms=42.0)
            part = ClassStatistics(class_id=2, class_name='bolt', pixel_count=200,
                                   area_fraction=0.01, centroid_x=30.0, centroid_y=30.0)
            part.bbox.x_offset, part.bbox.y_offset, part.bbox.width, part.bbox.height = (
                20, 20, 20, 20)
            stats.classes = [part]
            # The overlay first, its stats second: the frame must still get its box.
            node._on_overlay(array_to_image(np.zeros((120, 160, 3), np.uint8), header, 'rgb8'))
            node._on_stats(stats)
        path = node.close()
    finally:
        node.destroy_node()
    capture = cv2.VideoCapture(str(path))
    ok, first = capture.read()
    assert ok and first.shape == (480, 640, 3)
    # Unknown class colour (no class map): white box at 4x, x 80..159, top edge y=80.
    assert first[80:82, 80:160].mean() > 150
    assert video_frames(capture) + 1 == int(0.2 * 15) + 1
    assert node.timeline.latency[0][2] == 42.0


def video_frames(capture: cv2.VideoCapture) -> int:
    count = 0
    while capture.read()[0]:
        count += 1
    return count


def test_video_marks_the_robots_pick_where_the_part_is_now(tmp_path: Path,
                                                          ros_context: object) -> None:
    from types import SimpleNamespace

    from lw_refinenet_ros.msg import SegmentationStats, SegmentedObject, SegmentedObjects
    from std_msgs.msg import Header

    from lw_refinenet_ros.demo.video import DemoVideoNode
    from lw_refinenet_ros.ros.conversions import array_to_image

    # The robot committed to part #5 at (30, 30); in the frame drawn it has moved to (40, 30).
    picks = [SimpleNamespace(stamp=100.0, track_id=5, class_name='bolt', pick=(30.0, 30.0))]
    node = DemoVideoNode(tmp_path / 'v', picks=lambda: picks, context=ros_context)
    try:
        header = Header(frame_id='camera')
        header.stamp.sec, header.stamp.nanosec = 100, 200_000_000
        part = SegmentedObject(id=5, class_id=2, class_name='bolt', pick_x=40.0, pick_y=30.0,
                               tracked=True, confirmed=True)
        part.bbox.x_offset, part.bbox.y_offset, part.bbox.width, part.bbox.height = 30, 20, 20, 20
        node._on_objects(SegmentedObjects(header=header, width=160, height=120, objects=[part]))
        node._on_stats(SegmentationStats(header=header, width=160, height=120))
        node._on_overlay(array_to_image(np.zeros((120, 160, 3), np.uint8), header, 'rgb8'))
        path = node.close()
    finally:
        node.destroy_node()
    ok, frame = cv2.VideoCapture(str(path)).read()
    assert ok
    # The red cross of the pick sits on the part's current pick point (4x: 160, 120), where
    # the part is in this frame, not where it was when the robot decided.
    b, g, r = (int(v) for v in frame[120, 160])
    assert r > 150 and g < 100 and b < 100, (b, g, r)
