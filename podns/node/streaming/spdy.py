"""A SPDY/3.1 server session over a byte transport, and exec/attach/port-forward on top of it.

The framing is `podns.objects.spdy` (sans I/O); this module adds the I/O: a read loop that
feeds it, one write lock (header blocks share one zlib stream, so frames leave in the order
they were encoded), streams the client opens (each accepted with a SYN_REPLY, as spdystream's
server does), PING echo, GOAWAY/RST handling. The transport is either the upgraded HTTP
connection itself (`Upgrade: SPDY/3.1`) or WebSocket binary messages (kubectl 1.31+
port-forward's `SPDY/3.1+portforward.k8s.io` tunnel): anything with `read()`/`write()`/`close()`.

Exec/attach (`serve_exec`): the client opens one stream per `streamtype` (error, stdin, stdout,
stderr, resize) and the session starts once all expected streams are there (the kubelet waits
30 s for them); at the end the Status goes on the error stream, every stream is closed (FIN)
and the connection closed. Port-forward (`serve_portforward`): for each connection the client
opens an error and a data stream with the same `requestid` and `port`; the data stream is
spliced to a TCP connection to that port in the pod's network view, a dial failure is written
on the error stream ("error forwarding port ..."), as the kubelet does.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from typing import Any, Protocol

from podns.node.streaming import session
from podns.node.streaming.portforward import Dialer, forward_error, splice
from podns.objects import remotecommand as rc
from podns.objects import spdy

log = logging.getLogger(__name__)

#: seconds the client has to open the streams it announced (the kubelet's streamCreationTimeout)
STREAM_CREATION_TIMEOUT = 30.0
#: bytes per DATA frame we send (spdystream reads any size; small frames keep latency low)
FRAME_DATA = 256 * 1024


class ByteTransport(Protocol):
    """A bidirectional byte stream (the upgraded connection, or a WebSocket tunnel)."""

    async def read(self) -> bytes: ...  # b"" at the end
    async def write(self, data: bytes) -> None: ...
    def close(self) -> None: ...


class Stream:
    """One SPDY stream the client opened."""

    def __init__(self, owner: Session, stream_id: int, headers: spdy.Headers) -> None:
        self.owner = owner
        self.id = stream_id
        self.headers = headers
        #: received payload; None once the client half-closed (FIN) or reset the stream
        self.incoming: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.local_closed = False
        self.remote_closed = False

    def header(self, name: str) -> str:
        return (self.headers.get(name) or [""])[0]

    async def write(self, data: bytes) -> None:
        if self.local_closed or self.owner.closed:
            return
        for i in range(0, len(data), FRAME_DATA):
            await self.owner.send(self.owner.framer.data_frame(self.id, data[i:i + FRAME_DATA]))

    async def close(self) -> None:
        """Half-close our side (an empty DATA frame with FIN)."""
        if self.local_closed or self.owner.closed:
            return
        self.local_closed = True
        await self.owner.send(self.owner.framer.data_frame(self.id, b"", fin=True))


class Session:
    """The server side of one SPDY session (see the module docstring)."""

    def __init__(self, transport: ByteTransport, on_stream: Callable[[Stream], None]) -> None:
        self.transport = transport
        self.framer = spdy.Connection()
        self.on_stream = on_stream
        self.streams: dict[int, Stream] = {}
        self.closed = False
        self._lock = asyncio.Lock()
        self.done = asyncio.Event()

    async def send(self, data: bytes) -> None:
        async with self._lock:
            if self.closed:
                return
            try:
                await self.transport.write(data)
            except (ConnectionError, RuntimeError, OSError):
                self._close()

    async def _send_frame(self, make: Callable[[], bytes]) -> None:
        """Encode and send under the lock, so header blocks hit the wire in compression order."""
        async with self._lock:
            if self.closed:
                return
            try:
                await self.transport.write(make())
            except (ConnectionError, RuntimeError, OSError):
                self._close()

    def _close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for stream in self.streams.values():
            stream.incoming.put_nowait(None)
        with contextlib.suppress(Exception):
            self.transport.close()
        self.done.set()

    async def close(self) -> None:
        """GOAWAY, then close the transport."""
        last = max(self.streams, default=0)
        await self.send(spdy.Connection.goaway_frame(last))
        self._close()

    async def serve(self) -> None:
        """Read frames until the transport ends or the peer misbehaves."""
        try:
            while not self.closed:
                data = await self.transport.read()
                if not data:
                    break
                for frame in self.framer.feed(data):
                    await self._handle(frame)
        except spdy.SpdyError as exc:
            log.info("SPDY session ended: %s", exc)
            await self.send(spdy.Connection.goaway_frame(max(self.streams, default=0), 1))
        except (ConnectionError, OSError):
            pass
        finally:
            self._close()

    async def _handle(self, frame: spdy.Frame) -> None:
        match frame:
            case spdy.SynStream(sid, headers, _assoc, _prio, fin, _uni):
                stream = Stream(self, sid, headers)
                self.streams[sid] = stream
                await self._send_frame(lambda: self.framer.syn_reply_frame(sid, {}))
                if fin:
                    stream.remote_closed = True
                    stream.incoming.put_nowait(None)
                self.on_stream(stream)
            case spdy.DataFrame(sid, data, fin):
                stream_or_none = self.streams.get(sid)
                if stream_or_none is None or stream_or_none.remote_closed:
                    return
                if data:
                    stream_or_none.incoming.put_nowait(data)
                if fin:
                    stream_or_none.remote_closed = True
                    stream_or_none.incoming.put_nowait(None)
            case spdy.RstStream(sid, _status):
                gone = self.streams.get(sid)
                if gone is not None:
                    gone.local_closed = gone.remote_closed = True
                    gone.incoming.put_nowait(None)
            case spdy.Ping(pid):
                if pid % 2 == 1:  # a ping the client started (client ids are odd): echo it
                    await self.send(spdy.Connection.ping_frame(pid))
            case spdy.GoAway():
                self._close()
            case _:
                pass  # SETTINGS, WINDOW_UPDATE, HEADERS: nothing to do (no flow control)


# -- exec / attach ---------------------------------------------------------------------------------


async def serve_exec(transport: ByteTransport, protocol: str, opts: session.Options,
                     runner: session.Runner) -> None:
    """One exec/attach session over SPDY: wait for the streams, run, report, close."""
    arrived: dict[int, Stream] = {}
    expected = 1 + opts.stdin + opts.stdout + opts.stderr + (opts.tty and protocol != "v2.channel.k8s.io"
                                                               and protocol != "channel.k8s.io")
    complete = asyncio.Event()

    def on_stream(stream: Stream) -> None:
        kind = rc.STREAM_TYPES.get(stream.header(rc.STREAM_TYPE))
        if kind is None:
            log.info("exec: unexpected SPDY stream type %r", stream.header(rc.STREAM_TYPE))
            return
        arrived[kind] = stream
        if len(arrived) >= expected:
            complete.set()

    sess = Session(transport, on_stream)
    reader = asyncio.create_task(sess.serve(), name="spdy-read")
    try:
        waits = [asyncio.create_task(complete.wait()), asyncio.create_task(sess.done.wait())]
        _, pending = await asyncio.wait(waits, timeout=STREAM_CREATION_TIMEOUT,
                                           return_when=asyncio.FIRST_COMPLETED)
        for t in pending:
            t.cancel()
        if not complete.is_set():
            log.info("exec: timed out waiting for the client to create streams")
            return

        async def send(channel: int, data: bytes) -> None:
            stream = arrived.get(channel)
            if stream is not None:
                await stream.write(data)

        ch = session.Channels(send=send)
        pumps: list[asyncio.Task[Any]] = [asyncio.create_task(_watch_gone(sess, ch))]
        if rc.STDIN in arrived:
            pumps.append(asyncio.create_task(_pump_stdin(arrived[rc.STDIN], ch)))
        if rc.RESIZE in arrived:
            pumps.append(asyncio.create_task(_pump_resize(arrived[rc.RESIZE], ch)))
        try:
            status = await session.status_of(runner, opts, ch)
        finally:
            for t in pumps:
                t.cancel()
        error = arrived.get(rc.ERROR)
        if error is not None and not sess.closed:
            payload = rc.status_bytes(status, protocol)
            if payload:
                await error.write(payload)
        for stream in arrived.values():
            await stream.close()
        await sess.close()
    finally:
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader
        sess._close()


async def _watch_gone(sess: Session, ch: session.Channels) -> None:
    await sess.done.wait()
    ch.gone.set()


async def _pump_stdin(stream: Stream, ch: session.Channels) -> None:
    while (data := await stream.incoming.get()) is not None:
        ch.stdin.put_nowait(data)
    ch.stdin.put_nowait(None)


async def _pump_resize(stream: Stream, ch: session.Channels) -> None:
    """The resize stream is a sequence of JSON objects (Go's json.Decoder on the stream)."""
    decoder = json.JSONDecoder()
    buf = ""
    while (data := await stream.incoming.get()) is not None:
        buf += data.decode("utf-8", "replace")
        while buf.strip():
            try:
                _obj, end = decoder.raw_decode(buf.lstrip())
            except ValueError:
                break  # incomplete: wait for more
            text = buf.lstrip()
            size = rc.parse_resize(text[:end].encode())
            buf = text[end:]
            if size is not None:
                ch.resize.put_nowait(size)


# -- port-forward ----------------------------------------------------------------------------------


async def serve_portforward(transport: ByteTransport, dial: Dialer, *, pod: str, uid: str) -> None:
    """A port-forward session: one spliced TCP connection per (error, data) stream pair."""
    pairs: dict[str, dict[str, Stream]] = {}
    tasks: set[asyncio.Task[None]] = set()

    def on_stream(stream: Stream) -> None:
        kind = stream.header(rc.STREAM_TYPE)
        request = stream.header("requestid") or f"port-{stream.header('port')}"
        pair = pairs.setdefault(request, {})
        pair[kind] = stream
        if "data" in pair and "error" in pair:
            del pairs[request]
            task = asyncio.create_task(_forward(pair["data"], pair["error"], dial, pod=pod, uid=uid),
                                       name=f"portforward-{request}")
            tasks.add(task)
            task.add_done_callback(tasks.discard)

    sess = Session(transport, on_stream)
    try:
        await sess.serve()
    finally:
        for task in list(tasks):
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        sess._close()


async def _forward(data: Stream, error: Stream, dial: Dialer, *, pod: str, uid: str) -> None:
    port_text = data.header("port")
    try:
        port = int(port_text)
        if not 0 < port < 65536:
            raise ValueError
    except ValueError:
        await error.write(f"invalid port {port_text!r}".encode())
        await error.close()
        await data.close()
        return
    try:
        reader, writer = await dial(port)
    except OSError as exc:
        await error.write(forward_error(port, pod, uid, exc).encode())
        await error.close()
        await data.close()
        return

    async def incoming() -> bytes | None:
        return await data.incoming.get()

    try:
        await splice(reader, writer, incoming, data.write)
    finally:
        await data.close()
        await error.close()
