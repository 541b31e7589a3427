"""The informer against a fake API server: sync, events, resume, relist on 410, outages."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from podns.kube.client import Client
from podns.kube.informer import Informer
from podns.kube.resources import PODS
from podns.objects import object_key, split_key

from .apiserver import pod
from .conftest import Started

pytestmark = pytest.mark.timeout(20)

PODS_DEFAULT = "api/v1/namespaces/default/pods"


class Recorder:
    """Handlers that record (event, name) in call order, and what the cache showed."""

    def __init__(self, informer: Informer) -> None:
        self.events: list[tuple[str, str]] = []
        self.informer = informer
        informer.add_handler(on_add=self.add, on_update=self.update, on_delete=self.delete)

    def add(self, obj: dict[str, Any]) -> None:
        assert self.informer.get(object_key(obj)) is obj  # cache first, then handlers
        self.events.append(("add", obj["metadata"]["name"]))

    def update(self, old: dict[str, Any], new: dict[str, Any]) -> None:
        self.events.append(("update", new["metadata"]["name"]))

    def delete(self, obj: dict[str, Any]) -> None:
        assert self.informer.get(object_key(obj)) is None
        self.events.append(("delete", obj["metadata"]["name"]))


async def until(cond: Callable[[], bool], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not cond():  # noqa: ASYNC110 - polling a plain condition is the point
            await asyncio.sleep(0.01)


@pytest.fixture
async def running(client: Client, fake: Started) -> AsyncIterator[tuple[Informer, Recorder]]:
    server, _ = fake
    server.put(PODS_DEFAULT, pod("a", app="db"))
    server.put(PODS_DEFAULT, pod("b", app="web"))
    inf = Informer(client, PODS, "default")
    rec = Recorder(inf)
    inf.add_index("app", lambda o: [o["metadata"]["labels"].get("app", "")])
    inf.start()
    await inf.wait_synced(5)
    yield inf, rec
    await inf.stop()


async def test_sync_then_events(running: tuple[Informer, Recorder], fake: Started) -> None:
    """Given two pods, the informer syncs both, then follows add/update/delete in order."""
    inf, rec = running
    server, _ = fake
    assert inf.has_synced and inf.connected and sorted(inf.keys()) == ["default/a", "default/b"]
    assert [o["metadata"]["name"] for o in inf.by_index("app", "db")] == ["a"]
    server.put(PODS_DEFAULT, pod("c", app="db"))
    server.put(PODS_DEFAULT, pod("a", app="web"))
    server.remove(PODS_DEFAULT, "b")
    await until(lambda: len(rec.events) == 5)
    assert rec.events == [("add", "a"), ("add", "b"), ("add", "c"), ("update", "a"),
                          ("delete", "b")]
    assert inf.index_keys("app", "db") == ["default/c"]
    assert inf.index_keys("app", "web") == ["default/a"]
    assert inf.resource_version == str(server.rv)
    assert inf.last_event_time is not None and inf.list_count == 1


async def test_resume_after_dropped_connection(running: tuple[Informer, Recorder],
                                               fake: Started) -> None:
    """When the watch connection breaks, the informer resumes from its last resourceVersion
    without relisting, and loses no event."""
    inf, rec = running
    server, _ = fake
    server.drop_watch_after = 1
    server.put(PODS_DEFAULT, pod("c"))
    await until(lambda: inf.watch_count >= 2)
    server.drop_watch_after = None
    server.put(PODS_DEFAULT, pod("d"))
    server.put(PODS_DEFAULT, pod("e"))
    await until(lambda: len(inf) == 5)
    assert inf.list_count == 1
    watch_rvs = [r[2]["resourceVersion"] for r in server.requests if r[2].get("watch")]
    assert len(watch_rvs) >= 2 and watch_rvs[1] == str(server.rv - 2)  # after "c"
    assert [e for e in rec.events if e[0] == "add"][-3:] == [("add", "c"), ("add", "d"),
                                                              ("add", "e")]


async def test_relist_on_gone_delivers_the_difference(running: tuple[Informer, Recorder],
                                                      fake: Started) -> None:
    """Given changes the watch missed and a 410, the relist converges the cache and reports
    exactly the differences as add/update/delete."""
    inf, rec = running
    server, _ = fake
    coll = server.objects[PODS_DEFAULT]
    # silent changes (not in the history the watch streams from), then compaction
    server.rv += 1
    coll["a"] = {**pod("a", app="changed")}
    coll["a"]["metadata"]["resourceVersion"] = str(server.rv)
    del coll["b"]
    server.rv += 1
    coll["z"] = pod("z")
    coll["z"]["metadata"]["resourceVersion"] = str(server.rv)
    server.compact()
    server.error_event(410)
    await until(lambda: inf.list_count == 2 and len(rec.events) == 5)
    assert sorted(rec.events[2:]) == [("add", "z"), ("delete", "b"), ("update", "a")]
    assert sorted(inf.keys()) == ["default/a", "default/z"]
    assert inf.index_keys("app", "changed") == ["default/a"]
    assert inf.resource_version == str(server.rv)


async def test_outage_keeps_cache_and_recovers(client: Client, fake: Started) -> None:
    """While the API fails, the cache stays and connected is False; then it catches up."""
    server, _ = fake
    server.put(PODS_DEFAULT, pod("a"))
    inf = Informer(client, PODS, "default")
    inf.start()
    await inf.wait_synced(5)
    from .apiserver import Failure

    server.failures.append(Failure("GET", 503, count=3, watch_only=True))
    server.close_watches()
    await until(lambda: not inf.connected)
    assert inf.keys() == ["default/a"]
    server.put(PODS_DEFAULT, pod("b"))
    await until(lambda: inf.connected and len(inf) == 2)
    await inf.stop()


async def test_handler_exception_does_not_stop_informer(client: Client, fake: Started) -> None:
    """A failing handler is logged; the next handler and later events still run."""
    server, _ = fake
    inf = Informer(client, PODS, "default", transform=lambda o: {"metadata": o["metadata"]})
    seen: list[str] = []

    def boom(obj: dict[str, Any]) -> None:
        raise RuntimeError("handler bug")

    inf.add_handler(on_add=boom)
    inf.add_handler(on_add=lambda o: seen.append(o["metadata"]["name"]))
    inf.start()
    await inf.wait_synced(5)
    server.put(PODS_DEFAULT, pod("a"))
    server.put(PODS_DEFAULT, pod("b"))
    await until(lambda: seen == ["a", "b"])
    assert set(inf.get("default/a") or {}) == {"metadata"}  # transformed before caching
    await inf.stop()


async def test_wait_synced_times_out(client: Client) -> None:
    """wait_synced raises TimeoutError when the informer never syncs."""
    inf = Informer(client, PODS, "default")
    with pytest.raises(TimeoutError):
        await inf.wait_synced(0.05)


def test_keys() -> None:
    assert object_key(pod("a", "ns")) == "ns/a"
    assert object_key({"metadata": {"name": "n1"}}) == "n1"
    assert split_key("ns/a") == ("ns", "a") and split_key("n1") == ("", "n1")


async def test_resume_that_gets_410_relists(running: tuple[Informer, Recorder],
                                            fake: Started) -> None:
    """A dropped watch whose resume is answered 410 (history compacted meanwhile) relists."""
    inf, rec = running
    server, _ = fake
    server.drop_watch_after = 0
    server.close_watches()
    await until(lambda: not inf.connected or inf.watch_count >= 2)
    server.put(PODS_DEFAULT, pod("c"))
    server.compact()
    server.drop_watch_after = None
    await until(lambda: inf.list_count == 2 and inf.get("default/c") is not None)
    assert ("add", "c") in rec.events


async def test_selectors_are_sent(client: Client, fake: Started) -> None:
    """Label and field selectors go to both the list and the watch."""
    server, _ = fake
    inf = Informer(client, PODS, "default", label_selector="app=db",
                   field_selector="spec.nodeName=n1")
    inf.start()
    await inf.wait_synced(5)
    await until(lambda: inf.watch_count == 1 and len(server.watchers) == 1)
    await inf.stop()
    sent = [r[2] for r in server.requests]
    assert all(p["labelSelector"] == "app=db" and p["fieldSelector"] == "spec.nodeName=n1"
               for p in sent)
    assert sent[0].get("limit") == "500" and sent[1]["watch"] == "true"
    assert 300 <= int(sent[1]["timeoutSeconds"]) <= 600


async def test_late_handler_gets_existing_objects_and_bad_transform_skips(
        client: Client, fake: Started) -> None:
    """A handler added after sync gets on_add for each cached object; an object whose
    transform raises is skipped (logged), the others are cached."""
    server, _ = fake
    server.put(PODS_DEFAULT, pod("ok"))
    server.put(PODS_DEFAULT, pod("bad", poison="yes"))

    def transform(o: dict[str, Any]) -> dict[str, Any]:
        if o["metadata"]["labels"].get("poison"):
            raise ValueError("cannot trim")
        return o

    inf = Informer(client, PODS, "default", transform=transform)
    inf.start()
    await inf.wait_synced(5)
    late: list[str] = []
    inf.add_handler(on_add=lambda o: late.append(o["metadata"]["name"]))
    assert late == ["ok"] and inf.keys() == ["default/ok"]
    await inf.stop()


@pytest.mark.parametrize("how", ["clean-end", "broken"])
async def test_watches_ended_at_once_are_backed_off(client: Client, fake: Started, how: str
                                                    ) -> None:
    """A server that ends every watch immediately (cleanly or not) does not make the
    informer spin."""
    server, _ = fake
    if how == "clean-end":
        server.end_watches_at_once = True
    else:
        server.drop_watch_after = 0
    inf = Informer(client, PODS, "default")
    inf.start()
    await inf.wait_synced(5)
    await asyncio.sleep(1.0)
    await inf.stop()
    assert inf.watch_count <= 8  # back-off 0.1, 0.2, 0.4 ... not hundreds of watches
