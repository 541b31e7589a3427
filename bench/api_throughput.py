"""API server figures over HTTPS: podns apiserver on SQLite vs on etcd, side by side in one run.

Each backend runs in a real `podns apiserver` process (TLS, bearer token, as kubectl talks to
it). Figures:

- sequential create latency p50/p99 (one client, one request at a time);
- create throughput (objects/s) with `--concurrency` clients, filling the store to `--pods` pods;
- update throughput (merge patches of a label, same concurrency);
- watch delivery latency p50/p99: from sending a write to its event arriving at a watcher,
  writes paced at ~200/s so the figure is latency, not queueing;
- list latency (median of 5) of all `--pods` pods, JSON and Table;
- RSS of the server process holding `--pods` pods (after the lists);
- fan-out: with 100 watchers open, the time from a write until the last watcher has its event,
  and the server's CPU per event per watcher.

The etcd peer is a single member on loopback with its data on disk (SQLite's is on disk too).
Kubernetes' SLO for single-object mutating calls is p99 <= 1 s; podns aims below 10 ms.

Usage: .venv/bin/python bench/api_throughput.py [--pods 10000] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import yaml
from _common import free_port, pct

from tests.etcd_cluster import etcd_available, start_etcd_cluster

PODS = "/api/v1/namespaces/default/pods"
TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"
#: watchers of the fan-out figure
FAN_OUT = 100


def pod(name: str) -> dict[str, Any]:
    """A pod as the StatefulSet controller would create it (~1 KB of JSON once stored)."""
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "db", "statefulset.kubernetes.io/pod-name":
                                              name}},
        "spec": {"hostname": name, "subdomain": "db-service", "containers": [{
            "name": "db", "image": "python:3.11",
            "command": ["python3", "-m", "http.server", "5432"],
            "ports": [{"name": "postgres", "containerPort": 5432}],
            "env": [{"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}],
            "readinessProbe": {"tcpSocket": {"port": "postgres"}}}]},
    }


class Server:
    """A `podns apiserver` subprocess."""

    def __init__(self, store: str | None) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="podns-bench-"))
        self.port = free_port()
        cmd = [sys.executable, "-m", "podns", "apiserver", "--data-dir", str(self.dir),
               "--api-addr", f"127.0.0.1:{self.port}"]
        if store:
            cmd += ["--store", store]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.url = f"https://127.0.0.1:{self.port}"

    async def ready(self) -> None:
        for _ in range(400):
            if (self.dir / "kubeconfig").exists():
                break
            await asyncio.sleep(0.05)
        doc = yaml.safe_load((self.dir / "kubeconfig").read_text())
        self.token = doc["users"][0]["user"]["token"]
        self.ssl = ssl.create_default_context(cafile=str(self.dir / "ca.crt"))

    def rss_mib(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def cpu_seconds(self) -> float:
        """User + system CPU the server process has used."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()


async def run_backend(store: str | None, n_pods: int, concurrency: int) -> dict[str, float]:
    server = Server(store)
    try:
        await server.ready()
        conn = aiohttp.TCPConnector(ssl=server.ssl, limit=concurrency + 4)
        headers = {"Authorization": f"Bearer {server.token}"}
        async with aiohttp.ClientSession(server.url, connector=conn, headers=headers) as http:
            return await measure(http, server, n_pods, concurrency)
    finally:
        server.stop()


async def measure(http: aiohttp.ClientSession, server: Server, n_pods: int,
                  concurrency: int) -> dict[str, float]:
    out: dict[str, float] = {}

    async def create(name: str) -> None:
        async with http.post(PODS, data=orjson.dumps(pod(name)),
                             headers={"Content-Type": "application/json"}) as r:
            assert r.status == 201, await r.text()
            await r.read()

    # sequential create latency
    lat = []
    for i in range(300):
        t = time.perf_counter()
        await create(f"seq-{i}")
        lat.append(time.perf_counter() - t)
    out["create p50 ms (sequential)"] = pct(lat, 0.5) * 1e3
    out["create p99 ms (sequential)"] = pct(lat, 0.99) * 1e3

    # concurrent creates up to n_pods
    names = [f"db-{i}" for i in range(n_pods - 300)]
    queue = iter(names)

    async def worker(fn: Any) -> None:
        for name in queue:
            await fn(name)

    t = time.perf_counter()
    await asyncio.gather(*(worker(create) for _ in range(concurrency)))
    out["create objects/s (concurrent)"] = len(names) / (time.perf_counter() - t)

    # concurrent updates (merge patch of a label)
    upd = names[:min(len(names), 3000)]
    queue = iter(upd)

    async def update(name: str) -> None:
        async with http.patch(f"{PODS}/{name}", data=b'{"metadata":{"labels":{"v":"2"}}}',
                              headers={"Content-Type": "application/merge-patch+json"}) as r:
            assert r.status == 200, await r.text()
            await r.read()

    t = time.perf_counter()
    await asyncio.gather(*(worker(update) for _ in range(concurrency)))
    out["update objects/s (concurrent)"] = len(upd) / (time.perf_counter() - t)

    # watch delivery latency
    async with http.get(PODS, params={"limit": "1"}) as r:
        rv = (await r.json())["metadata"]["resourceVersion"]
    sent: dict[str, float] = {}
    delays: list[float] = []
    samples = 400
    done = asyncio.Event()

    async def watcher(resp: aiohttp.ClientResponse) -> None:
        async for line in resp.content:
            ev = orjson.loads(line)
            name = ev["object"]["metadata"]["name"]
            if ev["type"] == "MODIFIED" and name in sent:
                delays.append(time.perf_counter() - sent.pop(name))
                if len(delays) >= samples:
                    done.set()
                    return

    async with http.get(PODS, params={"watch": "true", "resourceVersion": rv}) as resp:
        task = asyncio.create_task(watcher(resp))
        for i in range(samples):
            name = upd[i % len(upd)]
            sent[name] = time.perf_counter()
            body = orjson.dumps({"metadata": {"labels": {"w": str(i)}}})
            async with http.patch(f"{PODS}/{name}", data=body,
                                  headers={"Content-Type": "application/merge-patch+json"}) as r:
                await r.read()
            await asyncio.sleep(0.005)
        await asyncio.wait_for(done.wait(), 30)
        task.cancel()
    out["watch delivery p50 ms"] = pct(delays, 0.5) * 1e3
    out["watch delivery p99 ms"] = pct(delays, 0.99) * 1e3

    # list latency
    for label, accept in (("JSON", "application/json"), ("Table", TABLE)):
        times = []
        for _ in range(5):
            t = time.perf_counter()
            async with http.get(PODS, headers={"Accept": accept}) as r:
                body = await r.read()
            times.append(time.perf_counter() - t)
        count = len(orjson.loads(body)["items" if label == "JSON" else "rows"])
        assert count == n_pods, count
        out[f"list {n_pods} pods ms ({label})"] = statistics.median(times) * 1e3
    out[f"server RSS MiB with {n_pods} pods"] = server.rss_mib()
    out.update(await fan_out(http, server, upd[:200]))
    return out


async def fan_out(http: aiohttp.ClientSession, server: Server, names: list[str],
                  watchers: int = FAN_OUT) -> dict[str, float]:
    """Server CPU per event and per watcher, and time until the last of `watchers` watchers
    has an event: the cost of fan-out (events are encoded once and the bytes shared)."""
    async with http.get(PODS, params={"limit": "1"}) as r:
        rv = (await r.json())["metadata"]["resourceVersion"]
    conn = aiohttp.TCPConnector(ssl=server.ssl, limit=watchers + 8)
    headers = {"Authorization": f"Bearer {server.token}"}
    arrivals: list[float] = []
    async with aiohttp.ClientSession(server.url, connector=conn, headers=headers) as wsess:
        resps = [await wsess.get(PODS, params={"watch": "true", "resourceVersion": rv},
                                 timeout=aiohttp.ClientTimeout(total=None))
                 for _ in range(watchers)]
        got = asyncio.Event()
        pending = [0]

        async def drain(resp: aiohttp.ClientResponse) -> None:
            async for _line in resp.content:  # count lines, no JSON parsing: the server is measured
                pending[0] -= 1
                if pending[0] == 0:
                    arrivals.append(time.perf_counter())
                    got.set()

        tasks = [asyncio.create_task(drain(r)) for r in resps]
        cpu0 = server.cpu_seconds()
        delays = []
        for name in names:
            got.clear()
            pending[0] = watchers
            t = time.perf_counter()
            body = orjson.dumps({"metadata": {"labels": {"fan": str(t)}}})
            async with http.patch(f"{PODS}/{name}", data=body,
                                  headers={"Content-Type": "application/merge-patch+json"}) as r:
                await r.read()
            await asyncio.wait_for(got.wait(), 30)
            delays.append(arrivals[-1] - t)
        cpu = server.cpu_seconds() - cpu0
        for task in tasks:
            task.cancel()
        for r in resps:
            r.close()
    return {f"fan-out to {watchers} watchers: last p50 ms": pct(delays, 0.5) * 1e3,
            f"fan-out to {watchers} watchers: last p99 ms": pct(delays, 0.99) * 1e3,
            "fan-out server CPU us/event/watcher": cpu / len(names) / watchers * 1e6}


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pods", type=int, default=10_000)
    ap.add_argument("--concurrency", type=int, default=16)
    args = ap.parse_args()
    results: dict[str, dict[str, float]] = {}
    results["sqlite"] = await run_backend(None, args.pods, args.concurrency)
    if etcd_available():
        cluster = start_etcd_cluster(1, on_disk=True)
        try:
            results["etcd"] = await run_backend(cluster.url, args.pods, args.concurrency)
        finally:
            cluster.close()
    keys = list(results["sqlite"])
    print(f"podns apiserver over HTTPS, {args.pods} pods, concurrency {args.concurrency}, "
          f"{os.cpu_count()} CPUs")
    print(f"{'figure':<36} {'sqlite':>10} {'etcd':>10} {'sqlite/etcd':>12}")
    for k in keys:
        a = results["sqlite"][k]
        b = results.get("etcd", {}).get(k, float("nan"))
        print(f"{k:<36} {a:>10.1f} {b:>10.1f} {a / b if b else float('nan'):>12.2f}")


if __name__ == "__main__":
    asyncio.run(main())
