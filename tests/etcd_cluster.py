"""A real etcd cluster on loopback ports, for tests and benchmarks.

`start_etcd_cluster(n)` starts n etcd members (the `etcd` binary, Debian `etcd-server`) on free
127.0.0.1 ports with their data on tmpfs, waits until they are healthy, and returns an
`EtcdCluster` that can kill and restart members. A test and benchmark tool (not shipped in the
`podns` package): standard library only, so a benchmark needs no pytest.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

ETCD_BINARY = "etcd"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (bind to port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class EtcdMember:
    """One etcd process of an `EtcdCluster`."""

    name: str
    client_port: int
    peer_port: int
    data_dir: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.client_port}"

    @property
    def peer_url(self) -> str:
        return f"http://127.0.0.1:{self.peer_port}"


@dataclass
class EtcdCluster:
    """N etcd members on loopback ports, data in a temp dir (tmpfs when there is one).

    Use `start_etcd_cluster(n)` (or the `etcd_cluster` fixtures in tests/store/conftest.py);
    `stop_member(i)` / `start_member(i)` kill (SIGKILL) and restart one member for failover
    and quorum tests; `close()` kills everything and removes the data.
    """

    members: list[EtcdMember]
    base_dir: Path
    log_dir: Path
    initial_cluster: str = ""
    token: str = field(default_factory=lambda: f"podns-{uuid.uuid4().hex[:8]}")

    @property
    def endpoints(self) -> list[str]:
        return [m.endpoint for m in self.members]

    @property
    def url(self) -> str:
        """The `open_store` URL naming every member."""
        return "etcd://" + ",".join(f"127.0.0.1:{m.client_port}" for m in self.members)

    def start_member(self, i: int, *, state: str = "existing") -> None:
        m = self.members[i]
        log = (self.log_dir / f"{m.name}.log").open("ab")
        m.proc = subprocess.Popen(
            [ETCD_BINARY, "--name", m.name, "--data-dir", str(m.data_dir),
             "--listen-client-urls", m.endpoint, "--advertise-client-urls", m.endpoint,
             "--listen-peer-urls", m.peer_url, "--initial-advertise-peer-urls", m.peer_url,
             "--initial-cluster", self.initial_cluster, "--initial-cluster-state", state,
             "--initial-cluster-token", self.token,
             # Fast elections keep failover tests short; loopback has no latency to absorb.
             "--heartbeat-interval", "50", "--election-timeout", "500",
             "--logger", "zap", "--log-level", "error"],
            stdout=log, stderr=log, stdin=subprocess.DEVNULL,
        )
        log.close()

    def stop_member(self, i: int) -> None:
        proc = self.members[i].proc
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(10)
        self.members[i].proc = None

    def wait_healthy(self, timeout: float = 20.0, members: list[int] | None = None) -> None:
        """Block until the members answer /health with a leader (raises TimeoutError)."""
        deadline = time.monotonic() + timeout
        for i in members if members is not None else range(len(self.members)):
            m = self.members[i]
            while True:
                if m.proc is not None and m.proc.poll() is not None:
                    log = (self.log_dir / f"{m.name}.log").read_text(errors="replace")[-2000:]
                    raise RuntimeError(f"etcd member {m.name} exited: {log}")
                try:
                    with urllib.request.urlopen(m.endpoint + "/health", timeout=1) as r:
                        if json.loads(r.read()).get("health") == "true":
                            break
                except (OSError, ValueError):
                    pass
                if time.monotonic() > deadline:
                    raise TimeoutError(f"etcd member {m.name} not healthy after {timeout}s")
                time.sleep(0.05)

    def close(self) -> None:
        for i in range(len(self.members)):
            self.stop_member(i)
        shutil.rmtree(self.base_dir, ignore_errors=True)


def etcd_available() -> bool:
    """Whether the etcd server binary is installed."""
    return shutil.which(ETCD_BINARY) is not None


def start_etcd_cluster(
    n: int = 1, *, log_dir: Path | None = None, on_disk: bool = False
) -> EtcdCluster:
    """Start an n-member etcd cluster on free loopback ports and wait until it is healthy.

    Data goes to tmpfs when there is one (fsync is free there: fast tests), or to the temp dir
    with `on_disk` (benchmarks, where etcd's fsync per commit is part of the figure).
    """
    shm = Path("/dev/shm")
    where = shm if shm.is_dir() and not on_disk else None
    base = Path(tempfile.mkdtemp(prefix="podns-etcd-", dir=where))
    members = [
        EtcdMember(f"m{i}", free_port(), free_port(), base / f"m{i}") for i in range(n)
    ]
    cluster = EtcdCluster(members, base, log_dir or base)
    cluster.initial_cluster = ",".join(f"{m.name}={m.peer_url}" for m in members)
    try:
        for i in range(n):
            cluster.start_member(i, state="new")
        cluster.wait_healthy()
    except BaseException:
        cluster.close()
        raise
    return cluster
