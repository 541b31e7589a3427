"""A distributed podns on loopback: etcd members, API servers and component processes.

Shared by the distributed e2e tests (tests/e2e/test_distributed_*.py) and the chaos benchmark
(bench/distributed_chaos.py). Everything is a real process on free loopback ports:

- `EtcdCluster` (tests.etcd_cluster) members;
- `Podns` (tests/e2e/conftest.py) API servers: the first creates the CA and tokens, the others
  start with `--pki-from <first data dir>`, and each lists all of them with `--peer-servers`,
  so each one's kubeconfig names every API server (itself first);
- `Proc`: any other `podns` sub-command (controller-manager, dns, node), started in its own
  process group so SIGKILL takes it down without touching its siblings.

Waiting helpers poll (with a deadline) rather than sleep, so tests stay fast on a busy machine.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import dns.exception
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype

from tests._support import wait_until
from tests.e2e.conftest import Podns, free_port
from tests.etcd_cluster import EtcdCluster

#: seconds a component process gets to come up
START_TIMEOUT = 30.0
#: fast Lease timings for the controller-managers (Kubernetes defaults are 15s/10s/2s)
FAST_LEASE = ("--leader-elect-lease-duration", "3s", "--leader-elect-renew-deadline", "2s",
              "--leader-elect-retry-period", "500ms")


class Proc:
    """One `podns <command>` process with its log file; `start()`, `kill()`, `stop()`."""

    def __init__(self, name: str, workdir: Path, args: list[str]) -> None:
        self.name = name
        self.workdir = workdir
        self.args = args
        self.log_path = workdir / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        workdir.mkdir(parents=True, exist_ok=True)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> Proc:
        """Start the process (not waiting for readiness: see the wait_* helpers)."""
        assert not self.alive, f"{self.name} already running"
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "podns", *self.args], stdout=log, stderr=subprocess.STDOUT,
                cwd=self.workdir, env=dict(os.environ, PYTHONUNBUFFERED="1"),
                start_new_session=True)
        return self

    def kill(self) -> None:
        """SIGKILL (its process group: the node agent's pods have their own sessions)."""
        if self.alive:
            assert self.proc is not None
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM and wait; SIGKILL when it does not exit in time."""
        if not self.alive:
            return
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def check(self) -> None:
        """Raise with the log tail when the process has exited."""
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{self.log()}")

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except OSError:
            return ""


def start_apiservers(workdir: Path, etcd: EtcdCluster, n: int = 2) -> list[Podns]:
    """`n` API servers over `etcd` sharing one CA and token set, each kubeconfig listing all."""
    servers = [Podns(workdir / f"api{i}", "--store", etcd.url, command="apiserver")
               for i in range(n)]
    urls = [s.api_url for s in servers]
    for i, s in enumerate(servers):
        s.workdir.mkdir(parents=True, exist_ok=True)
        peers = ",".join(u for u in urls if u != s.api_url)
        s.extra_args += ["--peer-servers", peers]
        if i > 0:
            s.extra_args += ["--pki-from", str(servers[0].data_dir)]
    for s in servers:
        s.start()
        # the server rewrites its kubeconfig with the peers right after it is ready
        wait_until(lambda s=s: "podns.io/servers" in s.kubeconfig.read_text(), 10,
                   f"kubeconfig of {s.api_url} lists the peers")
    return servers


def dns_query(addr: tuple[str, int], name: str, rdtype: str = "A",
              timeout: float = 0.5) -> dns.message.Message | None:
    """One UDP query; None when the server does not answer in time."""
    q = dns.message.make_query(name, dns.rdatatype.from_text(rdtype))
    try:
        return dns.query.udp(q, addr[0], port=addr[1], timeout=timeout)
    except (dns.exception.Timeout, OSError):
        return None


def a_records(msg: dns.message.Message | None) -> list[str]:
    """The A addresses of an answer (sorted), [] for none or no answer."""
    if msg is None or msg.rcode() != dns.rcode.NOERROR:
        return []
    return sorted(rr.address for rrset in msg.answer for rr in rrset
                  if rrset.rdtype == dns.rdatatype.A)


def dns_server(workdir: Path, name: str, kubeconfig: Path) -> tuple[Proc, tuple[str, int]]:
    """A `podns dns` process (not started) on a free loopback UDP/TCP port."""
    addr = ("127.0.0.1", free_port(socket.SOCK_DGRAM))
    proc = Proc(name, workdir / name, ["dns", "--kubeconfig", str(kubeconfig),
                                       "--listen", f"{addr[0]}:{addr[1]}", "--upstream", "none"])
    return proc, addr


def wait_dns_synced(proc: Proc, addr: tuple[str, int], timeout: float = START_TIMEOUT) -> None:
    """Until the DNS server answers an in-zone query with anything but SERVFAIL (synced)."""
    def ready() -> bool:
        proc.check()
        msg = dns_query(addr, "kubernetes.default.svc.cluster.local", timeout=0.3)
        return msg is not None and msg.rcode() != dns.rcode.SERVFAIL
    wait_until(ready, timeout, f"{proc.name} synced")


def api(p: Podns, method: str, path: str, body: Any = None,
        timeout: float = 20.0) -> tuple[int, Any]:
    """One API call through server `p` with the admin token: (HTTP status, decoded body);
    (0, error text) when the server does not answer."""
    ctx = ssl.create_default_context(cafile=str(p.ca_path))
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(p.api_url + path, data=data, method=method, headers={
        "Authorization": f"Bearer {p.admin_token}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=timeout) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")
    except OSError as e:
        return 0, str(e)


LEASE_PATH = "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/kube-controller-manager"


def lease_holder(p: Podns) -> str | None:
    """holderIdentity of the controller-manager Lease through API server `p` (None: no
    holder, or the API does not answer)."""
    code, lease = api(p, "GET", LEASE_PATH, timeout=3)
    holder = lease.get("spec", {}).get("holderIdentity") if code == 200 else None
    return str(holder) if holder else None


def holder_pid(identity: str | None) -> int | None:
    """The pid inside a controller-manager identity (`host_pid_suffix`)."""
    if not identity:
        return None
    parts = identity.rsplit("_", 2)
    return int(parts[1]) if len(parts) == 3 and parts[1].isdigit() else None
