"""Exec/attach and port-forward over WebSocket channels (kubectl 1.30+, the official clients).

The subprotocol is chosen here from the client's `Sec-WebSocket-Protocol` list in the kubelet's
order of preference (`podns.objects.remotecommand`); each message is one channel's bytes.
Exec: stdin (0) and resize (4) come in, stdout (1) and stderr (2) go out, the Status goes on
the error channel (3) before the close; v5's CLOSE message (255, channel) half-closes stdin.
Port-forward: port i on channels 2i (data) and 2i+1 (error), each starting with the port as a
little-endian uint16; one TCP connection per port for the life of the WebSocket.

An exec/attach session starts only once the client has answered a PING (at most
`CLIENT_READY_WAIT` seconds). client-go's WebSocket executor (kubectl 1.30 to 1.33) starts
reading the connection before it has registered its streams and drops a message for a stream
it does not know yet ("Unknown stream id 1, discarding message"): a short command's output, or
its Status, sent at once could arrive in that gap, and kubectl then exited 0 with no output (a
closed connection without a Status reads as success). Its reader answers the PING, so the
output follows a round trip after the reader runs, not with the handshake's answer. The
protocol has no message that says the streams are there (SPDY has: the session waits for them).
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
from collections.abc import AsyncIterator

from aiohttp import WSMsgType, web

from podns.node.streaming import session
from podns.node.streaming.portforward import Dialer, forward_error, splice
from podns.objects import remotecommand as rc

#: largest message accepted from a client (kubectl cp sends 32 KiB chunks)
MAX_MESSAGE = 16 * 1024 * 1024
#: seconds an exec/attach session waits for the client's answer to its first PING before it
#: starts anyway (a client that reads nothing until it is done still gets its session)
CLIENT_READY_WAIT = 2.0
#: the payload of that PING (its PONG is told apart from answers to nothing we sent)
READY_PING = b"podns-ready"


async def accept(request: web.Request, protocol: str | None, *,
                 autoping: bool = True) -> web.WebSocketResponse:
    """Complete the WebSocket handshake with `protocol` (None: the client offered none of ours,
    which the legacy protocol `channel.k8s.io` stands for). `autoping` False: PINGs and PONGs
    reach `_messages` (which answers the PINGs) instead of being handled by aiohttp."""
    ws = web.WebSocketResponse(protocols=(protocol,) if protocol else (), max_msg_size=MAX_MESSAGE,
                               autoping=autoping)
    await ws.prepare(request)
    return ws


async def _send(ws: web.WebSocketResponse, protocol: str, channel: int, data: bytes) -> None:
    if ws.closed:
        return
    message = rc.encode_ws(protocol, channel, data)
    with contextlib.suppress(ConnectionError, RuntimeError):
        if isinstance(message, str):
            await ws.send_str(message)
        else:
            await ws.send_bytes(message)


async def _messages(ws: web.WebSocketResponse, protocol: str, *,
                    pong: asyncio.Event | None = None) -> AsyncIterator[tuple[int, bytes]]:
    """The client's messages as (channel, payload) until it closes; control frames and messages
    the protocol cannot decode are skipped (a client's garbage never ends the session). Without
    aiohttp's autoping, a PING is answered here and the PONG to `READY_PING` sets `pong`."""
    async for msg in ws:
        if msg.type == WSMsgType.PING:
            with contextlib.suppress(ConnectionError, RuntimeError):
                await ws.pong(msg.data)
            continue
        if msg.type == WSMsgType.PONG and pong is not None and msg.data == READY_PING:
            pong.set()
            continue
        if msg.type not in (WSMsgType.BINARY, WSMsgType.TEXT):
            continue
        try:
            yield rc.decode_ws(protocol, msg.data)
        except ValueError:
            continue


async def serve_exec(ws: web.WebSocketResponse, protocol: str, opts: session.Options,
                     runner: session.Runner) -> None:
    """Run one exec/attach session on a WebSocket accepted with `autoping=False` (the session
    answers PINGs and waits for the PONG to its own: see the module docstring); `runner(opts,
    channels)` returns the Status, which is reported before the close."""

    async def send(channel: int, data: bytes) -> None:
        await _send(ws, protocol, channel, data)

    ch = session.Channels(send=send)
    ready = asyncio.Event()

    async def read() -> None:
        try:
            async for channel, payload in _messages(ws, protocol, pong=ready):
                if channel == rc.STDIN and opts.stdin:
                    if payload:
                        ch.stdin.put_nowait(payload)
                elif channel == rc.RESIZE:
                    size = rc.parse_resize(payload)
                    if size is not None:
                        ch.resize.put_nowait(size)
                elif channel == rc.CLOSE and protocol == rc.WS_V5 and payload[:1] == bytes((rc.STDIN,)):
                    ch.stdin.put_nowait(None)
        finally:
            ch.gone.set()

    reader = asyncio.create_task(read(), name="ws-exec-read")
    try:
        await _client_reading(ws, ready, ch.gone)
        status = await session.status_of(runner, opts, ch)
        payload = rc.status_bytes(status, protocol)
        if payload and not ws.closed:
            await send(rc.ERROR, payload)
    finally:
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader
        with contextlib.suppress(Exception):
            await ws.close()


async def _client_reading(ws: web.WebSocketResponse, pong: asyncio.Event, gone: asyncio.Event) -> None:
    """Until the client answers `READY_PING` (see the module docstring), leaves, or
    `CLIENT_READY_WAIT` seconds pass."""
    with contextlib.suppress(ConnectionError, RuntimeError):
        await ws.ping(READY_PING)
    waits = [asyncio.create_task(pong.wait(), name="ws-exec-pong"),
             asyncio.create_task(gone.wait(), name="ws-exec-gone")]
    try:
        await asyncio.wait(waits, timeout=CLIENT_READY_WAIT, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in waits:
            task.cancel()
        await asyncio.gather(*waits, return_exceptions=True)


def parse_ports(values: list[str]) -> list[int]:
    """The `ports` query parameter(s), comma-separated or repeated; ValueError as the kubelet's."""
    if not values:
        raise ValueError('query parameter "port" is required')
    ports = []
    for value in values:
        if not value:
            raise ValueError('query parameter "port" cannot be empty')
        for part in value.split(","):
            try:
                port = int(part)
            except ValueError:
                raise ValueError(f'unable to parse "{value}" as a port') from None
            if not 0 < port < 65536:
                raise ValueError(f'port "{value}" must be > 0') if port < 1 else ValueError(
                    f'unable to parse "{value}" as a port')
            ports.append(port)
    return ports


async def serve_portforward(ws: web.WebSocketResponse, protocol: str, ports: list[int], dial: Dialer, *,
                            pod: str, uid: str) -> None:
    """Port-forward over WebSocket channels (see the module docstring)."""
    inboxes: list[asyncio.Queue[bytes | None]] = [asyncio.Queue() for _ in ports]

    async def forward(i: int, port: int) -> None:
        data_ch, err_ch = 2 * i, 2 * i + 1
        head = struct.pack("<H", port)
        await _send(ws, protocol, data_ch, head)
        await _send(ws, protocol, err_ch, head)
        try:
            reader, writer = await dial(port)
        except OSError as exc:
            await _send(ws, protocol, err_ch, forward_error(port, pod, uid, exc).encode())
            return

        async def down(data: bytes) -> None:
            await _send(ws, protocol, data_ch, data)

        await splice(reader, writer, inboxes[i].get, down)

    async def read() -> None:
        try:
            async for channel, payload in _messages(ws, protocol):
                if channel % 2 == 0 and channel // 2 < len(ports) and payload:
                    inboxes[channel // 2].put_nowait(payload)
        finally:
            for box in inboxes:
                box.put_nowait(None)

    reader = asyncio.create_task(read(), name="ws-portforward-read")
    forwards = [asyncio.create_task(forward(i, p), name=f"ws-portforward-{p}") for i, p in enumerate(ports)]
    try:
        await asyncio.gather(*forwards, return_exceptions=True)
    finally:
        reader.cancel()
        for task in forwards:
            task.cancel()
        await asyncio.gather(reader, *forwards, return_exceptions=True)
        with contextlib.suppress(Exception):
            await ws.close()
