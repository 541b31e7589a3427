"""Headless (direct to the pod IP) versus ClusterIP (through the node's proxy): connection set-up
latency and throughput to the same pods, side by side in one run.

Set-up latency is connect + the server's 1-byte greeting (through the proxy that includes the
proxy's own connection to a backend). Throughput is one stream of bytes from the pod to the
client for a fixed number of seconds.

    .venv/bin/python bench/node_proxy.py [--connects 2000] [--seconds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from typing import Any

from _node_cluster import podns_up, summary

from podns.kube.client import Client
from podns.kube.resources import ENDPOINTSLICES, PODS, SERVICES

APP = r"""
import os, socket, threading
ip = os.environ['POD_IP']
chunk = b'x' * 262144
def serve(port, handler):
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((ip, port)); s.listen(1024)
    while True:
        c, _ = s.accept()
        threading.Thread(target=handler, args=(c,), daemon=True).start()
def greet(c):
    c.sendall(b'!'); c.close()
def stream(c):
    try:
        while True:
            c.sendall(chunk)
    except OSError:
        c.close()
threading.Thread(target=serve, args=(7100, greet), daemon=True).start()
serve(7200, stream)
"""


async def greeting_latency(ip: str, port: int, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        reader, writer = await asyncio.open_connection(ip, port)
        await reader.readexactly(1)
        out.append(time.perf_counter() - t0)
        writer.close()
    return out


async def throughput(ip: str, port: int, seconds: float) -> float:
    """MB/s of one stream, measured after a 0.3 s warm-up."""
    reader, writer = await asyncio.open_connection(ip, port, limit=1 << 20)
    end_warm = time.perf_counter() + 0.3
    while time.perf_counter() < end_warm:
        await reader.read(1 << 20)
    total = 0
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        total += len(await reader.read(1 << 20))
    elapsed = time.perf_counter() - t0
    writer.close()
    return total / elapsed / 1e6


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connects", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    with podns_up() as cluster:
        client = Client.from_kubeconfig(cluster.kubeconfig)
        pod: dict[str, Any] = {
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "srv", "labels": {"app": "srv"}},
            "spec": {"containers": [{
                "name": "srv", "image": "python", "command": [sys.executable, "-c", APP],
                "env": [{"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}],
                "ports": [{"name": "greet", "containerPort": 7100},
                          {"name": "stream", "containerPort": 7200}],
                "readinessProbe": {"tcpSocket": {"port": 7100}, "periodSeconds": 1},
            }]},
        }
        await client.create(PODS, pod, "default")
        svc = await client.create(SERVICES, {
            "apiVersion": "v1", "kind": "Service", "metadata": {"name": "srv"},
            "spec": {"selector": {"app": "srv"}, "ports": [
                {"name": "greet", "port": 7100, "targetPort": "greet"},
                {"name": "stream", "port": 7200, "targetPort": "stream"}]}}, "default")
        cluster_ip = svc["spec"]["clusterIP"]
        pod_ip = ""
        for _ in range(200):
            p = await client.get(PODS, "srv", "default")
            slices = (await client.list(ENDPOINTSLICES, "default")).get("items") or []
            ready = any(c.get("type") == "Ready" and c.get("status") == "True"
                        for c in (p.get("status") or {}).get("conditions") or [])
            endpoints = [e for s in slices for e in s.get("endpoints") or []]
            if ready and any(e.get("conditions", {}).get("ready") for e in endpoints):
                pod_ip = p["status"]["podIP"]
                break
            await asyncio.sleep(0.1)
        for _ in range(100):  # the proxy follows the slice within milliseconds; make sure
            try:
                await greeting_latency(cluster_ip, 7100, 1)
                break
            except (OSError, asyncio.IncompleteReadError):
                await asyncio.sleep(0.05)
        print(f"pod {pod_ip} behind ClusterIP {cluster_ip}; {args.connects} connections each, interleaved")
        direct: list[float] = []
        proxied: list[float] = []
        for _ in range(10):  # interleave rounds so machine noise hits both alike
            direct += await greeting_latency(pod_ip, 7100, args.connects // 10)
            proxied += await greeting_latency(cluster_ip, 7100, args.connects // 10)
        print("connection set-up (connect + first byte)")
        print(f"  {'headless, direct to pod IP':<30} {summary(direct)}")
        print(f"  {'ClusterIP, via node proxy':<30} {summary(proxied)}")
        ratio = statistics.median(proxied) / statistics.median(direct)
        print(f"  ratio of medians (proxy/direct): {ratio:.2f}x")
        d_tp: list[float] = []
        p_tp: list[float] = []
        for _ in range(3):
            d_tp.append(await throughput(pod_ip, 7200, args.seconds))
            p_tp.append(await throughput(cluster_ip, 7200, args.seconds))
        print(f"throughput, one stream, {args.seconds:g} s x 3 runs (median)")
        print(f"  {'headless, direct to pod IP':<30} {statistics.median(d_tp):8.0f} MB/s")
        print(f"  {'ClusterIP, via node proxy':<30} {statistics.median(p_tp):8.0f} MB/s")
        print(f"  ratio (direct/proxy): {statistics.median(d_tp) / statistics.median(p_tp):.2f}x")
        await client.close()


if __name__ == "__main__":
    asyncio.run(main())
