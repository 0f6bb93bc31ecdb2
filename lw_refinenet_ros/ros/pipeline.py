"""The segmentation pipeline behind both node flavours (plain and lifecycle), in three parts.

- **inputs** (:mod:`.inputs`): per camera the image subscription, camera_info, QoS, decoding
  and transport health;
- **inference** (:mod:`.inference`): the latest-frame scheduler, its one worker thread (all
  inference and publishing; no GPU work on the executor thread) and the model's segmenter;
- **outputs** (:mod:`.outputs`, :mod:`.diagnostics`): publishers built from the one topic
  table (:mod:`.topics`), the messages, and /diagnostics.

:class:`SegmentationPipeline` wires them onto a node and is what the node classes use.
"""

from __future__ import annotations

import logging
from typing import Any

from rclpy.node import Node

from lw_refinenet_ros.config import NodeConfig
from lw_refinenet_ros.palette import ClassMap
from lw_refinenet_ros.ros.diagnostics import DiagnosticsReporter
from lw_refinenet_ros.ros.inference import EngineFactory, Inference, LoadedModel, load_engine
from lw_refinenet_ros.ros.inputs import Inputs
from lw_refinenet_ros.ros.outputs import Outputs
from lw_refinenet_ros.ros.throttle import ThrottledLog
from lw_refinenet_ros.scheduler import FrameCounters, LatestFrameScheduler

__all__ = ['EngineFactory', 'LoadedModel', 'SegmentationPipeline', 'load_engine']

_LOG = logging.getLogger(__name__)


class SegmentationPipeline:
    """Cameras -> latest-frame scheduler -> segmenter -> outputs, wired onto a node."""

    def __init__(self, node: Node, config: NodeConfig, loaded: LoadedModel) -> None:
        self._node = node
        self._config = config
        self._loaded = loaded
        cameras = list(config.cameras) or ['']
        log = ThrottledLog(self._logger, lambda: self._config.log_throttle_s)
        self._outputs = Outputs(node, cameras, config, loaded.class_map, loaded.name)
        self._inputs = Inputs(node, cameras, log)
        self._inference = Inference(config, loaded, self._inputs, self._outputs, log,
                                    self._logger)
        self._diagnostics = DiagnosticsReporter(
            node, config.diagnostics_period_s, self._inputs, self._inference, self._outputs,
            lambda: self._config.max_rate_hz)
        device = str(getattr(loaded.engine, 'device', ''))
        if config.device.startswith('cuda') and not device.startswith('cuda'):
            node.get_logger().warning(f'device {config.device!r} is not available: running on '
                                      f'{device} because device_fallback is true')

    def _logger(self) -> Any:
        # Once the outputs are closed the node may be gone: log without touching it.
        return self._node.get_logger() if self._outputs.is_open else None

    def subscribe(self) -> None:
        """Publish the class map, create the input subscriptions and start the worker."""
        self._outputs.publish_class_map()
        self._inputs.subscribe(self._config, self._inference.scheduler.submit)
        self._outputs.open()
        self._inference.scheduler.start()

    def unsubscribe(self, timeout: float = 0.5) -> bool:
        """Stop the worker, close the outputs, remove the input subscriptions.

        An inference in flight gets ``timeout`` seconds to finish and publish; returns False
        when it is still running then (it finishes on its own; its result is counted as
        processed but not published). When the context is already shut down (a signal),
        the outputs close first: nothing can be published any more.
        """
        if not self._node.context.ok():
            self._outputs.close()
        stopped = self._inference.stop(timeout)
        self._outputs.close()
        self._inputs.unsubscribe()
        return stopped

    def destroy(self) -> None:
        """Stop everything this pipeline created on the node."""
        self.unsubscribe()
        self._diagnostics.destroy()
        self._outputs.destroy()

    @property
    def inputs(self) -> Inputs:
        """The input side (subscriptions, decoding, transport health)."""
        return self._inputs

    @property
    def inference(self) -> Inference:
        """The scheduler, its worker and the segmenter."""
        return self._inference

    @property
    def outputs(self) -> Outputs:
        """The publishers and the messages."""
        return self._outputs

    @property
    def scheduler(self) -> LatestFrameScheduler:
        """The frame scheduler (its counters are the node's counters)."""
        return self._inference.scheduler

    @property
    def class_map(self) -> ClassMap:
        """Names and colours of the model's classes."""
        return self._loaded.class_map

    def apply(self, config: NodeConfig) -> None:
        """Apply a validated runtime change (alpha, rates, outputs, filter, limits).

        Raises:
            ConfigError: A class_filter entry the model does not have (nothing changed).
        """
        self._outputs.configure(config)
        self._config = config
        self._inference.configure(config)

    def counters(self, camera: str | None = None) -> FrameCounters:
        """Frame counters of one camera (by namespace) or of all."""
        return self._inference.counters(camera)
