"""Store faults seen through the API: errors map to the Kubernetes Status a client expects, and
a watch that fails after its headers went out ends inside its own stream.

A real ApiServer over a real SQLiteStore, behind `FaultyStore`, a thin wrapper that injects
one failure where a test asks for it (the failures a real backend would need an etcd over
its size limit or a bug to produce).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web

from podns.api.handlers import watch as api_watch
from podns.api.server import httpapp as api_app
from podns.api.server.apiserver import ApiServer
from podns.store.errors import Expired, Invalid, StoreError, TooLarge, Unavailable
from podns.store.interface import Obj, WatchEvent
from podns.store.sqlite import SQLiteStore

from .conftest import Api
from .standin import TYPES

pytestmark = pytest.mark.timeout(30)

CMS = "/api/v1/namespaces/default/configmaps"


class FailingWatch:
    """A store watch that raises `error` after handing out `after` events."""

    def __init__(self, inner: AsyncIterator[WatchEvent], after: int, error: Exception) -> None:
        self._inner = inner
        self._left = after
        self._error = error

    def __aiter__(self) -> FailingWatch:
        return self

    async def __anext__(self) -> WatchEvent:
        if self._left <= 0:
            raise self._error
        event = await anext(self._inner)
        self._left -= 1
        return event

    async def aclose(self) -> None:
        await self._inner.aclose()  # type: ignore[attr-defined]


class FaultyStore:
    """A Store that forwards to `inner`, except for the faults a test sets."""

    def __init__(self, inner: SQLiteStore) -> None:
        self.inner = inner
        #: raised by create() of keys ending in "/bad"
        self.create_error: StoreError | None = None
        #: (events, exception): the next watch raises the exception after that many events
        self.watch_fault: tuple[int, Exception] | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def create(self, key: str, obj: Obj) -> Obj:
        if self.create_error is not None and key.endswith("/bad"):
            raise self.create_error
        return await self.inner.create(key, obj)

    def watch(self, prefix: str, from_rv: int) -> AsyncIterator[WatchEvent]:
        events = self.inner.watch(prefix, from_rv)
        if self.watch_fault is None:
            return events
        after, error = self.watch_fault
        self.watch_fault = None  # one watch fails; a watch opened again works
        return FailingWatch(events, after, error)


async def serve_faulty(tmp_path: Path, **server_args: Any) -> tuple[ApiServer, FaultyStore]:
    store = FaultyStore(SQLiteStore(tmp_path / "podns.db"))
    server = ApiServer(store, tmp_path, "127.0.0.1:0", tls=False, types=TYPES,  # type: ignore[arg-type]
                       **server_args)
    await server.start()
    return server, store


@pytest.fixture
async def faulty(tmp_path: Path) -> AsyncIterator[tuple[Api, FaultyStore]]:
    server, store = await serve_faulty(tmp_path)
    try:
        async with aiohttp.ClientSession() as session:
            yield Api(server, session), store
    finally:
        await server.stop()
        await store.inner.close()


@pytest.mark.parametrize(("error", "code", "reason"), [
    (Invalid("configmaps/default/bad: object cannot be stored as JSON: Integer exceeds 64-bit "
             "range"), 400, "BadRequest"),
    (TooLarge("object too large for etcd: etcdserver: request is too large"), 413,
     "RequestEntityTooLarge"),
    (Unavailable("etcd request /v3/kv/txn failed: no leader"), 503, "ServiceUnavailable"),
], ids=["invalid", "too-large", "unavailable"])
async def test_store_errors_map_to_kubernetes_status(faulty: tuple[Api, FaultyStore],
                                                     error: StoreError, code: int,
                                                     reason: str) -> None:
    """given a store that refuses an object as Invalid (400), TooLarge (413) or is Unavailable
    (503), a create answers that Status with the store's reason in the message."""
    api, store = faulty
    store.create_error = error
    r = await api.post(CMS, {"metadata": {"name": "bad"}, "data": {"k": "v"}})
    assert r.status == code, r.body
    assert r.body["kind"] == "Status" and r.body["status"] == "Failure"
    assert r.body["code"] == code and r.body["reason"] == reason
    assert str(error) in r.body["message"]
    if code == 413:
        assert r.body["message"].startswith("Request entity too large: ")
    # nothing was stored, and other objects are unaffected
    assert (await api.get(f"{CMS}/bad")).status == 404
    assert (await api.post(CMS, {"metadata": {"name": "good"}})).status == 201


TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io"


async def read_stream(api: Api, path: str, accept: str | None = None) -> list[dict[str, Any]]:
    """Every line of a watch response, read to the end of its chunked body (a second HTTP
    response or a broken body would fail the JSON decode or the read)."""
    headers = {"Authorization": f"Bearer {api.token}"}
    if accept:
        headers["Accept"] = accept
    async with api.session.get(api.server.url + path, headers=headers) as resp:
        assert resp.status == 200
        body = await resp.read()  # raises ClientPayloadError on a broken chunked body
    assert b"HTTP/1.1" not in body, body
    return [orjson.loads(line) for line in body.splitlines() if line.strip()]


@pytest.mark.parametrize("shared", [False, True], ids=["direct", "shared-watch"])
async def test_watch_failing_after_first_event_ends_in_stream(tmp_path: Path,
                                                              shared: bool) -> None:
    """given a store watch that raises an unexpected exception after its first event, the
    API watch sends that event, then ends with an ERROR event carrying a 500 InternalError
    Status and a clean end of the body (never a second response); with the shared watch
    (watchmux) the failed feed ends the API watch cleanly. The server keeps serving."""
    server, store = await serve_faulty(tmp_path, shared_watch=shared)
    try:
        async with aiohttp.ClientSession() as session:
            api = Api(server, session)
            made = await api.post(CMS, {"metadata": {"name": "a"}})
            rv = made.body["metadata"]["resourceVersion"]
            store.watch_fault = (1, RuntimeError("injected watch failure"))
            path = f"{CMS}?watch=1&resourceVersion={rv}&timeoutSeconds=10"

            async def write_later() -> None:
                await asyncio.sleep(0.3)  # the watch is open by then
                for name in ("b", "c"):
                    assert (await api.post(CMS, {"metadata": {"name": name}})).status == 201

            writer = asyncio.create_task(write_later())
            events = await asyncio.wait_for(read_stream(api, path), 8)
            await writer
            assert events[0]["type"] == "ADDED" and events[0]["object"]["metadata"]["name"] == "b"
            if shared:
                assert [e["type"] for e in events] == ["ADDED"], events
            else:
                assert [e["type"] for e in events] == ["ADDED", "ERROR"], events
                err = events[1]["object"]
                assert err["kind"] == "Status" and err["code"] == 500
                assert err["reason"] == "InternalError"
                assert err["message"] == "Internal error occurred: RuntimeError"
            assert (await api.get(f"{CMS}/c")).status == 200
    finally:
        await server.stop()
        await store.inner.close()


async def test_error_after_stream_started_is_not_a_second_response() -> None:
    """given a handler that fails after its watch stream's headers went out (registered as
    `watch.STREAM`), the error middleware ends that stream with an ERROR event instead of
    writing a second response into its body."""

    async def handler(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        request[api_watch.STREAM] = resp
        await resp.write(b'{"type":"ADDED","object":{"metadata":{"name":"a"}}}\n')
        raise KeyError("bug")

    app = web.Application(middlewares=[api_app.error_middleware])
    app.router.add_get("/w", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{port}/w") as resp:
                assert resp.status == 200
                body = await resp.read()
        lines = [orjson.loads(line) for line in body.splitlines()]
        assert [e["type"] for e in lines] == ["ADDED", "ERROR"], body
        assert lines[1]["object"]["code"] == 500
        assert lines[1]["object"]["reason"] == "InternalError"
    finally:
        await runner.cleanup()


@pytest.mark.parametrize("shared", [False, True], ids=["direct", "shared-watch"])
async def test_watch_over_unavailable_store(tmp_path: Path, shared: bool) -> None:
    """given a store watch that fails as Unavailable (etcd without quorum) after its first
    event: a direct API watch ends with an ERROR event carrying a 503 Status; a shared one
    (watchmux, as over etcd) stays open and, once the store answers again, goes on from where
    it was: every event once, in order, no ERROR."""
    server, store = await serve_faulty(tmp_path, shared_watch=shared)
    try:
        async with aiohttp.ClientSession() as session:
            api = Api(server, session)
            made = await api.post(CMS, {"metadata": {"name": "a"}})
            rv = made.body["metadata"]["resourceVersion"]
            store.watch_fault = (1, Unavailable("etcd watch configmaps/: no leader"))
            # the stream ends by its timeout: long enough for the three writes and the shared
            # watch's reopening (RETRY_SECONDS) on a loaded machine (3 s lost "c" and "d" once)
            path = f"{CMS}?watch=1&resourceVersion={rv}&timeoutSeconds=5"

            async def write_later() -> None:
                await asyncio.sleep(0.3)
                for name in ("b", "c", "d"):
                    assert (await api.post(CMS, {"metadata": {"name": name}})).status == 201
                    await asyncio.sleep(0.2)

            writer = asyncio.create_task(write_later())
            events = await asyncio.wait_for(read_stream(api, path), 15)
            await writer
            if shared:
                assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [
                    ("ADDED", "b"), ("ADDED", "c"), ("ADDED", "d")], events
            else:
                assert [e["type"] for e in events] == ["ADDED", "ERROR"], events
                assert events[1]["object"]["code"] == 503
                assert events[1]["object"]["reason"] == "ServiceUnavailable"
    finally:
        await server.stop()
        await store.inner.close()


@pytest.mark.parametrize(("error", "code"), [
    (Unavailable("etcd watch configmaps/: no leader"), 503),
    (Expired("too old resource version: 5 (9)"), 410),
    (RuntimeError("injected"), 500),
], ids=["unavailable", "expired", "bug"])
async def test_table_watch_error_is_a_plain_status(faulty: tuple[Api, FaultyStore],
                                                   error: Exception, code: int) -> None:
    """given a Table watch (`kubectl get -w`) whose store watch fails after one event, the
    ERROR event carries the Status itself, not a Table row made of it (kubectl prints it)."""
    api, store = faulty
    made = await api.post(CMS, {"metadata": {"name": "a"}})
    rv = made.body["metadata"]["resourceVersion"]
    store.watch_fault = (1, error)

    async def write_later() -> None:
        await asyncio.sleep(0.3)
        assert (await api.post(CMS, {"metadata": {"name": "b"}})).status == 201

    writer = asyncio.create_task(write_later())
    events = await asyncio.wait_for(
        read_stream(api, f"{CMS}?watch=1&resourceVersion={rv}&timeoutSeconds=5", TABLE), 8)
    await writer
    assert [e["type"] for e in events] == ["ADDED", "ERROR"], events
    assert events[0]["object"]["kind"] == "Table"
    assert events[1]["object"]["kind"] == "Status" and events[1]["object"]["code"] == code
