"""The conveyor demo: camera -> segmentation node -> sorting robot, recorded and scored live.

Process layout (why): the synthetic camera and the segmentation node run as **subprocesses**
(:mod:`lw_refinenet_ros.demo.supervisor`: ``sys.executable``, so the same venv), the sorting
robot and the monitor (:mod:`lw_refinenet_ros.demo.monitor`) run **in this process**. Separate
processes give the node its own GIL and interpreter, so inference does not compete with
recording and scoring for the one Python thread, and the latency numbers include the real DDS
transport, as they would with a hardware camera. The robot is light and is meant to be read as
example code, and counting its picks directly is simpler in-process.

Shutdown order: camera first, then a short drain so in-flight frames and a final diagnostics
message arrive, then the node (SIGINT, then SIGTERM/SIGKILL if it hangs).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
import json
import os
from pathlib import Path
import re
import signal
import subprocess
import threading
import time
from typing import Any, Callable

import rclpy
from rclpy.experimental import EventsExecutor
from rclpy.signals import SignalHandlerOptions

from lw_refinenet_ros.demo import int8_check, supervisor
from lw_refinenet_ros.demo.cpu_usage import CpuWindow
from lw_refinenet_ros.demo.live_view import start_view
from lw_refinenet_ros.demo.monitor import NODE_NAME, DemoMonitor
from lw_refinenet_ros.demo.object_scoring import object_parameters
from lw_refinenet_ros.demo.plot import save_run_plot
from lw_refinenet_ros.demo.recorder import McapWriter
from lw_refinenet_ros.demo.scoring import accuracy_summary, number, rounded
from lw_refinenet_ros.demo.sorting_robot import SortingRobotNode
from lw_refinenet_ros.demo.video import DemoVideoNode
from lw_refinenet_ros.errors import LWRefineNetError
from lw_refinenet_ros.heap import STREAM_MMAP_THRESHOLD, STREAM_TRIM_THRESHOLD, keep_freed_memory
from lw_refinenet_ros.percentiles import percentile

NODE_MODULE = 'lw_refinenet_ros.ros.node'
CAMERA_MODULE = 'lw_refinenet_ros.demo.conveyor_camera'
INT8_CHECK_MODULE = 'lw_refinenet_ros.demo.int8_check'
DEFAULT_NAMESPACE = '/conveyor_demo'
#: The camera renders this many frames once and replays them (its ``loop_frames`` default):
#: a run longer than loop_frames / rate_hz shows the same belt again.
CAMERA_LOOP_FRAMES = 150
#: Niceness of this process once the node and the camera run: with 5, the node segmented
#: 599 and 601 of 602 frames against 581 and 595 at 0 (alternating, 2 cores, commit 2c73313).
OWN_NICE = 5
#: Longest wait after the camera stops for the frames and results still in flight (it ends as
#: soon as every frame is recorded and the node's count matches the labels received).
DRAIN_S = 8.0
DIAGNOSTIC_COUNTERS = ('received', 'processed', 'dropped_overwritten', 'dropped_too_old',
                       'failed')


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
        density: Mean parts per 320 px of belt (the camera's ``density``; 6 is its default).
        snapshots: Number of overlay PNGs, evenly spaced over the run.
        startup_timeout_s: Longest wait for the node to come up (model load, warm-up).
        node_module: Module with the segmentation node's ``main()`` (tests swap in a fake).
        transport: ``shm``: every demo process uses the package's 64 MB shared-memory Fast DDS
            profile (``config/fastdds_shm.xml``) unless FASTRTPS_DEFAULT_PROFILES_FILE is set;
            ``default``: Fast DDS defaults.
        namespace: ROS namespace of every demo node and topic (except ``/diagnostics``), so
            other nodes in the same DDS domain (benchmarks, tests) cannot mix in.
        foxglove_port: Run the live view (``lw-refinenet view``) on this port; None: no view.
        node_parameters: Further ``name:=value`` node parameters (the engine flags of
            ``lw-refinenet demo``: backend, precision, ...).
    """

    out_dir: Path
    duration_s: float = 20.0
    device: str = 'cpu'
    weights: str = ''
    rate_hz: float = 30.0
    size: tuple[int, int] = (320, 240)
    max_frame_age_ms: float = 500.0
    seed: int = 1
    density: float = 6.0
    snapshots: int = 5
    startup_timeout_s: float = 120.0
    node_module: str = NODE_MODULE
    transport: str = 'shm'
    namespace: str = DEFAULT_NAMESPACE
    foxglove_port: int | None = None
    node_parameters: tuple[str, ...] = ()
    int8_check: bool = False



def _spawn(module: str, ros_args: list[str], log_path: Path) -> subprocess.Popen:
    """Run ``module.main()`` as a child (see :mod:`supervisor`), output to ``log_path``."""
    return supervisor.start(supervisor.module_main_argv(module, ['--ros-args', *ros_args]),
                            log_path=log_path)


def _stop(process: subprocess.Popen,
          spin: Callable[[], None] | None = None) -> supervisor.StopResult:
    return supervisor.stop(process, timeout_s=8.0, spin=spin)


def _exit_report(result: supervisor.StopResult | None) -> dict[str, Any] | None:
    """A child's exit for the summary: code, the last stop signal it needed, seconds."""
    if result is None:
        return None
    return {'exit_code': result.exit_code,
            'stop_signal': result.signal.name if result.signal is not None else None,
            'stop_s': result.seconds}


def _int8_check(config: DemoConfig, log_path: Path,
                echo: Callable[[str], None]) -> dict[str, Any]:
    """The packaged model's conveyor int8, found or built and checked in a child process
    (:mod:`.int8_check`), before the node starts; its answer, or why there is none."""
    width, height = config.size
    echo(f'Checking the conveyor int8 of the packaged model for {width}x{height} (built once and '
         f'cached by the first run; logs/{log_path.name}) ...')
    child = supervisor.start(supervisor.module_main_argv(
        INT8_CHECK_MODULE, [str(width), str(height)]), log_path=log_path)
    try:
        child.wait(timeout=config.startup_timeout_s)
    except subprocess.TimeoutExpired:
        supervisor.stop(child, timeout_s=5.0)
        result = {'use': False, 'why': f'no answer within {config.startup_timeout_s:g} s'}
    else:
        lines = supervisor.log_tail(log_path, 5).strip().splitlines()
        try:
            result = json.loads(lines[-1]) if lines else {}
        except json.JSONDecodeError:
            result = {}
        result = result or {'use': False, 'why': f'the check exited with code '
                                                 f'{child.returncode}; see {log_path}'}
    if result.get('use'):
        echo(f'  int8: labels {result["agreement_median"]:.2%} equal to '
             f'{result["reference"]} on '
             f'{result["frames"]} conveyor frames (median; lowest {result["agreement_min"]:.2%})'
             f': the node runs OpenVINO int8')
    else:
        echo(f'  int8 not used: {result.get("why")}; the node chooses its precision itself')
    return result


def _camera_published(log_path: Path) -> int | None:
    match = re.findall(r'published (\d+) frames', supervisor.log_tail(log_path, 50))
    return int(match[-1]) if match else None


# ---------------------------------------------------------------------- run


def run_demo(config: DemoConfig, echo: Callable[[str], None] = print) -> dict[str, Any]:
    """Run the demo and return the summary (also written to ``out_dir/summary.json``).

    Ctrl-C (SIGINT) or SIGTERM ends the run early; the summary then covers the time so far.

    Raises:
        LWRefineNetError: The segmentation node exited or did not come up in time (the message
            includes the end of its log).
    """
    # The recorder's chunks and the video's frames (heap.py); before any post-processor.
    keep_freed_memory(STREAM_MMAP_THRESHOLD, STREAM_TRIM_THRESHOLD)
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
    profile = supervisor.shm_profile() if config.transport == 'shm' else None
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
    # The handler only raises a flag: a KeyboardInterrupt raised straight from the signal
    # could land inside rclpy's C code (a message being deserialised) and surface there as a
    # TypeError instead of a clean stop. spin() turns the flag into KeyboardInterrupt in
    # Python code, at most 0.1 s later.
    stop_requested = threading.Event()
    previous = {sig: signal.signal(sig, lambda _signum, _frame: stop_requested.set())
                for sig in (signal.SIGINT, signal.SIGTERM)}
    writer = McapWriter(out / 'demo.mcap')
    monitor = DemoMonitor(writer, out, context=context, namespace=config.namespace)
    robot = SortingRobotNode(context=context, namespace=config.namespace)
    video = DemoVideoNode(out / 'demo_video', picks=lambda: robot.picks, context=context,
                          namespace=config.namespace)
    # rclpy's events executor (C++) rather than the Python SingleThreadedExecutor: this
    # process takes every camera and node topic (about 200 messages/s at 30 Hz), and the
    # Python executor's per-message work cost it 7.2-8.9 CPU s per 20 s run against 5.5-6.0 s
    # (alternating, docs/benchmarks.md), CPU that the node needs on 2 cores.
    executor = EventsExecutor(context=context)
    executor.add_node(monitor)
    executor.add_node(robot)
    executor.add_node(video)

    def spin(timeout_s: float = 0.1) -> None:
        executor.spin_once(timeout_sec=timeout_s)
        if stop_requested.is_set():
            raise KeyboardInterrupt

    width, height = config.size
    namespace = ['-r', f'__ns:={config.namespace}']
    node_args = [*namespace, '-r', f'__node:={NODE_NAME}', '-p', f'device:={config.device}',
                 '-p', f'max_frame_age_ms:={float(config.max_frame_age_ms)}']
    if config.weights:
        node_args += ['-p', f'model.weights:={config.weights}']
    node_args += object_parameters(width)  # objects for the robot and the object scores
    for assignment in config.node_parameters:
        node_args += ['-p', assignment]
    camera_args = [*namespace, '-p', f'width:={width}', '-p', f'height:={height}',
                   '-p', f'rate_hz:={float(config.rate_hz)}', '-p', f'seed:={config.seed}',
                   '-p', f'density:={float(config.density)}',
                   # Start the belt once the node and the recorder are matched, so both see
                   # every frame (a new match between processes can take seconds here).
                   '-p', 'wait_for_subscribers:=2']
    node_log, camera_log = out / 'logs' / 'segmentation_node.log', out / 'logs' / 'camera.log'
    node = camera = view = None
    int8: dict[str, Any] | None = None
    cpu: CpuWindow | None = None
    view_url = None
    interrupted = False
    window_start = started = time.monotonic()
    window_end = None
    startup: dict[str, float] = {}
    exits: dict[str, supervisor.StopResult] = {}
    try:
        try:
            if config.foxglove_port is not None:
                view, view_url = start_view(config.namespace, config.foxglove_port,
                                            out / 'logs' / 'view.log')
                echo(f'Live view: open Foxglove -> Open connection -> {view_url}, layout '
                     f'config/foxglove_layout.json (docs/view.md)')
            if config.int8_check:
                int8 = _int8_check(config, out / 'logs' / 'int8_check.log', echo)
                startup['int8_check_s'] = round(time.monotonic() - started, 2)
                node_args += [arg for value in int8_check.node_parameters(int8)
                              for arg in ('-p', value)]
            echo(f'Starting the segmentation node ({config.device}) and the conveyor camera '
                 f'({width}x{height} at {config.rate_hz:g} Hz) ...')
            node = _spawn(config.node_module, node_args, node_log)
            # The camera pre-renders its loop while the node loads its model, then holds the
            # belt until the node and the recorder subscribe.
            camera = _spawn(CAMERA_MODULE, camera_args, camera_log)
            # This process's bookkeeping (monitor, recorder, scoring, robot) yields to the node
            # and the camera, started above at the normal priority: the demo should measure
            # the node. Its queues are deep enough that every frame is still recorded.
            os.nice(OWN_NICE)
            deadline = time.monotonic() + config.startup_timeout_s
            while not monitor.node_is_up():
                if camera.poll() is not None:
                    raise LWRefineNetError(
                        f'The conveyor camera exited with code {camera.returncode}. End of '
                        f'{camera_log}:\n{supervisor.log_tail(camera_log)}')
                if node.poll() is not None:
                    raise LWRefineNetError(
                        f'The segmentation node exited with code {node.returncode} during '
                        f'startup. End of {node_log}:\n{supervisor.log_tail(node_log)}')
                if time.monotonic() > deadline:
                    raise LWRefineNetError(
                        f'The segmentation node did not come up within '
                        f'{config.startup_timeout_s:g} s. End of {node_log}:\n'
                        f'{supervisor.log_tail(node_log)}')
                spin()
            startup['node_ready_s'] = round(time.monotonic() - started, 2)
            monitor.subscribe_camera()
            deadline = time.monotonic() + 60.0
            while monitor.first_image_ns is None:
                if camera.poll() is not None or time.monotonic() > deadline:
                    raise LWRefineNetError(
                        f'The conveyor camera published nothing. End of {camera_log}:\n'
                        f'{supervisor.log_tail(camera_log)}')
                spin()
            window_start = time.monotonic()
            cpu = CpuWindow({'segmentation_node': node.pid, 'camera': camera.pid,
                             'demo': None})  # None: this process (monitor, recorder, ...)
            cpu.start()
            startup['first_frame_s'] = round(window_start - started, 2)
            monitor.start_window(time.time_ns(), config.duration_s, config.snapshots)
            echo(f'Running for {config.duration_s:g} s (Ctrl-C ends early) ...')
            while time.monotonic() - window_start < config.duration_s:
                if node.poll() is not None:
                    raise LWRefineNetError(
                        f'The segmentation node exited with code {node.returncode}. '
                        f'End of {node_log}:\n{supervisor.log_tail(node_log)}')
                spin()
        except KeyboardInterrupt:
            interrupted = True
            echo('Interrupted: stopping and writing the summary so far ...')
        window_end = time.monotonic()
        if cpu is not None:
            cpu.stop()
        published = None
        if camera is not None:
            exits['camera'] = _stop(camera, spin=lambda: executor.spin_once(timeout_sec=0.02))
            published = _camera_published(camera_log)
        # Drain, for at most DRAIN_S: the camera's last frames (acknowledged by this
        # process's reader before the camera exited, but maybe not taken yet on a busy
        # machine), and the in-flight results, until the node's diagnostics count exactly the
        # label images received (its last frames are then in both).
        drain_end = time.monotonic() + DRAIN_S
        while time.monotonic() < drain_end and not (
                monitor.node_counts_settled()
                and (published is None or monitor.image_count >= published)):
            executor.spin_once(timeout_sec=0.05)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        for name, process in (('camera', camera), ('segmentation_node', node),
                              ('view', view)):
            if process is not None:
                result = _stop(process)
                exits.setdefault(name, result)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        writer.close()
        video_path = video.close()  # the rest of the video is encoded now, after the run
        executor.shutdown()
        monitor.destroy_node()
        robot.destroy_node()
        video.destroy_node()
        context.try_shutdown()

    elapsed = (window_end or time.monotonic()) - window_start
    summary = _summary(config, monitor, robot, writer, elapsed, interrupted,
                       _camera_published(camera_log))
    summary['startup_s'] = startup
    summary['int8_check'] = int8
    summary['cpu_s'] = {**cpu.seconds(), 'window_s': round(elapsed, 2),
                        'cores': os.cpu_count(), 'demo_nice': os.nice(0)} \
        if cpu is not None else None
    summary['processes'] = {name: _exit_report(exits.get(name))
                            for name in ('camera', 'segmentation_node', 'view')
                            if name in exits}
    summary['video'] = {'path': str(video_path) if video_path else None,
                        'frames': video.video.frames, 'fps': video.video.fps,
                        'encoder': video.encoder.describe()}
    summary['plot'] = str(save_run_plot(
        out / 'demo_plot.png', video.timeline.latency, video.timeline.counters,
        f'{config.device}, {width}x{height} at {config.rate_hz:g} Hz'))
    summary['foxglove'] = view_url
    (out / 'summary.json').write_text(json.dumps(summary, indent=2) + '\n')
    return summary


def _summary(config: DemoConfig, monitor: DemoMonitor, robot: SortingRobotNode,
             writer: McapWriter, elapsed_s: float, interrupted: bool,
             camera_published: int | None) -> dict[str, Any]:
    """Everything worth reporting, JSON-ready."""
    diag = monitor.diagnostics
    node_counts = {key: number(diag.get(key)) for key in DIAGNOSTIC_COUNTERS}
    lat = monitor.latencies_ms
    picks = Counter(p.class_name for p in robot.picks)
    return {
        'duration_s': round(elapsed_s, 2),
        'interrupted': interrupted,
        'config': {'device': config.device, 'weights': config.weights or '(default model)',
                   'size': list(config.size), 'rate_hz': config.rate_hz,
                   'max_frame_age_ms': config.max_frame_age_ms, 'seed': config.seed,
                   'density': config.density, 'camera_loop_frames': CAMERA_LOOP_FRAMES,
                   'namespace': config.namespace,
                   'fastdds_profile': os.environ.get('FASTRTPS_DEFAULT_PROFILES_FILE')},
        'camera': {'published': camera_published, 'recorded': monitor.image_count},
        'node': {**node_counts,
                 'latency_p50_ms': number(diag.get('latency_p50_ms')),
                 'latency_p95_ms': number(diag.get('latency_p95_ms')),
                 'inference_p50_ms': number(diag.get('inference_p50_ms')),
                 'diagnostics': diag},
        'results': {'labels_received': monitor.labels_count,
                    'throughput_hz': round(monitor.labels_count / elapsed_s, 2)
                    if elapsed_s > 0 else None},
        'latency_ms': {'what': 'camera header stamp -> segmentation/labels arrival',
                       'count': len(lat),
                       'p50': rounded(percentile(lat, 50)), 'p95': rounded(percentile(lat, 95)),
                       'max': rounded(max(lat) if lat else None)},
        'accuracy': accuracy_summary(monitor.scorer, monitor.class_names),
        'objects': monitor.objects.summary(monitor.class_names),
        'robot': {'picks': len(robot.picks), 'by_class': dict(picks),
                  'last': robot.picks[-1].describe() if robot.picks else None},
        'recording': {'path': str(writer.path), 'messages': dict(writer.counts),
                      **writer.cost()},
        'overlays': [str(p) for p in monitor.snapshot_paths],
    }

