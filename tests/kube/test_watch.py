"""Client.watch: event decoding, bookmarks, ERROR events, broken streams, failover."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from podns.kube import errors
from podns.kube.client import Client, WatchEvent
from podns.kube.config import in_memory
from podns.kube.resources import PODS

from .apiserver import pod
from .conftest import Started, dead_url

pytestmark = pytest.mark.timeout(20)

PODS_DEFAULT = "api/v1/namespaces/default/pods"


async def _collect(client: Client, rv: str, n: int, **kw: object) -> list[WatchEvent]:
    out: list[WatchEvent] = []
    async for ev in client.watch(PODS, "default", resource_version=rv, **kw):  # type: ignore[arg-type]
        out.append(ev)
        if len(out) == n:
            break
    return out


async def test_watch_from_version_delivers_later_events(client: Client, fake: Started) -> None:
    """Given events after rv X, a watch from X sees exactly those, in order, with types."""
    server, _ = fake
    server.put(PODS_DEFAULT, pod("a"))
    rv = str(server.rv)
    server.put(PODS_DEFAULT, pod("b"))
    server.put(PODS_DEFAULT, pod("a", x="1"))
    server.remove(PODS_DEFAULT, "b")
    events = await _collect(client, rv, 3)
    assert [(e.type, e.object["metadata"]["name"]) for e in events] == [
        ("ADDED", "b"), ("MODIFIED", "a"), ("DELETED", "b")]
    assert events[-1].resource_version == str(server.rv)
    params = server.requests[-1][2]
    assert params["watch"] == "true" and params["allowWatchBookmarks"] == "true"


async def test_watch_streams_live_events_and_bookmarks(client: Client, fake: Started) -> None:
    """A live watch gets events written after it opened, and BOOKMARKs when idle."""
    server, _ = fake
    server.bookmark_interval = 0.05
    opened = asyncio.Event()

    async def later() -> None:
        await opened.wait()
        server.put(PODS_DEFAULT, pod("live"))

    task = asyncio.create_task(later())
    seen: list[str] = []
    async for ev in client.watch(PODS, "default", resource_version=str(server.rv),
                                 on_open=opened.set):
        seen.append(ev.type)
        if "ADDED" in seen and seen[-1] == "BOOKMARK":
            break
    await task
    assert seen.index("ADDED") < len(seen) - 1 and seen[-1] == "BOOKMARK"


async def test_watch_410_response_raises_gone(client: Client, fake: Started) -> None:
    """A watch from a compacted version raises Gone (reason Expired)."""
    server, _ = fake
    server.put(PODS_DEFAULT, pod("a"))
    server.compact()
    with pytest.raises(errors.Gone) as err:
        await _collect(client, "1", 1)
    assert err.value.code == 410


async def test_watch_error_event_raises_matching_error(client: Client, fake: Started) -> None:
    """An ERROR event carrying a 410 Status mid-stream raises Gone."""
    server, _ = fake

    async def inject() -> None:
        while not server.watchers:  # noqa: ASYNC110 - waiting for the watch to open
            await asyncio.sleep(0.01)
        server.error_event(410, "Expired")

    task = asyncio.create_task(inject())
    with pytest.raises(errors.Gone):
        await _collect(client, str(server.rv), 5)
    await task


async def test_server_timeout_ends_stream_cleanly(client: Client, fake: Started) -> None:
    """timeoutSeconds elapsing on the server ends the iterator without an error."""
    events = await asyncio.wait_for(_collect(client, "1", 10, timeout_seconds=1,
                                             allow_bookmarks=False), 5)
    assert events == []


async def test_broken_stream_raises_transport_error(client: Client, fake: Started) -> None:
    """A stream cut without its final chunk raises TransportError."""
    server, _ = fake
    server.put(PODS_DEFAULT, pod("a"))
    server.put(PODS_DEFAULT, pod("b"))
    server.drop_watch_after = 1
    got: list[WatchEvent] = []
    with pytest.raises(errors.TransportError):
        async for ev in client.watch(PODS, "default", resource_version="1"):
            got.append(ev)
    assert [e.object["metadata"]["name"] for e in got] == ["a"]


async def test_watch_fails_over(start_server: Callable[[], Awaitable[Started]]) -> None:
    """Opening a watch skips a dead server."""
    server, url = await start_server()
    server.put(PODS_DEFAULT, pod("a"))
    async with Client(in_memory([dead_url(), url])) as client:
        events = await _collect(client, "1", 1)
    assert events[0].object["metadata"]["name"] == "a"


async def test_large_events_are_not_truncated(client: Client, fake: Started) -> None:
    """An event far larger than a socket read (2 MB) arrives whole."""
    server, _ = fake
    big = pod("big")
    big["metadata"]["annotations"] = {"blob": "x" * 2_000_000}
    server.put(PODS_DEFAULT, big)
    events = await _collect(client, "1", 1)
    assert len(events[0].object["metadata"]["annotations"]["blob"]) == 2_000_000


async def test_silent_watch_ends_cleanly(client: Client, fake: Started,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """A watch with bookmarks on which nothing arrives for WATCH_IDLE_TIMEOUT ends cleanly
    (the caller re-watches), instead of hanging on a dead connection."""
    import podns.kube.client as client_module

    monkeypatch.setattr(client_module, "WATCH_IDLE_TIMEOUT", 0.3)
    events = await asyncio.wait_for(_collect(client, "1", 1), 5)
    assert events == []
