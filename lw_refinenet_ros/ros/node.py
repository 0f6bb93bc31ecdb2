"""``segmentation_node``: Light-Weight RefineNet on camera images, keeping up by dropping frames.

A thin node: declare parameters (one table, ``lw_refinenet_ros.config``) -> NodeConfig ->
the model's :class:`~lw_refinenet_ros.segmenter.Segmenter` (model, class map, engine) ->
:class:`~lw_refinenet_ros.ros.pipeline.SegmentationPipeline`, whose three parts own the
subscriptions (inputs), the inference thread (inference) and the publishers and
/diagnostics (outputs). Topics and parameters are
documented in docs/node.md. The process side (rclpy init, signals, a bounded exit) is
:func:`lw_refinenet_ros.ros.runner.run_node`.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, Sequence

from rclpy.node import Node

from lw_refinenet_ros.ros.runner import NODE_NAME, run_node

if TYPE_CHECKING:
    from lw_refinenet_ros.config import NodeConfig
    from lw_refinenet_ros.ros.pipeline import EngineFactory, SegmentationPipeline
    from lw_refinenet_ros.scheduler import FrameCounters

__all__ = ['NODE_NAME', 'SegmentationNode', 'main', 'run_node']


class SegmentationNode(Node):
    """The segmentation node; ``engine_factory`` lets tests inject a fake engine."""

    def __init__(self, node_name: str = NODE_NAME, *,
                 engine_factory: EngineFactory | None = None, **kwargs: Any) -> None:
        """Declare parameters, load the model and start processing.

        Raises:
            LWRefineNetError: Invalid parameters, unusable weights or an unavailable device;
                the message says what to fix.
        """
        # The node (and with it the process's DDS participant) exists before the rest of the
        # package is imported: discovery by the other participants, which takes up to their
        # announcement period (3 s by default), runs while the model loads.
        super().__init__(node_name, **kwargs)
        from lw_refinenet_ros.ros.parameters import declare_parameters
        from lw_refinenet_ros.ros.pipeline import SegmentationPipeline, load_engine

        self._config = declare_parameters(self)
        loaded = (engine_factory or load_engine)(self._config)
        self._pipeline = SegmentationPipeline(self, self._config, loaded)
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self._pipeline.subscribe()
        self.get_logger().info(
            f'segmenting with {loaded.name} ({loaded.class_map.num_classes} classes) on '
            f'{getattr(loaded.engine, "device", "?")}, input {self._config.input_type}, '
            f'qos {self._config.qos}, cameras {list(self._config.cameras) or ["(default)"]}')

    @property
    def config(self) -> NodeConfig:
        """The configuration in force (after runtime changes)."""
        return self._config

    @property
    def pipeline(self) -> SegmentationPipeline:
        """The pipeline (tests read its counters)."""
        return self._pipeline

    def counters(self, camera: str | None = None) -> FrameCounters:
        """Frame counters: received = processed + dropped + failed + pending."""
        return self._pipeline.counters(camera)

    def _on_set_parameters(self, parameters: list[Any]) -> Any:
        from lw_refinenet_ros.ros.parameters import apply_runtime_change

        self._config, result = apply_runtime_change(self._config, self._pipeline, parameters)
        return result

    def destroy_node(self) -> None:
        """Stop the inference thread before the node's entities go away."""
        pipeline = getattr(self, '_pipeline', None)
        if pipeline is not None:
            pipeline.destroy()
            self._pipeline = None
        super().destroy_node()


def main(args: Sequence[str] | None = None) -> int:
    """Entry point of ``segmentation_node`` (``ros2 run lw_refinenet_ros segmentation_node``).

    ``--lifecycle`` (before ``--ros-args``) runs the managed variant instead.
    """
    argv = list(sys.argv if args is None else args)
    ros_start = argv.index('--ros-args') if '--ros-args' in argv else len(argv)
    if '--lifecycle' in argv[1:ros_start]:
        argv.remove('--lifecycle')
        from lw_refinenet_ros.ros.lifecycle_node import LifecycleSegmentationNode
        return run_node(LifecycleSegmentationNode, argv)
    return run_node(SegmentationNode, argv)


if __name__ == '__main__':
    sys.exit(main())
