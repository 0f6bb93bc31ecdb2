"""The conveyor demo: camera -> segmentation node -> sorting robot, recorded and scored live.

Process layout (why): the synthetic camera and the segmentation node run as **subprocesses**
(``sys.executable``, so the same venv), the sorting robot and the monitor run **in this
process**. Separate processes give the node its own GIL and interpreter, so inference does not
compete with recording and scoring for the one Python thread, and the latency numbers include
the real DDS transport, as they would with a hardware camera. The robot is light and is meant
to be read as example code, and counting its picks directly is simpler in-process.

The monitor subscribes (raw CDR, QoS copied from the publishers) to every camera and node
topic, writes them to ``demo.mcap``, and on the way:

- measures latency as (arrival of ``segmentation/labels``) - (camera header stamp);
- pairs ``segmentation/labels`` with ``ground_truth/labels`` of the same stamp and accumulates a
  confusion matrix (live mIoU);
- saves evenly spaced overlay PNGs;
- keeps the node's latest ``/diagnostics`` status (received/processed/dropped/failed counts).

Shutdown order: camera first, then a short drain so in-flight frames and a final diagnostics
message arrive, then the node (SIGINT, then SIGTERM/SIGKILL if it hangs).
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from dataclasses import dataclass
import json
import math
import os
from pathlib import Path
import re
import signal
import subprocess
import sys
import time
from typing import Any, Callable

import cv2
from diagnostic_msgs.msg import DiagnosticArray
import numpy as np
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rclpy.serialization import deserialize_message
from rclpy.signals import SignalHandlerOptions
from sensor_msgs.msg import Image

from lw_refinenet_ros.data.conveyor import CLASS_COLORS, CLASS_NAMES
from lw_refinenet_ros.errors import LWRefineNetError
from lw_refinenet_ros.msg import ClassMap
from lw_refinenet_ros.palette import overlay
from lw_refinenet_ros.ros.recorder import McapWriter, TopicRecorder
from lw_refinenet_ros.ros.sorting_robot import SortingRobotNode
from lw_refinenet_ros.training.metrics import ConfusionMeter

NODE_MODULE = 'lw_refinenet_ros.ros.node'
CAMERA_MODULE = 'lw_refinenet_ros.ros.conveyor_camera'
NODE_NAME = 'lw_refinenet'
DEFAULT_NAMESPACE = '/conveyor_demo'

NODE_TOPICS = ('segmentation/labels', 'segmentation/color', 'segmentation/overlay',
               'segmentation/confidence', 'segmentation/stats', 'segmentation/class_map',
               '/diagnostics')
CAMERA_TOPICS = {'camera_info': 'sensor_msgs/msg/CameraInfo',
                 'ground_truth/labels': 'sensor_msgs/msg/Image', 'image': 'sensor_msgs/msg/Image'}
DIAGNOSTIC_COUNTERS = ('received', 'processed', 'dropped_overwritten', 'dropped_too_old',
                       'failed')
_PAIRING_WINDOW = 90  # frames of unmatched ground truth / labels kept for pairing (3 s)


@dataclass(frozen=True)
class DemoConfig:
    """Everything the demo run needs; the CLI builds it from its options.

    Attributes:
        out_dir: Output folder (MCAP, PNGs, summary.json, logs/).
        duration_s: Seconds to run once the camera's first frame is recorded.
        device: Inference device passed to the node (``cpu``, ``cuda``, ``cuda:N``).
        weights: Checkpoint for ``model.weights``; empty uses the packaged default model.
        rate_hz: Camera rate.
        size: Camera (width, height).
        max_frame_age_ms: Node parameter: frames older than this are dropped, not segmented.
        seed: Scene seed.
        snapshots: Number of overlay PNGs, evenly spaced over the run.
        startup_timeout_s: Longest wait for the node to come up (model load, warm-up).
        node_module: Module with the segmentation node's ``main()`` (tests swap in a fake).
        transport: ``shm``: every demo process uses the package's 64 MB shared-memory Fast DDS
            profile (``config/fastdds_shm.xml``) unless FASTRTPS_DEFAULT_PROFILES_FILE is set;
            ``default``: Fast DDS defaults.
        namespace: ROS namespace of every demo node and topic (except ``/diagnostics``), so
            other nodes in the same DDS domain (benchmarks, tests) cannot mix in.
    """

    out_dir: Path
    duration_s: float = 20.0
    device: str = 'cpu'
    weights: str = ''
    rate_hz: float = 30.0
    size: tuple[int, int] = (320, 240)
    max_frame_age_ms: float = 500.0
    seed: int = 1
    snapshots: int = 5
    startup_timeout_s: float = 120.0
    node_module: str = NODE_MODULE
    transport: str = 'shm'
    namespace: str = DEFAULT_NAMESPACE


def _stamp_ns(stamp: Any) -> int:
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def _image_array(msg: Image) -> np.ndarray:
    """A copy of an 8-bit mono/rgb/bgr image as (H, W) or (H, W, 3) (rows may be padded)."""
    channels = 1 if msg.encoding in ('mono8', '8UC1') else 3
    rows = np.frombuffer(msg.data, np.uint8).reshape(msg.height, msg.step)
    array = rows[:, :msg.width * channels].reshape(msg.height, msg.width, channels)
    if msg.encoding == 'bgr8':
        array = array[..., ::-1]
    return array[..., 0].copy() if channels == 1 else array.copy()


def _percentile(values: list[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None


class DemoMonitor(Node):
    """Records every demo topic and scores the node's output against the ground truth.

    Args:
        writer: MCAP writer for the recording.
        out_dir: Where overlay PNGs go (scheduled by :meth:`start_window`).
        **kwargs: Forwarded to ``rclpy.node.Node``.
    """

    def __init__(self, writer: McapWriter, out_dir: Path, **kwargs: Any) -> None:
        super().__init__('demo_monitor', **kwargs)
        self.out_dir = out_dir
        # The node's outputs are subscribed with its QoS as they appear; the camera topics
        # only once the node's labels are matched (see subscribe_camera).
        self.recorder = TopicRecorder(self, writer, NODE_TOPICS, on_message=self._on_message)
        self.recorder.poll()
        self.create_timer(0.25, self.recorder.poll)
        self.class_names: tuple[str, ...] = CLASS_NAMES
        self.colors = np.array(CLASS_COLORS, np.uint8)
        self.meter = ConfusionMeter(len(CLASS_NAMES))
        self.latencies_ms: list[float] = []
        self.frames_scored = 0
        self.image_count = 0
        self.labels_count = 0
        self.first_image_ns: int | None = None
        self.diagnostics: dict[str, str] = {}
        self.snapshot_paths: list[Path] = []
        self._snapshot_times: list[int] = []
        self._truth: OrderedDict[int, np.ndarray] = OrderedDict()
        self._labels: OrderedDict[int, np.ndarray] = OrderedDict()
        self._images: OrderedDict[int, np.ndarray] = OrderedDict()
        self._overlay_topic = self.resolve_topic_name('segmentation/overlay')
        self._node_fqn = f'{self.get_namespace().rstrip("/")}/{NODE_NAME}'
        self._handlers: dict[str, Callable[[bytes, int], None]] = {
            self.resolve_topic_name(name): handler for name, handler in (
                ('image', self._on_image), ('ground_truth/labels', self._on_truth),
                ('segmentation/labels', self._on_labels),
                ('segmentation/overlay', self._on_overlay),
                ('segmentation/class_map', self._on_class_map),
                ('/diagnostics', self._on_diagnostics))}

    def start_window(self, start_ns: int, duration_s: float, snapshots: int) -> None:
        """Schedule ``snapshots`` overlay PNGs evenly over the run starting at ``start_ns``."""
        step = duration_s * 1e9 / max(snapshots, 1)
        self._snapshot_times = [int(start_ns + (k + 0.5) * step) for k in range(snapshots)]

    def node_is_up(self) -> bool:
        """The segmentation node subscribes to ``image`` and its labels reach the recorder."""
        subscribers = self.get_subscriptions_info_by_topic(self.resolve_topic_name('image'))
        labels = self.recorder.subscriptions.get(self.resolve_topic_name('segmentation/labels'))
        return (any(info.node_name == NODE_NAME and info.node_namespace == self.get_namespace()
                    for info in subscribers)
                and labels is not None and labels.get_publisher_count() > 0)

    def node_counts_settled(self) -> bool:
        """The latest diagnostics were sent after the last frame: processed == labels seen."""
        return _number(self.diagnostics.get('processed')) == self.labels_count > 0

    def subscribe_camera(self) -> None:
        """Record the camera topics (its QoS is known: reliable, volatile), image last.

        The camera holds the belt until the node and this ``image`` subscription are matched,
        so creating it only now (after :meth:`node_is_up`) means no label image is published
        before the recorder receives labels: nothing is missed at the start.
        """
        qos = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
        for topic, type_name in CAMERA_TOPICS.items():
            self.recorder.subscribe(topic, type_name, qos)

    # ------------------------------------------------------------------ message handlers

    def _on_message(self, topic: str, data: bytes, now_ns: int) -> None:
        handler = self._handlers.get(topic)
        if handler is not None:
            handler(data, now_ns)

    def _on_image(self, data: bytes, now_ns: int) -> None:
        self.image_count += 1
        if self.first_image_ns is None:
            self.first_image_ns = now_ns
        if self._snapshot_times and self._overlay_topic not in self.recorder.subscribed:
            # No overlay from the node (yet): keep recent frames to compose snapshots from.
            msg = deserialize_message(data, Image)
            self._remember(self._images, _stamp_ns(msg.header.stamp), _image_array(msg))

    def _on_truth(self, data: bytes, now_ns: int) -> None:
        msg = deserialize_message(data, Image)
        stamp = _stamp_ns(msg.header.stamp)
        truth = _image_array(msg)
        predicted = self._labels.pop(stamp, None)
        if predicted is not None:
            self._score(truth, predicted)
        else:
            self._remember(self._truth, stamp, truth)

    def _on_labels(self, data: bytes, now_ns: int) -> None:
        msg = deserialize_message(data, Image)
        stamp = _stamp_ns(msg.header.stamp)
        self.labels_count += 1
        self.latencies_ms.append((now_ns - stamp) / 1e6)
        predicted = _image_array(msg)
        truth = self._truth.pop(stamp, None)
        if truth is not None:
            self._score(truth, predicted)
        else:
            self._remember(self._labels, stamp, predicted)
        if self._snapshot_due(now_ns) and self._overlay_topic not in self.recorder.subscribed:
            # The node publishes no overlay: compose one from the camera frame.
            image = self._images.get(stamp)
            if image is not None and image.shape[:2] == predicted.shape:
                self._save_snapshot(overlay(image, predicted, self._palette(), 0.5))

    def _on_overlay(self, data: bytes, now_ns: int) -> None:
        if self._snapshot_due(now_ns):
            self._save_snapshot(_image_array(deserialize_message(data, Image)))

    def _on_class_map(self, data: bytes, now_ns: int) -> None:
        msg = deserialize_message(data, ClassMap)
        size = max(msg.ids, default=-1) + 1
        names = [str(i) for i in range(size)]
        colors = np.zeros((size, 3), np.uint8)
        for class_id, name, color in zip(msg.ids, msg.names, msg.colors):
            names[class_id] = name
            colors[class_id] = [round(255 * color.r), round(255 * color.g), round(255 * color.b)]
        self.class_names = tuple(names)
        self.colors = colors
        if size > self.meter.num_classes:
            self.meter = ConfusionMeter(size)

    def _on_diagnostics(self, data: bytes, now_ns: int) -> None:
        for status in deserialize_message(data, DiagnosticArray).status:
            values = {kv.key: kv.value for kv in status.values}
            # Only our node: /diagnostics is global, other nodes in the domain publish too.
            if status.name.startswith(self._node_fqn):
                self.diagnostics = values

    # ------------------------------------------------------------------ helpers

    def _palette(self) -> np.ndarray:
        return self.colors if len(self.colors) >= len(CLASS_COLORS) else np.array(
            CLASS_COLORS, np.uint8)

    @staticmethod
    def _remember(store: OrderedDict[int, np.ndarray], stamp: int, array: np.ndarray) -> None:
        store[stamp] = array
        while len(store) > _PAIRING_WINDOW:
            store.popitem(last=False)

    def _score(self, truth: np.ndarray, predicted: np.ndarray) -> None:
        if truth.shape != predicted.shape:
            return  # the node was configured to publish at another size: not comparable
        top = int(predicted.max(initial=0)) + 1
        if top > self.meter.num_classes:  # the model has more classes than the scene
            old = self.meter
            self.meter = ConfusionMeter(top)
            self.meter.matrix[:old.num_classes, :old.num_classes] = old.matrix
        self.meter.update(truth, predicted)
        self.frames_scored += 1

    def _snapshot_due(self, now_ns: int) -> bool:
        return bool(self._snapshot_times) and now_ns >= self._snapshot_times[0]

    def _save_snapshot(self, rgb: np.ndarray) -> None:
        self._snapshot_times.pop(0)
        path = self.out_dir / f'overlay_{len(self.snapshot_paths):02d}.png'
        cv2.imwrite(str(path), np.ascontiguousarray(rgb[..., ::-1]))
        self.snapshot_paths.append(path)
        if not self._snapshot_times:
            self._images.clear()


# ---------------------------------------------------------------------- processes


def _spawn(module: str, ros_args: list[str], log_path: Path) -> subprocess.Popen:
    """Run ``module.main()`` with ``sys.executable`` (same venv), output to ``log_path``.

    A new session keeps a terminal Ctrl-C away from the children: the demo stops them itself,
    in order, so the node can publish its last results first.
    """
    env = dict(os.environ)
    # The children import this same copy of the package (a source checkout or the install).
    source_root = str(Path(__file__).resolve().parents[2])
    env['PYTHONPATH'] = os.pathsep.join(p for p in (source_root, env.get('PYTHONPATH')) if p)
    env.setdefault('RCUTILS_LOGGING_BUFFERED_STREAM', '0')
    code = f'import sys; from {module} import main; sys.exit(main())'
    log = open(log_path, 'wb')
    try:
        return subprocess.Popen([sys.executable, '-c', code, '--ros-args', *ros_args],
                                stdout=log, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True)
    finally:
        log.close()  # the child holds its own descriptor


def _stop(process: subprocess.Popen, timeout_s: float = 8.0,
          spin: Callable[[], None] | None = None) -> int:
    """SIGINT, then SIGTERM, then SIGKILL; returns the exit code.

    ``spin`` runs while waiting (the monitor's executor), so the last messages the process
    sends before it exits are still received: a reliable sample not yet delivered is lost
    once its publisher is gone.
    """
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
        if process.poll() is not None:
            break
        process.send_signal(sig)
        deadline = time.monotonic() + timeout_s
        while process.poll() is None and time.monotonic() < deadline:
            if spin is not None:
                spin()
            else:
                time.sleep(0.02)
    return process.wait()


def shm_profile() -> Path | None:
    """The package's shared-memory Fast DDS profile: installed share/ first, then the source."""
    prefixes = [p for p in os.environ.get('AMENT_PREFIX_PATH', '').split(os.pathsep) if p]
    candidates = [Path(p) / 'share' / 'lw_refinenet_ros' / 'config' / 'fastdds_shm.xml'
                  for p in (*prefixes, sys.prefix)]
    candidates.append(Path(__file__).resolve().parents[2] / 'config' / 'fastdds_shm.xml')
    return next((path for path in candidates if path.is_file()), None)


def _log_tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors='replace').strip().splitlines()
    except OSError:
        return ''
    return '\n'.join(text[-lines:])


def _camera_published(log_path: Path) -> int | None:
    match = re.findall(r'published (\d+) frames', _log_tail(log_path, 50))
    return int(match[-1]) if match else None


def _number(text: str | None) -> float | int | None:
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    return int(value) if value.is_integer() else value


# ---------------------------------------------------------------------- run


def run_demo(config: DemoConfig, echo: Callable[[str], None] = print) -> dict[str, Any]:
    """Run the demo and return the summary (also written to ``out_dir/summary.json``).

    Ctrl-C (SIGINT) or SIGTERM ends the run early; the summary then covers the time so far.

    Raises:
        LWRefineNetError: The segmentation node exited or did not come up in time (the message
            includes the end of its log).
    """
    out = Path(config.out_dir)
    (out / 'logs').mkdir(parents=True, exist_ok=True)
    for stale in out.glob('overlay_*.png'):
        stale.unlink()
    # A demo should not talk to the whole network; an explicit setting still wins.
    os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    # Fast DDS's default shared-memory segment (0.5 MB) overflows when the node publishes its
    # five outputs at once; the reliable label and colour images then went missing in the
    # recording (52 of 56 and 43 of 56 in a 10 s run). With the 64 MB profile nothing was lost.
    # Set before rclpy.init: this process and the children (which inherit it) all need it.
    profile = shm_profile() if config.transport == 'shm' else None
    if config.transport == 'shm' and profile is None:
        echo('warning: config/fastdds_shm.xml not found; using the Fast DDS defaults')
    if profile is not None:
        os.environ.setdefault('FASTRTPS_DEFAULT_PROFILES_FILE', str(profile))

    context = rclpy.Context()
    # Own signal handling: Ctrl-C must stop the run, not shut the context down under us,
    # so the children can be stopped in order and the summary still written.
    rclpy.init(context=context, signal_handler_options=SignalHandlerOptions.NO)
    # SIGTERM ends the run like Ctrl-C; SIGINT is set explicitly because a shell starting the
    # demo in the background hands it down ignored.
    previous = {sig: signal.signal(sig, signal.default_int_handler)
                for sig in (signal.SIGINT, signal.SIGTERM)}
    writer = McapWriter(out / 'demo.mcap')
    monitor = DemoMonitor(writer, out, context=context, namespace=config.namespace)
    robot = SortingRobotNode(context=context, namespace=config.namespace)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(monitor)
    executor.add_node(robot)

    width, height = config.size
    namespace = ['-r', f'__ns:={config.namespace}']
    node_args = [*namespace, '-r', f'__node:={NODE_NAME}', '-p', f'device:={config.device}',
                 '-p', f'max_frame_age_ms:={float(config.max_frame_age_ms)}']
    if config.weights:
        node_args += ['-p', f'model.weights:={config.weights}']
    camera_args = [*namespace, '-p', f'width:={width}', '-p', f'height:={height}',
                   '-p', f'rate_hz:={float(config.rate_hz)}', '-p', f'seed:={config.seed}',
                   # Start the belt once the node and the recorder are matched, so both see
                   # every frame (a new match between processes can take seconds here).
                   '-p', 'wait_for_subscribers:=2']
    node_log, camera_log = out / 'logs' / 'segmentation_node.log', out / 'logs' / 'camera.log'
    node = camera = None
    interrupted = False
    window_start = started = time.monotonic()
    window_end = None
    startup: dict[str, float] = {}
    try:
        try:
            echo(f'Starting the segmentation node ({config.device}) and the conveyor camera '
                 f'({width}x{height} at {config.rate_hz:g} Hz) ...')
            node = _spawn(config.node_module, node_args, node_log)
            # The camera pre-renders its loop while the node loads its model, then holds the
            # belt until the node and the recorder subscribe.
            camera = _spawn(CAMERA_MODULE, camera_args, camera_log)
            deadline = time.monotonic() + config.startup_timeout_s
            while not monitor.node_is_up():
                if camera.poll() is not None:
                    raise LWRefineNetError(
                        f'The conveyor camera exited with code {camera.returncode}. End of '
                        f'{camera_log}:\n{_log_tail(camera_log)}')
                if node.poll() is not None:
                    raise LWRefineNetError(
                        f'The segmentation node exited with code {node.returncode} during '
                        f'startup. End of {node_log}:\n{_log_tail(node_log)}')
                if time.monotonic() > deadline:
                    raise LWRefineNetError(
                        f'The segmentation node did not come up within '
                        f'{config.startup_timeout_s:g} s. End of {node_log}:\n'
                        f'{_log_tail(node_log)}')
                executor.spin_once(timeout_sec=0.1)
            startup['node_ready_s'] = round(time.monotonic() - started, 2)
            monitor.subscribe_camera()
            deadline = time.monotonic() + 60.0
            while monitor.first_image_ns is None:
                if camera.poll() is not None or time.monotonic() > deadline:
                    raise LWRefineNetError(
                        f'The conveyor camera published nothing. End of {camera_log}:\n'
                        f'{_log_tail(camera_log)}')
                executor.spin_once(timeout_sec=0.1)
            window_start = time.monotonic()
            startup['first_frame_s'] = round(window_start - started, 2)
            monitor.start_window(time.time_ns(), config.duration_s, config.snapshots)
            echo(f'Running for {config.duration_s:g} s (Ctrl-C ends early) ...')
            while time.monotonic() - window_start < config.duration_s:
                if node.poll() is not None:
                    raise LWRefineNetError(
                        f'The segmentation node exited with code {node.returncode}. '
                        f'End of {node_log}:\n{_log_tail(node_log)}')
                executor.spin_once(timeout_sec=0.1)
        except KeyboardInterrupt:
            interrupted = True
            echo('Interrupted: stopping and writing the summary so far ...')
        window_end = time.monotonic()
        if camera is not None:
            _stop(camera, spin=lambda: executor.spin_once(timeout_sec=0.02))
        # Drain: in-flight results, until the node's diagnostics count exactly the label
        # images received (its last frames are then in both), for at most 3 s.
        drain_end = time.monotonic() + 3.0
        while time.monotonic() < drain_end and not monitor.node_counts_settled():
            executor.spin_once(timeout_sec=0.05)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        for process in (camera, node):
            if process is not None:
                _stop(process)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        writer.close()
        executor.shutdown()
        monitor.destroy_node()
        robot.destroy_node()
        context.try_shutdown()

    elapsed = (window_end or time.monotonic()) - window_start
    summary = _summary(config, monitor, robot, writer, elapsed, interrupted,
                       _camera_published(camera_log))
    summary['startup_s'] = startup
    (out / 'summary.json').write_text(json.dumps(summary, indent=2) + '\n')
    return summary


def _summary(config: DemoConfig, monitor: DemoMonitor, robot: SortingRobotNode,
             writer: McapWriter, elapsed_s: float, interrupted: bool,
             camera_published: int | None) -> dict[str, Any]:
    """Everything worth reporting, JSON-ready."""
    diag = monitor.diagnostics
    node_counts = {key: _number(diag.get(key)) for key in DIAGNOSTIC_COUNTERS}
    scores = monitor.meter.scores()
    names = list(monitor.class_names) + [
        str(i) for i in range(len(monitor.class_names), len(scores.iou))]
    # IoU of every class with pixels in the ground truth or the prediction (the mIoU's terms).
    per_class = {name: round(float(iou), 4)
                 for name, iou, present in zip(names, scores.iou, scores.present) if present}
    details = scores.to_dict(names[:len(scores.iou)])
    lat = monitor.latencies_ms
    picks = Counter(p.class_name for p in robot.picks)
    return {
        'duration_s': round(elapsed_s, 2),
        'interrupted': interrupted,
        'config': {'device': config.device, 'weights': config.weights or '(default model)',
                   'size': list(config.size), 'rate_hz': config.rate_hz,
                   'max_frame_age_ms': config.max_frame_age_ms, 'seed': config.seed,
                   'namespace': config.namespace,
                   'fastdds_profile': os.environ.get('FASTRTPS_DEFAULT_PROFILES_FILE')},
        'camera': {'published': camera_published, 'recorded': monitor.image_count},
        'node': {**node_counts,
                 'latency_p50_ms': _number(diag.get('latency_p50_ms')),
                 'latency_p95_ms': _number(diag.get('latency_p95_ms')),
                 'inference_p50_ms': _number(diag.get('inference_p50_ms')),
                 'diagnostics': diag},
        'results': {'labels_received': monitor.labels_count,
                    'throughput_hz': round(monitor.labels_count / elapsed_s, 2)
                    if elapsed_s > 0 else None},
        'latency_ms': {'what': 'camera header stamp -> segmentation/labels arrival',
                       'count': len(lat),
                       'p50': _round(_percentile(lat, 50)), 'p95': _round(_percentile(lat, 95)),
                       'max': _round(max(lat) if lat else None)},
        'accuracy': {'frames_scored': monitor.frames_scored,
                     'miou': _round(None if math.isnan(scores.miou) else scores.miou, 4),
                     'pixel_accuracy': _round(None if math.isnan(scores.pixel_accuracy)
                                              else scores.pixel_accuracy, 4),
                     'iou': per_class,
                     'per_class': details['per_class'], 'confusion': details['confusion']},
        'robot': {'picks': len(robot.picks), 'by_class': dict(picks),
                  'last': robot.picks[-1].describe() if robot.picks else None},
        'recording': {'path': str(writer.path), 'messages': dict(writer.counts),
                      'bytes': writer.path.stat().st_size if writer.path.exists() else 0},
        'overlays': [str(p) for p in monitor.snapshot_paths],
    }


def _round(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(float(value), digits)
