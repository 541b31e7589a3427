"""Pod Ready -> EndpointSlice updated: latency of the EndpointSlice controller over real HTTP.

Set-up: `podns apiserver` (memory store) and `podns controller-manager --no-leader-elect` as two
processes on loopback; one headless Service selecting `--pods` Running pods. The benchmark
flips one pod's Ready condition at a time (PATCH pods/status) `--flips` times and, through two
watches opened beforehand, measures for each flip:

- pod watch:  PATCH sent -> the pod's MODIFIED event arrives (the API server's own write ->
  watch propagation: the floor any controller sits on; the "peer" measured side by side);
- slice:      PATCH sent -> an EndpointSlice event shows the endpoint with the new `ready`
  (watch -> controller queue -> sync -> PUT -> watch).

Prints p50 / p99 / max of both and the controller's share (slice minus floor). Usage:

    python bench/controllers_latency.py [--flips 1000] [--pods 10]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _controllers_cluster import apiserver, controller_manager, create_ready_pod

from podns.kube.client import Client
from podns.kube.resources import ENDPOINTSLICES, PODS, SERVICES


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(p / 100 * (len(values) - 1)))]


def stamp() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


async def setup(client: Client, n: int) -> None:
    await client.create(
        SERVICES,
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "bench"},
            "spec": {"clusterIP": "None", "selector": {"app": "bench"}, "ports": [{"name": "p", "port": 80}]},
        },
        "default",
    )
    for i in range(n):
        await create_ready_pod(client, f"p{i}", {"app": "bench"}, f"127.20.0.{i + 1}", node="n1")


async def run(kubeconfig: Path, flips: int, n: int) -> tuple[list[float], list[float]]:
    async with Client.from_kubeconfig(kubeconfig) as client, Client.from_kubeconfig(kubeconfig) as watcher:
        await setup(client, n)
        waiters: dict[tuple[str, str, bool], asyncio.Future[float]] = {}

        def arrived(kind: str, pod: str, ready: bool) -> None:
            fut = waiters.get((kind, pod, ready))
            if fut is not None and not fut.done():
                fut.set_result(time.perf_counter())

        async def watch_slices() -> None:
            rv = (await watcher.list(ENDPOINTSLICES, "default"))["metadata"]["resourceVersion"]
            async for ev in watcher.watch(ENDPOINTSLICES, "default", resource_version=rv):
                for e in ev.object.get("endpoints") or []:
                    arrived("slice", e["targetRef"]["name"], bool(e["conditions"]["ready"]))

        async def watch_pods() -> None:
            rv = (await watcher.list(PODS, "default"))["metadata"]["resourceVersion"]
            async for ev in watcher.watch(PODS, "default", resource_version=rv):
                conds = {c["type"]: c["status"] for c in ev.object.get("status", {}).get("conditions") or []}
                arrived("pod", ev.object["metadata"]["name"], conds.get("Ready") == "True")

        tasks = [asyncio.create_task(watch_slices()), asyncio.create_task(watch_pods())]
        # wait until the controller published every pod as ready
        while True:
            items = (await client.list(ENDPOINTSLICES, "default"))["items"]
            if sum(1 for s in items for e in s.get("endpoints") or [] if e["conditions"]["ready"]) == n:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)
        state = {f"p{i}": True for i in range(n)}
        slice_lat: list[float] = []
        pod_lat: list[float] = []
        for k in range(flips):
            pod = f"p{k % n}"
            ready = not state[pod]
            state[pod] = ready
            loop = asyncio.get_running_loop()
            f_slice = waiters[("slice", pod, ready)] = loop.create_future()
            f_pod = waiters[("pod", pod, ready)] = loop.create_future()
            t0 = time.perf_counter()
            await client.patch(
                PODS,
                pod,
                {
                    "status": {
                        "conditions": [
                            {
                                "type": "Ready",
                                "status": "True" if ready else "False",
                                "lastTransitionTime": stamp(),
                            }
                        ]
                    }
                },
                "default",
                subresource="status",
            )
            t_slice = await asyncio.wait_for(f_slice, 10)
            t_pod = await asyncio.wait_for(f_pod, 10)
            slice_lat.append((t_slice - t0) * 1000)
            pod_lat.append((t_pod - t0) * 1000)
            del waiters[("slice", pod, ready)], waiters[("pod", pod, ready)]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        return slice_lat, pod_lat


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flips", type=int, default=1000)
    parser.add_argument("--pods", type=int, default=10)
    args = parser.parse_args()
    with apiserver() as kubeconfig, controller_manager(kubeconfig):
        slice_lat, pod_lat = asyncio.run(run(kubeconfig, args.flips, args.pods))
    print(f"flips: {len(slice_lat)}  pods: {args.pods}")
    print(f"{'':28} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    for label, vals in (("pod watch (API floor)", pod_lat), ("EndpointSlice updated", slice_lat)):
        print(f"{label:28} {pct(vals, 50):8.2f} {pct(vals, 99):8.2f} {max(vals):8.2f}")
    share = [s - p for s, p in zip(slice_lat, pod_lat, strict=True)]
    print(
        f"{'controller share (slice-pod)':28} {pct(share, 50):8.2f} {pct(share, 99):8.2f} {max(share):8.2f}"
    )
    print(f"ratio slice/pod-watch p50: {statistics.median(slice_lat) / statistics.median(pod_lat):.2f}x")


if __name__ == "__main__":
    main()
