"""Helpers for the controllers' end-to-end tests: a `podns controller-manager` process and a
stand-in kubelet that plays the node agent through the real API (bind-free: it only runs pods
the scheduler has bound to its node)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from podns.kube import errors
from podns.kube.client import Client
from podns.kube.resources import LEASES, NODES, PODS

Obj = dict[str, Any]


def stamp() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class ControllerManagerProcess:
    """`python -m podns controller-manager --kubeconfig FILE ARGS...` with its log in `workdir`."""

    def __init__(self, kubeconfig: Path, workdir: Path, *args: str, name: str = "cm") -> None:
        self.log_path = workdir / f"{name}.log"
        cmd = [sys.executable, "-m", "podns", "controller-manager", "--kubeconfig", str(kubeconfig), *args]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=workdir,
                                         env=dict(os.environ, PYTHONUNBUFFERED="1"), start_new_session=True)

    def stop(self) -> int | None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        return self.proc.returncode

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-5000:]


def eventually(check: Callable[[], Any], timeout: float = 20.0, interval: float = 0.05) -> Any:
    """Poll `check()` until truthy (returned); fail with the last value after `timeout`."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
            if last:
                return last
        except (KeyError, IndexError, StopIteration, AssertionError) as exc:
            last = exc
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s; last: {last!r}")


async def register_node(client: Client, name: str, labels: dict[str, str] | None = None) -> None:
    body = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": labels or {}}}
    with contextlib.suppress(errors.AlreadyExists):
        await client.create(NODES, body)
    await heartbeat(client, name)
    await renew_lease(client, name)


async def renew_lease(client: Client, name: str) -> None:
    """Renew the node Lease `kube-node-lease/<name>` (the node agent's cheap heartbeat)."""
    now = time.time()
    renew = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1e6):06d}Z"
    spec = {"holderIdentity": name, "leaseDurationSeconds": 40, "renewTime": renew}
    try:
        await client.patch(LEASES, name, {"spec": spec}, "kube-node-lease")
    except errors.NotFound:
        body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": name, "namespace": "kube-node-lease"}, "spec": spec}
        await client.create(LEASES, body, "kube-node-lease")


async def heartbeat(client: Client, name: str) -> None:
    cond = {"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "fake kubelet",
            "lastHeartbeatTime": stamp(), "lastTransitionTime": stamp()}
    await client.patch(NODES, name, {"status": {"conditions": [cond]}}, subresource="status")


class FakeKubelet:
    """Plays the node agent for `node` in a thread of its own (so tests may block on kubectl):
    registers the Node and renews its Lease every 0.3 s, runs pods bound to it (Running, a
    127.10.x.y IP, Ready when `ready(pod)`), finishes graceful deletions at once."""

    def __init__(self, kubeconfig: Path, node: str, *, labels: dict[str, str] | None = None,
                 ready: Callable[[Obj], bool] = lambda _p: True, period: float = 0.05) -> None:
        self.kubeconfig, self.node, self.labels = kubeconfig, node, labels
        self.ready, self.period = ready, period
        self.heartbeating = True
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)
        self._registered = threading.Event()

    def __enter__(self) -> FakeKubelet:
        self._thread.start()
        if not self._registered.wait(10):
            raise RuntimeError(f"fake kubelet could not register node {self.node}")
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    async def _main(self) -> None:
        ips: dict[str, str] = {}
        async with Client.from_kubeconfig(self.kubeconfig) as client:
            await register_node(client, self.node, self.labels)
            self._registered.set()
            last_beat = time.monotonic()
            while not self._stop.is_set():
                if self.heartbeating and time.monotonic() - last_beat > 0.3:
                    with contextlib.suppress(errors.KubeError):
                        await renew_lease(client, self.node)
                    last_beat = time.monotonic()
                try:
                    pods = [p for p in (await client.list(PODS)).get("items") or []
                            if (p.get("spec") or {}).get("nodeName") == self.node]
                except errors.KubeError:
                    pods = []
                for pod in pods:
                    await self._run_pod(client, pod, ips)
                await asyncio.sleep(self.period)

    async def _run_pod(self, client: Client, pod: Obj, ips: dict[str, str]) -> None:
        meta, status = pod["metadata"], pod.get("status") or {}
        with contextlib.suppress(errors.KubeError):
            if meta.get("deletionTimestamp"):
                await client.delete(PODS, meta["name"], meta["namespace"], grace_period_seconds=0)
            elif status.get("phase") != "Running":
                ip = ips.setdefault(meta["uid"], f"127.10.{len(ips) // 250}.{len(ips) % 250 + 1}")
                want = "True" if self.ready(pod) else "False"
                await client.patch(PODS, meta["name"], {"status": {
                    "phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}],
                    "conditions": [{"type": "Ready", "status": want, "lastTransitionTime": stamp()}],
                }}, meta["namespace"], subresource="status")


async def set_ready(client: Client, ns: str, name: str, ready: bool) -> None:
    """Flip a pod's Ready condition (what a readiness probe does)."""
    cond = {"type": "Ready", "status": "True" if ready else "False", "lastTransitionTime": stamp()}
    await client.patch(PODS, name, {"status": {"conditions": [cond]}}, ns, subresource="status")
