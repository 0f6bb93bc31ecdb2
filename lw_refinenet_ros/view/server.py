"""The Foxglove side of the live view: one SDK context, its channels and the WebSocket server.

Kept apart from the ROS node so that ``lw-refinenet view`` binds its port before touching ROS:
a port in use is reported at once, with the fix, instead of after DDS discovery has started.
Each server gets its own ``foxglove.Context``, so two bridges in one process (tests) never
see each other's channels.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import threading
from typing import Any

import foxglove
from foxglove.channels import CompressedImageChannel, ImageAnnotationsChannel

from lw_refinenet_ros.errors import ConfigError
from lw_refinenet_ros.ros.topic_names import COLOR, DIAGNOSTICS, LABELS, OVERLAY
from lw_refinenet_ros.view import subprotocol as relay
from lw_refinenet_ros.view.encode import FLAT, IDS, PHOTO
from lw_refinenet_ros.view.payloads import (
    CLASS_MAP_SCHEMA,
    DIAGNOSTICS_SCHEMA,
    STATS_SCHEMA,
)

#: The Foxglove WebSocket subprotocol names clients may offer: foxglove-sdk's
#: ``foxglove.sdk.v1`` and the older ``foxglove.websocket.v1`` (same framing; see
#: :mod:`.subprotocol`, the relay that lets the SDK server answer both).
SUBPROTOCOLS = relay.SUBPROTOCOLS
DIAGNOSTICS_TOPIC = DIAGNOSTICS

# Image outputs of the node, relative to a camera namespace, and how each is compressed.
IMAGE_OUTPUTS: tuple[tuple[str, str], ...] = (
    (OVERLAY, PHOTO),
    (COLOR, FLAT),
    (LABELS, IDS),
)


@dataclasses.dataclass(frozen=True)
class ViewConfig:
    """What the view serves and where.

    Attributes:
        cameras: Namespaces whose ``segmentation/*`` outputs are served, e.g.
            ``('/conveyor_demo',)``; ``'/'`` is the root namespace (the default launch).
        image_topic: The camera image topic when it is not ``<camera>/image`` (one camera
            only), e.g. ``/camera/image_raw`` for the default launch.
        address: Interface to bind; 127.0.0.1 keeps the view on this machine.
        port: TCP port; 0 picks a free one (tests).
        max_width: Images wider than this are downscaled before compression (0 = never).
        jpeg_quality: JPEG quality 1-100 for the camera image and the overlay.
        backlog: Messages queued per client before the oldest is dropped; a small queue keeps
            a slow client's view fresh instead of minutes behind.
    """

    cameras: tuple[str, ...] = ('/',)
    image_topic: str = ''
    address: str = '127.0.0.1'
    port: int = 8765
    max_width: int = 640
    jpeg_quality: int = 80
    backlog: int = 32

    def __post_init__(self) -> None:
        if not self.cameras:
            raise ConfigError('The view needs at least one camera namespace (--cameras).')
        prefixes = [camera_prefix(c) for c in self.cameras]
        if len(set(prefixes)) != len(prefixes):
            raise ConfigError(f'--cameras lists a namespace twice: {list(self.cameras)}.')
        if self.image_topic and len(self.cameras) > 1:
            raise ConfigError('--image-topic names one camera image; with several --cameras '
                              'each camera image must be <namespace>/image.')
        if not 0 <= self.port <= 65535:
            raise ConfigError(f'--port must be 0-65535, got {self.port}.')
        if not 1 <= self.jpeg_quality <= 100:
            raise ConfigError(f'--jpeg-quality must be 1-100, got {self.jpeg_quality}.')
        if self.max_width < 0:
            raise ConfigError(f'--max-width must be >= 0 (0 = full size), got '
                              f'{self.max_width}.')
        if self.backlog < 4:
            raise ConfigError(f'backlog must be >= 4 messages, got {self.backlog}.')
        try:
            ipaddress.ip_address(self.address)
        except ValueError:
            if self.address != 'localhost':
                raise ConfigError(f'--address must be an IP address such as 127.0.0.1 or '
                                  f'0.0.0.0, got {self.address!r}.') from None


def camera_prefix(namespace: str) -> str:
    """``'/conveyor_demo'`` -> ``'/conveyor_demo/'``; ``''`` or ``'/'`` -> ``'/'``."""
    stripped = namespace.strip('/')
    return f'/{stripped}/' if stripped else '/'


@dataclasses.dataclass
class CameraChannels:
    """The Foxglove channels of one camera namespace."""

    prefix: str
    image_topic: str
    images: dict[str, tuple[Any, str]]   # ROS topic -> (channel, kind)
    annotations: Any
    stats: Any
    class_map: Any


class ViewServer:
    """A Foxglove WebSocket server with the channels of the configured cameras."""

    def __init__(self, config: ViewConfig) -> None:
        """Create the channels and bind the server.

        Clients connect to ``address:port``, served by a :class:`~.subprotocol.
        SubprotocolRelay` in front of the SDK server (which listens on a private loopback
        port), so that both names of the protocol are accepted.

        Raises:
            ConfigError: The port is in use or the address cannot be bound; the message says
                which option to change.
        """
        self.config = config
        self.context = foxglove.Context()
        self._resend: set[str] = set()
        self._lock = threading.Lock()
        self.cameras = [self._camera_channels(c) for c in config.cameras]
        self.diagnostics = self._json_channel(DIAGNOSTICS_TOPIC, DIAGNOSTICS_SCHEMA)
        try:
            listener = relay.bind_listener(config.address, config.port)
        except ConfigError:
            self.close_channels()
            raise
        try:
            self._server = foxglove.start_server(
                name='lw_refinenet_ros view', host='127.0.0.1', port=0,
                server_listener=_Listener(self), context=self.context,
                message_backlog_size=config.backlog)
        except RuntimeError as error:
            listener.close()
            self.close_channels()
            raise ConfigError(f'cannot start the Foxglove server on a loopback port '
                              f'({error}).') from None
        self._relay = relay.SubprotocolRelay(listener, int(self._server.port))

    def _json_channel(self, topic: str, schema: dict[str, Any]) -> Any:
        return foxglove.Channel(topic, schema=schema, message_encoding='json',
                                context=self.context)

    def _camera_channels(self, namespace: str) -> CameraChannels:
        prefix = camera_prefix(namespace)
        image_topic = self.config.image_topic or f'{prefix}image'
        images = {image_topic: (CompressedImageChannel(image_topic, context=self.context),
                                PHOTO)}
        for output, kind in IMAGE_OUTPUTS:
            topic = f'{prefix}{output}'
            images[topic] = (CompressedImageChannel(topic, context=self.context), kind)
        return CameraChannels(
            prefix, image_topic, images,
            ImageAnnotationsChannel(f'{prefix}segmentation/annotations', context=self.context),
            self._json_channel(f'{prefix}segmentation/stats', STATS_SCHEMA),
            self._json_channel(f'{prefix}segmentation/class_map', CLASS_MAP_SCHEMA))

    @property
    def port(self) -> int:
        """The bound public port (the chosen one when ``port`` was 0)."""
        return self._relay.port

    @property
    def url(self) -> str:
        """``ws://address:port`` for Foxglove's *Open connection* dialog."""
        return f'ws://{self.config.address}:{self.port}'

    def app_url(self) -> str:
        """A link that opens app.foxglove.dev connected to this server (the SDK's link,
        pointed at the public port instead of the private one)."""
        from urllib.parse import quote

        private = quote(f'ws://127.0.0.1:{int(self._server.port)}', safe='')
        return str(self._server.app_url()).replace(private, quote(self.url, safe=''))

    def on_subscribed(self, topic: str) -> None:
        """Remember that ``topic`` got a subscriber (its latched value is sent again)."""
        with self._lock:
            self._resend.add(topic)

    def take_resends(self) -> set[str]:
        """Topics that gained a subscriber since the last call."""
        with self._lock:
            topics, self._resend = self._resend, set()
        return topics

    def close_channels(self) -> None:
        for camera in getattr(self, 'cameras', []):
            for channel, _ in camera.images.values():
                channel.close()
            for channel in (camera.annotations, camera.stats, camera.class_map):
                channel.close()
        if getattr(self, 'diagnostics', None) is not None:
            self.diagnostics.close()

    def stop(self) -> None:
        """Disconnect every client and release the port."""
        self._relay.stop()
        self._server.stop()
        self.close_channels()


class _Listener(foxglove.ServerListener):
    """Forwards subscriptions so that latched documents (the class map) reach late clients."""

    def __init__(self, server: ViewServer) -> None:
        self._server = server

    def on_subscribe(self, client: Any, channel: Any) -> None:
        self._server.on_subscribed(channel.topic)
