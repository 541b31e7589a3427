"""Wire helpers of the API client: watch-stream framing, JSON decoding, error mapping.

Private to `podns.kube` (the client's sans-I/O half): turning bytes and HTTP facts into
`WatchEvent`s, decoded bodies and `podns.kube.errors` exceptions. The only other module that
touches aiohttp is `client.py`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson

from podns.kube import errors

Obj = dict[str, Any]

#: the longest line (one watch event) accepted on a watch stream, in bytes
MAX_EVENT_BYTES = 64 * 1024 * 1024

#: failures that prove nothing reached the server (safe to send any verb elsewhere); a read
#: timeout is not one of them: the server may have acted on the request
CONNECT_ERRORS = (aiohttp.ClientConnectorError,
                   getattr(aiohttp, "ConnectionTimeoutError", aiohttp.ClientConnectorError))
TRANSPORT_ERRORS = (aiohttp.ClientError, asyncio.TimeoutError, ConnectionError, OSError)


@dataclass(frozen=True, slots=True)
class WatchEvent:
    """One watch event: `type` is ADDED, MODIFIED, DELETED or BOOKMARK; `object` the object
    (for BOOKMARK only `metadata.resourceVersion` is meaningful)."""

    type: str
    object: Obj

    @property
    def resource_version(self) -> str:
        return str((self.object.get("metadata") or {}).get("resourceVersion") or "")


async def watch_lines(resp: aiohttp.ClientResponse, path: str,
                      idle: float | None = None) -> AsyncIterator[bytes]:
    """The newline-separated JSON documents of a watch stream (no line-length limit besides
    MAX_EVENT_BYTES, unlike StreamReader.readline). `idle` (seconds, None: no limit) ends the
    stream when no byte arrives for that long; it is enforced here, not only by aiohttp's
    `sock_read`, which never fires when a server writes a second HTTP response into a chunked
    body (an aiohttp server handler that fails after streaming): the read would wait forever."""
    buf = bytearray()
    try:
        while True:
            async with asyncio.timeout(idle):
                chunk = await resp.content.readany()
            if not chunk:
                break
            buf.extend(chunk)
            while True:
                nl = buf.find(b"\n")
                if nl < 0:
                    break
                line = bytes(buf[:nl])
                del buf[: nl + 1]
                if line.strip():
                    yield line
            if len(buf) > MAX_EVENT_BYTES:
                raise errors.TransportError(f"watch {path}: event larger than {MAX_EVENT_BYTES} bytes")
    except TimeoutError:
        return  # silent for too long: end like a server-side timeout (see WATCH_IDLE_TIMEOUT)
    except TRANSPORT_ERRORS as exc:
        raise errors.TransportError(f"watch {path}: stream broken: {exc!r}") from exc
    if buf.strip():
        yield bytes(buf)


def watch_event(line: bytes, path: str) -> WatchEvent:
    try:
        doc = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise errors.TransportError(f"watch {path}: undecodable event: {line[:200]!r}") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("object"), dict):
        raise errors.TransportError(f"watch {path}: malformed event: {line[:200]!r}")
    etype = str(doc.get("type") or "")
    if etype == "ERROR":
        raise errors.api_error(doc["object"])
    return WatchEvent(etype, doc["object"])


def encode_params(params: dict[str, Any] | None) -> dict[str, str] | None:
    if not params:
        return None
    out: dict[str, str] = {}
    for key, value in params.items():
        if value is None:
            continue
        if isinstance(value, bool):
            out[key] = "true" if value else "false"
        else:
            out[key] = str(value)
    return out


def decode_body(payload: bytes, content_type: str) -> Any:
    if not payload:
        return {}
    if "json" in content_type or payload[:1] in (b"{", b"["):
        try:
            return orjson.loads(payload)
        except orjson.JSONDecodeError:
            pass
    return payload.decode(errors="replace")


def parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    with contextlib.suppress(ValueError):
        return max(0.0, float(value))
    return None


def error_from(code: int, payload: bytes, content_type: str, retry_after: float | None
                ) -> errors.APIError:
    body: Any = None
    with contextlib.suppress(orjson.JSONDecodeError):
        body = orjson.loads(payload) if payload else None
    if body is None:
        body = payload.decode(errors="replace")
    status = errors.status_from_body(code, body)
    return errors.api_error(status, retry_after=retry_after)


def expect_object(body: Any, method: str) -> Obj:
    """The decoded answer of a typed verb, which must be a JSON object: anything else (an HTML
    error page from a proxy, say) raises ServerError rather than surprising the caller."""
    if isinstance(body, dict):
        return body
    raise errors.ServerError(errors.status_from_body(
        500, f"{method}: the server answered with something that is not a JSON object: "
             f"{str(body)[:200]!r}"))


def meta_of(obj: Obj) -> Obj:
    meta = obj.get("metadata") if isinstance(obj, dict) else None
    return meta if isinstance(meta, dict) else {}


def name_of(obj: Obj) -> str:
    name = meta_of(obj).get("name")
    if not name:
        raise ValueError("object has no metadata.name")
    return str(name)
