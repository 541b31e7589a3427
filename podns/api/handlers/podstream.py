"""`pods/exec`, `pods/attach`, `pods/portforward`: streams into pods, proxied to their node agent.

As kube-apiserver's UpgradeAwareHandler does towards the kubelet, the API server checks the
request against the Pod (container name, scheduled, not completed), then opens a TLS connection
to the pod's node agent (as its kubelet-client identity, verifying the node's certificate), sends
the client's upgrade request there (`/exec/{ns}/{pod}/{container}`, `/attach/...`,
`/portForward/{ns}/{pod}`, with the kubelet's query parameters) and, once the agent answers
`101 Switching Protocols`, relays that answer and splices the two connections byte for byte. So
whatever the agent and the client negotiated (WebSocket channels v4/v5, SPDY/3.1, SPDY tunnelled
in a WebSocket) passes through unchanged, and a stream ends for both sides when either closes.

Errors before the upgrade are `ApiError`s (the caller renders the Status, which kubectl prints
after "unable to upgrade connection:"): Kubernetes' texts for a container name that does not
exist, an unscheduled pod, a completed pod; an agent's own error Status is passed on with its
code; an unreachable agent is 500 naming the address dialled.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from typing import Any
from urllib.parse import quote, urlencode

from aiohttp import web

from podns.api.handlers.podlog import error_from, pick_container, pod_node_address
from podns.api.statuserror import ApiError, bad_request

Obj = dict[str, Any]

#: the connect subresources and the node agent's path for each (the kubelet's)
NODE_PATHS = {"exec": "exec", "attach": "attach", "portforward": "portForward"}
#: request headers the upgrade needs on the agent's side
UPGRADE_HEADERS = ("Upgrade", "Sec-WebSocket-Key", "Sec-WebSocket-Version", "Sec-WebSocket-Protocol",
                   "Sec-WebSocket-Extensions", "X-Stream-Protocol-Version")
#: response headers of the agent's 101 that the API server's own answer must not repeat
_OWN_HEADERS = frozenset({"date", "server", "content-length", "transfer-encoding"})
CONNECT_TIMEOUT = 5.0
MAX_HEAD = 64 * 1024
MAX_ERROR_BODY = 1024 * 1024
CHUNK = 256 * 1024


def _flag(query: Any, name: str) -> bool:
    return str(query.get(name, "")).lower() in ("1", "true")


def node_request(sub: str, pod: Obj, query: Any) -> str:
    """The agent's path and query for `sub` of `pod` (validated as kube-apiserver does)."""
    meta = pod.get("metadata") or {}
    ns, name = meta.get("namespace", "default"), meta.get("name", "")
    phase = (pod.get("status") or {}).get("phase", "")
    if sub == "portforward":
        params: list[tuple[str, str]] = [("ports", p) for p in query.getall("ports", [])]
        path = f"/portForward/{quote(ns)}/{quote(name)}"
        return path + ("?" + urlencode(params) if params else "")
    if phase in ("Succeeded", "Failed"):
        what = "exec into" if sub == "exec" else "attach"
        raise bad_request(f"cannot {what} a container in a completed pod; current phase is {phase}")
    container = pick_container(pod, query.get("container"))
    params = []
    if sub == "exec":
        commands = query.getall("command", [])
        if not commands:
            raise bad_request("you must specify at least one command for the container")
        params += [("command", c) for c in commands]
    for key in ("stdin", "stdout", "stderr", "tty"):
        if _flag(query, key):
            params.append((key, "1"))
    path = f"/{NODE_PATHS[sub]}/{quote(ns)}/{quote(name)}/{quote(container)}"
    return path + "?" + urlencode(params)


async def _read_head(reader: asyncio.StreamReader) -> tuple[int, list[tuple[str, str]]]:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
        raise ApiError(500, "InternalError", f"the node agent sent no valid answer: {exc}") from None
    lines = head.decode("latin-1").split("\r\n")
    try:
        code = int(lines[0].split(" ", 2)[1])
    except (IndexError, ValueError):
        raise ApiError(500, "InternalError", f"the node agent answered {lines[0][:200]!r}") from None
    headers = []
    for line in lines[1:]:
        if ":" in line:
            key, _, value = line.partition(":")
            headers.append((key.strip(), value.strip()))
    return code, headers


async def _error_body(reader: asyncio.StreamReader, headers: list[tuple[str, str]]) -> bytes:
    length = next((int(v) for k, v in headers if k.lower() == "content-length" and v.isdigit()), None)
    with contextlib.suppress(asyncio.IncompleteReadError, OSError, TimeoutError):
        if length is not None:
            return await asyncio.wait_for(reader.readexactly(min(length, MAX_ERROR_BODY)), CONNECT_TIMEOUT)
        return await asyncio.wait_for(reader.read(MAX_ERROR_BODY), CONNECT_TIMEOUT)
    return b""


#: bytes queued towards the agent before the client's connection stops being read
HIGH_WATER = 1024 * 1024


class _Feed:
    """Receives the client's bytes once the connection is upgraded (aiohttp's payload-parser
    hook, the one its WebSocket support uses) and writes them to the agent, pausing the client
    while the agent is behind."""

    def __init__(self, writer: asyncio.StreamWriter, client: asyncio.Transport) -> None:
        self.writer = writer
        self.client = client
        self.ended = asyncio.Event()
        self._paused = False
        self._resumer: asyncio.Future[None] | None = None

    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        if self.writer.is_closing():
            return False, b""
        self.writer.write(bytes(data))
        if not self._paused and self.writer.transport.get_write_buffer_size() > HIGH_WATER:
            self._paused = True
            self.client.pause_reading()
            self._resumer = asyncio.create_task(self._resume(), name="podstream-resume")
        return False, b""

    async def _resume(self) -> None:
        with contextlib.suppress(Exception):
            await self.writer.drain()
        self._paused = False
        with contextlib.suppress(Exception):
            self.client.resume_reading()

    def feed_eof(self) -> None:
        self.ended.set()


async def proxy_stream(request: web.Request, sub: str, pod: Obj, node: Obj | None,
                       tls: ssl.SSLContext) -> web.StreamResponse:
    """Serve one `pods/<sub>` request (see the module docstring); `node` is the Node named by
    `pod.spec.nodeName` (None: it does not exist)."""
    path = node_request(sub, pod, request.query)
    host, port, hostport = pod_node_address(pod, node)
    if "upgrade" not in request.headers.get("Connection", "").lower():
        raise bad_request("Upgrade request required")
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(host, port, ssl=tls, server_hostname=host, limit=MAX_HEAD),
            CONNECT_TIMEOUT)
    except (TimeoutError, OSError, ssl.SSLError) as exc:
        raise ApiError(500, "InternalError", f"error dialing backend: dial tcp {hostport}: {exc}") from None
    try:
        lines = [f"{request.method} {path} HTTP/1.1", f"Host: {hostport}", "Connection: Upgrade",
                 "Content-Length: 0"]
        for key in UPGRADE_HEADERS:
            for value in request.headers.getall(key, []):
                lines.append(f"{key}: {value}")
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        code, headers = await _read_head(reader)
        if code != 101:
            raise error_from(code, await _error_body(reader, headers))
        return await _splice(request, reader, writer, headers)
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()


async def _splice(request: web.Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                  headers: list[tuple[str, str]]) -> web.StreamResponse:
    resp = web.StreamResponse(status=101)
    for key, value in headers:
        if key.lower() not in _OWN_HEADERS:
            resp.headers.add(key, value)
    await resp.prepare(request)
    transport = request.transport
    assert transport is not None
    feed = _Feed(writer, transport)
    # aiohttp annotates set_parser for its WebSocketReader, but the server protocol only
    # calls feed_data(data) -> (eof, tail) and feed_eof() on the parser: _Feed has both
    request.protocol.set_parser(feed)  # type: ignore[arg-type]  # see above

    async def down() -> None:
        while data := await reader.read(CHUNK):
            if transport.is_closing():
                return
            transport.write(data)
            await request.protocol._drain_helper()

    downstream = asyncio.create_task(down(), name="podstream-down")
    upstream_done = asyncio.create_task(feed.ended.wait(), name="podstream-up")
    try:
        await asyncio.wait([downstream, upstream_done], return_when=asyncio.FIRST_COMPLETED)
    finally:
        downstream.cancel()
        upstream_done.cancel()
        await asyncio.gather(downstream, upstream_done, return_exceptions=True)
        transport.close()
    return resp
