"""The node's inputs: per camera the image subscription, camera_info, QoS, decoding and what
the transport delivered.

The subscription callback only hands the message to the scheduler's slot (``submit``), so a
frame that gets overwritten before the worker takes it costs nothing; decoding happens on
the worker (:meth:`Inputs.decode`), where a malformed frame raises and is counted as failed.
Each subscription has a :class:`~.transport.TransportMonitor` (middleware loss, a silent or
vanished publisher), which /diagnostics reads once per period.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Sequence

import numpy as np
from sensor_msgs.msg import CameraInfo, CompressedImage, Image

from lw_refinenet_ros.config import NodeConfig
from lw_refinenet_ros.errors import ImageConversionError
from lw_refinenet_ros.ros.conversions import compressed_to_rgb, image_to_rgb, stamp_seconds
from lw_refinenet_ros.ros.qos import input_qos
from lw_refinenet_ros.ros.throttle import ThrottledLog
from lw_refinenet_ros.ros.topics import CAMERA_INFO, COMPRESSED_IMAGE, IMAGE, camera_topic
from lw_refinenet_ros.ros.transport import LOSS_FIX, TransportHealth, TransportMonitor
from lw_refinenet_ros.scheduler import Frame

# (camera, message, stamp in seconds) -> None: where a received frame goes.
Submit = Callable[[str, Any, float], None]


@dataclasses.dataclass
class CameraInput:
    """One camera's subscriptions and what they saw."""

    name: str
    transport: TransportMonitor = dataclasses.field(default_factory=TransportMonitor)
    subscription: Any = None
    info_subscription: Any = None
    camera_info: CameraInfo | None = None


class Inputs:
    """The input side of every camera.

    Args:
        node: The node to subscribe on.
        cameras: Camera names ('' for the single default camera).
        log: Throttled warnings (transport problems).
    """

    def __init__(self, node: Any, cameras: Sequence[str], log: ThrottledLog) -> None:
        self._node = node
        self._log = log
        self._cameras = {name: CameraInput(name) for name in cameras}

    @property
    def names(self) -> tuple[str, ...]:
        """The camera names, in the configured order."""
        return tuple(self._cameras)

    def camera(self, name: str) -> CameraInput:
        """One camera's input state."""
        return self._cameras[name]

    def subscribe(self, config: NodeConfig, submit: Submit) -> None:
        """Create each camera's image (and camera_info) subscription."""
        for camera in self._cameras.values():
            if config.input_type == 'compressed':
                topic, message_type = camera_topic(camera.name, COMPRESSED_IMAGE), CompressedImage
            else:
                topic, message_type = camera_topic(camera.name, IMAGE), Image
            qos = input_qos(self._node, topic, config.qos)
            # Loss and silence are per subscription: a re-activated node starts afresh.
            camera.transport = TransportMonitor()

            def on_image(msg: Any, camera: CameraInput = camera) -> None:
                camera.transport.note_message()
                submit(camera.name, msg, stamp_seconds(msg.header.stamp))
            camera.subscription = self._node.create_subscription(
                message_type, topic, on_image, qos,
                event_callbacks=camera.transport.event_callbacks())
            if config.use_camera_info:
                camera.info_subscription = self._node.create_subscription(
                    CameraInfo, camera_topic(camera.name, CAMERA_INFO),
                    lambda msg, cam=camera: setattr(cam, 'camera_info', msg), qos)

    def unsubscribe(self) -> None:
        """Remove every subscription."""
        for camera in self._cameras.values():
            for attribute in ('subscription', 'info_subscription'):
                subscription = getattr(camera, attribute)
                if subscription is not None:
                    self._node.destroy_subscription(subscription)
                    setattr(camera, attribute, None)

    def decode(self, frame: Frame, max_pixels: int) -> tuple[np.ndarray, str]:
        """The frame's pixels and their colour order ('rgb' or 'bgr').

        Raises:
            ImageConversionError: A malformed image, one over ``max_pixels``, or one whose
                size disagrees with the camera's camera_info.
        """
        msg = frame.data
        if isinstance(msg, CompressedImage):
            image, order = compressed_to_rgb(msg, max_pixels)
        else:
            image, order = image_to_rgb(msg, max_pixels)
        info = self._cameras[frame.source].camera_info
        if info is not None and (info.width, info.height) != (image.shape[1], image.shape[0]):
            raise ImageConversionError(
                f'camera_info says {info.width}x{info.height} but the image is '
                f'{image.shape[1]}x{image.shape[0]}; fix the camera driver calibration or set '
                f'use_camera_info false')
        return image, order

    def transport_health(self, name: str) -> TransportHealth | None:
        """What the camera's subscription saw since the last report (None while it has none);
        a problem is logged, throttled, with the transport advice only when the transport is
        the suspect."""
        camera = self._cameras[name]
        if camera.subscription is None:
            return None
        try:
            health = camera.transport.report(camera.subscription.get_publisher_count())
        except Exception:  # noqa: BLE001 - the subscription went away (shutting down)
            return None
        problem = health.problem()
        if problem is not None:
            advice = f'. To fix it: {LOSS_FIX}' if health.transport_suspected else ''
            self._log.warning(f'transport:{name}',
                              f'{camera.subscription.topic_name}: {problem}{advice}')
        return health
