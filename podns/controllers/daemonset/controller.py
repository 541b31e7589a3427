"""The DaemonSet controller: informers -> queue of DaemonSet keys -> `sync` -> pods and status.

Handlers enqueue the DaemonSet a pod belongs to, and every DaemonSet when a node is added,
removed or changes labels, taints or schedulability (which nodes should run a daemon pod may
change). `sync` re-reads the DaemonSet, all nodes and its pods from the caches, asks the pure
`control.plan` for this step and applies it through `_podcontrol.PodControl` (slow-start
creations, deletions, events, expectations), then writes the status when it changed.
"""

from __future__ import annotations

import time
from collections.abc import Hashable, Mapping
from typing import Any

from podns.controllers import workerloop
from podns.controllers._indexes import ensure as _ensure_index
from podns.controllers._owned import (
    BY_CONTROLLER,
    check_selector,
    controller_key,
    controller_uid,
    watch_owner,
)
from podns.controllers._podcontrol import PodControl
from podns.controllers.daemonset import control
from podns.controllers.sharedinformers import SharedInformers
from podns.kube import errors
from podns.kube.client import Client
from podns.kube.events import WARNING, EventRecorder
from podns.kube.resources import DAEMONSETS, NODES, PODS
from podns.objects import (
    Obj,
    SelectorError,
    meta_of,
    name_of,
    object_key,
)


def _with_kind(ds: Obj) -> Obj:
    return {"apiVersion": "apps/v1", "kind": "DaemonSet", **ds}


class DaemonSetController(workerloop.Controller):
    """Runs one pod of each DaemonSet on every node that should run it."""

    name = "daemonset-controller"
    max_retries = None  # requeued with back-off until it succeeds, as upstream
    workers = 2

    def __init__(self, client: Client, informers: SharedInformers, *,
                 recorder: EventRecorder | None = None) -> None:
        super().__init__()
        self.client = client
        self.sets = informers.get(DAEMONSETS)
        self.nodes = informers.get(NODES)
        self.pods = informers.get(PODS)
        _ensure_index(self.pods, BY_CONTROLLER, controller_uid)
        self.pod_control = PodControl(client, self.pods, recorder)
        watch_owner(self, self.sets)
        self.pods.add_handler(on_add=self._on_pod, on_update=lambda _o, n: self._on_pod(n),
                              on_delete=self._on_pod)
        self.nodes.add_handler(on_add=self._on_node, on_update=self._on_node_update,
                               on_delete=self._on_node)

    def _on_pod(self, pod: Obj) -> None:
        key = controller_key(pod, "DaemonSet")
        if key is not None:
            self.enqueue(key)

    def _on_node(self, _node: Obj) -> None:
        for ds in self.sets.list():
            self.enqueue(object_key(ds))

    def _on_node_update(self, old: Obj, new: Obj) -> None:
        if (meta_of(old).get("labels") != meta_of(new).get("labels")
                or (old.get("spec") or {}) != (new.get("spec") or {})):
            self._on_node(new)

    async def sync(self, key: Hashable) -> None:
        key = str(key)
        ds = self.sets.get(key)
        if ds is None:
            self.pod_control.forget(key)
            return  # gone: the garbage collector removes its pods
        ds = _with_kind(ds)
        try:
            check_selector(ds)
        except SelectorError as exc:
            self.pod_control.event(ds, WARNING, "InvalidSelector", f"invalid selector: {exc}")
            return  # non-transient: wait for the user to fix the spec
        pods = self.pods.by_index(BY_CONTROLLER, str(meta_of(ds).get("uid", "")))
        step = control.plan(ds, self.nodes.list(), pods, now=time.time(),
                            manage=self.pod_control.satisfied(key))
        try:
            await self.pod_control.apply(ds, key, step.create, step.delete)
        finally:
            await self._write_status(ds, step.status)
        if step.requeue_after is not None:
            self.queue.add_after(key, step.requeue_after)

    async def _write_status(self, ds: Obj, status: Mapping[str, Any]) -> None:
        if (ds.get("status") or {}) == status:
            return
        try:
            await self.client.update_status(DAEMONSETS, {**ds, "status": dict(status)})
        except errors.NotFound:
            return
        except errors.Conflict:
            raise workerloop.StaleCache(f"status of DaemonSet {name_of(ds)}") from None


__all__ = ["DaemonSetController"]
