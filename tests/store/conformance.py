"""The store conformance suite: the one set of tests every `Store` backend must pass.

Modelled on Kubernetes' `storage/testing/store_tests.go`. A backend's test module subclasses
`StoreConformance` and provides one fixture, `store_factory`: an async callable
`open(**options) -> Store` that opens the backend on the *same* backing data each time it is
called (so a test can close a store and reopen it as after a restart). Options a backend must
accept: `watch_queue_size` (events a watcher may lag before it gets Expired).

Class attributes describe what a backend promises beyond the protocol:
- `durable`: data and revisions survive close + reopen;
- `watch_history_survives_restart`: a watch may resume from a revision before the reopen
  (true for etcd, false for a watch cache in memory, which raises Expired then).

Test code, not shipped in the `podns` package (it needs pytest); a real etcd cluster for the etcd
backend's tests is `tests/etcd_cluster.py`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, ClassVar

import pytest

from podns.store.errors import AlreadyExists, Conflict, Expired, Invalid, NotFound
from podns.store.interface import Obj, Store, WatchEvent

__all__ = ["StoreConformance", "StoreFactory", "nothing_more", "pod", "rv_of", "take"]

StoreFactory = Callable[..., Awaitable[Store]]


def pod(name: str, ns: str = "default", **spec: Any) -> Obj:
    """A small pod-like object."""
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns}, "spec": spec}


def rv_of(obj: Obj) -> int:
    """The object's resourceVersion as an int."""
    return int(obj["metadata"]["resourceVersion"])


async def take(it: AsyncIterator[WatchEvent], n: int, timeout: float = 5.0) -> list[WatchEvent]:
    """The next `n` events of a watch, failing the test if they do not come within `timeout`."""
    out: list[WatchEvent] = []

    async def run() -> None:
        while len(out) < n:
            out.append(await anext(it))

    await asyncio.wait_for(run(), timeout)
    return out


async def nothing_more(it: AsyncIterator[WatchEvent], wait: float = 0.2) -> bool:
    """True when the watch yields no event within `wait` seconds."""
    try:
        await asyncio.wait_for(anext(it), wait)
    except TimeoutError:
        return True
    return False


class StoreConformance:
    """Behaviour every backend shares. Subclass it and provide the `store_factory` fixture."""

    durable: ClassVar[bool] = True
    watch_history_survives_restart: ClassVar[bool] = False

    @pytest.fixture
    async def store(self, store_factory: StoreFactory) -> AsyncIterator[Store]:
        s = await store_factory()
        try:
            yield s
        finally:
            await s.close()

    # -- create / get ---------------------------------------------------------------------------

    async def test_create_then_get(self, store: Store) -> None:
        """given an empty store, when an object is created, then get returns it with its rv."""
        before = await store.current_rv()
        obj = pod("a")
        obj["metadata"]["resourceVersion"] = "999999"  # ignored: the store owns it
        created = await store.create("pods/default/a", obj)
        assert rv_of(created) == before + 1 == await store.current_rv()
        assert created["spec"] == {} and created["metadata"]["name"] == "a"
        got = await store.get("pods/default/a")
        assert got == created
        assert isinstance(got["metadata"]["resourceVersion"], str)

    async def test_large_and_unicode_objects_round_trip(self, store: Store) -> None:
        """given a 512 KiB object with non-ASCII text, get, list and watch return it intact."""
        start = await store.current_rv()
        big = pod("big", blob="x" * 512 * 1024, text="héllo wörld ✓ 世界", nested={"a": [1, 2.5, None, True]})
        created = await store.create("configmaps/default/big", big)
        assert await store.get("configmaps/default/big") == created
        assert (await store.list("configmaps/")).items == [created]
        w = store.watch("configmaps/", start)
        try:
            (ev,) = await take(w, 1)
            assert ev.object == created
        finally:
            await w.aclose()  # type: ignore[attr-defined]

    async def test_create_existing_is_already_exists(self, store: Store) -> None:
        """given an object, when it is created again, then AlreadyExists and nothing changes."""
        first = await store.create("pods/default/a", pod("a", v=1))
        with pytest.raises(AlreadyExists):
            await store.create("pods/default/a", pod("a", v=2))
        assert await store.get("pods/default/a") == first
        assert await store.current_rv() == rv_of(first)

    async def test_unstorable_object_is_invalid(self, store: Store) -> None:
        """given an object JSON cannot hold (a 70-bit integer), create/update raise Invalid and
        nothing is written."""
        with pytest.raises(Invalid):
            await store.create("pods/default/a", pod("a", big=2**70))
        a = await store.create("pods/default/a", pod("a"))
        with pytest.raises(Invalid):
            await store.update("pods/default/a", pod("a", big=2**70))
        assert await store.get("pods/default/a") == a
        assert await store.current_rv() == rv_of(a)

    async def test_get_missing_is_not_found(self, store: Store) -> None:
        """given no object, get raises NotFound."""
        with pytest.raises(NotFound):
            await store.get("pods/default/nope")

    async def test_returned_objects_are_private(self, store: Store) -> None:
        """given a created object, when the caller mutates what it got, the store is unaffected."""
        created = await store.create("pods/default/a", pod("a", v=1))
        created["spec"]["v"] = 2
        got = await store.get("pods/default/a")
        got["metadata"]["name"] = "changed"
        assert (await store.get("pods/default/a"))["spec"] == {"v": 1}
        assert (await store.get("pods/default/a"))["metadata"]["name"] == "a"

    # -- update / CAS ---------------------------------------------------------------------------

    async def test_update_bumps_rv(self, store: Store) -> None:
        """given an object, when it is updated, then its rv is the new global revision."""
        a = await store.create("pods/default/a", pod("a", v=1))
        await store.create("pods/default/b", pod("b"))
        b = await store.update("pods/default/a", pod("a", v=2))
        assert rv_of(b) == rv_of(a) + 2 == await store.current_rv()
        assert (await store.get("pods/default/a"))["spec"] == {"v": 2}

    async def test_update_missing_is_not_found(self, store: Store) -> None:
        """given no object, update raises NotFound (also with expected_rv)."""
        with pytest.raises(NotFound):
            await store.update("pods/default/a", pod("a"))
        with pytest.raises(NotFound):
            await store.update("pods/default/a", pod("a"), expected_rv=1)

    async def test_update_cas(self, store: Store) -> None:
        """given an object at rv R, update with expected_rv R succeeds and a stale R conflicts."""
        a = await store.create("pods/default/a", pod("a", v=1))
        b = await store.update("pods/default/a", pod("a", v=2), expected_rv=rv_of(a))
        with pytest.raises(Conflict):
            await store.update("pods/default/a", pod("a", v=3), expected_rv=rv_of(a))
        got = await store.get("pods/default/a")
        assert got == b and got["spec"] == {"v": 2}

    async def test_noop_update_keeps_rv(self, store: Store) -> None:
        """given an object, when it is updated to identical content, then no new revision."""
        a = await store.create("pods/default/a", pod("a", v=1))
        again = await store.update("pods/default/a", pod("a", v=1), expected_rv=rv_of(a))
        assert rv_of(again) == rv_of(a) == await store.current_rv()

    async def test_concurrent_writers_lose_no_update(self, store: Store) -> None:
        """given many writers doing read-modify-CAS with retry, then every increment lands."""
        await store.create("counters/c", {"metadata": {"name": "c"}, "n": 0})
        writers, rounds = 8, 10

        async def bump() -> None:
            for _ in range(rounds):
                while True:
                    cur = await store.get("counters/c")
                    cur["n"] += 1
                    try:
                        await store.update("counters/c", cur, expected_rv=rv_of(cur))
                        break
                    except Conflict:
                        await asyncio.sleep(0)

        await asyncio.gather(*(bump() for _ in range(writers)))
        assert (await store.get("counters/c"))["n"] == writers * rounds

    # -- delete ---------------------------------------------------------------------------------

    async def test_delete_returns_last_state_at_deletion_rv(self, store: Store) -> None:
        """given an object, delete returns its last state carrying the deletion's revision."""
        a = await store.create("pods/default/a", pod("a", v=1))
        gone = await store.delete("pods/default/a")
        assert gone["spec"] == {"v": 1}
        assert rv_of(gone) == rv_of(a) + 1 == await store.current_rv()
        with pytest.raises(NotFound):
            await store.get("pods/default/a")
        with pytest.raises(NotFound):
            await store.delete("pods/default/a")

    async def test_delete_cas(self, store: Store) -> None:
        """given an object at rv R that changed since, delete with expected_rv R conflicts."""
        a = await store.create("pods/default/a", pod("a", v=1))
        b = await store.update("pods/default/a", pod("a", v=2))
        with pytest.raises(Conflict):
            await store.delete("pods/default/a", expected_rv=rv_of(a))
        await store.delete("pods/default/a", expected_rv=rv_of(b))
        with pytest.raises(NotFound):
            await store.get("pods/default/a")

    async def test_revisions_never_reused_after_delete(self, store: Store) -> None:
        """given create, delete, create of one key, then the revisions strictly increase."""
        a = await store.create("pods/default/a", pod("a"))
        d = await store.delete("pods/default/a")
        a2 = await store.create("pods/default/a", pod("a"))
        assert rv_of(a) < rv_of(d) < rv_of(a2) == await store.current_rv()

    # -- list -----------------------------------------------------------------------------------

    async def _fill(self, store: Store) -> None:
        for key in ["pods/default/b", "pods/default/a", "pods/kube-system/c", "pods/default2/d",
                    "services/default/a", "pods/default/a-x"]:
            _, ns, name = key.split("/")
            await store.create(key, pod(name, ns))

    async def test_list_prefix_ordered(self, store: Store) -> None:
        """given objects under several prefixes, list returns exactly the prefix, by key."""
        await self._fill(store)
        res = await store.list("pods/default/")
        assert [o["metadata"]["name"] for o in res.items] == ["a", "a-x", "b"]
        assert res.rv == await store.current_rv() and res.continue_key is None
        every = await store.list("pods/")
        assert [o["metadata"]["name"] for o in every.items] == ["a", "a-x", "b", "d", "c"]
        one = await store.list("pods/default/a")
        assert [o["metadata"]["name"] for o in one.items] == ["a"]
        assert (await store.list("nodes/")).items == []

    async def test_list_items_carry_their_rv(self, store: Store) -> None:
        """given objects written at different revisions, each listed item has its own rv."""
        a = await store.create("pods/default/a", pod("a"))
        b = await store.create("pods/default/b", pod("b"))
        res = await store.list("pods/default/")
        assert [rv_of(o) for o in res.items] == [rv_of(a), rv_of(b)]

    async def test_list_pagination(self, store: Store) -> None:
        """given 7 objects, pages of 3 return them all once, in order, with continue keys."""
        for i in range(7):
            await store.create(f"pods/default/p{i}", pod(f"p{i}"))
        names: list[str] = []
        first = await store.list("pods/default/", limit=3)
        assert first.continue_key == "pods/default/p2"
        page = first
        while True:
            names += [o["metadata"]["name"] for o in page.items]
            if page.continue_key is None:
                break
            page = await store.list("pods/default/", limit=3, start_after=page.continue_key,
                                    at_rv=first.rv)
            assert page.rv == first.rv
        assert names == [f"p{i}" for i in range(7)]
        exact = await store.list("pods/default/", limit=7)
        assert len(exact.items) == 7 and exact.continue_key is None
        past_end = await store.list("pods/default/", limit=3, start_after="pods/default/p9")
        assert past_end.items == [] and past_end.continue_key is None

    async def test_list_at_past_rv_is_a_snapshot(self, store: Store) -> None:
        """given a first page at rv R, when objects change, later pages still show state at R."""
        for i in range(6):
            await store.create(f"pods/default/p{i}", pod(f"p{i}", v=0))
        first = await store.list("pods/default/", limit=2)
        await store.update("pods/default/p3", pod("p3", v=1))
        await store.update("pods/default/p3", pod("p3", v=2))
        await store.delete("pods/default/p4")
        await store.create("pods/default/p25", pod("p25"))
        await store.update("pods/default/p1", pod("p1", v=1))
        rest = await store.list("pods/default/", start_after=first.continue_key, at_rv=first.rv)
        assert rest.rv == first.rv and rest.continue_key is None
        assert [(o["metadata"]["name"], o["spec"]["v"]) for o in rest.items] == [
            ("p2", 0), ("p3", 0), ("p4", 0), ("p5", 0)]
        now = await store.list("pods/default/")
        assert [o["metadata"]["name"] for o in now.items] == ["p0", "p1", "p2", "p25", "p3", "p5"]

    async def test_list_at_future_rv_reads_current(self, store: Store) -> None:
        """given at_rv beyond the store's revision, list returns the current state and revision."""
        await store.create("pods/default/a", pod("a"))
        res = await store.list("pods/", at_rv=await store.current_rv() + 10_000)
        assert res.rv == await store.current_rv() and len(res.items) == 1

    async def test_list_at_compacted_rv_is_expired(self, store: Store) -> None:
        """given a compaction past R, a list at R raises Expired."""
        a = await store.create("pods/default/a", pod("a"))
        for i in range(3):
            await store.update("pods/default/a", pod("a", v=i))
        await store.compact(await store.current_rv())
        with pytest.raises(Expired):
            await store.list("pods/default/", at_rv=rv_of(a))

    # -- watch ----------------------------------------------------------------------------------

    async def test_watch_replays_and_follows(self, store: Store) -> None:
        """given history, a watch from R replays every change after R in order, then live ones."""
        a = await store.create("pods/default/a", pod("a"))
        await store.create("services/default/a", pod("a"))
        b = await store.update("pods/default/a", pod("a", v=1))
        w = store.watch("pods/", rv_of(a) - 1)
        try:
            got = await take(w, 2)
            assert [(e.type, e.rv) for e in got] == [("ADDED", rv_of(a)), ("MODIFIED", rv_of(b))]
            assert got[1].object["spec"] == {"v": 1} and rv_of(got[1].object) == rv_of(b)
            assert got[0].key == "pods/default/a"
            d = await store.delete("pods/default/a")
            c = await store.create("pods/other/c", pod("c", "other"))
            got = await take(w, 2)
            assert [(e.type, e.rv, e.key) for e in got] == [
                ("DELETED", rv_of(d), "pods/default/a"), ("ADDED", rv_of(c), "pods/other/c")]
            assert rv_of(got[0].object) == rv_of(d) and got[0].object["spec"] == {"v": 1}
            assert await nothing_more(w)
        finally:
            await w.aclose()  # type: ignore[attr-defined]

    async def test_watch_from_current_rv_sees_only_new(self, store: Store) -> None:
        """given a list at R, a watch from R yields only later changes."""
        await store.create("pods/default/a", pod("a"))
        listed = await store.list("pods/")
        w = store.watch("pods/", listed.rv)
        try:
            assert await nothing_more(w)
            b = await store.create("pods/default/b", pod("b"))
            (ev,) = await take(w, 1)
            assert (ev.type, ev.rv) == ("ADDED", rv_of(b))
        finally:
            await w.aclose()  # type: ignore[attr-defined]

    async def test_watch_from_future_rv_waits_for_it(self, store: Store) -> None:
        """given a watch from a revision not reached yet, it yields only changes after it."""
        now = await store.current_rv()
        w = store.watch("pods/", now + 2)
        try:
            assert await nothing_more(w, 0.1)
            for i in range(4):
                await store.create(f"pods/default/p{i}", pod(f"p{i}"))
            got = await take(w, 2)
            assert [e.rv for e in got] == [now + 3, now + 4]
            assert await nothing_more(w)
        finally:
            await w.aclose()  # type: ignore[attr-defined]

    async def test_watch_prefix_filtering(self, store: Store) -> None:
        """given writes under many prefixes, a watch sees only its prefix (or its one key)."""
        start = await store.current_rv()
        ns = store.watch("pods/default/", start)
        one = store.watch("pods/default/a", start)
        every = store.watch("", start)
        try:
            await self._fill(store)
            got = await take(ns, 3)
            assert [e.key for e in got] == ["pods/default/b", "pods/default/a", "pods/default/a-x"]
            assert await nothing_more(ns)
            (ev,) = await take(one, 1)
            assert ev.key == "pods/default/a"
            assert await nothing_more(one)
            all_keys = [e.key for e in await take(every, 6)]
            assert "services/default/a" in all_keys and len(set(all_keys)) == 6
            assert await nothing_more(every)
        finally:
            await ns.aclose()  # type: ignore[attr-defined]
            await one.aclose()  # type: ignore[attr-defined]
            await every.aclose()  # type: ignore[attr-defined]

    async def test_many_watchers_see_the_same_stream(self, store: Store) -> None:
        """given 30 watchers, each sees every event, in the same order."""
        start = await store.current_rv()
        watches = [store.watch("pods/", start) for _ in range(30)]
        try:
            for i in range(10):
                await store.create(f"pods/default/p{i}", pod(f"p{i}"))
            streams = await asyncio.gather(*(take(w, 10) for w in watches))
            expected = [(e.type, e.key, e.rv) for e in streams[0]]
            assert [k for _, k, _ in expected] == [f"pods/default/p{i}" for i in range(10)]
            assert all([(e.type, e.key, e.rv) for e in s] == expected for s in streams)
        finally:
            for w in watches:
                await w.aclose()  # type: ignore[attr-defined]

    async def test_slow_watcher_is_expired_not_blocking(self, store_factory: StoreFactory) -> None:
        """given a watcher that never reads, writes go on, others keep up, and it gets Expired."""
        store = await store_factory(watch_queue_size=16)
        try:
            start = await store.current_rv()
            slow = store.watch("pods/", start)
            fast = store.watch("pods/", start)
            # Start both watches (the first iteration registers them).
            first = await store.create("pods/default/p0", pod("p0"))
            assert (await take(slow, 1))[0].rv == rv_of(first)
            seen = await take(fast, 1)
            n = 200

            async def writer() -> None:
                for i in range(1, n):
                    await store.create(f"pods/default/p{i}", pod(f"p{i}"))

            async def reader() -> None:
                seen.extend(await take(fast, n - 1, timeout=20))

            await asyncio.wait_for(asyncio.gather(writer(), reader()), 30)
            assert [e.key for e in seen] == [f"pods/default/p{i}" for i in range(n)]
            with pytest.raises(Expired):
                await take(slow, n)
        finally:
            await store.close()

    async def test_watch_after_compaction_is_expired(self, store: Store) -> None:
        """given compaction to R, a watch from before R raises Expired; from R it works."""
        a = await store.create("pods/default/a", pod("a"))
        b = await store.update("pods/default/a", pod("a", v=1))
        c = await store.update("pods/default/a", pod("a", v=2))
        await store.compact(rv_of(b))
        with pytest.raises(Expired):
            await take(store.watch("pods/", rv_of(a)), 1)
        w = store.watch("pods/", rv_of(b))
        try:
            (ev,) = await take(w, 1)
            assert ev.rv == rv_of(c)
        finally:
            await w.aclose()  # type: ignore[attr-defined]

    async def test_closed_watch_is_released(self, store: Store) -> None:
        """given a watch closed by its client, later writes still succeed promptly."""
        w = store.watch("pods/", await store.current_rv())
        await store.create("pods/default/a", pod("a"))
        await take(w, 1)
        await w.aclose()  # type: ignore[attr-defined]
        for i in range(50):
            await store.create(f"pods/default/x{i}", pod(f"x{i}"))
        assert len((await store.list("pods/")).items) == 51

    # -- restart --------------------------------------------------------------------------------

    async def test_restart_keeps_data_and_revision(self, store_factory: StoreFactory) -> None:
        """given writes then close + reopen, objects and the revision survive, rvs never reused."""
        if not self.durable:
            pytest.skip("backend is not durable")
        s = await store_factory()
        try:
            a = await s.create("pods/default/a", pod("a"))
            b = await s.create("pods/default/b", pod("b"))
            gone = await s.delete("pods/default/b")
        finally:
            await s.close()
        s = await store_factory()
        try:
            assert await s.current_rv() == rv_of(gone)
            assert await s.get("pods/default/a") == a
            with pytest.raises(NotFound):
                await s.get("pods/default/b")
            c = await s.create("pods/default/b", pod("b"))
            assert rv_of(c) > rv_of(gone) > rv_of(b)
        finally:
            await s.close()

    async def test_watch_across_restart(self, store_factory: StoreFactory) -> None:
        """given a reopen, a watch from before it is Expired (watch cache) or replays (etcd)."""
        if not self.durable:
            pytest.skip("backend is not durable")
        s = await store_factory()
        try:
            a = await s.create("pods/default/a", pod("a"))
            b = await s.update("pods/default/a", pod("a", v=1))
        finally:
            await s.close()
        s = await store_factory()
        try:
            if self.watch_history_survives_restart:
                w = s.watch("pods/", rv_of(a))
                (ev,) = await take(w, 1)
                assert ev.rv == rv_of(b)
                await w.aclose()  # type: ignore[attr-defined]
            else:
                with pytest.raises(Expired):
                    await take(s.watch("pods/", rv_of(a)), 1)
            w = s.watch("pods/", await s.current_rv())
            c = await s.create("pods/default/c", pod("c"))
            (ev,) = await take(w, 1)
            assert ev.rv == rv_of(c)
            await w.aclose()  # type: ignore[attr-defined]
        finally:
            await s.close()
