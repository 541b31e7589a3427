"""Store throughput and watch latency: SQLite vs etcd, side by side in one run.

For each backend: sequential create and update latency (p50/p99) and throughput from one task,
create throughput with 16 concurrent writers, and watch delivery latency (p50/p99 from calling
the write to the event arriving at a watcher, writes paced at ~500/s so the figure is latency,
not queueing), for one watcher and at each of 100 watchers of one prefix. etcd is a single
member started here on loopback with its data on disk (as SQLite's), so its fsync per commit
is in the figure.

Each round runs SQLite then etcd on fresh stores; the table shows the median over `--rounds`
and the ratio SQLite / etcd (above 1 for rates means SQLite is faster; below 1 for latencies
means SQLite is faster).

Usage: .venv/bin/python bench/store_throughput.py [--n 2000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from _common import pct

from podns.store.etcd import EtcdStore
from podns.store.interface import Store
from podns.store.sqlite import SQLiteStore
from tests.etcd_cluster import etcd_available, start_etcd_cluster


def obj(i: int, gen: int = 0) -> dict[str, Any]:
    """A pod-sized object (~600 bytes of JSON)."""
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": f"web-{i}", "namespace": "default", "labels": {"app": "web"},
                     "uid": f"00000000-0000-0000-0000-{i:012d}"},
        "spec": {"hostname": f"web-{i}", "subdomain": "web", "nodeName": "node-1",
                 "containers": [{"name": "app", "image": "busybox", "command": ["sleep", "3600"],
                                 "ports": [{"containerPort": 8080, "protocol": "TCP"}]}]},
        "status": {"phase": "Running", "podIP": f"127.0.{i // 250}.{i % 250 + 1}", "gen": gen,
                   "conditions": [{"type": "Ready", "status": "True"}]},
    }


async def bench(store: Store, n: int) -> dict[str, float]:
    out: dict[str, float] = {}
    lat: list[float] = []
    t0 = time.perf_counter()
    for i in range(n):
        t = time.perf_counter()
        await store.create(f"pods/default/web-{i}", obj(i))
        lat.append(time.perf_counter() - t)
    out["create/s (1 task)"] = n / (time.perf_counter() - t0)
    out["create p50 ms"] = pct(lat, 0.5) * 1e3
    out["create p99 ms"] = pct(lat, 0.99) * 1e3
    lat = []
    t0 = time.perf_counter()
    for i in range(n):
        t = time.perf_counter()
        await store.update(f"pods/default/web-{i}", obj(i, 1))
        lat.append(time.perf_counter() - t)
    out["update/s (1 task)"] = n / (time.perf_counter() - t0)
    out["update p50 ms"] = pct(lat, 0.5) * 1e3
    out["update p99 ms"] = pct(lat, 0.99) * 1e3

    async def writer(w: int, count: int) -> None:
        for i in range(count):
            await store.create(f"pods/conc/w{w}-{i}", obj(i))

    t0 = time.perf_counter()
    await asyncio.gather(*(writer(w, n // 16) for w in range(16)))
    out["create/s (16 tasks)"] = (n // 16 * 16) / (time.perf_counter() - t0)

    sent: dict[str, float] = {}
    delays: list[float] = []
    m = min(n, 1000)
    w = store.watch("pods/lat/", await store.current_rv())

    async def watcher() -> None:
        async for ev in w:
            delays.append(time.perf_counter() - sent[ev.key])
            if len(delays) == m:
                return

    task = asyncio.create_task(watcher())
    await asyncio.sleep(0.2)
    for i in range(m):
        key = f"pods/lat/web-{i}"
        sent[key] = time.perf_counter()
        await store.create(key, obj(i))
        await asyncio.sleep(0.002)
    await asyncio.wait_for(task, 30)
    await w.aclose()  # type: ignore[attr-defined]
    out["watch p50 ms"] = pct(delays, 0.5) * 1e3
    out["watch p99 ms"] = pct(delays, 0.99) * 1e3
    out["watch mean ms"] = statistics.fmean(delays) * 1e3
    fan = await fan_out(store, watchers=100, writes=min(n, 300))
    out["100 watchers p50 ms"] = pct(fan, 0.5) * 1e3
    out["100 watchers p99 ms"] = pct(fan, 0.99) * 1e3
    return out


async def fan_out(store: Store, *, watchers: int, writes: int) -> list[float]:
    """Delays from write to event at each of `watchers` watchers of the same prefix."""
    sent: dict[str, float] = {}
    delays: list[float] = []
    start = await store.current_rv()
    streams = [store.watch("pods/fan/", start) for _ in range(watchers)]

    async def watcher(w: Any) -> None:
        got = 0
        async for ev in w:
            delays.append(time.perf_counter() - sent[ev.key])
            got += 1
            if got == writes:
                return

    tasks = [asyncio.create_task(watcher(w)) for w in streams]
    await asyncio.sleep(0.5)
    for i in range(writes):
        key = f"pods/fan/web-{i}"
        sent[key] = time.perf_counter()
        await store.create(key, obj(i))
        await asyncio.sleep(0.005)
    await asyncio.wait_for(asyncio.gather(*tasks), 60)
    for w in streams:
        await w.aclose()  # type: ignore[attr-defined]
    return delays


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="objects per phase")
    parser.add_argument("--rounds", type=int, default=3, help="rounds (medians are reported)")
    args = parser.parse_args()
    runs: dict[str, list[dict[str, float]]] = {"sqlite": []}
    cluster = start_etcd_cluster(1, on_disk=True) if etcd_available() else None
    if cluster is not None:
        runs["etcd"] = []
    try:
        for _ in range(args.rounds):
            with tempfile.TemporaryDirectory() as d:
                store: Store = SQLiteStore(Path(d) / "bench.db")
                runs["sqlite"].append(await bench(store, args.n))
                await store.close()
            if cluster is not None:
                store = EtcdStore(cluster.endpoints, root=f"/b-{uuid.uuid4().hex[:6]}/",
                                  compact_interval=0)
                runs["etcd"].append(await bench(store, args.n))
                await store.close()
    finally:
        if cluster is not None:
            cluster.close()
    names = list(runs)
    med = {n: {k: statistics.median(r[k] for r in runs[n]) for k in runs[n][0]} for n in names}
    print(f"n={args.n} objects per phase, median of {args.rounds} rounds")
    print(f"{'metric':<22}" + "".join(f"{n:>12}" for n in names)
          + ("   sqlite/etcd" if len(names) == 2 else ""))
    for metric in med["sqlite"]:
        row = [med[n][metric] for n in names]
        ratio = f"{row[0] / row[1]:>14.2f}" if len(row) == 2 and row[1] else ""
        print(f"{metric:<22}" + "".join(f"{v:>12.2f}" for v in row) + ratio)


if __name__ == "__main__":
    asyncio.run(main())
