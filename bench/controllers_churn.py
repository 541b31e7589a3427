"""Controller churn: 10,000 pods across 1,000 services created, flipped and deleted.

Set-up as bench/controllers_latency.py: `podns apiserver` (memory store) and `podns
controller-manager --no-leader-elect --controllers endpointslice,endpoints`, two processes on
loopback. The benchmark drives three phases with `--concurrency` parallel requests:

1. create `--services` headless Services and `--pods` pods spread over them, each pod then
   given an IP and Ready=True (2 pod changes per pod);
2. flip every pod to Ready=False (1 change per pod);
3. delete every pod (1 change per pod).

Per phase it measures, from the first write until the controller's output has converged
(watched EndpointSlices hold exactly the expected endpoints): pod changes per second the
controller kept up with, and the EndpointSlice writes per pod change (counted from the slice
watch: each ADDED/MODIFIED/DELETED event is one write). The legacy Endpoints controller runs in
the same process on the same changes: its writes per pod change are printed side by side.

    python bench/controllers_churn.py [--pods 10000] [--services 1000] [--concurrency 32]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _controllers_cluster import apiserver, controller_manager, create_ready_pod

from podns.kube.client import Client
from podns.kube.resources import ENDPOINTS, ENDPOINTSLICES, PODS, SERVICES


class Watched:
    """Slices and Endpoints as seen through watches, with write counters."""

    def __init__(self) -> None:
        self.slices: dict[str, dict[str, bool]] = {}
        self.slice_writes = 0
        self.endpoints_writes = 0
        self.changed = asyncio.Event()

    def totals(self) -> tuple[int, int]:
        eps = [r for s in self.slices.values() for r in s.values()]
        return len(eps), sum(eps)


async def watch(client: Client, w: Watched) -> None:
    async def slices() -> None:
        rv = (await client.list(ENDPOINTSLICES, "default", limit=1))["metadata"]["resourceVersion"]
        async for ev in client.watch(ENDPOINTSLICES, "default", resource_version=rv):
            if ev.type == "BOOKMARK":
                continue
            w.slice_writes += 1
            name = ev.object["metadata"]["name"]
            if ev.type == "DELETED":
                w.slices.pop(name, None)
            else:
                w.slices[name] = {
                    e["targetRef"]["name"]: bool(e["conditions"]["ready"])
                    for e in ev.object.get("endpoints") or []
                }
            w.changed.set()

    async def endpoints() -> None:
        rv = (await client.list(ENDPOINTS, "default", limit=1))["metadata"]["resourceVersion"]
        async for ev in client.watch(ENDPOINTS, "default", resource_version=rv):
            if ev.type != "BOOKMARK":
                w.endpoints_writes += 1

    await asyncio.gather(slices(), endpoints())


async def pool(n: int, jobs: list[Callable[[], Awaitable[Any]]]) -> None:
    queue = list(reversed(jobs))

    async def worker() -> None:
        while queue:
            job = queue.pop()
            for attempt in range(5):
                try:
                    await job()
                    break
                except Exception:
                    if attempt == 4:
                        raise
                    await asyncio.sleep(0.05)

    await asyncio.gather(*(worker() for _ in range(n)))


async def converge(w: Watched, want: tuple[int, int], timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while w.totals() != want:
        w.changed.clear()
        if time.monotonic() > deadline:
            raise TimeoutError(f"not converged: {w.totals()} != {want}")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(w.changed.wait(), 1)


async def run(
    kubeconfig: Path, pods: int, services: int, conc: int
) -> list[tuple[str, int, float, int, int]]:
    results = []
    async with Client.from_kubeconfig(kubeconfig) as client, Client.from_kubeconfig(kubeconfig) as wc:
        w = Watched()
        watcher = asyncio.create_task(watch(wc, w))
        await asyncio.sleep(0.5)

        def svc(i: int) -> Callable[[], Awaitable[Any]]:
            return lambda: client.create(
                SERVICES,
                {
                    "apiVersion": "v1",
                    "kind": "Service",
                    "metadata": {"name": f"s{i}"},
                    "spec": {
                        "clusterIP": "None",
                        "selector": {"svc": f"s{i}"},
                        "ports": [{"name": "p", "port": 80}],
                    },
                },
                "default",
            )

        def create(i: int) -> Callable[[], Awaitable[Any]]:
            async def job() -> None:
                await create_ready_pod(client, f"p{i}", {"svc": f"s{i % services}"},
                                       f"127.{30 + i // 65000}.{i // 250 % 250}.{i % 250 + 1}",
                                       exists_ok=True)

            return job

        def flip(i: int) -> Callable[[], Awaitable[Any]]:
            return lambda: client.patch(
                PODS,
                f"p{i}",
                {"status": {"conditions": [{"type": "Ready", "status": "False"}]}},
                "default",
                subresource="status",
            )

        def delete(i: int) -> Callable[[], Awaitable[Any]]:
            return lambda: client.delete(PODS, f"p{i}", "default", grace_period_seconds=0)

        await pool(conc, [svc(i) for i in range(services)])
        await converge(w, (0, 0))
        for label, jobs, changes, want in (
            ("create + run", [create(i) for i in range(pods)], 2 * pods, (pods, pods)),
            ("flip not-ready", [flip(i) for i in range(pods)], pods, (pods, 0)),
            ("delete", [delete(i) for i in range(pods)], pods, (0, 0)),
        ):
            s0, e0 = w.slice_writes, w.endpoints_writes
            t0 = time.perf_counter()
            await pool(conc, jobs)
            t_driven = time.perf_counter() - t0
            await converge(w, want)
            elapsed = time.perf_counter() - t0
            await asyncio.sleep(1.0)  # late writes still count
            results.append((label, changes, elapsed, w.slice_writes - s0, w.endpoints_writes - e0))
            print(f"  {label}: driven in {t_driven:.1f}s, converged in {elapsed:.1f}s", flush=True)
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, default=10000)
    parser.add_argument("--services", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    with apiserver() as kubeconfig, controller_manager(kubeconfig):
        results = asyncio.run(run(kubeconfig, args.pods, args.services, args.concurrency))
    print(f"pods: {args.pods}  services: {args.services}  concurrency: {args.concurrency}")
    head = ("phase", "changes", "seconds", "changes/s", "slice w/chg", "endpoints w/chg")
    print(f"{head[0]:16} {head[1]:>8} {head[2]:>8} {head[3]:>10} {head[4]:>12} {head[5]:>16}")
    for label, changes, elapsed, sw, ew in results:
        rate = changes / elapsed
        print(f"{label:16} {changes:8} {elapsed:8.1f} {rate:10.0f} {sw / changes:12.3f} {ew / changes:16.3f}")


if __name__ == "__main__":
    main()
