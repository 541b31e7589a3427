"""`podns dns` alone against `podns apiserver`: sync, live updates, API outage, resume, metrics."""

from __future__ import annotations

import functools
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import dns.message
import dns.query
import dns.rcode
import pytest

from tests._support import wait_until
from tests.e2e.conftest import REPO, Podns, free_port

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(90)]


#: this module's polling defaults for tests._support.wait_until
wait = functools.partial(wait_until, timeout=15.0)


def service_and_slice(name: str, ips: list[str]) -> str:
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
           "spec": {"clusterIP": "None", "ports": [{"name": "http", "port": 80}]}}
    sl = {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": "IPv4",
          "metadata": {"name": f"{name}-1", "labels": {"kubernetes.io/service-name": name}},
          "ports": [{"name": "http", "protocol": "TCP", "port": 80}],
          "endpoints": [{"addresses": [ip]} for ip in ips]}
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": [svc, sl]})


class DnsProcess:
    def __init__(self, api: Podns, workdir: Path, *extra: str) -> None:
        self.addr = ("127.0.0.1", free_port(socket.SOCK_DGRAM))
        self.metrics = ("127.0.0.1", free_port())
        self.log = workdir / "dns.log"
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "podns", "dns", "--kubeconfig", str(api.readonly_kubeconfig),
                 "--listen", f"{self.addr[0]}:{self.addr[1]}", "--upstream", "none",
                 "--metrics-addr", f"{self.metrics[0]}:{self.metrics[1]}", *extra],
                stdout=log, stderr=subprocess.STDOUT, cwd=REPO, env=dict(os.environ, PYTHONUNBUFFERED="1"))

    def query(self, name: str, rdtype: str = "A") -> dns.message.Message:
        return dns.query.udp(dns.message.make_query(name, rdtype), self.addr[0], port=self.addr[1], timeout=2)

    def ips(self, name: str) -> set[str]:
        try:
            msg = self.query(name)
        except dns.exception.Timeout:
            return set()
        return {rd.to_text() for rrset in msg.answer for rd in rrset}

    def metric(self, name: str) -> float:
        url = f"http://{self.metrics[0]}:{self.metrics[1]}/metrics"
        with urllib.request.urlopen(url, timeout=2) as resp:
            for line in resp.read().decode().splitlines():
                if line.startswith(name + " "):
                    return float(line.split()[1])
        raise KeyError(name)


@pytest.fixture
def api(start_podns: Callable[..., Podns]) -> Podns:
    return start_podns(command="apiserver")


@pytest.fixture
def dns_server(api: Podns, tmp_path: Path) -> Iterator[DnsProcess]:
    p = DnsProcess(api, tmp_path)
    yield p
    p.proc.terminate()
    assert p.proc.wait(10) == 0, p.log.read_text()


def test_sync_updates_outage_and_resume(api: Podns, dns_server: DnsProcess) -> None:
    """Given objects created before the DNS server starts, it serves them once synced; a live
    change shows up; with the API server stopped it keeps answering the last state and says so
    in its metrics; after the API returns, new objects are served again. UDP is served by the
    compiled loop (setup.sh built it)."""
    api.kubectl("apply", "-f", "-", input=service_and_slice("alpha", ["10.8.0.1"]), check=True)
    name = "alpha.default.svc.cluster.local."
    wait(lambda: dns_server.ips(name) == {"10.8.0.1"}, what="initial sync")
    wait(lambda: "served by the compiled loop" in dns_server.log.read_text(), what="compiled loop")
    assert dns_server.metric("podns_dns_udp_compiled") == 1
    with urllib.request.urlopen(f"http://{dns_server.metrics[0]}:{dns_server.metrics[1]}/ready") as r:
        assert r.status == 200
    api.kubectl("apply", "-f", "-", input=service_and_slice("alpha", ["10.8.0.1", "10.8.0.2"]), check=True)
    wait(lambda: dns_server.ips(name) == {"10.8.0.1", "10.8.0.2"}, what="live update")
    assert dns_server.metric("podns_dns_api_connected") == 1

    api.stop()
    wait(lambda: dns_server.metric("podns_dns_api_connected") == 0, what="outage noticed")
    assert dns_server.ips(name) == {"10.8.0.1", "10.8.0.2"}  # last known state, not SERVFAIL
    assert dns_server.query("nope.default.svc.cluster.local.").rcode() == dns.rcode.NXDOMAIN
    assert dns_server.metric("podns_dns_seconds_since_last_sync") > 0

    api.start()
    api.kubectl("apply", "-f", "-", input=service_and_slice("beta", ["10.8.1.1"]), check=True)
    wait(lambda: dns_server.ips("beta.default.svc.cluster.local.") == {"10.8.1.1"}, timeout=20,
         what="resumed after the outage")
    wait(lambda: dns_server.metric("podns_dns_api_connected") == 1, what="reconnected")
    assert dns_server.metric("podns_dns_seconds_since_last_sync") == 0


def test_reuseport_workers_all_answer(api: Podns, tmp_path: Path) -> None:
    """With --workers 2 a second process joins the address (SO_REUSEPORT) once synced: queries
    from many source ports, spread by the kernel over both, all get the right answer; both
    processes stop with the parent."""
    api.kubectl("apply", "-f", "-", input=service_and_slice("gamma", ["10.8.2.1"]), check=True)
    proc = DnsProcess(api, tmp_path, "--workers", "2")
    try:
        name = "gamma.default.svc.cluster.local."
        wait(lambda: proc.ips(name) == {"10.8.2.1"}, what="parent serving")
        children = wait(lambda: _children(proc.proc.pid), what="worker started")
        assert len(children) == 1
        time.sleep(1.0)  # let the worker sync and bind
        answers = [proc.ips(name) for _ in range(100)]  # each query from a fresh socket / port
        assert all(a == {"10.8.2.1"} for a in answers), answers
    finally:
        proc.proc.terminate()
        assert proc.proc.wait(10) == 0
    assert not _children(proc.proc.pid)


def _children(pid: int) -> list[Path]:
    return [p for p in Path("/proc").iterdir() if p.name.isdigit() and _ppid(p) == pid]


def _ppid(path: Path) -> int:
    try:
        stat = (path / "stat").read_text()
    except OSError:
        return -1
    return int(stat[stat.rindex(")") + 2:].split()[1])
