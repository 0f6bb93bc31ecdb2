"""Both names of the Foxglove WebSocket protocol on one port: a handshake-rewriting relay.

The protocol was renamed from ``foxglove.websocket.v1`` to ``foxglove.sdk.v1`` without a
change to its framing. foxglove-sdk (0.30) accepts only the new name and answers a client that
offers the old one (the ``@foxglove/ws-protocol`` client library, older Lichtblick,
PlotJuggler, ...) with HTTP 400; it has no option to accept both. So the view's public port
is this relay: it reads each client's HTTP upgrade request, and when the client offers only
``foxglove.websocket.v1`` it asks the SDK server (on a private loopback port) for
``foxglove.sdk.v1`` instead and gives the answer back under the name the client offered.
After the handshake it copies bytes both ways unchanged; the WebSocket accept key depends on
the client's key only, so the rewritten answer is still a valid handshake.

A slow client still slows only itself: the relay reads from the SDK server only as fast as it
can write to the client, so the SDK's per-client backlog and drop policy keep working.
No ROS here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading

from lw_refinenet_ros.errors import ConfigError

#: The protocol's current name (what foxglove-sdk speaks) and the older one, same framing.
SDK_SUBPROTOCOL = 'foxglove.sdk.v1'
LEGACY_SUBPROTOCOL = 'foxglove.websocket.v1'
SUBPROTOCOLS: tuple[str, ...] = (SDK_SUBPROTOCOL, LEGACY_SUBPROTOCOL)

_HEADER = b'sec-websocket-protocol'
_MAX_HEAD = 64 * 1024
_CHUNK = 256 * 1024
_LOG = logging.getLogger(__name__)


def _split_head(head: bytes) -> list[bytes]:
    return head[:-4].split(b'\r\n')


def _offers(lines: list[bytes]) -> list[str]:
    offers: list[str] = []
    for line in lines[1:]:
        name, _, value = line.partition(b':')
        if name.strip().lower() == _HEADER:
            offers.extend(v.strip().decode('latin-1') for v in value.split(b','))
    return offers


def rewrite_request(head: bytes) -> tuple[bytes, bool]:
    """The upgrade request to send the SDK server, and whether the answer must be renamed.

    Only a request that offers the legacy name and not the current one is changed: its
    protocol header then offers ``foxglove.sdk.v1``. Anything else passes unchanged (the
    SDK server then decides, as it would without the relay).
    """
    lines = _split_head(head)
    offers = _offers(lines)
    if SDK_SUBPROTOCOL in offers or LEGACY_SUBPROTOCOL not in offers:
        return head, False
    kept = [line for line in lines if line.partition(b':')[0].strip().lower() != _HEADER]
    kept.append(b'Sec-WebSocket-Protocol: ' + SDK_SUBPROTOCOL.encode())
    return b'\r\n'.join(kept) + b'\r\n\r\n', True


def rewrite_response(head: bytes) -> bytes:
    """The SDK server's handshake answer with its protocol named ``foxglove.websocket.v1``."""
    lines = _split_head(head)
    renamed = [b'Sec-WebSocket-Protocol: ' + LEGACY_SUBPROTOCOL.encode()
               if line.partition(b':')[0].strip().lower() == _HEADER else line
               for line in lines]
    return b'\r\n'.join(renamed) + b'\r\n\r\n'


def bind_listener(address: str, port: int) -> socket.socket:
    """A listening TCP socket on ``address:port`` (0: a free port).

    Raises:
        ConfigError: The port is in use or the address cannot be bound; the message names
            the option to change.
    """
    family = socket.AF_INET6 if ':' in address else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((address, port))
        listener.listen(64)
    except OSError as error:
        listener.close()
        if error.errno == 98 or 'in use' in str(error):
            raise ConfigError(f'port {port} is in use on {address}: pass --port with a free '
                              f'port (another `lw-refinenet view` or foxglove_bridge may be '
                              f'running).') from None
        raise ConfigError(f'cannot serve on {address}:{port} ({error}); pass '
                          f'--address/--port that this machine can bind.') from None
    listener.setblocking(False)
    return listener


class SubprotocolRelay:
    """Relays WebSocket clients from a public socket to the SDK server on loopback.

    Args:
        listener: The bound, listening public socket (see :func:`bind_listener`).
        backend_port: The SDK server's port on 127.0.0.1.
    """

    def __init__(self, listener: socket.socket, backend_port: int) -> None:
        self._listener = listener
        self._backend_port = backend_port
        self._loop = asyncio.new_event_loop()
        self._tasks: set[asyncio.Task] = set()
        self._server: asyncio.AbstractServer | None = None
        started = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(started,),
                                        name='foxglove-relay', daemon=True)
        self._thread.start()
        started.wait()

    @property
    def port(self) -> int:
        """The public port clients connect to."""
        return int(self._listener.getsockname()[1])

    def _run(self, started: threading.Event) -> None:
        asyncio.set_event_loop(self._loop)

        async def serve() -> None:
            self._server = await asyncio.start_server(self._on_client, sock=self._listener)

        self._loop.run_until_complete(serve())
        started.set()
        self._loop.run_forever()

    async def _on_client(self, client_reader: asyncio.StreamReader,
                         client_writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        backend_writer = None
        try:
            head = await client_reader.readuntil(b'\r\n\r\n')
            request, rename = rewrite_request(head)
            backend_reader, backend_writer = await asyncio.open_connection(
                '127.0.0.1', self._backend_port)
            backend_writer.write(request)
            await backend_writer.drain()
            answer = await backend_reader.readuntil(b'\r\n\r\n')
            client_writer.write(rewrite_response(answer) if rename else answer)
            await client_writer.drain()
            pipes = [asyncio.ensure_future(_pipe(client_reader, backend_writer)),
                     asyncio.ensure_future(_pipe(backend_reader, client_writer))]
            try:
                # Both directions end normally on end of stream; an error in one ends both.
                done, pending = await asyncio.wait(pipes, return_when=asyncio.FIRST_EXCEPTION)
                for pipe in done:
                    pipe.result()
            finally:
                for pipe in pipes:
                    pipe.cancel()
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError,
                OSError) as error:
            _LOG.debug('foxglove relay: connection ended: %s', error)
        finally:
            for writer in (client_writer, backend_writer):
                if writer is not None:
                    writer.close()
            if task is not None:
                self._tasks.discard(task)

    def stop(self) -> None:
        """Close the public port and every relayed connection."""
        if not self._thread.is_alive():
            return

        async def shutdown() -> None:
            if self._server is not None:
                self._server.close()
            for task in list(self._tasks):
                task.cancel()
            with contextlib.suppress(Exception):
                await asyncio.gather(*self._tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(timeout=5.0)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5.0)
        self._listener.close()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy until end of stream, waiting for the writer's buffer (back-pressure)."""
    try:
        while True:
            data = await reader.read(_CHUNK)
            if not data:
                break
            writer.write(data)
            await writer.drain()
    finally:
        with contextlib.suppress(Exception):
            if writer.can_write_eof():
                writer.write_eof()
