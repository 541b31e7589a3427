"""Node registration and heartbeat: the Node object, its status, and its Lease.

As the kubelet: at start the agent registers its Node (labels, podCIDR, capacity/allocatable,
conditions, addresses, daemonEndpoints, nodeInfo), then renews the Lease
`kube-node-lease/<node>` every `LEASE_RENEW` seconds (the cheap heartbeat the node lifecycle
controller watches) and rewrites the Node status every `STATUS_EVERY` seconds
(`lastHeartbeatTime`), or at once when something in it changes.

Pod CIDR: when none is given, the agent picks the first `127.<n>.0.0/16` (n = 1, 2, ...) that no
other Node's `spec.podCIDR` claims and records it in its Node, so several agents on one machine
(loopback mode) never hand out the same pod address. An agent restarted with the same name keeps
the CIDR its Node already has.

API failures are retried on the next tick; the heartbeat never raises out of `run()`.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import platform
import time
from collections.abc import Callable
from typing import Any

from podns.kube import errors
from podns.kube.client import Client
from podns.kube.resources import LEASES, NAMESPACES, NODES
from podns.objects.meta import Condition
from podns.objects.times import now_rfc3339, now_rfc3339_micro
from podns.objects.wellknown import ARCH_LABEL, BETA_ARCH_LABEL, BETA_OS_LABEL, HOSTNAME_LABEL, OS_LABEL

log = logging.getLogger(__name__)
Obj = dict[str, Any]

LEASE_NAMESPACE = "kube-node-lease"
#: kubelet defaults: lease duration 40 s, renewed every 10 s (a quarter of it)
LEASE_DURATION = 40
LEASE_RENEW = 10.0
#: full status rewrite period (the kubelet's nodeStatusReportFrequency is 5 min; we are cheaper)
STATUS_EVERY = 60.0
#: how many pods one node admits (the kubelet's default maxPods is 110; processes are cheap)
MAX_PODS = 250
VERSION = "v1.33.0-podns"


def _memory_bytes() -> int:
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _read(path: str) -> str:
    try:
        with open(path) as fh:
            return fh.read().strip()
    except OSError:
        return ""


def choose_pod_cidr(nodes: list[Obj], name: str, is_free: Callable[[str], bool] = lambda c: True) -> str:
    """This node's CIDR if it has one that is free on this machine, else the first
    127.<n>.0.0/16 that no other Node claims and `is_free` accepts (a machine-wide claim)."""
    taken: set[str] = set()
    for node in nodes:
        cidr = (node.get("spec") or {}).get("podCIDR")
        if not cidr:
            continue
        if node.get("metadata", {}).get("name") == name:
            if is_free(str(cidr)):
                return str(cidr)
            continue
        taken.add(str(ipaddress.ip_network(cidr, strict=False)))
    for n in range(1, 64):
        candidate = f"127.{n}.0.0/16"
        if candidate not in taken and is_free(candidate):
            return candidate
    raise RuntimeError("no free 127.<n>.0.0/16 pod CIDR left for this node")


class Heartbeat:
    """Registers the Node and keeps its Lease and status fresh."""

    def __init__(self, client: Client, *, name: str, host_ip: str, port: int, pod_cidr: str,
                 labels: dict[str, str] | None = None, runtime_version: str = "podns://0.1.0",
                 runtime_down: str = "", pod_cidrs: list[str] | None = None,
                 host_ip6: str | None = None) -> None:
        """`runtime_down`: why the container runtime cannot run containers ("" when it can):
        the Node is then not Ready, with the kubelet's "container runtime is down" message.
        `pod_cidrs`: dual-stack, both pod CIDRs, `pod_cidr` (the primary) first; `host_ip6`:
        dual-stack, the IPv6 InternalIP listed after `host_ip` (as the kubelet's --node-ip)."""
        self.client = client
        self.name = name
        self.host_ip = host_ip
        self.host_ip6 = host_ip6
        self.port = port
        self.pod_cidr = pod_cidr
        self.pod_cidrs = pod_cidrs or [pod_cidr]
        self.labels = labels or {}
        self.runtime_version = runtime_version
        self.runtime_down = runtime_down
        self.node_uid = ""
        #: the NetworkUnavailable condition (status, reason, message) once the pod network reports
        #: one (`set_network`); None: the Node has none (loopback mode)
        self.network: tuple[str, str, str] | None = None
        self._task: asyncio.Task[None] | None = None
        self._pending: set[asyncio.Task[None]] = set()
        #: condition type -> lastTransitionTime (kept while the status stays the same)
        self._since: dict[str, str] = {}

    def node_labels(self) -> dict[str, str]:
        arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
        return {HOSTNAME_LABEL: self.name, OS_LABEL: "linux", ARCH_LABEL: arch,
                BETA_OS_LABEL: "linux", BETA_ARCH_LABEL: arch, **self.labels}

    def node_status(self) -> Obj:
        cpu = str(os.cpu_count() or 1)
        mem = f"{_memory_bytes() // 1024}Ki"
        resources = {"cpu": cpu, "memory": mem, "pods": str(MAX_PODS), "ephemeral-storage": "0"}
        now = now_rfc3339()

        def cond(ctype: str, status: str, reason: str, message: str) -> Condition:
            return {"type": ctype, "status": status, "reason": reason, "message": message,
                    "lastHeartbeatTime": now, "lastTransitionTime": self._since.get(ctype, now)}

        arch = self.node_labels()[ARCH_LABEL]
        return {
            "capacity": resources,
            "allocatable": resources,
            "conditions": [
                cond("MemoryPressure", "False", "KubeletHasSufficientMemory",
                     "kubelet has sufficient memory available"),
                cond("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
                cond("PIDPressure", "False", "KubeletHasSufficientPID",
                     "kubelet has sufficient PID available"),
                cond("Ready", "False", "KubeletNotReady", f"container runtime is down: {self.runtime_down}")
                if self.runtime_down else
                cond("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
            ] + ([cond("NetworkUnavailable", *self.network)] if self.network else []),
            "addresses": [{"type": "InternalIP", "address": a} for a in (self.host_ip, self.host_ip6) if a]
            + [{"type": "Hostname", "address": self.name}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": self.port}},
            "nodeInfo": {
                "machineID": _read("/etc/machine-id"),
                "systemUUID": _read("/etc/machine-id"),
                "bootID": _read("/proc/sys/kernel/random/boot_id"),
                "kernelVersion": platform.release(),
                "osImage": platform.freedesktop_os_release().get("PRETTY_NAME", "Linux")
                if hasattr(platform, "freedesktop_os_release") else "Linux",
                "containerRuntimeVersion": self.runtime_version,
                "kubeletVersion": VERSION,
                "kubeProxyVersion": VERSION,
                "operatingSystem": "linux",
                "architecture": arch,
            },
        }

    async def register(self) -> Obj:
        """Create the Node (or adopt the existing one of this name); write its status. Raises
        the API's error when the Node cannot be written (the agent cannot run without one)."""
        self._since = {}
        try:
            node = await self.client.get(NODES, self.name)
        except errors.NotFound:
            body = {"apiVersion": "v1", "kind": "Node",
                    "metadata": {"name": self.name, "labels": self.node_labels()},
                    "spec": {"podCIDR": self.pod_cidr, "podCIDRs": self.pod_cidrs}}
            try:
                node = await self.client.create(NODES, body)
            except errors.AlreadyExists:
                node = await self.client.get(NODES, self.name)
        else:
            patch: Obj = {"metadata": {"labels": self.node_labels()}}
            spec = node.get("spec") or {}
            if spec.get("podCIDR") != self.pod_cidr or spec.get("podCIDRs") != self.pod_cidrs:
                patch["spec"] = {"podCIDR": self.pod_cidr, "podCIDRs": self.pod_cidrs}
            try:
                node = await self.client.patch(NODES, self.name, patch)
            except errors.Invalid as exc:  # a set podCIDR is immutable: keep the labels at least
                log.warning("node %s: the Node keeps its pod CIDRs %s, not this agent's %s (%s); pods "
                            "get addresses other nodes do not route: delete the Node to change them",
                            self.name, spec.get("podCIDRs"), self.pod_cidrs, exc)
                node = await self.client.patch(NODES, self.name, {"metadata": patch["metadata"]})
        self.node_uid = str(node.get("metadata", {}).get("uid", ""))
        for c in (node.get("status") or {}).get("conditions") or []:
            if c.get("type") and c.get("status") in ("True", "False") and c.get("lastTransitionTime"):
                if c["type"] == "Ready" and c["status"] != "True":
                    continue  # becomes True now
                self._since[c["type"]] = c["lastTransitionTime"]
        await self.update_status()
        await self.renew_lease()
        return node

    def set_network(self, status: str, reason: str, message: str) -> None:
        """Set the Node's `NetworkUnavailable` condition (as a network plugin does) and write the
        status now (in the background; a failed write is retried by the next full status)."""
        if self.network is not None and self.network[0] != status:
            self._since.pop("NetworkUnavailable", None)  # a transition: new lastTransitionTime
        self.network = (status, reason, message)
        if self.node_uid:  # registered: otherwise register() writes it
            task = asyncio.get_running_loop().create_task(self._write_status(), name="node-status")
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)

    async def _write_status(self) -> None:
        try:
            await self.update_status()
        except errors.KubeError as exc:
            log.warning("node %s: writing the network condition failed: %s", self.name, exc)

    async def update_status(self) -> None:
        status = self.node_status()
        for c in status["conditions"]:
            self._since.setdefault(c["type"], c["lastTransitionTime"])
        await self.client.patch(NODES, self.name, {"status": status}, subresource="status")

    async def renew_lease(self) -> None:
        spec = {"holderIdentity": self.name, "leaseDurationSeconds": LEASE_DURATION,
                "renewTime": now_rfc3339_micro()}
        try:
            await self.client.patch(LEASES, self.name, {"spec": spec}, LEASE_NAMESPACE)
        except errors.NotFound:
            body: Obj = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                         "metadata": {"name": self.name, "namespace": LEASE_NAMESPACE},
                         "spec": spec}
            if self.node_uid:
                body["metadata"]["ownerReferences"] = [{"apiVersion": "v1", "kind": "Node",
                                                        "name": self.name, "uid": self.node_uid}]
            try:
                await self.client.create(LEASES, body, LEASE_NAMESPACE)
            except errors.NotFound:
                await self._ensure_namespace()
                await self.client.create(LEASES, body, LEASE_NAMESPACE)

    async def _ensure_namespace(self) -> None:
        with contextlib.suppress(errors.AlreadyExists):
            await self.client.create(NAMESPACES, {"apiVersion": "v1", "kind": "Namespace",
                                                  "metadata": {"name": LEASE_NAMESPACE}})

    def start(self, renew_every: float = LEASE_RENEW) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(renew_every), name="heartbeat")

    async def stop(self) -> None:
        for task in list(self._pending):
            with contextlib.suppress(Exception):
                await task
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self, renew_every: float) -> None:
        last_status = time.monotonic()
        while True:
            await asyncio.sleep(renew_every)
            try:
                await self.renew_lease()
                if time.monotonic() - last_status >= STATUS_EVERY:
                    await self.update_status()
                    last_status = time.monotonic()
                else:
                    await self.client.get(NODES, self.name)  # still there? (the kubelet checks too)
            except errors.NotFound:
                with contextlib.suppress(errors.KubeError):
                    await self.register()  # the Node was deleted: register again, as the kubelet does
            except errors.KubeError as exc:
                log.warning("node %s: heartbeat failed: %s", self.name, exc)
