"""The etcd backend when members fail: failover, watch resume, quick Unavailable, compaction."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator

import pytest

from podns.store.errors import Expired, Invalid, NotFound, TooLarge, Unavailable
from podns.store.etcd import EtcdStore
from tests.etcd_cluster import EtcdCluster, etcd_available, free_port, start_etcd_cluster
from tests.store.conformance import pod, rv_of, take

pytestmark = [pytest.mark.timeout(90), pytest.mark.etcd]


@pytest.fixture
def etcd3() -> Iterator[EtcdCluster]:
    """A fresh 3-member cluster (tests here kill members)."""
    if not etcd_available():
        pytest.skip("etcd binary not installed (Debian package etcd-server)")
    cluster = start_etcd_cluster(3)
    try:
        yield cluster
    finally:
        cluster.close()


def root() -> str:
    return f"/t-{uuid.uuid4().hex[:8]}/"


async def test_unreachable_is_quick_unavailable() -> None:
    """given no etcd listening, every call raises Unavailable at once, not after a hang."""
    store = EtcdStore([f"http://127.0.0.1:{free_port()}", f"http://127.0.0.1:{free_port()}"])
    try:
        t = time.monotonic()
        with pytest.raises(Unavailable):
            await store.get("pods/default/a")
        with pytest.raises(Unavailable):
            await store.create("pods/default/a", pod("a"))
        with pytest.raises(Unavailable):
            await take(store.watch("pods/", 0), 1, timeout=20)
        assert time.monotonic() - t < 15
    finally:
        await store.close()


async def test_dead_endpoint_is_skipped(etcd1: EtcdCluster) -> None:
    """given a dead endpoint listed first, requests go to the live one."""
    store = EtcdStore([f"http://127.0.0.1:{free_port()}", *etcd1.endpoints], root=root())
    try:
        a = await store.create("pods/default/a", pod("a"))
        assert await store.get("pods/default/a") == a
    finally:
        await store.close()


async def test_member_loss_fails_over_and_watch_resumes(etcd3: EtcdCluster) -> None:
    """given a 3-member cluster and a watch, when the member in use is killed, writes go on
    through the others and the watch resumes without losing or repeating an event."""
    store = EtcdStore(etcd3.endpoints, root=root(), timeout=8)
    try:
        start = await store.current_rv()
        w = store.watch("pods/", start)
        first = await store.create("pods/default/p0", pod("p0"))
        (ev,) = await take(w, 1)
        assert ev.rv == rv_of(first)
        await asyncio.to_thread(etcd3.stop_member, 0)
        written = [first]
        for i in range(1, 20):
            written.append(await store.create(f"pods/default/p{i}", pod(f"p{i}")))
        got = await take(w, 19, timeout=20)
        assert [e.rv for e in got] == [rv_of(o) for o in written[1:]]
        await w.aclose()  # type: ignore[attr-defined]
    finally:
        await store.close()


async def test_no_quorum_writes_unavailable_reads_serve_last_state(etcd3: EtcdCluster) -> None:
    """given 2 of 3 members dead, writes raise Unavailable within the timeout while get, list
    (also at a past revision) and current_rv answer the last state from the live member
    (serializable reads); when quorum returns, writes and linearizable reads work again."""
    store = EtcdStore(etcd3.endpoints, root=root(), timeout=2, attempt_timeout=0.7)
    try:
        a = await store.create("pods/default/a", pod("a"))
        b = await store.create("pods/default/b", pod("b"))
        await asyncio.to_thread(etcd3.stop_member, 1)
        await asyncio.to_thread(etcd3.stop_member, 2)
        t = time.monotonic()
        with pytest.raises(Unavailable):
            await store.create("pods/default/c", pod("c"))
        assert time.monotonic() - t < 4
        with pytest.raises(Unavailable):
            await store.update("pods/default/a", pod("a", v=2))
        for _ in range(2):  # the second read falls back at once (quorum loss remembered)
            t = time.monotonic()
            assert await store.get("pods/default/a") == a
            got = await store.list("pods/")
            assert got.items == [a, b] and got.rv >= rv_of(b)
            assert await store.current_rv() == got.rv
            assert time.monotonic() - t < 4
        page = await store.list("pods/", limit=1)
        assert page.items == [a] and page.continue_key == "pods/default/a"
        rest = await store.list("pods/", start_after=page.continue_key, at_rv=page.rv)
        assert rest.items == [b]
        with pytest.raises(NotFound):
            await store.get("pods/default/c")

        await asyncio.to_thread(etcd3.start_member, 1)
        await asyncio.to_thread(etcd3.start_member, 2)
        await asyncio.to_thread(etcd3.wait_healthy)
        deadline = time.monotonic() + 20
        while True:
            try:
                d = await store.create("pods/default/d", pod("d"))
                break
            except Unavailable:
                assert time.monotonic() < deadline, "writes did not come back"
        assert await store.get("pods/default/d") == d
        # the create of c that timed out may have been committed once quorum returned (an
        # Unavailable write's outcome is unknown, as a 504 from kube-apiserver)
        names = [o["metadata"]["name"] for o in (await store.list("pods/")).items]
        assert names in (["a", "b", "d"], ["a", "b", "c", "d"])
    finally:
        await store.close()


async def test_periodic_compaction(etcd1: EtcdCluster) -> None:
    """given automatic compaction with a short retention, old revisions become Expired."""
    store = EtcdStore(etcd1.endpoints, root=root(), compact_interval=0.1, retention=0.2)
    try:
        a = await store.create("pods/default/a", pod("a"))
        for i in range(3):
            await store.update("pods/default/a", pod("a", v=i))
        deadline = time.monotonic() + 10
        while True:
            try:
                await take(store.watch("pods/", rv_of(a) - 1), 1)
            except Expired:
                break
            assert time.monotonic() < deadline, "history was never compacted"
            await asyncio.sleep(0.1)
        with pytest.raises(Expired):
            await store.list("pods/", at_rv=rv_of(a))
    finally:
        await store.close()


async def test_hundreds_of_watches_do_not_starve_requests(etcd1: EtcdCluster) -> None:
    """given 150 open watches (each an HTTP stream), requests still go through and every
    watch sees the next write."""
    store = EtcdStore(etcd1.endpoints, root=root())
    try:
        start = await store.current_rv()
        watches = [store.watch("pods/", start) for _ in range(150)]
        a = await store.create("pods/default/a", pod("a"))
        firsts = await asyncio.gather(*(take(w, 1, timeout=20) for w in watches))
        assert all(f[0].rv == rv_of(a) for f in firsts)
        assert await store.get("pods/default/a") == a
        for w in watches:
            await w.aclose()  # type: ignore[attr-defined]
    finally:
        await store.close()


async def test_watch_loses_quorum_then_unavailable(etcd3: EtcdCluster) -> None:
    """given a watch on a member whose peers die, the watch does not go silent: it raises
    Unavailable within the store's timeout (the member, without a leader, cancels it)."""
    store = EtcdStore(etcd3.endpoints, root=root(), timeout=2, attempt_timeout=0.7)
    try:
        w = store.watch("pods/", await store.current_rv())
        a = await store.create("pods/default/a", pod("a"))
        assert (await take(w, 1))[0].rv == rv_of(a)
        await asyncio.to_thread(etcd3.stop_member, 1)
        await asyncio.to_thread(etcd3.stop_member, 2)
        t = time.monotonic()
        with pytest.raises(Unavailable):
            await take(w, 1, timeout=15)
        assert time.monotonic() - t < 8
    finally:
        await store.close()


@pytest.mark.parametrize("kib", [1600, 2048], ids=["over-etcd-limit", "over-grpc-limit"])
async def test_too_large_for_etcd_is_invalid(etcd1: EtcdCluster, kib: int) -> None:
    """given an object over etcd's request limit (1.5 MiB) or gRPC's (2 MiB, base64 counted),
    create raises TooLarge (an Invalid) at once, not Unavailable after retries."""
    store = EtcdStore(etcd1.endpoints, root=root())
    try:
        with pytest.raises(TooLarge, match="too large") as err:
            await store.create("configmaps/default/huge", pod("huge", blob="x" * kib * 1024))
        assert isinstance(err.value, Invalid)
    finally:
        await store.close()
