"""Large frames: latency and peak memory of the real node at 640x480, 1080p and 4K.

Each case runs in its own child process (peak resident memory is per process): the real
``SegmentationNode`` on the real engine (the packaged default model, CPU), fed one frame at a
time by a camera node in the same process, with every output subscribed (labels, colour,
overlay, confidence, stats), so the full-resolution temporaries are all paid. Latency is
camera publish -> labels received. Cases: each resolution with ``max_side`` 0 (native) and
with the ``--max-side`` lever, a soak (one case repeated for ``--soak-s`` seconds, resident
memory sampled after every frame) and the bad-input sequence of issue 14 (640x480 -> 4K ->
640x480 mid-stream, a 4096x4096 frame, a frame above ``max_image_pixels``), and the release
case: one 4K frame in a 640x480 stream, resident memory after every frame (the 4K buffers are
released once that size goes unused).

Usage::

    python benchmarks/large_frames.py --json docs/bench/large_frames.json
    python benchmarks/large_frames.py --soak-s 600 --cases soak      # the 10-minute 4K soak
    python benchmarks/large_frames.py --quick                        # smoke test

Memory growth over the soak = median RSS of the last quarter of the samples / median of the
first quarter (after the first frames), minus 1.
"""

from __future__ import annotations

import json
import os
import pathlib
import resource
import statistics
import subprocess
import sys
import time
from typing import Any

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

import _common  # noqa: E402

from lw_refinenet_ros.ros.topic_names import IMAGE, LABELS  # noqa: E402

RESOLUTIONS = {'640x480': (640, 480), '1080p': (1920, 1080), '4k': (3840, 2160)}
OUTPUTS = ('labels', 'color', 'overlay', 'confidence', 'stats')


def _rss_mib() -> float:
    return _common.proc_status(os.getpid()).get('VmRSS', 0) / 1024


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _frame(width: int, height: int, stamp_ns: int) -> Any:
    import numpy as np
    from sensor_msgs.msg import Image
    message = Image(width=width, height=height, encoding='rgb8', step=width * 3)
    message.header.stamp.sec, message.header.stamp.nanosec = divmod(stamp_ns, 10**9)
    message.header.frame_id = 'camera'
    # A gradient (not a constant): the model sees structure, the encoder cannot shortcut.
    row = np.linspace(0, 255, width, dtype=np.uint8)
    message.data = np.broadcast_to(row[None, :, None], (height, width, 3)).tobytes()
    return message


class _Rig:
    """The node under test plus a camera/listener node on one executor, in this process."""

    def __init__(self, max_side: int, num_threads: int, weights: str | None) -> None:
        from lw_refinenet_ros.msg import SegmentationStats
        import rclpy
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.parameter import Parameter
        from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import Image

        from lw_refinenet_ros.ros.node import SegmentationNode
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        overrides = [Parameter('device', value='cpu'), Parameter('max_side', value=max_side),
                     Parameter('num_threads', value=num_threads),
                     Parameter('qos', value='reliable')]
        if weights:
            overrides.append(Parameter('model.weights', value=weights))
        start = time.monotonic()
        self.node = SegmentationNode(context=self.context, parameter_overrides=overrides)
        self.startup_s = time.monotonic() - start
        self.peer = rclpy.create_node('large_frames_camera', context=self.context)
        reliable = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1,
                              reliability=ReliabilityPolicy.RELIABLE)
        self.camera = self.peer.create_publisher(Image, IMAGE, reliable)
        self.labels: dict[tuple[int, int], float] = {}
        self.outputs: dict[str, int] = dict.fromkeys(OUTPUTS, 0)
        for name in OUTPUTS:
            message_type = SegmentationStats if name == 'stats' else Image
            self.peer.create_subscription(message_type, f'segmentation/{name}',
                                          lambda msg, n=name: self._on_output(n, msg), reliable)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.executor.add_node(self.peer)
        self.spin_until(lambda: self.camera.get_subscription_count() > 0, 30)

    def _on_output(self, name: str, message: Any) -> None:
        self.outputs[name] += 1
        if name == 'labels':
            stamp = (message.header.stamp.sec, message.header.stamp.nanosec)
            self.labels[stamp] = time.monotonic()

    def spin_until(self, predicate: Any, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not predicate() and time.monotonic() < deadline:
            self.executor.spin_once(timeout_sec=0.01)
        return predicate()

    def frame(self, width: int, height: int, timeout: float = 300.0) -> dict[str, Any]:
        """Publish one frame; wait for its labels (or its failure); time and memory."""
        counters = self.node.counters()
        message = _frame(width, height, time.time_ns())
        stamp = (message.header.stamp.sec, message.header.stamp.nanosec)
        sent = time.monotonic()
        self.camera.publish(message)
        del message
        done = self.spin_until(lambda: stamp in self.labels or
                               self.node.counters().failed > counters.failed, timeout)
        # Let the colour/overlay/confidence of this frame go out before the next one.
        self.spin_until(lambda: self.node.counters().pending == 0, timeout)
        failed = self.node.counters().failed > counters.failed
        return {'size': f'{width}x{height}', 'ok': done and not failed,
                'failed': failed, 'latency_ms': round((self.labels[stamp] - sent) * 1e3, 1)
                if stamp in self.labels else None, 'rss_mib': round(_rss_mib(), 1)}

    def close(self) -> None:
        self.executor.shutdown(timeout_sec=1.0)
        self.node.destroy_node()
        self.peer.destroy_node()
        self.context.try_shutdown()


def run_child(args: Any) -> dict[str, Any]:
    """One case in this process: the node, its frames, memory."""
    from lw_refinenet_ros.heap import keep_freed_memory, leave_to_glibc

    # As the node's process does it (run_node), unless --glibc-default measures without.
    if args.glibc_default:
        leave_to_glibc()
    heap_limited = keep_freed_memory()
    base_rss = _rss_mib()
    rig = _Rig(args.max_side, args.num_threads, args.weights)
    after_start = _rss_mib()
    frames: list[dict[str, Any]] = []
    try:
        if args.case == 'release':
            # One odd 4K frame in a 640x480 stream: the runtime's 4K buffers must not stay
            # resident once the camera is back to its own size (engine/backends/openvino.py,
            # IDLE_CALLS).
            from lw_refinenet_ros.engine.backends.openvino import IDLE_CALLS

            sequence = [(640, 480)] * 3 + [(3840, 2160)] + [(640, 480)] * (IDLE_CALLS + 6)
            for width, height in sequence:
                frames.append(rig.frame(width, height))
        elif args.case == 'bad_input':
            # Issue 14's bad input, in order: a camera switching 640x480 -> 4K -> 640x480,
            # the largest admitted frame (4096x4096 = max_image_pixels), one pixel row more.
            sequence = [(640, 480)] * 2 + [(3840, 2160)] * 2 + [(640, 480)] * 2 + [
                (4096, 4096), (4096, 4097), (640, 480)]
            for width, height in sequence:
                frames.append(rig.frame(width, height))
        else:
            width, height = RESOLUTIONS[args.resolution]
            deadline = time.monotonic() + args.seconds
            while len(frames) < args.frames or time.monotonic() < deadline:
                frames.append(rig.frame(width, height))
        counters = rig.node.counters()
    finally:
        rig.close()
    latencies = [f['latency_ms'] for f in frames[1:] if f['latency_ms'] is not None]
    return {
        'case': args.case, 'resolution': args.resolution, 'max_side': args.max_side,
        'heap_limited': heap_limited,
        'num_threads': args.num_threads, 'frames': len(frames),
        'startup_s': round(rig.startup_s, 1),
        'latency_ms': _common.percentiles(latencies),
        'rss_mib': {'before_node': round(base_rss, 1), 'after_start': round(after_start, 1),
                    'end': round(_rss_mib(), 1), 'peak': round(_peak_rss_mib(), 1)},
        'counters': {'received': counters.received, 'processed': counters.processed,
                     'failed': counters.failed, 'dropped': counters.dropped},
        'outputs': rig.outputs, 'per_frame': frames,
    }


def run_shutdown(args: Any, signal_name: str) -> dict[str, Any]:
    """The real node process (``python -m lw_refinenet_ros.ros.node``, default model, CPU)
    fed 1080p frames over shared memory; the signal lands 1 s after a result, i.e. in the
    middle of the next multi-second inference. Exit code, seconds to exit, and whether the
    node's shared-memory segment is gone."""
    import re
    import signal as signals

    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image
    profile, _ = _common.shm_profile_path()
    domain = _common.pick_domain()
    env = _common.child_env(profile, domain)
    os.environ.update(FASTRTPS_DEFAULT_PROFILES_FILE=profile, ROS_DOMAIN_ID=str(domain),
                      ROS_AUTOMATIC_DISCOVERY_RANGE='LOCALHOST')
    extra = [arg for item in args.shutdown_params for arg in ('-p', item)]
    node = subprocess.Popen([sys.executable, '-m', 'lw_refinenet_ros.ros.node', '--ros-args',
                             '-p', 'device:=cpu', *extra], env=env, cwd=_common.ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    context = rclpy.Context()
    rclpy.init(context=context)
    peer = rclpy.create_node('shutdown_camera', context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(peer)
    qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1,
                     reliability=ReliabilityPolicy.RELIABLE)
    camera = peer.create_publisher(Image, IMAGE, qos)
    results: list[float] = []
    peer.create_subscription(Image, LABELS,
                             lambda _msg: results.append(time.monotonic()), qos)
    width, height = RESOLUTIONS['1080p']
    outcome: dict[str, Any] = {'case': 'shutdown', 'signal': signal_name,
                               'resolution': '1080p', 'params': args.shutdown_params}
    try:
        deadline = time.monotonic() + 600
        while len(results) < 2 and node.poll() is None and time.monotonic() < deadline:
            camera.publish(_frame(width, height, time.time_ns()))
            executor.spin_once(timeout_sec=0.2)
        outcome['inference_s'] = round(results[1] - results[0], 2) if len(results) > 1 else None
        maps = pathlib.Path(f'/proc/{node.pid}/maps').read_text()
        segments = set(re.findall(r'(/dev/shm/fastrtps_[0-9a-f]{16})\s*$', maps, re.M))
        while time.monotonic() < results[-1] + 1.0:
            camera.publish(_frame(width, height, time.time_ns()))
            executor.spin_once(timeout_sec=0.1)
        before = len(results)
        sent = time.monotonic()
        node.send_signal(getattr(signals, signal_name))
        output = node.communicate(timeout=60)[0]
        outcome.update(exit_code=node.returncode, exit_s=round(time.monotonic() - sent, 2),
                       mid_inference=len(results) == before,
                       aborted='terminate called' in output,
                       log_tail=output.strip().splitlines()[-3:])
        executor.shutdown(timeout_sec=1.0)
        peer.destroy_node()
        context.try_shutdown()
        outcome['shm_segments_left'] = sorted(p for p in segments if os.path.exists(p))
    finally:
        if node.poll() is None:
            node.kill()
            node.wait()
        if context.ok():
            context.try_shutdown()
    return outcome


def growth(samples: list[float]) -> float | None:
    """Median of the last quarter / median of the first quarter - 1 (None if too short)."""
    if len(samples) < 8:
        return None
    quarter = len(samples) // 4
    return statistics.median(samples[-quarter:]) / statistics.median(samples[:quarter]) - 1


def _spawn_case(args: Any, extra: list[str]) -> dict[str, Any]:
    command = [sys.executable, __file__, '--child', '--num-threads', str(args.num_threads),
               *(['--glibc-default'] if args.glibc_default else []),
               *(['--weights', args.weights] if args.weights else []), *extra]
    env = _common.child_env(None, _common.pick_domain())
    env['PYTHONUNBUFFERED'] = '1'
    start = time.monotonic()
    result = subprocess.run(command, env=env, cwd=_common.ROOT, capture_output=True,
                            text=True, timeout=args.case_timeout)
    marker = 'LARGE_FRAMES_RESULT '
    for line in result.stdout.splitlines():
        if line.startswith(marker):
            data = json.loads(line[len(marker):])
            data['wall_s'] = round(time.monotonic() - start, 1)
            data['exit_code'] = result.returncode
            data['log_tail'] = [line for line in result.stderr.splitlines()
                                if 'WARN' in line or 'ERROR' in line][-5:]
            return data
    return {'args': extra, 'exit_code': result.returncode,
            'error': (result.stdout + result.stderr)[-3000:]}


def main(argv: list[str] | None = None) -> int:
    parser = _common.base_parser(__doc__.splitlines()[0])
    parser.add_argument('--child', action='store_true', help=argparse_hidden())
    parser.add_argument('--case', default='latency',
                        choices=('latency', 'soak', 'bad_input', 'release'),
                        help=argparse_hidden())
    parser.add_argument('--resolution', choices=tuple(RESOLUTIONS), default='640x480',
                        help=argparse_hidden())
    parser.add_argument('--frames', type=int, default=4, help=argparse_hidden())
    parser.add_argument('--seconds', type=float, default=0.0, help=argparse_hidden())
    parser.add_argument('--max-side', type=int, default=0,
                        help='the max_side lever measured next to native resolution')
    parser.add_argument('--num-threads', type=int, default=0,
                        help='torch CPU threads (0: the engine default)')
    parser.add_argument('--weights', default=None, help='checkpoint (default: packaged)')
    parser.add_argument('--cases', nargs='*',
                        default=['shutdown', 'latency', 'bad_input', 'release', 'soak'],
                        choices=('shutdown', 'latency', 'bad_input', 'release', 'soak'))
    parser.add_argument('--resolutions', nargs='*', default=list(RESOLUTIONS),
                        choices=tuple(RESOLUTIONS))
    parser.add_argument('--lever', type=int, default=1024,
                        help='max_side value measured next to native resolution')
    parser.add_argument('--soak-s', type=float, default=600.0,
                        help='duration of the 4K soak (10 minutes is the target)')
    parser.add_argument('--soak-max-side', type=int, default=0,
                        help='max_side during the soak (0: native 4K)')
    parser.add_argument('--case-timeout', type=float, default=3600.0)
    parser.add_argument('--shutdown-repeat', type=int, default=1,
                        help='how many times each signal is tried')
    parser.add_argument('--shutdown-params', nargs='*', default=[],
                        help='node parameters of the shutdown case, e.g. backend:=torch (the '
                             'slowest backend: the signal lands well inside an inference)')
    parser.add_argument('--glibc-default', action='store_true',
                        help="measure without the node's heap setting (heap.py)")
    args = parser.parse_args(argv)
    if args.child:
        print('LARGE_FRAMES_RESULT ' + json.dumps(run_child(args)), flush=True)
        return 0

    frames = {'640x480': 6, '1080p': 4, '4k': 3}
    if args.quick:
        frames = dict.fromkeys(frames, 2)
        args.soak_s = min(args.soak_s, 30.0)
    results: dict[str, Any] = {'machine': _common.machine_state(), 'cases': []}
    if 'shutdown' in args.cases:
        for signal_name in ('SIGINT', 'SIGTERM') * args.shutdown_repeat:
            results['cases'].append(run_shutdown(args, signal_name))
            print(json.dumps(results['cases'][-1]), flush=True)
    if 'latency' in args.cases:
        for name in args.resolutions:
            for max_side in (0, args.lever):
                width, height = RESOLUTIONS[name]
                if max_side and max(width, height) <= max_side:
                    continue
                results['cases'].append(_spawn_case(args, [
                    '--case', 'latency', '--resolution', name, '--max-side', str(max_side),
                    '--frames', str(frames[name])]))
                print(json.dumps({k: v for k, v in results['cases'][-1].items()
                                  if k != 'per_frame'}), flush=True)
    if 'bad_input' in args.cases:
        results['cases'].append(_spawn_case(args, ['--case', 'bad_input']))
    if 'release' in args.cases:
        results['cases'].append(_spawn_case(args, ['--case', 'release']))
    if 'soak' in args.cases:
        soak = _spawn_case(args, ['--case', 'soak', '--resolution', '4k', '--max-side',
                                  str(args.soak_max_side), '--frames', '8', '--seconds',
                                  str(args.soak_s)])
        samples = [f['rss_mib'] for f in soak.get('per_frame', [])[2:]]
        soak['rss_growth'] = growth(samples)
        results['cases'].append(soak)
    results['machine_after'] = _common.machine_state()
    _common.write_json(args.json, results)
    return 0


def argparse_hidden() -> str:
    """Help text of the options the parent passes to its children."""
    return '(set by the parent for its child processes)'


if __name__ == '__main__':
    sys.exit(main())
