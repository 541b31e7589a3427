"""Node agent: the process runtime beside the podman runtime, in one run (root, netns pod network).

For each runtime, `podns up --no-node` runs the control plane and the agent runs as its own
`podns node --pod-network netns --container-runtime <runtime>` process, so its figures are its
own. Measured: pod create -> Ready for `--pods` pods created at once (each a busybox httpd with a
tcpSocket readiness probe every second; the process runtime runs the host's busybox, podman an
image built here from it, no registry), then the agent's CPU and RSS at rest over `--window`
seconds with `--rest-pods` pods running (probes every 10 s, Kubernetes' default). Conmon and the
containers themselves are not the agent's and are not counted; their RSS is printed apart.

    sudo .venv/bin/python bench/node_podman.py [--pods 20] [--rest-pods 50] [--window 30]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _node_cluster import REPO, podns_up, summary
from node_scale import measure, rss_mib

from podns.kube.client import Client
from podns.kube.resources import PODS
from tests.e2e import _images

IMAGE = f"localhost/podns-bench-{os.getpid()}-httpd:1"
PORT = 8080
SERVE = f"#!/bin/sh\nmkdir -p /www\nhostname > /www/index.html\nexec httpd -f -p {PORT} -h /www\n"


def pod(name: str, runtime: str, period: int) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "web", "image": IMAGE,
                                 "readinessProbe": {"tcpSocket": {"port": PORT}, "periodSeconds": period}}
    if runtime == "process":  # no image to run: the host's busybox, as the image's entrypoint does
        busybox = _images.static_busybox()
        container["command"] = [str(busybox), "httpd", "-f", "-p", str(PORT), "-h", "."]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"nodeName": "bench-node", "terminationGracePeriodSeconds": 1, "containers": [container]}}


def start_agent(kubeconfig: Path, data_dir: str, dns: tuple[str, int],
                runtime: str) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "podns", "node", "--kubeconfig", str(kubeconfig), "--name", "bench-node",
           "--data-dir", data_dir, "--pod-network", "netns", "--container-runtime", runtime,
           "--cluster-dns", f"{dns[0]}:{dns[1]}"]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=REPO,
                            start_new_session=True)


def is_ready(p: dict[str, Any]) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (p.get("status") or {}).get("conditions") or [])


async def create_and_wait(client: Client, names: list[str], runtime: str, period: int) -> dict[str, float]:
    """Create the pods at once; seconds from each create to its Ready (polled every 50 ms)."""
    created: dict[str, float] = {}
    for name in names:
        created[name] = time.monotonic()
        await client.create(PODS, pod(name, runtime, period), "default")
    ready: dict[str, float] = {}
    deadline = time.monotonic() + 300
    while len(ready) < len(names) and time.monotonic() < deadline:
        for p in (await client.list(PODS, "default")).get("items") or []:
            name = p["metadata"]["name"]
            if name in created and name not in ready and is_ready(p):
                ready[name] = time.monotonic() - created[name]
        await asyncio.sleep(0.05)
    if len(ready) < len(names):
        raise SystemExit(f"{runtime}: only {len(ready)} of {len(names)} pods Ready within 300 s")
    return ready


def conmon_rss() -> float:
    """RSS (MiB) of every conmon on the machine (the podman runtime's per-container monitors)."""
    out = subprocess.run(["pgrep", "-x", "conmon"], capture_output=True, text=True).stdout.split()
    return sum(rss_mib(int(pid)) for pid in out if Path(f"/proc/{pid}").exists())


async def run(runtime: str, args: argparse.Namespace) -> tuple[dict[str, float], float, float, float]:
    with podns_up("--no-node") as cluster, tempfile.TemporaryDirectory(prefix="podns-node-") as tmp:
        agent = start_agent(cluster.kubeconfig, tmp, cluster.dns_addr, runtime)
        client = Client.from_kubeconfig(cluster.kubeconfig)
        try:
            await asyncio.sleep(5)
            ready = await create_and_wait(client, [f"r{i}" for i in range(args.pods)], runtime, 1)
            rest = [f"s{i}" for i in range(args.rest_pods)]
            await create_and_wait(client, rest, runtime, 10)
            conmons = conmon_rss()
            await asyncio.sleep(5)
            cpu, rss = await measure(agent.pid, args.window)
            for p in (await client.list(PODS, "default")).get("items") or []:
                await client.delete(PODS, p["metadata"]["name"], "default")
            for _ in range(240):  # up to 2 minutes for the pods to go
                if not (await client.list(PODS, "default")).get("items"):
                    break
                await asyncio.sleep(0.5)
        finally:
            await client.close()
            os.killpg(agent.pid, signal.SIGTERM)
            agent.wait(120)
    return ready, cpu, rss, conmons


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, default=20)
    parser.add_argument("--rest-pods", type=int, default=50)
    parser.add_argument("--window", type=float, default=30.0)
    args = parser.parse_args()
    if os.geteuid() != 0 or not shutil.which("podman") or not _images.static_busybox():
        raise SystemExit("bench/node_podman.py needs root, podman and busybox-static")
    with tempfile.TemporaryDirectory(prefix="podns-bench-image-") as tmp:
        _images.build(IMAGE, Path(tmp), script=SERVE, changes=['ENTRYPOINT ["/entry.sh"]', "ENV PATH=/bin"])
    try:
        results = {rt: await run(rt, args) for rt in ("process", "podman")}
    finally:
        _images.remove(IMAGE)
    print(f"pod create -> Ready, {args.pods} pods created at once (tcpSocket probe every 1 s)")
    for rt, (ready, _, _, _) in results.items():
        print(f"  {rt:<8} {summary(list(ready.values()))}")
    print(f"node agent at rest with {args.rest_pods} more pods (probe every 10 s), "
          f"{args.window:g} s window (CPU % of one core)")
    for rt, (_, cpu, rss, conmons) in results.items():
        extra = f"   (conmons: {conmons:.1f} MiB in all)" if rt == "podman" else ""
        print(f"  {rt:<8} CPU {cpu:6.2f} %   RSS {rss:7.1f} MiB{extra}")


if __name__ == "__main__":
    asyncio.run(main())
