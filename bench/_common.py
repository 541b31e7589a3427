"""Helpers every benchmark script shares (imported as `_common`: the scripts run as
`python bench/<name>.py`, so bench/ is on sys.path)."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # the repository's test tools (tests/etcd_cluster.py) import too


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A free loopback port (for UDP: free for TCP too, as a DNS server binds both)."""
    while True:
        with socket.socket(socket.AF_INET, kind) as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if kind == socket.SOCK_STREAM:
            return port
        with socket.socket() as t:
            try:
                t.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port


def pct(values: list[float], q: float) -> float:
    """The `q` quantile (0..1) of `values`: the element at index floor(q * n) of the sorted
    values (the last one for q = 1)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def stop(*procs: subprocess.Popen[bytes] | None) -> None:
    """SIGTERM each started process in turn and wait up to 10 s for it (None: never started)."""
    for proc in procs:
        if proc is not None:
            proc.terminate()
            proc.wait(10)


async def fill_api(kubeconfig: Path, items: list[tuple[str, dict[str, Any]]]) -> float:
    """Create every ("namespace"|"service"|"slice", object) through the API, 64 at a time,
    namespaces first; returns seconds taken."""
    from podns.kube import resources
    from podns.kube.client import Client

    kinds = {"namespace": resources.NAMESPACES, "service": resources.SERVICES,
             "slice": resources.ENDPOINTSLICES}
    client = Client.from_kubeconfig(kubeconfig)
    gate = asyncio.Semaphore(64)

    async def create(kind: str, obj: dict[str, Any]) -> None:
        async with gate:
            await client.create(kinds[kind], obj)

    start = time.perf_counter()
    await asyncio.gather(*(create(k, o) for k, o in items if k == "namespace"))
    await asyncio.gather(*(create(k, o) for k, o in items if k != "namespace"))
    await client.close()
    return time.perf_counter() - start


def start_up(data: Path, *, api_port: int, dns_port: int, metrics_port: int, cpus: str | None = None,
             extra: tuple[str, ...] = ()) -> subprocess.Popen[bytes]:
    """`podns up` without a node agent, memory store, no upstream (nothing leaves loopback), on
    the given ports (and CPUs, `taskset -c`); returns once its kubeconfig exists."""
    cmd = [sys.executable, "-m", "podns", "up", "--data-dir", str(data), "--store", "memory://",
           "--api-addr", f"127.0.0.1:{api_port}", "--dns-addr", f"127.0.0.1:{dns_port}",
           "--dns-metrics-addr", f"127.0.0.1:{metrics_port}", "--dns-upstream", "none", "--no-node", *extra]
    if cpus is not None:
        cmd = ["taskset", "-c", cpus, *cmd]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while not (data / "kubeconfig-readonly").exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("podns up did not start")
        time.sleep(0.1)
    return proc


def wait_ready(metrics_port: int, timeout: float = 600) -> float:
    """Poll a DNS server's /ready until 200; returns the seconds waited."""
    start = time.perf_counter()
    while time.perf_counter() - start < timeout:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/ready", timeout=1) as r:
                if r.status == 200:
                    return time.perf_counter() - start
        except OSError:
            pass
        time.sleep(0.02)
    raise RuntimeError(f"DNS on metrics port {metrics_port} not ready after {timeout} s")


def dns_child(parent: int) -> int:
    """The pid of the `podns dns` process a `podns up` (pid `parent`) supervises."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == parent and b"\x00dns\x00" in cmdline:
                return int(entry.name)
        time.sleep(0.1)
    raise RuntimeError(f"no podns dns child of {parent}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of one process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS")) / 1e3
