"""Real PostgreSQL replicas through podns.lb: read throughput, and failover when a replica goes.

    sudo .venv/bin/python bench/pg_reads.py [--seconds 10] [--clients 8] [--rounds 3]

Starts `podns up --pod-network netns --container-runtime process` (root: Debian's PostgreSQL,
offline), its own Secret (as README says to outside a try-out: a random password, not
01-secret.yaml's example one), examples/postgres/00-runtimeclass.yaml and db.yaml (db-0 primary,
db-1 and db-2 streaming replicas), fills a 10 000-row table on the primary, then:

1. read throughput, side by side for the same time and number of clients, each client running
   `SELECT sum(v) FROM bench WHERE id BETWEEN k AND k+99` back to back on its own connections:
   - `lb 2 replicas`: podns.lb (EndpointSlice watch, round robin) over the ready standbys db-1
     and db-2, one connection per client and replica, a pick per query;
   - `fixed db-1`: every client on db-1 only (what an app with one replica host configured does);
2. failover: readers through podns.lb (watch source and DNS source, round robin over the ready
   pods, a query every 5 ms each); db-2 is deleted (graceful, SIGINT fast shutdown); per source,
   the time from the DELETE to the last query sent to the deleted db-2 (failed, or answered by
   the old server: each answer carries `pg_postmaster_start_time()`, so the new db-2, back under
   the same name within seconds, does not count). Repeated `--rounds` times.

Both PostgreSQL servers and the clients share this machine's cores: more replicas only spread
the work when the replicas have cores of their own; on one machine the figure shows the cost of
the balancing, not a scale-out.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import psycopg
from _node_cluster import REPO, pct, podns_up

from podns import lb
from podns.kube import resources
from podns.kube.client import Client

SERVICE_CIDR = "127.213.0.0/16"


def kubectl(kubeconfig: str, *args: str) -> str:
    r = subprocess.run(["kubectl", f"--kubeconfig={kubeconfig}", *args], capture_output=True, text=True)
    if r.returncode:
        raise SystemExit(f"kubectl {' '.join(args)}: {r.stderr}")
    return r.stdout


def standbys(eps: list[lb.Endpoint]) -> list[lb.Endpoint]:
    return [e for e in eps if e.usable and e.hostname in ("db-1", "db-2")]


async def connect(ep: lb.Endpoint, password: str) -> psycopg.AsyncConnection[Any]:
    return await psycopg.AsyncConnection.connect(
        lb.conninfo([ep], user="postgres", dbname="postgres", use_names=False, target_session_attrs="any"),
        password=password, autocommit=True)


QUERY = "SELECT sum(v) FROM bench WHERE id BETWEEN %s AND %s + 99"


async def throughput(pick: Callable[[], lb.Endpoint], password: str, clients: int,
                     seconds: float) -> tuple[float, list[float]]:
    """Queries per second and latencies of `clients` readers sending QUERY to `pick()`."""
    latencies: list[float] = []
    deadline = time.monotonic() + seconds

    async def client(n: int) -> None:
        conns: dict[str, psycopg.AsyncConnection[Any]] = {}
        try:
            k = n * 1000
            while time.monotonic() < deadline:
                ep = pick()
                conn = conns.get(ep.key) or conns.setdefault(ep.key, await connect(ep, password))
                t0 = time.perf_counter()
                await conn.execute(QUERY, (k % 9900, k % 9900))
                latencies.append(time.perf_counter() - t0)
                k += 137
        finally:
            for c in conns.values():
                await c.close()

    start = time.monotonic()
    await asyncio.gather(*(client(n) for n in range(clients)))
    return len(latencies) / (time.monotonic() - start), latencies


async def failover_round(pools: dict[str, lb.Balancer], api: Client, password: str) -> dict[str, float]:
    """Delete db-2 while every pool's reader queries every 5 ms; per pool, seconds from the
    DELETE to the last query sent to the old db-2 (failed, or answered by its server)."""
    stop = asyncio.Event()
    #: (time sent, pod, the answering server's start time or None when the query failed)
    sent: dict[str, list[tuple[float, str, Any]]] = {name: [] for name in pools}

    async def reader(name: str, pool: lb.Balancer) -> None:
        conns: dict[str, psycopg.AsyncConnection[Any]] = {}
        while not stop.is_set():
            try:
                ep = pool.pick()
            except lb.NoEndpoints:
                await asyncio.sleep(0.005)
                continue
            t = time.monotonic()
            started: Any = None
            try:
                conn = conns.get(ep.key)
                if conn is None or conn.closed:
                    conn = conns[ep.key] = await asyncio.wait_for(connect(ep, password), 2)
                cur = await asyncio.wait_for(conn.execute("SELECT pg_postmaster_start_time()"), 2)
                row = await cur.fetchone()
                started = row[0] if row else None
                pool.report_success(ep)
            except (psycopg.Error, OSError, TimeoutError):
                pool.report_failure(ep)
                conns.pop(ep.key, None)
            sent[name].append((t, ep.hostname or ep.address, started))
            await asyncio.sleep(0.005)
        for c in conns.values():
            await c.close()

    tasks = [asyncio.create_task(reader(n, p)) for n, p in pools.items()]
    await asyncio.sleep(1.0)
    t0 = time.monotonic()
    await api.delete(resources.PODS, "db-2", "default")
    await asyncio.sleep(8.0)
    stop.set()
    await asyncio.gather(*tasks)
    out = {}
    for n, s in sent.items():
        old = {st for t, host, st in s if host == "db-2" and t < t0 and st is not None}
        out[n] = max((t for t, host, st in s if host == "db-2" and t >= t0 and (st is None or st in old)),
                     default=t0) - t0
    return out


async def until(what: str, cond: Callable[[], Awaitable[bool]], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not await cond():
        if time.monotonic() > deadline:
            raise SystemExit(f"pg_reads: timed out waiting for {what}")
        await asyncio.sleep(0.5)


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("pg_reads: needs root (podns up --pod-network netns)")
    password = secrets.token_hex(16)
    with podns_up("--pod-network", "netns", "--container-runtime", "process",
                  "--service-cidr", SERVICE_CIDR) as cluster:
        kc = str(cluster.kubeconfig)
        kubectl(kc, "create", "secret", "generic", "db-secret", f"--from-literal=password={password}")
        kubectl(kc, "apply", "-f", str(REPO / "examples" / "postgres" / "00-runtimeclass.yaml"),
                "-f", str(REPO / "examples" / "postgres" / "db.yaml"))
        dns_server = f"{cluster.dns_addr[0]}:{cluster.dns_addr[1]}"
        async with (
            Client.from_kubeconfig(kc) as api,
            lb.Balancer("db-service", port="postgres", source=lb.Watch(kc)) as watch_pool,
        ):
            await watch_pool.wait_for(lambda eps: len([e for e in eps if e.usable]) == 3, 180)
            primary = watch_pool.endpoint("db-0")
            conn = await connect(primary, password)
            async with conn:
                await conn.execute("CREATE TABLE bench (id int PRIMARY KEY, v int)")
                await conn.execute("INSERT INTO bench SELECT i, i % 97 FROM generate_series(1, 10000) i")
            for name in ("db-1", "db-2"):
                async def replicated(ep: lb.Endpoint = watch_pool.endpoint(name)) -> bool:
                    try:
                        async with await connect(ep, password) as c:
                            row = await (await c.execute("SELECT count(*) FROM bench")).fetchone()
                            return bool(row and row[0] == 10000)
                    except psycopg.Error:
                        return False
                await until(f"the table on {name}", replicated, 30)

            replicas = standbys(watch_pool.endpoints)
            rr = iter(range(1 << 62))

            def pick_replica() -> lb.Endpoint:
                ready = standbys(watch_pool.endpoints)
                return ready[next(rr) % len(ready)] if ready else watch_pool.pick()

            fixed = watch_pool.endpoint("db-1")
            print(f"read throughput, {args.clients} clients, {args.seconds:g} s each "
                  f"(replicas: {', '.join(str(e) for e in replicas)})")
            print(f"{'target':<16}{'queries/s':>10}{'p50 ms':>9}{'p99 ms':>9}")
            for label, pick in (("lb 2 replicas", pick_replica), ("fixed db-1", lambda: fixed)):
                qps, lat = await throughput(pick, password, args.clients, args.seconds)
                p50, p99 = statistics.median(lat) * 1000, pct(lat, 99) * 1000
                print(f"{label:<16}{qps:>10.0f}{p50:>9.2f}{p99:>9.2f}")

            dns_source = lb.DNS(server=dns_server)
            async with lb.Balancer("db-service", port="postgres", source=dns_source) as dns_pool:
                pools = {"watch": watch_pool, "dns": dns_pool}
                results: dict[str, list[float]] = {n: [] for n in pools}
                for _ in range(args.rounds):
                    for n, v in (await failover_round(pools, api, password)).items():
                        results[n].append(v)
                    await watch_pool.wait_for(lambda eps: len([e for e in eps if e.usable]) == 3, 120)
                    await dns_pool.wait_for(lambda eps: len(eps) == 3, 30)
                print(f"failover: time from deleting db-2 to the last read sent to it ({args.rounds} rounds)")
                print(f"{'source':<8}{'median ms':>10}{'max ms':>9}")
                for n, vals in results.items():
                    print(f"{n:<8}{statistics.median(vals) * 1000:>10.0f}{max(vals) * 1000:>9.0f}")


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    asyncio.run(main())
