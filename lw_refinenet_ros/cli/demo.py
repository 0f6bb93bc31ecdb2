"""``lw-refinenet demo``: conveyor camera -> segmentation node -> sorting robot, recorded.

Runs the synthetic conveyor camera and the segmentation node (default model) as processes,
and the example sorting robot plus a recorder/scorer in this process (see
``lw_refinenet_ros/demo/runner.py`` for why). Prints a summary and leaves ``demo.mcap`` (open it in
Foxglove), overlay PNGs and ``summary.json`` in ``--out``. See docs/demo.md.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from lw_refinenet_ros.engine.config import ENGINE_PARAMETERS, add_engine_arguments
from lw_refinenet_ros.errors import ConfigError
from lw_refinenet_ros.options import values_from_args

HELP = 'run the live conveyor demo (camera, segmentation node, sorting robot) and record it'


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``lw-refinenet demo``."""
    parser.add_argument('--duration', type=float, default=20.0,
                        help='seconds to run after the first camera frame (default 20)')
    parser.add_argument('--out', default='demo_output',
                        help='output folder: demo.mcap, overlay_*.png, summary.json, logs/ '
                             '(default demo_output/)')
    parser.add_argument('--rate', type=float, default=30.0, help='camera rate in Hz (default 30)')
    parser.add_argument('--size', default='320x240',
                        help='camera size WIDTHxHEIGHT (default 320x240: real-time on 2 CPU '
                             'cores)')
    parser.add_argument('--weights', default='',
                        help='checkpoint for the node (default: the packaged conveyor model)')
    parser.add_argument('--max-frame-age-ms', type=float, default=None,
                        help='node drops frames older than this (default 500 on cpu, 200 on '
                             'cuda)')
    # Seed 1: all six part classes cover 0.5-1.7 % of the camera's 5 s loop each (seed 0 has
    # no bracket, so a stray bracket pixel would score IoU 0).
    parser.add_argument('--seed', type=int, default=1,
                        help='conveyor scene seed (default 1: every part class appears)')
    parser.add_argument('--density', type=float, default=6.0,
                        help='mean parts per 320 px of belt (default 6; 8 is a crowded belt '
                             'with many parts on top of each other; 1 to 10)')
    parser.add_argument('--snapshots', type=int, default=5,
                        help='overlay PNGs saved, evenly spaced (default 5)')
    parser.add_argument('--startup-timeout', type=float, default=120.0,
                        help='seconds to wait for the node to load its model (default 120)')
    parser.add_argument('--transport', choices=('shm', 'default'), default='shm',
                        help='shm: 64 MB shared-memory Fast DDS profile for every demo process '
                             '(config/fastdds_shm.xml; an exported FASTRTPS_DEFAULT_PROFILES_FILE '
                             'wins); default: Fast DDS defaults (default shm)')
    parser.add_argument('--namespace', default=None,
                        help='ROS namespace of the demo nodes and topics (default '
                             '/conveyor_demo), keeping other nodes in the domain out')
    parser.add_argument('--foxglove', nargs='?', type=int, const=8765, default=None,
                        metavar='PORT',
                        help='serve the run live to Foxglove on ws://127.0.0.1:PORT (default '
                             'port 8765), see docs/view.md')
    parser.add_argument('--json', action='store_true', help='print the summary as JSON')
    add_engine_arguments(parser.add_argument_group(
        'inference', 'passed to the segmentation node as its parameters of the same names'))
    # Tests run the demo against a stand-in node module; not for users.
    parser.add_argument('--node-module', default=None, help=argparse.SUPPRESS)


def _ros_value(value: Any) -> str:
    """A parameter value as ``ros2 run ... -p name:=VALUE`` reads it back with its type."""
    if isinstance(value, bool):
        return 'true' if value else 'false'
    if isinstance(value, float):
        return repr(value)
    return str(value) if value != '' else "''"


def _node_parameters(values: dict[str, Any]) -> tuple[str, ...]:
    """Engine options as node parameter assignments (``backend:=openvino``)."""
    return tuple(f'{name}:={_ros_value(value)}' for name, value in values.items())


def _resolve_device(device: str) -> str:
    if device != 'auto':
        return device
    import torch

    return 'cuda' if torch.cuda.is_available() else 'cpu'


def _check_weights(weights: str) -> None:
    """Fail before starting any process when the model file is not there."""
    if weights:
        if not Path(weights).is_file():
            raise ConfigError(f'--weights {weights!r} does not exist; pass a checkpoint file '
                              f'(e.g. one written by `lw-refinenet train`).')
        return
    try:
        from lw_refinenet_ros.model import DEFAULT_MODEL_PATH
    except ImportError as error:
        raise ConfigError(f'The model package cannot be imported ({error}).') from None
    if not Path(DEFAULT_MODEL_PATH).is_file():
        raise ConfigError(
            f'The packaged default model is missing ({DEFAULT_MODEL_PATH}). Reinstall the '
            f'package (`make setup`), train one with `lw-refinenet train`, or pass --weights.')


def _print_summary(summary: dict[str, Any]) -> None:
    cam, node, res = summary['camera'], summary['node'], summary['results']
    lat, acc, robot = summary['latency_ms'], summary['accuracy'], summary['robot']
    cfg = summary['config']

    def show(value: Any, unit: str = '') -> str:
        return 'n/a' if value is None else f'{value}{unit}'

    print()
    loop = cfg.get('camera_loop_frames')
    print(f'Demo summary ({summary["duration_s"]} s, {cfg["device"]}, '
          f'{cfg["size"][0]}x{cfg["size"][1]} at {cfg["rate_hz"]:g} Hz, seed {cfg["seed"]}, '
          f'density {cfg.get("density", 6.0):g}'
          f'{", interrupted" if summary["interrupted"] else ""})')
    if loop:
        print(f'  (the camera replays a {loop}-frame loop: {loop / cfg["rate_hz"]:g} s of belt, '
              f'shown again and again)')
    print(f'  camera     published {show(cam["published"])}, recorded {cam["recorded"]}')
    print(f'  node       received {show(node["received"])}, processed {show(node["processed"])}, '
          f'dropped {show(node["dropped_overwritten"])} overwritten + '
          f'{show(node["dropped_too_old"])} too old, failed {show(node["failed"])}')
    if node['latency_p50_ms'] is not None:
        print(f'             in the node: latency p50 {show(node["latency_p50_ms"], " ms")}, '
              f'p95 {show(node["latency_p95_ms"], " ms")}, inference p50 '
              f'{show(node["inference_p50_ms"], " ms")}')
    model = (node.get('diagnostics') or {}).get('model')
    if model:
        print(f'             model: {model}')
    int8 = summary.get('int8_check') or {}
    if int8.get('use'):
        print(f'             int8 checked before the run: labels {int8["agreement_median"]:.2%} '
              f'equal to {int8["reference"]} on {int8["frames"]} conveyor frames of '
              f'seed {int8["seed"]}')
    elif int8:
        print(f'             int8 not used: {int8.get("why")}')
    print(f'  results    {res["labels_received"]} label images ({show(res["throughput_hz"])} Hz)')
    print(f'  latency    p50 {show(lat["p50"], " ms")}, p95 {show(lat["p95"], " ms")} '
          f'(camera stamp -> labels arrival, {lat["count"]} frames)')
    in_view = acc.get('miou_in_view')
    over_view = (f' ({show(in_view)} over the classes in view)'
                 if in_view is not None and in_view != acc['miou'] else '')
    print(f'  accuracy   mIoU {show(acc["miou"])}{over_view}, pixel accuracy '
          f'{show(acc["pixel_accuracy"])} over {acc["frames_scored"]} frames')
    if acc['iou']:
        # A class never in view but predicted somewhere has IoU 0 and still counts in the mean.
        absent = {name for name, d in acc.get('per_class', {}).items() if d['gt_pixels'] == 0}
        print('             ' + ', '.join(
            f'{k} {show(v)}{" (not in view)" if k in absent else ""}'
            for k, v in acc['iou'].items()))
    objects = summary.get('objects')
    if objects and objects['frames_scored']:
        pickable = objects.get('pickable')
        if pickable:
            print(f'  pickable   precision {show(pickable["precision"])}, recall '
                  f'{show(pickable["recall"])}, pick in the matched part '
                  f'{show(pickable["pick_success"])} ({pickable["frames"]} frames; parts at '
                  f'least half in view, off the border; one-to-one, mask IoU >= 0.5)')
        print(f'  objects    all visible pieces: precision {show(objects["precision"])}, '
              f'recall {show(objects["recall"])}, pick in the matched part '
              f'{show(objects["pick_success"])}; id switches {objects["id_switches"]}/'
              f'{objects["track_frames"]} track-frames over {objects["frames_scored"]} frames '
              f'(docs/objects.md)')
    print(f'  robot      {robot["picks"]} picks {robot["by_class"] or ""}')
    if robot['last']:
        print(f'             last: {robot["last"]}')
    rec = summary['recording']
    print(f'  recording  {rec["path"]} ({rec["bytes"] / 1e6:.1f} MB, '
          f'{sum(rec["messages"].values())} messages on {len(rec["messages"])} topics)')
    if rec.get('write_s') is not None:
        print(f'             its cost: {rec["write_s"]} s writing ({rec["compression"]} chunks, '
              f'{rec["payload_bytes"] / 1e6:.1f} MB in -> {rec["bytes"] / 1e6:.1f} MB on disk)')
    print(f'  overlays   {len(summary["overlays"])} PNGs in {Path(rec["path"]).parent}')
    video = summary.get('video') or {}
    if video.get('path'):
        print(f'  video      {video["path"]} ({video["frames"]} frames at {video["fps"]} fps: '
              f'overlay, parts, pick point, status line)')
        encoder = video.get('encoder') or {}
        if encoder:
            print(f'             its cost: {encoder["cpu_s"]} s CPU at nice {encoder["nice"]}, '
                  f'{encoder["finished_after_run_s"]} s after the run')
    cpu = summary.get('cpu_s') or {}
    if cpu:
        parts = ', '.join(f'{label} {cpu[key]} s' for key, label in (
            ('segmentation_node', 'node'), ('camera', 'camera'),
            ('demo', f'this process (monitor, recorder, robot, video; nice '
                     f'{cpu.get("demo_nice", "?")})'))
            if cpu.get(key) is not None)
        print(f'  cpu        {parts} over {cpu["window_s"]} s on {cpu["cores"]} cores')
    if summary.get('plot'):
        print(f'  plot       {summary["plot"]} (latency, processed/dropped over time)')
    for name, exit_info in (summary.get('processes') or {}).items():
        if exit_info and exit_info['exit_code'] != 0:
            print(f'  EXIT       {name} exited with code {exit_info["exit_code"]} (last stop '
                  f'signal {exit_info["stop_signal"]}, logs/)')


def run(args: argparse.Namespace) -> int:
    """Run the demo; 0 when the node produced results, 1 when it produced none."""
    from lw_refinenet_ros.data.conveyor import parse_size
    from lw_refinenet_ros.sizes import size_text

    size = parse_size(args.size)
    if args.duration <= 0 or args.rate <= 0:
        raise ConfigError('--duration and --rate must be positive.')
    check_density(args.density)
    if args.node_module is None:
        _check_weights(args.weights)
    engine_values = values_from_args(args, ENGINE_PARAMETERS)  # checked before any process
    # The node warms up and chooses its backend at the camera's size.
    engine_values.setdefault('warmup_size', size_text(*size))
    device = _resolve_device(engine_values.pop('device', 'auto'))
    node_parameters = _node_parameters(engine_values)
    max_age = args.max_frame_age_ms
    if max_age is None:
        # Latest-frame scheduling keeps queues short; this only drops frames that sat in
        # transport or a stalled executor for longer than a few inference times.
        max_age = 200.0 if device.startswith('cuda') else 500.0

    # ROS imports stay here so that `lw-refinenet --help` does not load rclpy.
    from lw_refinenet_ros.demo.runner import DEFAULT_NAMESPACE, NODE_MODULE, DemoConfig, run_demo

    config = DemoConfig(out_dir=Path(args.out), duration_s=args.duration, device=device,
                        weights=args.weights, rate_hz=args.rate, size=size,
                        max_frame_age_ms=max_age, seed=args.seed, density=args.density,
                        snapshots=args.snapshots,
                        startup_timeout_s=args.startup_timeout,
                        node_module=args.node_module or NODE_MODULE,
                        transport=args.transport,
                        namespace=args.namespace or DEFAULT_NAMESPACE,
                        foxglove_port=args.foxglove, node_parameters=node_parameters,
                        int8_check=wants_int8_check(args.weights, device, engine_values,
                                                    args.node_module))
    summary = run_demo(config)
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        _print_summary(summary)
    log = Path(args.out) / 'logs' / 'segmentation_node.log'
    if not summary['results']['labels_received']:
        print(f'lw-refinenet demo: error: the segmentation node produced no results; see {log}')
        return 1
    node_exit = (summary.get('processes') or {}).get('segmentation_node')
    if node_exit and node_exit['exit_code'] != 0:
        print(f'lw-refinenet demo: error: the segmentation node exited with code '
              f'{node_exit["exit_code"]} (a clean stop is 0); see {log}')
        return 1
    return 0


def wants_int8_check(weights: str | None, device: str, engine_values: dict[str, Any],
                     node_module: str | None) -> bool:
    """Whether the demo readies the packaged model's conveyor int8 for the node
    (:mod:`lw_refinenet_ros.demo.int8_check`): the packaged model on the CPU, the real node,
    and the precision (and an OpenVINO-compatible backend) left to the demo."""
    return (not weights and device == 'cpu' and node_module is None
            and 'precision' not in engine_values
            and engine_values.get('backend', 'auto') in ('auto', 'openvino'))


def check_density(density: float) -> None:
    """Refuse a belt density the camera does not support, naming the range."""
    from lw_refinenet_ros.demo.conveyor_camera import DENSITY_RANGE

    low, high = DENSITY_RANGE
    if not low <= density <= high:
        raise ConfigError(f'--density {density:g} is outside the supported range {low:g} to '
                          f'{high:g} (mean parts per 320 px of belt; 6 is the default, 8 a '
                          f'crowded belt).')
