"""Watch streams: chunked JSON lines of `{"type": ..., "object": ...}` over one HTTP response.

A watch starts from `resourceVersion` (every change after it) or, when that is absent or "0",
with a synthetic ADDED per current object followed by the changes after that list. A version
older than the store's history is answered in-stream with an ERROR event carrying a 410
Expired Status (as kube-apiserver does: the HTTP status is already 200). Streams end when
`timeoutSeconds` pass, when the client leaves (aiohttp cancels the handler), when the store
drops a watcher that fell too far behind (the client then relists, as after a 410), or when
the store fails (an ERROR event with a 503 Status; the client retries). Any other exception
once the headers are out (a bug) ends the stream with an ERROR event carrying a 500
InternalError Status, as kube-apiserver does, and a clean end of the chunked body: never a
second HTTP response inside the first (the request carries `STREAM` so the app's error
middleware can do the same for anything that escapes).

Fan-out is cheap: the store already shares one event object between watchers, and
`EventEncoder` encodes each (event, format) once and hands every JSON watcher the same bytes.
Table watches (`kubectl get -w`) are rendered per watcher, since only their first event
carries column definitions.

Filtered watches (label/field selectors) follow Kubernetes: an object that stops matching
is sent as DELETED, one that starts matching as ADDED. To know what the client has seen, such
a watch keeps the keys of the matching objects, seeded from the list at its start version
(`seed_keys`); if that list is no longer available the watch answers 410 like any too-old one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from podns.api import statuserror
from podns.api.encoding import codec
from podns.api.resources.base import ResourceType
from podns.objects.apistatus import Status
from podns.store import errors as store_errors
from podns.store.interface import WatchEvent, WatchStream

log = logging.getLogger(__name__)

Obj = dict[str, Any]
Render = Callable[[Obj, bool], Obj]  # (object, first event?) -> Table with one row

#: encoded events kept for sharing between watchers (keyed by store key and revision)
ENCODED_CACHE_SIZE = 4096
#: seconds of silence after which a watch that allows bookmarks gets one
BOOKMARK_INTERVAL = 30.0
#: a watch without timeoutSeconds still ends after this long (kube-apiserver: 30-60 min)
MAX_WATCH_SECONDS = 1800.0


class EventEncoder:
    """Encodes each watch event once per format and shares the bytes."""

    def __init__(self, size: int = ENCODED_CACHE_SIZE) -> None:
        self._cache: OrderedDict[tuple[str, int, str], bytes] = OrderedDict()
        self._size = size

    def json(self, event: WatchEvent) -> bytes:
        """`{"type":...,"object":...}\\n` for a store event."""
        cache_key = (event.key, event.rv, event.type)
        data = self._cache.get(cache_key)
        if data is None:
            data = orjson.dumps({"type": event.type, "object": event.object}) + b"\n"
            self._cache[cache_key] = data
            if len(self._cache) > self._size:
                self._cache.popitem(last=False)
        return data


def _line(event_type: str, obj: Obj | Status) -> bytes:
    return orjson.dumps({"type": event_type, "object": obj}) + b"\n"


OpenWatch = Callable[[str, int], Awaitable[WatchStream]]

#: request key of a watch whose response headers were sent (its StreamResponse): an error
#: after that must end this stream, not start a second response (see `end_with_error`)
STREAM = web.RequestKey("podns.watch.stream", web.StreamResponse)


async def end_with_error(resp: web.StreamResponse, error: Status) -> None:
    """End a started watch stream with an ERROR event carrying `error` (a Status) and the end
    of the chunked body; a client already gone is ignored."""
    with contextlib.suppress(ConnectionResetError, asyncio.CancelledError, RuntimeError):
        await resp.write(_line("ERROR", error))
        await resp.write_eof()


@dataclass(frozen=True, slots=True)
class WatchRequest:
    """What one API watch asks for, decoded from its URL and query."""

    rt: ResourceType
    #: store key prefix of the watched collection
    prefix: str
    #: the live part starts after this version
    from_rv: int
    #: current objects, sent as ADDED first (resourceVersion absent or "0")
    initial: list[Obj] | None = None
    #: the label/field selectors, when any
    match: Callable[[Obj], bool] | None = None
    #: keys of the objects matching at `from_rv` (selector watches: what the client has seen)
    seed_keys: set[str] | None = None
    #: timeoutSeconds (capped at MAX_WATCH_SECONDS)
    timeout: float | None = None
    #: allowWatchBookmarks
    bookmarks: bool = False
    #: Table watches: one-row Table per event
    render: Render | None = None
    #: a version other than the stored one: how it shows a stored object (events are then
    #: encoded per watcher, not shared)
    convert: Callable[[Obj], Obj] | None = None


async def serve_watch(request: web.Request, watch: WatchRequest, *, open_watch: OpenWatch,
                      encoder: EventEncoder) -> web.StreamResponse:
    """Stream a watch: the 200 and headers, the events until it ends, then the end of the body
    (after an ERROR event when the store or a bug ended it)."""
    resp = web.StreamResponse(status=200)
    resp.content_type = "application/json"
    if watch.render is not None:
        resp.headers["Content-Type"] = codec.TABLE_CT
    resp.enable_chunked_encoding()
    await resp.prepare(request)
    request[STREAM] = resp
    send = _Sender(resp, watch.render, encoder, watch.convert)
    # 0 or absent: the server's own bound; negative: a timer that has already fired, as
    # kube-apiserver's (the watch ends at once)
    deadline = max(0.0, min(watch.timeout, MAX_WATCH_SECONDS)) if watch.timeout else MAX_WATCH_SECONDS
    failure: Status | None = None
    with contextlib.suppress(TimeoutError, ConnectionResetError, asyncio.CancelledError):
        try:
            async with asyncio.timeout(deadline):
                await _stream_events(watch, open_watch, send)
        except (TimeoutError, ConnectionResetError):
            raise
        except store_errors.StoreError as exc:  # opening or reading the store's watch
            failure = _store_failure(exc, watch.from_rv)
        except Exception as exc:
            # a bug, not a store failure: the 200 and earlier events are out, so the error
            # goes into the stream (kube-apiserver's watch sends an InternalError Status)
            log.exception("watch %s failed", request.path_qs)
            failure = statuserror.internal(type(exc).__name__).status()
    if failure is not None:
        await end_with_error(resp, failure)
        return resp
    with contextlib.suppress(ConnectionResetError, asyncio.CancelledError, RuntimeError):
        await resp.write_eof()
    return resp


class _Sender:
    """Writes the events of one watch response: one-row Tables when rendering, else the bytes
    the encoder shares between watchers."""

    def __init__(self, resp: web.StreamResponse, render: Render | None, encoder: EventEncoder,
                 convert: Callable[[Obj], Obj] | None = None) -> None:
        self.resp = resp
        self.render = render
        self.encoder = encoder
        self.convert = convert
        self.first = True

    async def __call__(self, event_type: str, obj: Obj, event: WatchEvent | None = None) -> None:
        if self.render is not None and event_type != "ERROR":
            # an ERROR's Status goes out as it is, also in a Table watch (as kube-apiserver's
            # transformObject passes a Status through), so kubectl reports the error
            data = _line(event_type, self.render(obj, self.first))
        elif self.convert is not None and event_type not in ("ERROR", "BOOKMARK"):
            data = _line(event_type, self.convert(obj))
        elif event is not None:
            data = self.encoder.json(event)
        else:
            data = _line(event_type, obj)
        self.first = False
        await self.resp.write(data)


async def _stream_events(watch: WatchRequest, open_watch: OpenWatch, send: _Sender) -> None:
    """The initial ADDED events, then the store's events (bookmarks in the silences) until the
    store's watch ends; a store error propagates to `serve_watch`."""
    for obj in watch.initial or ():
        await send("ADDED", obj)
    events = await open_watch(watch.prefix, watch.from_rv)
    seen = set(watch.seed_keys or ())
    last_rv = watch.from_rv
    try:
        while True:
            try:
                event = await asyncio.wait_for(anext(events), BOOKMARK_INTERVAL) \
                    if watch.bookmarks else await anext(events)
            except TimeoutError:
                await send("BOOKMARK", _bookmark(watch.rt, last_rv))
                continue
            except StopAsyncIteration:
                return
            last_rv = event.rv
            if watch.match is None:
                await send(event.type, event.object, event)
                continue
            event_type = _filtered_type(event, watch.match(event.object), seen)
            if event_type is not None:
                await send(event_type, event.object, event if event_type == event.type else None)
    finally:
        with contextlib.suppress(Exception):
            await events.aclose()


def _store_failure(exc: store_errors.StoreError, from_rv: int) -> Status:
    """The Status ending a watch the store failed: 410 Expired for a version older than its
    history (the client relists), else 503 (the store lost its backend, e.g. etcd without
    quorum: the client retries, as after kube-apiserver ends a failed etcd watch)."""
    if isinstance(exc, store_errors.Expired):
        return statuserror.expired(str(exc) or f"too old resource version: {from_rv}").status()
    return statuserror.unavailable(str(exc)).status()


def _bookmark(rt: ResourceType, rv: int) -> Obj:
    return {"kind": rt.kind, "apiVersion": rt.api_version,
            "metadata": {"resourceVersion": str(rv)}}


def _filtered_type(event: WatchEvent, matches: bool, seen: set[str]) -> str | None:
    """The event type a selector watch sends for `event` (None: nothing), updating `seen`."""
    was = event.key in seen
    if event.type == "DELETED":
        seen.discard(event.key)
        return "DELETED" if was or matches else None
    if matches:
        seen.add(event.key)
        return "MODIFIED" if was and event.type == "MODIFIED" else "ADDED"
    if was:
        seen.discard(event.key)
        return "DELETED"
    return None
