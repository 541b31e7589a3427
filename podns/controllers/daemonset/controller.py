"""The DaemonSet controller: informers -> queue of DaemonSet keys -> `sync` -> pods and status.

Handlers enqueue the DaemonSet a pod belongs to, and every DaemonSet when a node is added,
removed or changes labels, taints or schedulability (which nodes should run a daemon pod may
change). `sync` re-reads the DaemonSet, all nodes and its pods from the caches, makes sure a
ControllerRevision exists for the current template (`_revision`: what `kubectl rollout history`
lists and `rollout undo` patches back; an older one whose template came back is renumbered as
the newest), asks the pure `control.plan` for this step and applies it through
`_podcontrol.PodControl` (slow-start creations, deletions, events, expectations), writes the
status when it changed and prunes revisions no pod uses beyond `revisionHistoryLimit`, as
Kubernetes' `constructHistory`/`cleanupHistory` do.
"""

from __future__ import annotations

import time
from collections.abc import Hashable, Mapping
from typing import Any

from podns.controllers import _revision, workerloop
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
from podns.kube.resources import CONTROLLERREVISIONS, DAEMONSETS, NODES, PODS
from podns.objects import (
    Obj,
    SelectorError,
    labels_of,
    meta_of,
    name_of,
    namespace_of,
    object_key,
)
from podns.objects.wellknown import HASH_LABEL


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
        self.revisions = informers.get(CONTROLLERREVISIONS)
        _ensure_index(self.pods, BY_CONTROLLER, controller_uid)
        _ensure_index(self.revisions, BY_CONTROLLER, controller_uid)
        self.pod_control = PodControl(client, self.pods, recorder)
        watch_owner(self, self.sets)
        self.pods.add_handler(on_add=self._on_pod, on_update=lambda _o, n: self._on_pod(n),
                              on_delete=self._on_pod)
        self.revisions.add_handler(on_delete=self._on_pod)
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
        uid = str(meta_of(ds).get("uid", ""))
        pods = self.pods.by_index(BY_CONTROLLER, uid)
        revisions = self.revisions.by_index(BY_CONTROLLER, uid)
        if not meta_of(ds).get("deletionTimestamp"):
            await self._current_revision(ds, revisions)
        step = control.plan(ds, self.nodes.list(), pods, now=time.time(),
                            manage=self.pod_control.satisfied(key))
        try:
            await self.pod_control.apply(ds, key, step.create, step.delete)
        finally:
            await self._write_status(ds, step.status)
        await self._truncate_history(ds, revisions, pods)
        if step.requeue_after is not None:
            self.queue.add_after(key, step.requeue_after)

    async def _current_revision(self, ds: Obj, revisions: list[Obj]) -> Obj:
        """The revision of the current template, created when missing (renumbered when an older
        template came back). A name taken by a revision with another template bumps
        `status.collisionCount`, which changes the hash (and the pods' label), and retries."""
        collisions = int((ds.get("status") or {}).get("collisionCount") or 0)
        want = _revision.new_revision(ds, _revision.next_number(revisions), collisions,
                                      kind="DaemonSet")
        existing = _revision.equal_revision(revisions, want)
        if existing is not None:
            bumped = _revision.rolled_back(revisions, existing)
            return existing if bumped is None else await self.client.update(CONTROLLERREVISIONS, bumped)
        try:
            return await self.client.create(CONTROLLERREVISIONS, want, namespace_of(ds))
        except errors.AlreadyExists:
            found = await self.client.get(CONTROLLERREVISIONS, name_of(want), namespace_of(ds))
            if _revision.revision_template(found) == _revision.revision_template(want) \
                    and _revision.is_owned_by(found, ds):
                return found
            await self._write_status(ds, {**(ds.get("status") or {}), "collisionCount": collisions + 1})
            raise workerloop.StaleCache(f"revision name collision for {name_of(ds)}") from None

    async def _truncate_history(self, ds: Obj, revisions: list[Obj], pods: list[Obj]) -> None:
        """Delete the oldest revisions no pod runs beyond `spec.revisionHistoryLimit`."""
        limit = (ds.get("spec") or {}).get("revisionHistoryLimit")
        limit = _revision.DEFAULT_HISTORY_LIMIT if limit is None else int(limit)
        hashes = {labels_of(p).get(control.HASH_LABEL) for p in pods} | {control.revision_hash(ds)}
        live = {name_of(r) for r in revisions if labels_of(r).get(HASH_LABEL) in hashes}
        for old in _revision.history_to_delete(revisions, live, limit):
            try:
                await self.client.delete(CONTROLLERREVISIONS, name_of(old), namespace_of(old))
            except errors.NotFound:
                pass

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
