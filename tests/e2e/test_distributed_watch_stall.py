"""A watch whose server fails mid-stream must not stall a client forever.

Seen in distributed mode before the API ended failed etcd watches with an ERROR event: an
aiohttp handler that raises after it started streaming, behind a middleware that answers
errors, writes a second HTTP response into the chunked body. aiohttp's client then waits for
the next chunk forever (its `sock_read` timeout never fires), so every informer watching
through that server hung even after the server was restarted. The client now enforces the
idle limit itself: the watch ends after WATCH_IDLE_TIMEOUT without a byte, and an informer
resumes from its last resourceVersion.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import orjson
import pytest
from aiohttp import web

import podns.kube.client as kube_client
from podns.kube.client import Client
from podns.kube.config import Config
from podns.kube.resources import CONFIGMAPS
from tests._support import serve_app

pytestmark = [pytest.mark.timeout(30)]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def cm(name: str, rv: int) -> dict[str, object]:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": "default", "resourceVersion": str(rv)}}


@web.middleware
async def answer_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Like any API error middleware: an exception becomes a 500 answer."""
    try:
        return await handler(request)
    except RuntimeError:
        return web.json_response({"kind": "Status", "code": 500}, status=500)


async def failing_watch(request: web.Request) -> web.StreamResponse:
    """One event, then the backend fails while the stream is open."""
    if request.query.get("watch") != "true":
        return web.json_response({"kind": "ConfigMapList", "metadata": {"resourceVersion": "1"},
                                  "items": []})
    resp = web.StreamResponse(headers={"Content-Type": "application/json"})
    resp.enable_chunked_encoding()
    await resp.prepare(request)
    await resp.write(orjson.dumps({"type": "ADDED", "object": cm("a", 2)}) + b"\n")
    await asyncio.sleep(0.2)
    raise RuntimeError("backend lost mid-watch")


@pytest.fixture
async def server() -> AsyncIterator[str]:
    app = web.Application(middlewares=[answer_errors])
    app.router.add_get("/api/v1/namespaces/default/configmaps", failing_watch)
    runner, url = await serve_app(app)
    try:
        yield url
    finally:
        await runner.cleanup()


async def test_watch_broken_mid_stream_ends_after_idle_limit(
        server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """given a server that fails after streaming one event, when a client watches, then it
    gets the event and the watch ends within the idle limit instead of hanging."""
    monkeypatch.setattr(kube_client, "WATCH_IDLE_TIMEOUT", 1.0)
    async with Client(Config(servers=[server])) as client:
        t = time.monotonic()
        names = []
        async for event in client.watch(CONFIGMAPS, "default", resource_version="1"):
            names.append(event.object["metadata"]["name"])
        assert names == ["a"]
        assert time.monotonic() - t < 10
