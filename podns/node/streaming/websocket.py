"""Exec/attach and port-forward over WebSocket channels (kubectl 1.30+, the official clients).

The subprotocol is chosen here from the client's `Sec-WebSocket-Protocol` list in the kubelet's
order of preference (`podns.objects.remotecommand`); each message is one channel's bytes.
Exec: stdin (0) and resize (4) come in, stdout (1) and stderr (2) go out, the Status goes on
the error channel (3) before the close; v5's CLOSE message (255, channel) half-closes stdin.
Port-forward: port i on channels 2i (data) and 2i+1 (error), each starting with the port as a
little-endian uint16; one TCP connection per port for the life of the WebSocket.
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


async def accept(request: web.Request, protocol: str | None) -> web.WebSocketResponse:
    """Complete the WebSocket handshake with `protocol` (None: the client offered none of ours,
    which the legacy protocol `channel.k8s.io` stands for)."""
    ws = web.WebSocketResponse(protocols=(protocol,) if protocol else (), max_msg_size=MAX_MESSAGE,
                               autoping=True)
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


async def _messages(ws: web.WebSocketResponse, protocol: str) -> AsyncIterator[tuple[int, bytes]]:
    """The client's messages as (channel, payload) until it closes; control frames and messages
    the protocol cannot decode are skipped (a client's garbage never ends the session)."""
    async for msg in ws:
        if msg.type not in (WSMsgType.BINARY, WSMsgType.TEXT):
            continue
        try:
            yield rc.decode_ws(protocol, msg.data)
        except ValueError:
            continue


async def serve_exec(ws: web.WebSocketResponse, protocol: str, opts: session.Options,
                     runner: session.Runner) -> None:
    """Run one exec/attach session on an accepted WebSocket (`runner(opts, channels)` returns
    the Status), then report it and close."""

    async def send(channel: int, data: bytes) -> None:
        await _send(ws, protocol, channel, data)

    ch = session.Channels(send=send)

    async def read() -> None:
        try:
            async for channel, payload in _messages(ws, protocol):
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
