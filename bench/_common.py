"""Helpers every benchmark script shares (imported as `_common`: the scripts run as
`python bench/<name>.py`, so bench/ is on sys.path)."""

from __future__ import annotations

import socket
import subprocess


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
