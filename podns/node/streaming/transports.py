"""Byte transports for SPDY sessions: the upgraded HTTP connection itself, or a WebSocket tunnel.

`upgrade_raw` answers `101 Switching Protocols` and takes the connection over from aiohttp:
what the client sends next arrives through a parser object aiohttp's protocol feeds
(`set_parser`, the hook its own WebSocket support uses), and bytes go out on the transport with
aiohttp's flow control (drain). `WebSocketBytes` makes the binary messages of a WebSocket one
byte stream (kubectl 1.31+ port-forward tunnels SPDY that way).
"""

from __future__ import annotations

import asyncio

from aiohttp import WSMsgType, web


class _Feed:
    """What aiohttp's protocol calls with the upgraded connection's bytes."""

    def __init__(self, queue: asyncio.Queue[bytes]) -> None:
        self.queue = queue

    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        self.queue.put_nowait(bytes(data))
        return False, b""

    def feed_eof(self) -> None:
        self.queue.put_nowait(b"")


class RawConnection:
    """The client's connection after a 101 answer (see the module docstring)."""

    def __init__(self, request: web.Request, response: web.StreamResponse) -> None:
        self.request = request
        #: the 101 answer, already sent (the handler returns it)
        self.response = response
        self.queue: asyncio.Queue[bytes] = asyncio.Queue()
        self.closed = False

    async def read(self) -> bytes:
        if self.closed:
            return b""
        return await self.queue.get()

    async def write(self, data: bytes) -> None:
        transport = self.request.transport
        if self.closed or transport is None or transport.is_closing():
            raise ConnectionResetError("connection closed")
        transport.write(data)
        await self.request.protocol._drain_helper()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.queue.put_nowait(b"")
        transport = self.request.transport
        if transport is not None:
            transport.close()


async def upgrade_raw(request: web.Request, headers: dict[str, str]) -> RawConnection:
    """Answer 101 with `headers` and return the raw connection."""
    resp = web.StreamResponse(status=101, headers=headers)
    await resp.prepare(request)
    conn = RawConnection(request, resp)
    # aiohttp annotates set_parser for its WebSocketReader, but the server protocol only
    # calls feed_data(data) -> (eof, tail) and feed_eof() on the parser: _Feed has both
    request.protocol.set_parser(_Feed(conn.queue))  # type: ignore[arg-type]  # see above
    return conn


class WebSocketBytes:
    """A WebSocket's binary messages as one byte stream."""

    def __init__(self, ws: web.WebSocketResponse) -> None:
        self.ws = ws

    async def read(self) -> bytes:
        while True:
            msg = await self.ws.receive()
            if msg.type == WSMsgType.BINARY:
                if msg.data:
                    return bytes(msg.data)
                continue
            if msg.type == WSMsgType.TEXT:
                continue
            return b""  # CLOSE, CLOSED, ERROR

    async def write(self, data: bytes) -> None:
        if self.ws.closed:
            raise ConnectionResetError("websocket closed")
        await self.ws.send_bytes(data)

    def close(self) -> None:
        if not self.ws.closed:
            task = asyncio.ensure_future(self.ws.close())
            task.add_done_callback(lambda t: t.exception() if not t.cancelled() else None)
