"""Node lifecycle: nodes whose agent stopped heartbeating become NotReady, and so do their pods.

A node agent heartbeats by renewing its Lease `kube-node-lease/<node>` (and by posting node
status). Like Kubernetes' node lifecycle controller, we do not compare the Lease's `renewTime`
with our clock (clocks differ between machines): we note, on our own monotonic clock, when we
last *saw* a heartbeat change, and a node that shows no change for `grace_period` seconds (40 by
default, `--node-grace-period`) gets its `Ready` condition (and the other kubelet conditions) set
to `Unknown` with reason `NodeStatusUnknown`, a `NodeNotReady` event, and every pod on it gets
`Ready=False`, so the EndpointSlice controller marks its endpoints not ready and DNS drops them.
A node first seen by this controller gets a full grace period from that moment (a restarted
controller does not fail every node at once).

Pure part: `unknown_conditions(node, now)` and `not_ready_conditions(pod, now)` return the new
condition lists, or None when nothing must change. A node coming back is the agent's business:
it posts Ready=True and its pods' readiness again.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import time
from collections.abc import Hashable, Mapping
from typing import Any

from podns.controllers import workerloop
from podns.controllers._indexes import ensure
from podns.controllers.scheduler import BY_NODE
from podns.controllers.sharedinformers import SharedInformers
from podns.kube import errors
from podns.kube.client import Client
from podns.kube.events import WARNING, EventRecorder
from podns.kube.resources import LEASES, NODES, PODS
from podns.objects import Obj, get_condition, name_of, namespace_of, now_rfc3339

log = logging.getLogger(__name__)

NODE_LEASE_NAMESPACE = "kube-node-lease"
#: Kubernetes' --node-monitor-grace-period default (seconds)
DEFAULT_GRACE_PERIOD = 40.0
#: conditions the kubelet owns; all become Unknown when it goes silent
KUBELET_CONDITIONS = ("Ready", "MemoryPressure", "DiskPressure", "PIDPressure")


def unknown_conditions(node: Mapping[str, Any], now: str) -> list[Obj] | None:
    """The node's conditions with the kubelet's ones set to Unknown, or None if already so."""
    conditions = copy.deepcopy((node.get("status") or {}).get("conditions") or [])
    changed = False
    present = {c.get("type") for c in conditions}
    for cond in conditions:
        if cond.get("type") in KUBELET_CONDITIONS and cond.get("status") != "Unknown":
            cond.update(status="Unknown", reason="NodeStatusUnknown",
                        message="Kubelet stopped posting node status.", lastTransitionTime=now)
            changed = True
    if "Ready" not in present:
        conditions.append({"type": "Ready", "status": "Unknown", "reason": "NodeStatusNeverUpdated",
                           "message": "Kubelet never posted node status.", "lastTransitionTime": now,
                           "lastHeartbeatTime": now})
        changed = True
    return conditions if changed else None


def not_ready_conditions(pod: Mapping[str, Any], now: str) -> list[Obj] | None:
    """The pod's conditions with Ready (and ContainersReady) False, or None if already not ready
    (Kubernetes `MarkPodsNotReady`)."""
    conditions = copy.deepcopy((pod.get("status") or {}).get("conditions") or [])
    changed = False
    for cond in conditions:
        if cond.get("type") == "Ready" and cond.get("status") == "True":
            cond.update(status="False", reason="NodeNotReady", message="node is not ready",
                        lastTransitionTime=now)
            changed = True
    return conditions if changed else None


def _heartbeat(obj: Mapping[str, Any]) -> Any:
    if obj.get("kind") == "Lease" or "holderIdentity" in (obj.get("spec") or {}):
        return (obj.get("spec") or {}).get("renewTime")
    return (get_condition(obj, "Ready") or {}).get("lastHeartbeatTime")


class NodeLifecycleController(workerloop.Controller):
    """Marks silent nodes NotReady (Ready=Unknown) and their pods not ready."""

    name = "node-lifecycle-controller"
    workers = 2

    def __init__(self, client: Client, informers: SharedInformers, *,
                 recorder: EventRecorder | None = None, grace_period: float = DEFAULT_GRACE_PERIOD,
                 clock: Any = time.monotonic) -> None:
        super().__init__()
        self.client = client
        self.recorder = recorder
        self.grace_period = grace_period
        self.clock = clock
        self.nodes = informers.get(NODES)
        self.leases = informers.get(LEASES, NODE_LEASE_NAMESPACE)
        self.pods = informers.get(PODS)
        ensure(self.pods, BY_NODE, lambda p: [(p.get("spec") or {}).get("nodeName") or ""])
        #: node name -> (last heartbeat value seen on the lease, on the node) and when it changed
        self._seen: dict[str, tuple[Any, Any, float]] = {}
        self.nodes.add_handler(on_add=self._observe, on_update=lambda _o, n: self._observe(n),
                               on_delete=lambda n: self._seen.pop(name_of(n), None))
        self.leases.add_handler(on_add=self._observe, on_update=lambda _o, n: self._observe(n))

    def _observe(self, obj: Obj) -> None:
        node = name_of(obj)
        lease_hb, node_hb, when = self._seen.get(node, (None, None, self.clock()))
        value = _heartbeat(obj)
        is_lease = namespace_of(obj) == NODE_LEASE_NAMESPACE
        if is_lease and value != lease_hb:
            lease_hb, when = value, self.clock()
        elif not is_lease and value != node_hb:
            node_hb, when = value, self.clock()
        self._seen[node] = (lease_hb, node_hb, when)

    def silent_for(self, node: str) -> float:
        """Seconds since the last heartbeat change we saw for `node` (0 if never seen)."""
        seen = self._seen.get(node)
        return 0.0 if seen is None else self.clock() - seen[2]

    async def monitor(self, period: float | None = None) -> None:
        """Every `period` seconds (default grace/8, 0.1-5 s) enqueue the nodes gone silent."""
        period = period or min(5.0, max(0.1, self.grace_period / 8))
        while True:
            await asyncio.sleep(period)
            for node in self.nodes.list():
                if self.silent_for(name_of(node)) > self.grace_period:
                    self.enqueue(name_of(node))

    async def run(self, workers: int | None = None) -> None:
        monitor = asyncio.create_task(self.monitor(), name="node-monitor")
        try:
            await super().run(workers)
        finally:
            monitor.cancel()

    async def sync(self, key: Hashable) -> None:
        name = str(key)
        node = self.nodes.get(name)
        if node is None or self.silent_for(name) <= self.grace_period:
            return  # gone, or heartbeating again
        now = now_rfc3339()
        conditions = unknown_conditions(node, now)
        if conditions is not None:
            try:
                await self.client.patch(NODES, name, {"status": {"conditions": conditions}},
                                        subresource="status")
            except errors.NotFound:
                return
            if self.recorder is not None:
                self.recorder.event(node, WARNING, "NodeNotReady", f"Node {name} status is now: NodeNotReady")
            log.info("node %s silent for %.1fs: marked NotReady", name, self.silent_for(name))
        failed: list[Exception] = []
        for pod in self.pods.by_index(BY_NODE, name):
            pod_conditions = not_ready_conditions(pod, now)
            if pod_conditions is None:
                continue
            try:
                await self.client.patch(PODS, name_of(pod), {"status": {"conditions": pod_conditions}},
                                        namespace_of(pod), subresource="status")
            except errors.NotFound:
                continue
            except errors.KubeError as exc:
                failed.append(exc)
        if failed:
            raise ExceptionGroup(f"marking pods on node {name} not ready", failed)
