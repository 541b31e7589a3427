"""Failover: after a pod is deleted, how long until no request goes to it.

    .venv/bin/python bench/lb_failover.py [--rounds 5]

Starts `podns up`, runs a 3-pod StatefulSet behind a headless Service, and drives three
clients side by side, each sending one request (a TCP connect) every 10 ms:

- `watch`: podns.lb with the EndpointSlice watch source;
- `dns`:   podns.lb with the DNS source (TTL 5 s, re-resolution after failures);
- `plain`: the peer, a getaddrinfo-style client: it resolves the name on every request (no
  cache, the best case for getaddrinfo) and picks a random address; no health tracking.
  (getaddrinfo itself cannot be pointed at a DNS port other than 53, so the same stub query is
  made with dnspython.)
- `cached`: the same client behind a TTL-honouring cache (nscd, systemd-resolved, a JVM with
  its cache set to the TTL): it re-resolves only when the 5 s TTL has run out.

Each round deletes one pod (an API DELETE, graceful) and records, per client, the time
from the delete to the last request that still went to that pod. Prints median and max.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import subprocess
import sys
import time

import dns.asyncquery
import dns.message
import dns.rdatatype
from _node_cluster import REPO, podns_up

from podns import lb
from podns.kube import resources
from podns.kube.client import Client

MANIFEST = """
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  clusterIP: None
  selector: {app: web}
  ports: [{name: http, port: 8080}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: web}
spec:
  serviceName: web
  replicas: 3
  podManagementPolicy: Parallel
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      terminationGracePeriodSeconds: 2
      containers:
      - name: web
        image: python
        command: ["PYTHON", "-m", "http.server", "8080", "--bind", "$(POD_IP)"]
        env: [{name: POD_IP, valueFrom: {fieldRef: {fieldPath: status.podIP}}}]
        ports: [{name: http, containerPort: 8080}]
        readinessProbe: {tcpSocket: {port: http}, periodSeconds: 1}
"""
NAME = "web.default.svc.cluster.local"


def kubectl(kubeconfig: str, *args: str, input: str | None = None) -> str:
    cmd = ["kubectl", f"--kubeconfig={kubeconfig}", *args]
    r = subprocess.run(cmd, input=input, capture_output=True, text=True)
    if r.returncode:
        raise SystemExit(f"kubectl {' '.join(args)}: {r.stderr}")
    return r.stdout


async def connect(address: str) -> None:
    try:
        _, w = await asyncio.wait_for(asyncio.open_connection(address, 8080), 0.5)
        w.close()
    except (OSError, TimeoutError):
        pass


class Recorder:
    def __init__(self, name: str) -> None:
        self.name = name
        self.sent: list[tuple[float, str]] = []

    def last_to(self, address: str, after: float) -> float:
        times = [t for t, a in self.sent if a == address and t >= after]
        return (max(times) - after) if times else 0.0


async def run_pool(client: Recorder, pool: lb.Balancer, stop: asyncio.Event) -> None:
    while not stop.is_set():
        try:
            ep = pool.pick()
        except lb.NoEndpoints:
            await asyncio.sleep(0.01)
            continue
        client.sent.append((time.monotonic(), ep.address))
        try:
            _, w = await asyncio.wait_for(asyncio.open_connection(ep.address, 8080), 0.5)
            w.close()
            pool.report_success(ep)
        except (OSError, TimeoutError):
            pool.report_failure(ep)
        await asyncio.sleep(0.01)


async def run_plain(client: Recorder, server: tuple[str, int], stop: asyncio.Event, cache: bool) -> None:
    rng = random.Random(1)
    addrs: list[str] = []
    expires = 0.0
    while not stop.is_set():
        if not cache or time.monotonic() >= expires:
            q = dns.message.make_query(NAME, dns.rdatatype.A)
            try:
                resp = await dns.asyncquery.udp(q, server[0], port=server[1], timeout=1)
                addrs = [rr.address for rrset in resp.answer for rr in rrset]
                expires = time.monotonic() + min((r.ttl for r in resp.answer), default=0)
            except Exception:
                addrs = []
        if addrs:
            address = rng.choice(addrs)
            client.sent.append((time.monotonic(), address))
            await connect(address)
        await asyncio.sleep(0.01)


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    with podns_up() as cluster:
        kc = str(cluster.kubeconfig)
        kubectl(kc, "apply", "-f", "-", input=MANIFEST.replace("PYTHON", sys.executable))
        server = f"{cluster.dns_addr[0]}:{cluster.dns_addr[1]}"
        async with (
            Client.from_kubeconfig(kc) as api,
            lb.Balancer(NAME, port="http", source=lb.Watch(kc)) as watch_pool,
            lb.Balancer(NAME, port="http", source=lb.DNS(server=server)) as dns_pool,
        ):
            await watch_pool.wait_for(lambda eps: len([e for e in eps if e.usable]) == 3, 60)
            await dns_pool.wait_for(lambda eps: len(eps) == 3, 60)
            results: dict[str, list[float]] = {"watch": [], "dns": [], "plain": [], "cached": []}
            for rnd in range(args.rounds):
                clients = {n: Recorder(n) for n in results}
                stop = asyncio.Event()
                tasks = [
                    asyncio.create_task(run_pool(clients["watch"], watch_pool, stop)),
                    asyncio.create_task(run_pool(clients["dns"], dns_pool, stop)),
                    asyncio.create_task(run_plain(clients["plain"], cluster.dns_addr, stop, cache=False)),
                    asyncio.create_task(run_plain(clients["cached"], cluster.dns_addr, stop, cache=True)),
                ]
                await asyncio.sleep(1.0)
                victim = f"web-{rnd % 3}"
                ip = kubectl(kc, "get", "pod", victim, "-o", "jsonpath={.status.podIP}")
                t0 = time.monotonic()
                await api.delete(resources.PODS, victim, "default")
                await asyncio.sleep(8.0)
                stop.set()
                await asyncio.gather(*tasks)
                for name, c in clients.items():
                    results[name].append(c.last_to(ip, t0))
                # Let the replacement pod become ready before the next round.
                await watch_pool.wait_for(lambda eps: len([e for e in eps if e.usable]) == 3, 60)
                await asyncio.sleep(6.0)
            print(f"{'client':<8}{'median ms':>12}{'max ms':>10}   (time from delete to last request "
                  f"sent to the deleted pod; {args.rounds} rounds)")
            for name, vals in results.items():
                print(f"{name:<8}{statistics.median(vals) * 1000:>12.0f}{max(vals) * 1000:>10.0f}")


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    asyncio.run(main())
