"""Node agent at rest with 200 pods: its CPU and RSS, beside the same agent with no pods.

`podns up --no-node` runs the control plane; the agent runs as its own `podns node` process so
its figures are its own. Each pod is a small Python TCP server with a tcpSocket readiness probe
at Kubernetes' default period (10 s). CPU is sampled from /proc over `--window` seconds once all
pods are Ready.

    .venv/bin/python bench/node_scale.py [--pods 200] [--window 30]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _node_cluster import podns_up

from podns.kube.client import Client
from podns.kube.resources import PODS

APP = ("import os,socket,time\ns=socket.socket(); s.bind((os.environ['POD_IP'], 8000)); s.listen()\n"
       "while True:\n    c,_=s.accept(); c.close()\n")
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def start_agent(kubeconfig: Path, data_dir: str) -> subprocess.Popen[bytes]:
    """`podns node --name bench-node` as its own process."""
    cmd = [sys.executable, "-m", "podns", "node", "--kubeconfig", str(kubeconfig), "--name", "bench-node",
           "--data-dir", data_dir, "--pod-network", "loopback"]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


async def measure(pid: int, window: float) -> tuple[float, float]:
    """(CPU % of one core, RSS MiB) of `pid` over `window` seconds."""
    c0, t0 = cpu_seconds(pid), time.monotonic()
    await asyncio.sleep(window)
    c1, t1 = cpu_seconds(pid), time.monotonic()
    return 100 * (c1 - c0) / (t1 - t0), rss_mib(pid)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, default=200)
    parser.add_argument("--window", type=float, default=30.0)
    args = parser.parse_args()
    with podns_up("--no-node") as cluster, tempfile.TemporaryDirectory(prefix="podns-node-") as tmp:
        agent = start_agent(cluster.kubeconfig, tmp)
        client = Client.from_kubeconfig(cluster.kubeconfig)
        try:
            await asyncio.sleep(3)
            idle_cpu, idle_rss = await measure(agent.pid, args.window)
            t0 = time.monotonic()
            for i in range(args.pods):
                await client.create(PODS, {
                    "apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"p{i}"},
                    "spec": {"nodeName": "bench-node", "containers": [{
                        "name": "c", "image": "python", "command": [sys.executable, "-c", APP],
                        "env": [{"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}],
                        "readinessProbe": {"tcpSocket": {"port": 8000}}}]}}, "default")
            while True:
                pods = (await client.list(PODS, "default")).get("items") or []
                ready = sum(any(c.get("type") == "Ready" and c.get("status") == "True"
                                for c in (p.get("status") or {}).get("conditions") or []) for p in pods)
                if ready == args.pods:
                    break
                await asyncio.sleep(0.5)
            all_ready = time.monotonic() - t0
            await asyncio.sleep(5)
            busy_cpu, busy_rss = await measure(agent.pid, args.window)
        finally:
            await client.close()
            os.killpg(agent.pid, signal.SIGTERM)
            agent.wait(60)
    print(f"node agent at rest, {args.window:g} s window (CPU % of one core)")
    print(f"  {'no pods':<36} CPU {idle_cpu:6.2f} %   RSS {idle_rss:7.1f} MiB")
    label = f"{args.pods} pods, readiness probe every 10 s"
    print(f"  {label:<36} CPU {busy_cpu:6.2f} %   RSS {busy_rss:7.1f} MiB")
    print(f"  all {args.pods} pods Ready {all_ready:.1f} s after the first create")


if __name__ == "__main__":
    asyncio.run(main())
