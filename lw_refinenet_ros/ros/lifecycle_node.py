"""``lifecycle_segmentation_node``: the managed variant of the segmentation node.

configure loads the model (the slow, failure-prone step, done before the system goes live) and
creates the outputs as lifecycle publishers; activate enables them, publishes the class map,
subscribes and starts the inference thread; deactivate unsubscribes, stops the thread and
disables the outputs (nothing but /diagnostics is published while inactive); cleanup frees
the model. Also available as ``segmentation_node --lifecycle``.
"""

from __future__ import annotations

import sys
from typing import Any, Sequence

from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn

from lw_refinenet_ros.config import NodeConfig
from lw_refinenet_ros.errors import LWRefineNetError
from lw_refinenet_ros.ros.parameters import apply_runtime_change, declare_parameters
from lw_refinenet_ros.ros.pipeline import EngineFactory, SegmentationPipeline, load_engine
from lw_refinenet_ros.ros.runner import NODE_NAME, run_node


class LifecycleSegmentationNode(LifecycleNode):
    """Managed segmentation node (see module docstring for the transitions)."""

    def __init__(self, node_name: str = NODE_NAME, *,
                 engine_factory: EngineFactory | None = None, **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        self._engine_factory = engine_factory or load_engine
        self._config: NodeConfig = declare_parameters(self)
        self._pipeline: SegmentationPipeline | None = None
        self.add_on_set_parameters_callback(self._on_set_parameters)

    @property
    def pipeline(self) -> SegmentationPipeline | None:
        """The pipeline while configured, else None."""
        return self._pipeline

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            loaded = self._engine_factory(self._config)
            # Also checks what needs the model's classes (class_filter names).
            self._pipeline = SegmentationPipeline(self, self._config, loaded)
        except LWRefineNetError as error:
            self.get_logger().error(f'configure failed: {error}')
            return TransitionCallbackReturn.FAILURE
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        result = super().on_activate(state)  # enables the managed publishers first
        self._pipeline.subscribe()
        return result

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._pipeline.unsubscribe()
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def _release(self) -> None:
        if self._pipeline is not None:
            self._pipeline.destroy()
            self._pipeline = None

    def _on_set_parameters(self, parameters: list[Any]) -> Any:
        self._config, result = apply_runtime_change(self._config, self._pipeline, parameters)
        return result

    def destroy_node(self) -> None:
        self._release()
        super().destroy_node()
        # rclpy's LifecycleNode.destroy_node (Jazzy) leaves its state machine alive, and the
        # state machine holds the node handle and with it the context: the DDS participant
        # would outlive the node (and leave its /dev/shm segment behind on a fast exit).
        state_machine = getattr(self, '_state_machine', None)
        if state_machine is not None:
            state_machine.destroy_when_not_in_use()


def main(args: Sequence[str] | None = None) -> int:
    """Entry point of ``lifecycle_segmentation_node``."""
    return run_node(LifecycleSegmentationNode, sys.argv if args is None else args)


if __name__ == '__main__':
    sys.exit(main())
