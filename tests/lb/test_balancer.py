"""The pool over a static source: picking, draining, ejection, panic mode, real connections."""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
from collections import Counter
from collections.abc import AsyncIterator

import pytest

from podns import lb
from podns.lb.endpoint import Endpoint


@contextlib.asynccontextmanager
async def tcp_servers(n: int) -> AsyncIterator[tuple[list[Endpoint], Counter[str]]]:
    """n real TCP servers on distinct loopback addresses; each answers with its own name."""
    hits: Counter[str] = Counter()
    servers = []
    endpoints = []
    for i in range(n):
        name = f"db-{i}"

        async def handle(r: asyncio.StreamReader, w: asyncio.StreamWriter, name: str = name) -> None:
            hits[name] += 1
            w.write(name.encode() + b"\n")
            await w.drain()
            w.close()

        srv = await asyncio.start_server(handle, f"127.0.{i + 10}.1", 0)
        port = srv.sockets[0].getsockname()[1]
        servers.append(srv)
        endpoints.append(Endpoint(address=f"127.0.{i + 10}.1", port=port, hostname=name))
    try:
        yield endpoints, hits
    finally:
        for s in servers:
            s.close()
            await s.wait_closed()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_pick_raises_no_endpoints_with_the_reason() -> None:
    async with lb.Balancer("db", source=lb.Static([])) as pool:
        with pytest.raises(lb.NoEndpoints, match=r"svc\.cluster\.local: no endpoints configured"):
            pool.pick()


async def test_terminating_and_unready_endpoints_are_drained() -> None:
    """given one ready, one terminating, one unready endpoint, only the ready one is picked."""
    eps = [
        Endpoint("127.0.0.1", 1, hostname="a"),
        Endpoint("127.0.0.2", 1, hostname="b", terminating=True, ready=False, serving=True),
        Endpoint("127.0.0.3", 1, hostname="c", ready=False),
    ]
    async with lb.Balancer("db", source=lb.Static(eps)) as pool:
        assert {pool.pick().hostname for _ in range(20)} == {"a"}
        assert len(pool.endpoints) == 3
        with pytest.raises(lb.NoEndpoints, match="not ready"):
            pool.endpoint("c")


async def test_endpoint_by_stable_name() -> None:
    eps = [Endpoint("127.0.0.1", 5432, hostname="db-0"), Endpoint("127.0.0.2", 5432, hostname="db-1")]
    async with lb.Balancer("db", source=lb.Static(eps)) as pool:
        assert pool.endpoint("db-1").address == "127.0.0.2"
        with pytest.raises(lb.EndpointNotFound):
            pool.endpoint("db-7")


async def test_ejected_endpoint_is_never_picked_while_a_healthy_one_exists() -> None:
    eps = [Endpoint("127.0.0.1", 1, hostname="a"), Endpoint("127.0.0.2", 1, hostname="b")]
    cfg = lb.OutlierConfig(consecutive_failures=1, base_ejection=30)
    async with lb.Balancer("db", source=lb.Static(eps), outlier=cfg) as pool:
        pool.report_failure(eps[0])
        assert {pool.pick().hostname for _ in range(50)} == {"b"}
        assert pool.stats()["ejected"] == [eps[0].key]


async def test_panic_mode_uses_all_when_all_are_ejected() -> None:
    eps = [Endpoint("127.0.0.1", 1, hostname="a"), Endpoint("127.0.0.2", 1, hostname="b")]
    cfg = lb.OutlierConfig(consecutive_failures=1, base_ejection=30)
    async with lb.Balancer("db", source=lb.Static(eps), outlier=cfg) as pool:
        for e in eps:
            pool.report_failure(e)
        assert {pool.pick().hostname for _ in range(50)} == {"a", "b"}


async def test_membership_change_is_seen_at_once() -> None:
    src = lb.Static([Endpoint("127.0.0.1", 1, hostname="a")])
    changes: list[int] = []
    hooks = lb.Hooks(on_update=lambda e: changes.append(len(e)))
    async with lb.Balancer("db", source=src, hooks=hooks) as pool:
        src.set([Endpoint("127.0.0.1", 1, hostname="a"), Endpoint("127.0.0.2", 1, hostname="b")])
        assert {pool.pick().hostname for _ in range(10)} == {"a", "b"}
        src.set([])
        with pytest.raises(lb.NoEndpoints):
            pool.pick()
    assert changes == [1, 2, 0]


async def test_keyed_picks_are_consistent() -> None:
    eps = [Endpoint(f"127.0.0.{i}", 1, hostname=f"p{i}") for i in range(1, 6)]
    async with lb.Balancer("db", source=lb.Static(eps), policy="least_outstanding") as pool:
        assert len({pool.pick(key="customer-42") for _ in range(20)}) == 1


async def test_connection_fails_over_to_a_live_pod_and_ejects_the_dead_one() -> None:
    """given one dead and two live pods, every connection succeeds and the dead pod is ejected."""
    async with tcp_servers(2) as (live, hits):
        dead = Endpoint("127.0.0.1", closed_port(), hostname="dead")
        cfg = lb.OutlierConfig(consecutive_failures=1, base_ejection=30)
        pool = lb.Balancer("db", source=lb.Static([dead, *live]), outlier=cfg, rng=random.Random(0))
        async with pool:
            for _ in range(10):
                async with pool.connection() as (reader, _writer):
                    assert (await reader.readline()).startswith(b"db-")
            assert pool.stats()["ejected"] == [dead.key]
            assert sum(hits.values()) == 10


async def test_connection_to_named_pod() -> None:
    async with tcp_servers(3) as (live, _hits):
        async with lb.Balancer("db", source=lb.Static(live)) as pool:
            async with pool.connection(endpoint="db-2") as (reader, _):
                assert await reader.readline() == b"db-2\n"


async def test_connection_error_lists_every_attempt() -> None:
    dead = [Endpoint("127.0.0.1", closed_port(), hostname=f"d{i}") for i in range(2)]
    async with lb.Balancer("db", source=lb.Static(dead), attempts=3) as pool:
        with pytest.raises(lb.ConnectError) as info:
            async with pool.connection():
                pass
        assert len(info.value.attempts) == 2


async def test_call_retries_idempotent_work_elsewhere() -> None:
    eps = [Endpoint("127.0.0.1", 1, hostname="a"), Endpoint("127.0.0.2", 1, hostname="b")]
    seen: list[str] = []

    async def work(ep: Endpoint) -> str:
        seen.append(ep.hostname or "")
        if ep.hostname == "a":
            raise ConnectionRefusedError("down")
        return "ok"

    async with lb.Balancer("db", source=lb.Static(eps), policy="round_robin") as pool:
        for _ in range(4):
            assert await pool.call(work) == "ok"
    assert "b" in seen


async def test_active_check_ejects_and_readmits() -> None:
    async with tcp_servers(1) as (live, _):
        dead = Endpoint("127.0.0.1", closed_port(), hostname="dead")
        check = lb.TCPCheck(interval=0.05, timeout=0.5)
        async with lb.Balancer("db", source=lb.Static([dead, *live]), health_check=check) as pool:
            for _ in range(100):
                if pool.stats()["ejected"]:
                    break
                await asyncio.sleep(0.02)
            assert pool.stats()["ejected"] == [dead.key]
            assert {pool.pick().hostname for _ in range(20)} == {"db-0"}


def test_sync_balancer_connects_in_the_callers_thread() -> None:
    srv = socket.socket()
    srv.bind(("127.0.0.5", 0))
    srv.listen()
    port = srv.getsockname()[1]
    dead = Endpoint("127.0.0.1", closed_port(), hostname="dead")
    live = Endpoint("127.0.0.5", port, hostname="live")
    with lb.SyncBalancer("db", source=lb.Static([dead, live]), attempts=2) as pool:
        for _ in range(3):
            with pool.connection() as sock:
                conn, _ = srv.accept()
                conn.close()
                assert sock.getpeername()[0] == "127.0.0.5"
        assert pool.endpoint("live") == live
    srv.close()


def test_libpq_conninfo_lists_pods_primary_first() -> None:
    eps = [
        Endpoint("127.0.0.3", 5432, hostname="db-10"),
        Endpoint("127.0.0.2", 5432, hostname="db-1"),
        Endpoint("127.0.0.1", 5432, hostname="db-0"),
        Endpoint("127.0.0.9", 5432, hostname="db-2", ready=False),
    ]
    s = lb.conninfo(eps, service_domain="db-service.default.svc.cluster.local", dbname="app", user="me")
    assert s == (
        "host=db-0.db-service.default.svc.cluster.local,db-1.db-service.default.svc.cluster.local,"
        "db-10.db-service.default.svc.cluster.local port=5432,5432,5432 dbname=app user=me "
        "connect_timeout=2 target_session_attrs=read-write"
    )


async def test_call_timeout_moves_past_a_pod_that_accepts_and_hangs() -> None:
    """given a pod that accepts connections but never answers, a bounded call retries on a
    pod that answers, and reports the hanging one."""
    async def hang(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await asyncio.sleep(30)

    async def answer(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        w.write(b"pong\n")
        await w.drain()

    slow = await asyncio.start_server(hang, "127.0.0.21", 0)
    fast = await asyncio.start_server(answer, "127.0.0.22", 0)
    eps = [Endpoint("127.0.0.21", slow.sockets[0].getsockname()[1], hostname="slow"),
           Endpoint("127.0.0.22", fast.sockets[0].getsockname()[1], hostname="fast")]

    async def ping(ep: Endpoint) -> bytes:
        reader, writer = await asyncio.open_connection(ep.address, ep.port)
        try:
            return await reader.readline()
        finally:
            writer.close()

    try:
        cfg = lb.OutlierConfig(consecutive_failures=1, base_ejection=30)
        async with lb.Balancer("db", source=lb.Static(eps), outlier=cfg, policy="round_robin") as pool:
            for _ in range(4):
                assert await pool.call(ping, timeout=0.3) == b"pong\n"
            assert pool.stats()["ejected"] == [eps[0].key]
    finally:
        for s in (slow, fast):
            s.close()
