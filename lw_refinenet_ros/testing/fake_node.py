"""The real segmentation node around a :class:`~.fake_engine.FakeEngine`.

Two ways in, one for each kind of user:

- :class:`NodeHarness`: the node, a probe node (camera publishers, output subscriptions) and
  one executor in this process; tests drive it with :meth:`NodeHarness.spin_until`.
- ``python -m lw_refinenet_ros.testing.fake_node [--fake-engine-ms MS] [--ros-args ...]``:
  the node's own process entry (``run_node``: init, executor, signal handling, shutdown) with
  the fake engine inside; process tests and the benchmarks start it like the real executable.
  Without a delay option it reads ``FAKE_ENGINE_DELAY_S`` from the environment; ``--busy
  native`` spends the delay in torch (native code), ``--announce`` prints ``inference start`` /
  ``inference end`` around each batch, ``--lifecycle`` runs the managed node. ``--rule
  conveyor`` (or ``FAKE_NODE_RULE=conveyor``) labels the conveyor demo's classes by colour:
  the demo's tests run ``lw-refinenet demo --node-module lw_refinenet_ros.testing.fake_node``
  with it, which starts the module with only ROS arguments, hence the environment variables;
  ``FAKE_NODE_NO_OVERLAY=1`` remaps the overlay away, for the demo's path without one.

Only the engine is fake: parameters, scheduling, conversions and publishing are the node's.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
from typing import Any, Callable, Sequence

import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image

from lw_refinenet_ros.palette import ClassMap
from lw_refinenet_ros.ros.node import SegmentationNode, run_node
from lw_refinenet_ros.ros.pipeline import LoadedModel
from lw_refinenet_ros.testing.fake_engine import (
    RED_BLUE_CLASSES,
    FakeEngine,
    conveyor_classes,
    conveyor_colour_labels,
    red_threshold_labels,
    split_labels,
)
from lw_refinenet_ros.testing.spin import spin_until

COUNTERS = ('received', 'processed', 'dropped_overwritten', 'dropped_too_old', 'failed',
            'pending')


def fake_factory(engine: FakeEngine, class_map: ClassMap | None = None,
                 name: str = 'fake:test') -> Callable[[Any], LoadedModel]:
    """An ``engine_factory`` for the node that returns ``engine``.

    The class map defaults to :data:`RED_BLUE_CLASSES` for the red/blue rule, else
    ``ClassMap.default(engine.num_classes)``.
    """
    if class_map is None:
        class_map = (RED_BLUE_CLASSES if engine.label_fn is red_threshold_labels
                     and engine.num_classes == len(RED_BLUE_CLASSES.names)
                     else ClassMap.default(engine.num_classes))
    loaded = LoadedModel(engine, class_map, name)
    return lambda _config: loaded


def rule_engine(rule: str, delay_s: float = 0.0, *, num_classes: int = 3,
                **options: Any) -> tuple[FakeEngine, ClassMap | None]:
    """A fake engine labelling by ``rule`` (``red-blue``, ``split`` or ``conveyor``) and the
    class map that goes with it (None: :func:`fake_factory` picks the default).
    ``options`` go to :class:`FakeEngine` (``busy``, ``announce``, ...)."""
    rules = {'red-blue': red_threshold_labels, 'split': split_labels,
             'conveyor': conveyor_colour_labels}
    if rule not in rules:
        raise ValueError(f'unknown fake rule {rule!r}; expected one of {", ".join(rules)}')
    class_map = conveyor_classes() if rule == 'conveyor' else None
    engine = FakeEngine(delay_s, rules[rule],
                        num_classes=class_map.num_classes if class_map else num_classes,
                        cache_by_shape=rule == 'split', keep_images=False, device='cpu',
                        **options)
    return engine, class_map


def node_counters(node: Any) -> dict[str, int]:
    """The node's frame counters as a dict (the numbers ``/diagnostics`` reports)."""
    snapshot = node.counters()
    return {name: int(getattr(snapshot, name)) for name in COUNTERS}


class NodeHarness:
    """A node under test, a probe node that publishes images and records outputs, one executor.

    Args:
        context: An initialised rclpy context (the tests' ``ros_context`` fixture).
        engine: The fake engine the node runs.
        namespace: Namespace of the node under test.
        parameters: Parameter overrides (``rclpy.parameter.Parameter`` or a name -> value dict).
        node_cls: The node class (``LifecycleSegmentationNode`` for the managed variant).
        factory: An ``engine_factory`` other than :func:`fake_factory` of ``engine``.
    """

    def __init__(self, context: Any, engine: FakeEngine, namespace: str = '',
                 parameters: Sequence[Parameter] | dict[str, Any] | None = None,
                 node_cls: type = SegmentationNode,
                 factory: Callable[[Any], LoadedModel] | None = None) -> None:
        if isinstance(parameters, dict):
            parameters = [Parameter(name, value=value) for name, value in parameters.items()]
        self.context = context
        self.engine = engine
        self.node = node_cls(engine_factory=factory or fake_factory(engine), context=context,
                             namespace=namespace or None,
                             parameter_overrides=list(parameters or []))
        self.probe = rclpy.create_node('probe', context=context)
        # As in the node's process: callbacks only fill the slot, the worker does the rest.
        self.executor = SingleThreadedExecutor(context=context)
        self.executor.add_node(self.node)
        self.executor.add_node(self.probe)
        self.received: dict[str, list] = {}
        self.lock = threading.Lock()
        # Predicates that publish on every call publish once per spin: 20 Hz by default.
        self.spin_period_s = 0.05
        self._subscriptions: dict[str, Any] = {}

    def listen(self, topic: str, message_type: Any = Image, qos: Any = 5) -> list:
        """Record messages on ``topic`` (relative names resolve in the probe's namespace)."""
        store = self.received.setdefault(topic, [])

        def callback(msg: Any) -> None:
            with self.lock:
                store.append(msg)
        self._subscriptions[topic] = self.probe.create_subscription(
            message_type, topic, callback, qos)
        return store

    def unlisten(self, topic: str) -> None:
        """Stop recording ``topic`` (the node sees its subscriber go)."""
        self.probe.destroy_subscription(self._subscriptions.pop(topic))

    def publisher(self, topic: str, message_type: Any = Image, qos: Any = 10) -> Any:
        """A probe publisher, e.g. a camera on ``image`` or ``image/compressed``."""
        return self.probe.create_publisher(message_type, topic, qos)

    def counters(self) -> dict[str, int]:
        """The node's frame counters."""
        return node_counters(self.node)

    def settled(self) -> bool:
        """Every received frame is accounted for (nothing in the mailbox or in flight)."""
        c = self.counters()
        return c['pending'] == 0 and c['received'] == (
            c['processed'] + c['dropped_overwritten'] + c['dropped_too_old'] + c['failed'])

    def spin_until(self, predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
        """Spin until ``predicate()`` holds or ``timeout`` passes; its final value."""
        return spin_until(self.executor, predicate, timeout, self.spin_period_s)

    def close(self) -> None:
        self.executor.shutdown(timeout_sec=1.0)
        self.node.destroy_node()
        self.probe.destroy_node()


def reliable_qos(depth: int = 10) -> QoSProfile:
    """Reliable keep-last QoS: a probe camera whose every frame must arrive."""
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth,
                      reliability=ReliabilityPolicy.RELIABLE)


def probe_qos(depth: int = 50) -> QoSProfile:
    """Best effort with a deep queue: matches reliable and best-effort publishers alike."""
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth,
                      reliability=ReliabilityPolicy.BEST_EFFORT)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the node with a fake engine as a process (see the module docstring)."""
    parser = argparse.ArgumentParser(prog='fake_node', description=__doc__.splitlines()[0])
    parser.add_argument('--fake-engine-ms', type=float, default=None,
                        help='milliseconds per inference (default: FAKE_ENGINE_DELAY_S seconds '
                             'from the environment, else 0)')
    parser.add_argument('--fake-classes', type=int, default=3, help='classes the engine has')
    parser.add_argument('--rule', choices=('red-blue', 'split', 'conveyor'),
                        default=os.environ.get('FAKE_NODE_RULE', 'red-blue'),
                        help='labels from red/blue, a fixed content-blind split (cheapest), or '
                             "the conveyor demo's classes by colour (default: FAKE_NODE_RULE "
                             'from the environment, else red-blue)')
    parser.add_argument('--busy', choices=('sleep', 'native'), default='sleep',
                        help='spend the inference time asleep, or in torch (native code)')
    parser.add_argument('--announce', action='store_true',
                        help="print 'inference start' / 'inference end' around each batch")
    parser.add_argument('--lifecycle', action='store_true', help='the managed node')
    argv = list(sys.argv[1:] if argv is None else argv)
    ros_start = argv.index('--ros-args') if '--ros-args' in argv else len(argv)
    args = parser.parse_args(argv[:ros_start])
    if args.fake_engine_ms is not None:
        delay_s = args.fake_engine_ms / 1e3
    else:
        delay_s = float(os.environ.get('FAKE_ENGINE_DELAY_S', '0'))
    announce = (lambda text: print(text, flush=True)) if args.announce else None
    engine, class_map = rule_engine(args.rule, delay_s, num_classes=args.fake_classes,
                                    busy=args.busy, announce=announce)
    factory = fake_factory(engine, class_map, name=f'fake engine {delay_s * 1e3:g} ms, '
                                                   f'{args.rule} rule')
    ros_args = argv[ros_start:]
    if os.environ.get('FAKE_NODE_NO_OVERLAY') == '1':  # no segmentation/overlay topic
        ros_args = [*(ros_args or ['--ros-args']), '-r',
                    'segmentation/overlay:=segmentation/overlay_hidden']
    node_class: type = SegmentationNode
    if args.lifecycle:
        from lw_refinenet_ros.ros.lifecycle_node import LifecycleSegmentationNode
        node_class = LifecycleSegmentationNode
    return run_node(lambda: node_class(engine_factory=factory), [sys.argv[0], *ros_args])


if __name__ == '__main__':
    sys.exit(main())
