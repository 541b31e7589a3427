"""A fake node agent for pod-worker tests: real processes, recorded events, statuses, deletions."""

from __future__ import annotations

import asyncio
import ssl
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from podns.api.server import certs
from podns.node import container as container_mod
from podns.node import netns
from podns.node.ipam import IPAM, CIDRClaim
from podns.node.podnetwork import PodNetwork
from podns.node.podworker import PodWorker
from podns.node.runtime import ProcessRuntime
from podns.node.server import serving_ssl_context

Obj = dict[str, Any]
PY = sys.executable


class FakeAgent:
    """Implements AgentHost; records what a real agent would send to the API."""

    def __init__(self, data_dir: Path, cidr: str = "127.77.0.0/24") -> None:
        self.node_name = "n1"
        self.host_ip = "127.0.0.1"
        self.data_dir = data_dir
        self.ipam = IPAM(cidr, data_dir / "ipam.json")
        self.ipam6: IPAM | None = None  # single-stack
        self.ipv6_primary = False
        self.network = None  # loopback mode
        self.api_relay = None
        self.runtime = ProcessRuntime(data_dir / "pids")
        self.events: list[tuple[str, str, str, str]] = []
        self.statuses: list[Obj] = []
        self.deleted: list[str] = []
        self.done: list[str] = []
        self.sources: tuple[dict[str, Obj | None], dict[str, Obj | None]] = ({}, {})
        self.token_requests: list[tuple[str, int]] = []
        self._changed = asyncio.Event()
        self.workers: list[PodWorker] = []

    async def fetch_sources(self, pod: Obj) -> tuple[dict[str, Obj | None], dict[str, Obj | None]]:
        return self.sources

    async def runtime_for(self, pod: Obj) -> ProcessRuntime:
        return self.runtime

    async def request_token(self, pod: Obj, audience: str, seconds: int) -> tuple[str, float]:
        """A stand-in token (`token-<n>`, counting requests) valid for `seconds`."""
        self.token_requests.append((audience, seconds))
        return f"token-{len(self.token_requests)}", time.time() + seconds

    def service_env(self) -> dict[str, str]:
        return {"KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": "6443"}

    def record_event(self, pod: Obj, etype: str, reason: str, message: str, field_path: str = "") -> None:
        self.events.append((etype, reason, message, field_path))

    def status_dirty(self, worker: PodWorker) -> None:
        self.statuses.append(worker.status())
        self._changed.set()

    async def delete_pod(self, pod: Obj) -> None:
        self.deleted.append(pod["metadata"]["name"])

    def processes_changed(self) -> None:
        pass

    def worker_done(self, worker: PodWorker) -> None:
        self.done.append(worker.key)

    def start(self, pod: Obj) -> PodWorker:
        w = PodWorker(self, pod)
        self.workers.append(w)
        w.start()
        return w

    async def wait_for(self, pred: Callable[[Obj], bool], timeout: float = 10.0) -> Obj:
        """Wait until a status written after now (or the latest) satisfies `pred`."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            if self.statuses and pred(self.statuses[-1]):
                return self.statuses[-1]
            remaining = deadline - loop.time()
            if remaining <= 0:
                last = self.statuses[-1] if self.statuses else None
                raise AssertionError(f"status condition not reached; last status: {last}")
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except TimeoutError:
                pass

    async def shutdown(self) -> None:
        await asyncio.gather(*(w.shutdown(1) for w in self.workers), return_exceptions=True)


def make_pod(name: str, containers: list[Obj], **spec: Any) -> Obj:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "default", "uid": f"uid-{name}"},
            "spec": {"nodeName": "n1", "containers": containers, **spec}}


def cond(status: Obj, ctype: str) -> str:
    return next(c["status"] for c in status["conditions"] if c["type"] == ctype)


@pytest.fixture
async def agent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A FakeAgent with the kubelet's back-off shrunk 100x (10 s -> 0.1 s) so tests stay fast."""
    monkeypatch.setattr(container_mod, "BACKOFF_INITIAL", 0.1)
    monkeypatch.setattr(container_mod, "BACKOFF_MAX", 0.4)
    monkeypatch.setattr(container_mod, "CONFIG_RETRY", 0.1)
    a = FakeAgent(tmp_path)
    yield a
    await a.shutdown()


def node_pki(ca_dir: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A cluster CA in `ca_dir`, and (the node endpoint's serving TLS, the API server's client TLS
    towards it) as `podns up` sets them up."""
    certs.ensure_ca(ca_dir)
    cert, key = certs.issue_node_serving(ca_dir, ca_dir / "node", node_name="n1", host="127.0.0.1")
    return serving_ssl_context(cert, key, ca_dir / "ca.crt"), certs.kubelet_client_ssl_context(ca_dir)


def links() -> set[str]:
    """Names of this machine's network links."""
    return {str(link.get("ifname")) for link in netns._json("link")}


@pytest.fixture
async def network(tmp_path: Path) -> AsyncIterator[PodNetwork]:
    """A PodNetwork on a free 10.244.x.0/24 (claimed machine-wide, as an agent does); after the
    test it is stopped and nothing of it may be left."""
    claim = CIDRClaim()
    cidr = netns.choose_cidr([], "test", claim.try_claim, netns.host_networks())
    net = PodNetwork(cidr, cluster_dns=("127.0.0.1", 9), zone="cluster.local", state_dir=tmp_path,
                     dns_port=0)
    await net.start()
    yield net
    await net.stop()
    claim.release()
    assert net.bridge not in links()


@pytest.fixture
def netns_exec() -> Iterator[list[str]]:
    """A throw-away network namespace (the kernel proxy backends' tests write their rules there,
    never on the machine); yields the command prefix that runs a tool inside it."""
    name = f"podns-nat-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        yield ["ip", "netns", "exec", name]
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)
