"""The ReplicaSet controller: informers -> queue of ReplicaSet keys -> `sync` -> pods and status.

Handlers enqueue the key of the ReplicaSet a pod belongs to (its controller owner reference), or
for an orphan pod the ReplicaSets of its namespace whose selector matches it (they may adopt it).
`sync` re-reads the set and its namespace's pods from the caches, adopts matching orphans and
releases owned pods that stopped matching (Kubernetes' `ControllerRefManager`, with the pod's
resourceVersion as precondition), asks the pure `control.plan` for this step and applies it
through `_podcontrol.PodControl` (slow-start creations, deletions, events), then writes the
status when it changed. While `PodControl`'s expectations are not met (our own writes not yet in
the cache) the plan only computes status, so a lagging cache never makes it create twice; a
failed write sets the `ReplicaFailure` condition.

Bad input (an empty or invalid selector) is reported as a Warning event and not retried.

`ReplicationManager` runs core/v1 ReplicationControllers the same way, as kube-controller-manager
does (its replication manager wraps the ReplicaSet controller): each is seen as a ReplicaSet whose
selector is the controller's label map (`as_replica_set`), its pods are owned by the
ReplicationController and its status is written back to it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Hashable, Mapping
from typing import Any

from podns.controllers import workerloop
from podns.controllers._owned import (
    check_selector,
    claim_owned,
    watch_owned,
)
from podns.controllers._podcontrol import PodControl, message
from podns.controllers.replicaset import control
from podns.controllers.sharedinformers import SharedInformers
from podns.kube import errors
from podns.kube.client import Client
from podns.kube.events import WARNING, EventRecorder
from podns.kube.resources import PODS, REPLICASETS, REPLICATIONCONTROLLERS, Resource
from podns.objects import (
    Obj,
    SelectorError,
    meta_of,
    name_of,
    owner_reference,
)

log = logging.getLogger(__name__)


class ReplicaSetController(workerloop.Controller):
    """Keeps `spec.replicas` interchangeable pods of each ReplicaSet running."""

    name = "replicaset-controller"
    max_retries = None  # requeued with back-off until it succeeds, as upstream
    workers = 2
    #: the kind run, and how one is seen as a ReplicaSet (the replication manager overrides)
    resource: Resource = REPLICASETS
    kind = "ReplicaSet"

    def __init__(self, client: Client, informers: SharedInformers, *,
                 recorder: EventRecorder | None = None) -> None:
        super().__init__()
        self.client = client
        self.recorder = recorder
        self.sets = informers.get(self.resource)
        self.pods = informers.get(PODS)
        watch_owned(self, self.kind, self.sets, self.pods, selector_of=self.selector_of)
        self.pod_control = PodControl(client, self.pods, recorder)

    # -- sync ------------------------------------------------------------------------------------

    async def sync(self, key: Hashable) -> None:
        key = str(key)
        cached = self.sets.get(key)
        if cached is None:
            self.pod_control.forget(key)
            return  # gone: the garbage collector removes its pods
        rs = self.as_replica_set(cached)
        try:
            selector = check_selector(rs)
        except SelectorError as exc:
            self._event(rs, WARNING, "InvalidSelector", f"invalid selector: {exc}")
            return  # non-transient: wait for the user to fix the spec
        pods = await claim_owned(self.client, PODS, self.pods, rs,
                                 owner_reference(self._with_kind(rs)), selector)
        step = control.plan(self._with_kind(rs), pods, now=time.time(),
                            manage=self.pod_control.satisfied(key))
        failure: tuple[str, str] | None = None
        try:
            await self.pod_control.apply(self._with_kind(rs), key, step.create, step.delete)
        except Exception as exc:
            failure = ("FailedCreate" if step.create else "FailedDelete", message(exc))
            raise
        finally:
            status = step.status
            if failure is not None:
                status = control.compute_status(rs, [p for p in pods if control.is_active(p)],
                                                time.time(), failure)
            await self._write_status(cached, status)
        if step.requeue_after is not None:
            self.queue.add_after(key, step.requeue_after)

    def _event(self, rs: Obj, type_: str, reason: str, text: str) -> None:
        self.pod_control.event(self._with_kind(rs), type_, reason, text)

    @staticmethod
    def selector_of(owner: Obj) -> Any:
        """The owner's LabelSelector."""
        return (owner.get("spec") or {}).get("selector")

    @staticmethod
    def as_replica_set(obj: Obj) -> Obj:
        """The object as the ReplicaSet logic sees it (itself, for a ReplicaSet)."""
        return obj

    def _with_kind(self, obj: Obj) -> Obj:
        return {"apiVersion": self.resource.api_version, "kind": self.kind, **obj}

    async def _write_status(self, rs: Obj, status: Mapping[str, Any]) -> None:
        old = rs.get("status") or {}
        if all(old.get(k) == v for k, v in status.items()) and set(old) <= set(status):
            return
        new = {**rs, "status": dict(status), "metadata": {**meta_of(rs)}}
        try:
            await self.client.update_status(self.resource, new)
        except errors.NotFound:
            return
        except errors.Conflict:
            raise workerloop.StaleCache(f"status of {self.kind} {name_of(rs)}") from None


class ReplicationManager(ReplicaSetController):
    """Keeps `spec.replicas` pods of each ReplicationController running."""

    name = "replicationmanager"
    resource = REPLICATIONCONTROLLERS
    kind = "ReplicationController"

    @staticmethod
    def selector_of(owner: Obj) -> Any:
        selector = (owner.get("spec") or {}).get("selector")
        return {"matchLabels": selector} if isinstance(selector, dict) else None

    @staticmethod
    def as_replica_set(obj: Obj) -> Obj:
        spec = dict(obj.get("spec") or {})
        spec["selector"] = ReplicationManager.selector_of(obj)
        return {**obj, "spec": spec}


__all__ = ["ReplicaSetController", "ReplicationManager"]
