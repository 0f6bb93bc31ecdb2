"""A minimal Foxglove WebSocket client (tests, benchmarks), speaking the protocol on the wire.

It does what the Foxglove app does: open the socket with the Foxglove subprotocol, read the
JSON ``serverInfo`` and ``advertise`` operations, send ``subscribe`` and parse binary message
frames (opcode 1, subscription id u32, timestamp u64, payload; little-endian). Protobuf
payloads are decoded with the schema the server advertised, never with compiled stubs, so a
wrong schema fails the test like it would fail the app.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import socket
import struct
import time
from typing import Any, Callable

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
import websockets

#: The subprotocol the Foxglove app offers today; the view also accepts the older
#: ``foxglove.websocket.v1`` (pass ``subprotocol=``).
SUBPROTOCOL = 'foxglove.sdk.v1'
_MESSAGE_DATA = 1


@dataclasses.dataclass
class Received:
    """One message frame: channel topic, server timestamp (ns) and raw payload."""

    topic: str
    timestamp_ns: int
    payload: bytes


class FoxgloveClient:
    """An asyncio client; use ``async with FoxgloveClient(url) as client``."""

    def __init__(self, url: str, receive_buffer: int = 0,
                 subprotocol: str = SUBPROTOCOL) -> None:
        """``receive_buffer`` > 0 shrinks the socket's kernel buffer, to play a slow client;
        ``subprotocol`` is the one name offered in the handshake."""
        self.url = url
        self._offer = subprotocol
        self._receive_buffer = receive_buffer
        self.server_info: dict[str, Any] = {}
        self.channels: dict[str, dict[str, Any]] = {}
        self._subscriptions: dict[int, str] = {}
        self._next_id = 1
        self._socket: Any = None
        self._classes: dict[str, Any] = {}
        self._aborted = False

    async def __aenter__(self) -> FoxgloveClient:
        options: dict[str, Any] = {}
        if self._receive_buffer:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self._receive_buffer)
            host, port = self.url.removeprefix('ws://').rsplit(':', 1)
            sock.connect((host, int(port)))
            sock.setblocking(False)
            # websockets stops reading once max_queue frames wait unread: back-pressure.
            options = {'sock': sock, 'max_queue': 1}
        self._socket = await websockets.connect(self.url, subprotocols=[self._offer],
                                                max_size=None, close_timeout=1.0, **options)
        deadline = time.monotonic() + 5.0
        while not self.channels or not self.server_info:
            text = await asyncio.wait_for(self._socket.recv(), deadline - time.monotonic())
            operation = json.loads(text)
            if operation['op'] == 'serverInfo':
                self.server_info = operation
            elif operation['op'] == 'advertise':
                for channel in operation['channels']:
                    self.channels[channel['topic']] = channel
        return self

    async def __aexit__(self, *exc: object) -> None:
        if not self._aborted:
            await self._socket.close()

    @property
    def subprotocol(self) -> str | None:
        return self._socket.subprotocol

    async def subscribe(self, *topics: str) -> None:
        """Subscribe to channels by topic (KeyError for a topic never advertised)."""
        entries = []
        for topic in topics:
            entries.append({'id': self._next_id, 'channelId': self.channels[topic]['id']})
            self._subscriptions[self._next_id] = topic
            self._next_id += 1
        await self._socket.send(json.dumps({'op': 'subscribe', 'subscriptions': entries}))

    async def unsubscribe_all(self) -> None:
        await self._socket.send(json.dumps({'op': 'unsubscribe',
                                            'subscriptionIds': list(self._subscriptions)}))
        self._subscriptions.clear()

    async def receive(self, until: Callable[[list[Received]], bool],
                      timeout: float) -> list[Received]:
        """Collect message frames until ``until(frames)`` holds or ``timeout`` passes."""
        frames: list[Received] = []
        deadline = time.monotonic() + timeout
        while not until(frames):
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                data = await asyncio.wait_for(self._socket.recv(), left)
            except asyncio.TimeoutError:
                break
            if isinstance(data, str):
                continue  # advertise/unadvertise/status updates
            if data[0] != _MESSAGE_DATA:
                continue
            subscription, stamp = struct.unpack_from('<IQ', data, 1)
            topic = self._subscriptions.get(subscription)
            if topic is not None:
                frames.append(Received(topic, stamp, bytes(data[13:])))
        return frames

    def abort(self) -> None:
        """Drop the TCP connection without a closing handshake (a crashed client)."""
        self._socket.transport.abort()
        self._aborted = True

    def decode(self, frame: Received) -> Any:
        """Decode a payload with the advertised schema: a dict (JSON) or a protobuf message."""
        channel = self.channels[frame.topic]
        if channel['encoding'] == 'json':
            return json.loads(frame.payload)
        if channel['encoding'] != 'protobuf':
            raise ValueError(f'{frame.topic}: cannot decode encoding {channel["encoding"]!r}')
        name = channel['schemaName']
        if name not in self._classes:
            files = descriptor_pb2.FileDescriptorSet.FromString(
                base64.b64decode(channel['schema']))
            pool = descriptor_pool.DescriptorPool()
            for file in files.file:
                pool.Add(file)
            self._classes[name] = message_factory.GetMessageClass(
                pool.FindMessageTypeByName(name))
        return self._classes[name].FromString(frame.payload)
