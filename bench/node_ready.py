"""Node agent latency: pod creation -> Ready, and readiness-probe failure -> gone from cluster DNS.

Both measured side by side in one run for podns-tuned probes (periodSeconds 1, failureThreshold 1
for the failure case) and for Kubernetes' default probe settings (periodSeconds 10,
failureThreshold 3) on the same system, so the figure shows what the probe settings cost.

    .venv/bin/python bench/node_ready.py [--pods 20]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from typing import Any

import dns.asyncquery
import dns.message
import dns.rdatatype
from _node_cluster import podns_up, summary

from podns.kube.client import Client
from podns.kube.informer import Informer
from podns.kube.resources import PODS, SERVICES

APP = r"""
import os, socket, threading
ip = os.environ['POD_IP']
health = socket.socket(); health.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
health.bind((ip, 7001)); health.listen()
def accept_health():
    while True:
        try:
            c, _ = health.accept(); c.close()
        except OSError:
            return
threading.Thread(target=accept_health, daemon=True).start()
ctl = socket.socket(); ctl.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ctl.bind((ip, 7000)); ctl.listen()
while True:
    c, _ = ctl.accept()
    if c.recv(16) == b'FAIL':
        health.shutdown(socket.SHUT_RDWR); health.close()
    c.close()
"""


def pod(name: str, group: str, period: int, failure_threshold: int) -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"group": group}},
        "spec": {"terminationGracePeriodSeconds": 1, "containers": [{
            "name": "app", "image": "python", "command": [sys.executable, "-c", APP],
            "env": [{"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}],
            "readinessProbe": {"tcpSocket": {"port": 7001}, "periodSeconds": period,
                               "failureThreshold": failure_threshold},
        }]},
    }


def is_ready(obj: dict[str, Any]) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (obj.get("status") or {}).get("conditions") or [])


async def start_to_ready(client: Client, informer: Informer, group: str, n: int, period: int,
                         threshold: int) -> tuple[list[float], dict[str, str]]:
    """Create `n` pods at once; seconds from each create call to its Ready=True (seen by a watch)."""
    created: dict[str, float] = {}
    ready: dict[str, float] = {}
    done = asyncio.Event()

    def seen(obj: dict[str, Any]) -> None:
        name = obj["metadata"]["name"]
        if name in created and name not in ready and is_ready(obj):
            ready[name] = time.monotonic()
            if len(ready) == n:
                done.set()

    informer.add_handler(on_add=seen, on_update=lambda _o, new: seen(new))
    for i in range(n):
        name = f"{group}-{i}"
        created[name] = time.monotonic()
        await client.create(PODS, pod(name, group, period, threshold), "default")
    await asyncio.wait_for(done.wait(), 120)
    ips = {name: (informer.get(f"default/{name}") or {})["status"]["podIP"] for name in created}
    return [ready[k] - created[k] for k in created], ips


async def dns_ips(addr: tuple[str, int], name: str) -> set[str]:
    q = dns.message.make_query(name, dns.rdatatype.A)
    r = await dns.asyncquery.udp(q, addr[0], port=addr[1], timeout=1)
    return {rr.address for rrset in r.answer for rr in rrset}


async def fail_to_dns_gone(addr: tuple[str, int], group: str, ips: dict[str, str]) -> list[float]:
    """Tell every pod of `group` to fail its readiness probe at once; seconds until each IP has
    left the headless service's DNS answer (polled every 5 ms)."""
    name = f"{group}.default.svc.cluster.local"
    deadline = time.monotonic() + 30
    while set(ips.values()) - await dns_ips(addr, name):
        if time.monotonic() > deadline:
            raise SystemExit(f"DNS never listed all pods of {group}")
        await asyncio.sleep(0.05)
    sent: dict[str, float] = {}
    for ip in ips.values():
        _, w = await asyncio.open_connection(ip, 7000)
        w.write(b"FAIL")
        await w.drain()
        sent[ip] = time.monotonic()
        w.close()
    gone: dict[str, float] = {}
    while len(gone) < len(ips):
        current = await dns_ips(addr, name)
        now = time.monotonic()
        for ip in ips.values():
            if ip not in current and ip not in gone:
                gone[ip] = now
        if time.monotonic() - min(sent.values()) > 60:
            raise SystemExit("pods never left DNS")
        await asyncio.sleep(0.005)
    return [gone[ip] - sent[ip] for ip in ips.values()]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, default=20)
    args = parser.parse_args()
    with podns_up() as cluster:
        client = Client.from_kubeconfig(cluster.kubeconfig)
        informer = Informer(client, PODS, "default")
        informer.start()
        await informer.wait_synced()
        for group in ("fast", "default"):
            await client.create(SERVICES, {"apiVersion": "v1", "kind": "Service", "metadata": {"name": group},
                                           "spec": {"clusterIP": "None", "selector": {"group": group},
                                                    "ports": [{"port": 7000}]}}, "default")
        fast, fast_ips = await start_to_ready(client, informer, "fast", args.pods, 1, 1)
        slow, slow_ips = await start_to_ready(client, informer, "default", args.pods, 10, 3)
        print(f"pod create -> Ready ({args.pods} pods created at once, python server, tcpSocket probe)")
        print(f"  {'podns, period 1 s':<44} {summary(fast)}")
        print(f"  {'Kubernetes default, period 10 s':<44} {summary(slow)}")
        print(f"  ratio of medians: {statistics.median(slow) / statistics.median(fast):.1f}x")
        gone_fast = await fail_to_dns_gone(cluster.dns_addr, "fast", fast_ips)
        gone_slow = await fail_to_dns_gone(cluster.dns_addr, "default", slow_ips)
        print("readiness failure -> gone from headless-service DNS (probe -> API -> EndpointSlice -> DNS)")
        print(f"  {'podns, period 1 s, failureThreshold 1':<44} {summary(gone_fast)}")
        print(f"  {'Kubernetes default, period 10 s, threshold 3':<44} {summary(gone_slow)}")
        print(f"  ratio of medians: {statistics.median(gone_slow) / statistics.median(gone_fast):.1f}x")
        await informer.stop()
        await client.close()


if __name__ == "__main__":
    asyncio.run(main())
