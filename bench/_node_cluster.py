"""Shared set-up of the node benchmarks: a `podns up` process on free loopback ports (loopback
service CIDR, so ClusterIPs are connectable), and small helpers."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from _common import free_port

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

SERVICE_CIDR = "127.96.0.0/16"


@dataclass
class Cluster:
    kubeconfig: Path
    dns_addr: tuple[str, int]
    data_dir: Path
    proc: subprocess.Popen[bytes]


@contextlib.contextmanager
def podns_up(*extra: str, service_cidr: str = SERVICE_CIDR) -> Iterator[Cluster]:
    """Run `podns up` (SQLite store in a temporary data dir) until the block ends."""
    with tempfile.TemporaryDirectory(prefix="podns-node-bench-") as tmp:
        api_port = free_port()
        dns = ("127.0.0.1", free_port(socket.SOCK_DGRAM))
        data = Path(tmp) / "state"
        cmd = [sys.executable, "-m", "podns", "up", "--data-dir", str(data), "--api-addr",
               f"127.0.0.1:{api_port}", "--dns-addr", f"{dns[0]}:{dns[1]}", "--service-cidr",
               service_cidr, "--dns-upstream", "none", *extra]
        if not any(a.startswith("--pod-network") for a in extra):
            cmd += ["--pod-network", "loopback"]  # the figures so far are loopback ones
        log = open(Path(tmp) / "up.log", "wb")
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=REPO, start_new_session=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise SystemExit(f"podns up exited: {(Path(tmp) / 'up.log').read_text()}")
            if (data / "kubeconfig").exists():
                ctx = ssl.create_default_context(cafile=str(data / "ca.crt"))
                with contextlib.suppress(OSError):
                    with urllib.request.urlopen(f"https://127.0.0.1:{api_port}/readyz", context=ctx,
                                                timeout=1):
                        break
            time.sleep(0.1)
        time.sleep(1.0)  # components start after the API server answers
        try:
            yield Cluster(data / "kubeconfig", dns, data, proc)
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
            log.close()


def pct(values: list[float], q: float) -> float:
    """The q-th percentile (nearest rank) of `values`."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))]


def summary(values: list[float], unit: str = "ms", scale: float = 1000.0) -> str:
    return (f"p50 {statistics.median(values) * scale:8.1f} {unit}   p99 {pct(values, 99) * scale:8.1f} {unit}"
            f"   (n={len(values)})")
