"""Watch streams: initial ADDED events, resume from a version, selectors, timeouts, 410, Table."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from .conftest import Api, serve

PODS = "/api/v1/namespaces/default/pods"


@pytest.fixture(params=["direct", "shared"])
async def api(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Api]:
    """Every watch test runs with store watches per API watch and with one shared store watch
    per resource (podns.api.handlers.watchmux, as used over etcd)."""
    async with serve(tmp_path, shared_watch=request.param == "shared") as a:
        yield a


def pod(name: str, **labels: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": labels}, "spec": {}}


class Stream:
    """Reads watch events line by line from an open response."""

    def __init__(self, resp: aiohttp.ClientResponse) -> None:
        self.resp = resp

    async def next(self, timeout: float = 5.0) -> dict[str, Any]:
        line = await asyncio.wait_for(self.resp.content.readline(), timeout)
        assert line, "stream ended"
        return orjson.loads(line)  # type: ignore[no-any-return]

    async def ended(self, timeout: float = 5.0) -> bool:
        return await asyncio.wait_for(self.resp.content.readline(), timeout) == b""


async def open_watch(api: Api, query: str, accept: str = "application/json") -> Stream:
    resp = await api.session.get(
        f"{api.server.url}{PODS}?watch=true&{query}",
        headers={"Authorization": f"Bearer {api.token}", "Accept": accept})
    assert resp.status == 200
    return Stream(resp)


async def test_watch_without_version_starts_with_synthetic_added(api: Api) -> None:
    """resourceVersion absent: ADDED for each existing object, then live events in order."""
    await api.post(PODS, pod("a"))
    w = await open_watch(api, "")
    ev = await w.next()
    assert (ev["type"], ev["object"]["metadata"]["name"]) == ("ADDED", "a")
    await api.patch(f"{PODS}/a", {"metadata": {"labels": {"x": "1"}}})
    await api.delete(f"{PODS}/a")
    assert [(await w.next())["type"] for _ in range(2)] == ["MODIFIED", "DELETED"]
    w.resp.close()


async def test_resumed_watch_replays_changes_after_version(api: Api) -> None:
    """A watch from a list's resourceVersion gets exactly the later changes."""
    await api.post(PODS, pod("a"))
    rv = (await api.get(PODS)).body["metadata"]["resourceVersion"]
    await api.post(PODS, pod("b"))
    await api.delete(f"{PODS}/a")
    w = await open_watch(api, f"resourceVersion={rv}")
    got = [await w.next() for _ in range(2)]
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in got] == [
        ("ADDED", "b"), ("DELETED", "a")]
    assert int(got[1]["object"]["metadata"]["resourceVersion"]) > int(rv)
    w.resp.close()


async def test_watch_with_selectors_filters_events(api: Api) -> None:
    """Label and field selectors apply to watch events."""
    w = await open_watch(api, "resourceVersion=1&labelSelector=app%3Ddb")
    f = await open_watch(api, "resourceVersion=1&fieldSelector=metadata.name%3Dweb")
    await api.post(PODS, pod("web", app="web"))
    await api.post(PODS, pod("db", app="db"))
    assert (await w.next())["object"]["metadata"]["name"] == "db"
    assert (await f.next())["object"]["metadata"]["name"] == "web"
    w.resp.close()
    f.resp.close()


async def test_watch_timeout_ends_stream(api: Api) -> None:
    """timeoutSeconds closes the stream cleanly."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    w = await open_watch(api, "timeoutSeconds=1")
    assert await w.ended(5)
    assert 0.9 < loop.time() - start < 4


async def test_watch_from_compacted_version_gets_410_event(api: Api) -> None:
    """A resourceVersion older than the kept history yields an ERROR event with 410 Expired."""
    for i in range(3):
        await api.post(PODS, pod(f"p{i}"))
    await api.server.store.compact(await api.server.store.current_rv())
    w = await open_watch(api, "resourceVersion=2")
    ev = await w.next()
    assert ev["type"] == "ERROR"
    assert ev["object"]["code"] == 410 and ev["object"]["reason"] == "Expired"
    assert await w.ended()


async def test_watch_bad_resource_version_is_400(api: Api) -> None:
    """A non-numeric resourceVersion is a 400 Status, not a stream."""
    r = await api.get(f"{PODS}?watch=true&resourceVersion=abc")
    assert r.status == 400 and r.body["kind"] == "Status"


async def test_table_watch_sends_columns_once(api: Api) -> None:
    """`kubectl get -w` style: each event is a one-row Table; columns only on the first."""
    await api.post(PODS, pod("a"))
    w = await open_watch(api, "", "application/json;as=Table;v=v1;g=meta.k8s.io,application/json")
    assert w.resp.headers["Content-Type"].startswith("application/json;as=Table")
    first = await w.next()
    assert first["object"]["kind"] == "Table" and first["object"]["columnDefinitions"]
    assert first["object"]["rows"][0]["cells"][0] == "a"
    await api.post(PODS, pod("b"))
    second = await w.next()
    assert not second["object"].get("columnDefinitions")
    assert second["object"]["rows"][0]["object"]["metadata"]["name"] == "b"
    w.resp.close()


@pytest.mark.timeout(20)
async def test_many_watchers_share_events_and_leave_cleanly(api: Api) -> None:
    """Fifty watchers all receive a write; closing them frees the server's watches."""
    streams = [await open_watch(api, "resourceVersion=1") for _ in range(50)]
    await api.post(PODS, pod("x"))
    events = await asyncio.gather(*(s.next() for s in streams))
    assert {e["object"]["metadata"]["name"] for e in events} == {"x"}
    assert len({orjson.dumps(e) for e in events}) == 1
    for s in streams:
        s.resp.close()
    await asyncio.sleep(0.2)
    cache = api.server.store._cache  # type: ignore[attr-defined]
    # the authorizers' own watches stay open: RBAC's on its kinds, the Node authorizer's on pods
    ours = sum(len(group) for k, group in cache._watchers.items()
               if not k.endswith(".rbac.authorization.k8s.io"))
    assert ours == (1 if api.server.mux is None else 2)  # the Node authorizer's (+ the shared feed)
    if api.server.mux is not None:
        (shared,) = api.server.mux._shared.values()
        assert len(shared.cache._watchers) == 0


async def test_selector_watch_turns_label_changes_into_added_and_deleted(api: Api) -> None:
    """An object leaving a watch's selector is DELETED for it, one entering it ADDED; a resumed
    filtered watch knows what matched at its start version."""
    await api.post(PODS, pod("a", app="db"))
    await api.post(PODS, pod("b", app="web"))
    rv = (await api.get(PODS)).body["metadata"]["resourceVersion"]
    fresh = await open_watch(api, "labelSelector=app%3Ddb")
    assert (await fresh.next())["object"]["metadata"]["name"] == "a"
    resumed = await open_watch(api, f"resourceVersion={rv}&labelSelector=app%3Ddb")
    await api.patch(f"{PODS}/a", {"metadata": {"labels": {"app": "web"}}})
    await api.patch(f"{PODS}/b", {"metadata": {"labels": {"app": "db"}}})
    await api.patch(f"{PODS}/b", {"metadata": {"labels": {"x": "1"}}})
    for w in (fresh, resumed):
        got = [await w.next() for _ in range(3)]
        assert [(e["type"], e["object"]["metadata"]["name"]) for e in got] == [
            ("DELETED", "a"), ("ADDED", "b"), ("MODIFIED", "b")]
        w.resp.close()


async def test_bookmarks_carry_the_latest_version(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    """allowWatchBookmarks: a quiet watch gets BOOKMARKs with the last version seen."""
    from podns.api.handlers import watch

    monkeypatch.setattr(watch, "BOOKMARK_INTERVAL", 0.2)
    w = await open_watch(api, "resourceVersion=1&allowWatchBookmarks=true&labelSelector=x%3Dy")
    created = (await api.post(PODS, pod("a"))).body  # filtered out, but advances the version
    ev = await w.next()
    assert ev["type"] == "BOOKMARK" and ev["object"]["kind"] == "Pod"
    assert ev["object"]["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]
    w.resp.close()
