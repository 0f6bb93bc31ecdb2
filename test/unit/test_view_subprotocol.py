"""The view accepts both names of the Foxglove WebSocket protocol (issue: clients offering
``foxglove.websocket.v1`` got HTTP 400 from foxglove-sdk).

A real foxglove-sdk server behind the relay, real WebSocket clients offering one name each;
no ROS needed (the ROS side is covered in test/ros/test_view.py).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, Iterator

import foxglove
import pytest
import websockets

from lw_refinenet_ros.errors import ConfigError
from lw_refinenet_ros.testing.foxglove_client import FoxgloveClient
from lw_refinenet_ros.view.subprotocol import (
    LEGACY_SUBPROTOCOL,
    SDK_SUBPROTOCOL,
    SubprotocolRelay,
    bind_listener,
    rewrite_request,
    rewrite_response,
)

REQUEST = (b'GET / HTTP/1.1\r\nHost: 127.0.0.1:8765\r\nUpgrade: websocket\r\n'
           b'Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n'
           b'Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: %s\r\n\r\n')


def test_only_a_legacy_only_offer_is_rewritten() -> None:
    legacy, rename = rewrite_request(REQUEST % LEGACY_SUBPROTOCOL.encode())
    assert rename and b'Sec-WebSocket-Protocol: foxglove.sdk.v1\r\n' in legacy
    assert LEGACY_SUBPROTOCOL.encode() not in legacy and legacy.endswith(b'\r\n\r\n')
    assert legacy.startswith(b'GET / HTTP/1.1\r\n') and b'Sec-WebSocket-Key:' in legacy
    for offer in (b'foxglove.sdk.v1', b'foxglove.websocket.v1, foxglove.sdk.v1', b'other.v2'):
        request = REQUEST % offer
        assert rewrite_request(request) == (request, False)
    answer = (b'HTTP/1.1 101 Switching Protocols\r\nsec-websocket-protocol: foxglove.sdk.v1\r\n'
              b'Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n')
    renamed = rewrite_response(answer)
    assert b'Sec-WebSocket-Protocol: foxglove.websocket.v1\r\n' in renamed
    assert b'Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=' in renamed


@pytest.fixture
def served() -> Iterator[tuple[str, Any]]:
    """An SDK server with one JSON channel, reached through the relay on a free port."""
    context = foxglove.Context()
    channel = foxglove.Channel('/numbers', schema={'type': 'object'}, message_encoding='json',
                               context=context)
    server = foxglove.start_server(host='127.0.0.1', port=0, context=context)
    relay = SubprotocolRelay(bind_listener('127.0.0.1', 0), int(server.port))
    try:
        yield f'ws://127.0.0.1:{relay.port}', channel
    finally:
        relay.stop()
        server.stop()
        channel.close()


@pytest.mark.parametrize('name', [SDK_SUBPROTOCOL, LEGACY_SUBPROTOCOL])
def test_a_client_offering_either_name_connects_and_receives(served: Any, name: str) -> None:
    url, channel = served

    async def scenario() -> tuple[str | None, list[Any]]:
        async with FoxgloveClient(url, subprotocol=name) as client:
            await client.subscribe('/numbers')

            async def publish() -> None:
                for index in range(200):
                    channel.log({'n': index})
                    await asyncio.sleep(0.01)

            publisher = asyncio.ensure_future(publish())
            frames = await client.receive(lambda fs: len(fs) >= 3, timeout=10)
            publisher.cancel()
            return client.subprotocol, frames

    negotiated, frames = asyncio.run(scenario())
    assert negotiated == name
    assert len(frames) >= 3 and all(f.topic == '/numbers' for f in frames)
    assert isinstance(json.loads(frames[0].payload)['n'], int)


def test_an_unknown_subprotocol_is_still_refused(served: Any) -> None:
    url, _ = served

    async def connect() -> None:
        async with websockets.connect(url, subprotocols=['not.foxglove.v9']):
            pass

    with pytest.raises(websockets.exceptions.InvalidStatus, match='400'):
        asyncio.run(connect())


def test_a_port_in_use_is_named() -> None:
    listener = bind_listener('127.0.0.1', 0)
    try:
        with pytest.raises(ConfigError, match='is in use.*--port'):
            bind_listener('127.0.0.1', listener.getsockname()[1])
    finally:
        listener.close()
