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
"""

from __future__ import annotations

import logging
import time
from collections.abc import Hashable, Mapping
from typing import Any

from podns.controllers import workerloop
from podns.controllers._indexes import ensure as _ensure_index
from podns.controllers._podcontrol import PodControl, message
from podns.controllers.replicaset import control
from podns.controllers.sharedinformers import SharedInformers
from podns.kube import errors
from podns.kube.client import Client
from podns.kube.events import WARNING, EventRecorder
from podns.kube.informer import Informer
from podns.kube.resources import PODS, REPLICASETS, Resource
from podns.objects import (
    Obj,
    SelectorError,
    controller_ref,
    join_key,
    labels_of,
    match_label_selector,
    meta_of,
    name_of,
    namespace_of,
    object_key,
    owner_reference,
    validate_label_selector,
)

log = logging.getLogger(__name__)

#: index of pods and sets by namespace
BY_NAMESPACE = "namespace"
#: index of pods by the uid of their controller
BY_CONTROLLER = "controller-uid"


def controller_uid(obj: Obj) -> list[str]:
    """Index function: the uid of the object's controller, if any."""
    ref = controller_ref(obj)
    return [str(ref.get("uid"))] if ref and ref.get("uid") else []


def check_selector(obj: Mapping[str, Any]) -> dict[str, Any]:
    """The workload's `spec.selector`; raises `SelectorError` when it is empty, invalid, or does
    not select the pod template's labels (non-transient: reported, not retried)."""
    spec = obj.get("spec") or {}
    selector = spec.get("selector")
    validate_label_selector(selector)
    if not selector or not (selector.get("matchLabels") or selector.get("matchExpressions")):
        raise SelectorError("empty selector")
    template_labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
    if not match_label_selector(selector, template_labels):
        raise SelectorError("selector does not match template labels")
    return dict(selector)


def owner_keys(obj: Obj, kind: str, owners: Informer) -> list[str]:
    """The keys of the `kind` objects to sync when `obj` changes: its controller when it has one
    of that kind, else (an orphan, not being deleted) every `kind` of its namespace whose
    selector matches it, since they may adopt it. `owners` is indexed `BY_NAMESPACE`."""
    ref = controller_ref(obj)
    if ref is not None:
        return [join_key(namespace_of(obj), str(ref.get("name") or ""))] if ref.get("kind") == kind else []
    if meta_of(obj).get("deletionTimestamp"):
        return []
    keys = []
    for owner in owners.by_index(BY_NAMESPACE, namespace_of(obj)):
        try:
            if match_label_selector((owner.get("spec") or {}).get("selector"), labels_of(obj)):
                keys.append(object_key(owner))
        except SelectorError:
            continue
    return keys


def ownership_changed(old: Obj, new: Obj) -> bool:
    """Whether an update may concern another owner than before (its controller or labels)."""
    return controller_ref(old) != controller_ref(new) or labels_of(old) != labels_of(new)


async def claim(client: Client, resource: Resource, owner: Obj, owner_ref: Obj,
                owned: list[Obj], candidates: list[Obj], selector: Mapping[str, Any]) -> list[Obj]:
    """Kubernetes' `ControllerRefManager.Claim*`: the objects `owner` controls after adopting the
    orphans among `candidates` that match `selector` and releasing the `owned` ones that no
    longer match. Patches carry the object's resourceVersion, so a concurrent change fails them
    (Conflict, retried) instead of adopting something that changed meanwhile. An owner being
    deleted adopts nothing."""
    uid = str(meta_of(owner).get("uid", ""))
    keep = {object_key(o): o for o in owned}
    changes: list[tuple[Obj, list[Obj]]] = []
    if not meta_of(owner).get("deletionTimestamp"):
        for obj in candidates:
            if (controller_ref(obj) is None and not meta_of(obj).get("deletionTimestamp")
                    and match_label_selector(selector, labels_of(obj))):
                changes.append((obj, [*(meta_of(obj).get("ownerReferences") or []), owner_ref]))
    for key, obj in list(keep.items()):
        if not match_label_selector(selector, labels_of(obj)):
            refs = [r for r in meta_of(obj).get("ownerReferences") or [] if r.get("uid") != uid]
            changes.append((obj, refs))
            del keep[key]
    for obj, refs in changes:
        patch = {"metadata": {"ownerReferences": refs or None,
                              "resourceVersion": meta_of(obj).get("resourceVersion")}}
        try:
            patched = await client.patch(resource, name_of(obj), patch, namespace_of(obj))
        except errors.NotFound:
            continue
        ref = controller_ref(patched)
        if ref is not None and ref.get("uid") == uid:
            keep[object_key(patched)] = patched
    return list(keep.values())


class ReplicaSetController(workerloop.Controller):
    """Keeps `spec.replicas` interchangeable pods of each ReplicaSet running."""

    name = "replicaset-controller"
    workers = 2

    def __init__(self, client: Client, informers: SharedInformers, *,
                 recorder: EventRecorder | None = None) -> None:
        super().__init__()
        self.client = client
        self.recorder = recorder
        self.sets = informers.get(REPLICASETS)
        self.pods = informers.get(PODS)
        _ensure_index(self.pods, BY_CONTROLLER, controller_uid)
        _ensure_index(self.pods, BY_NAMESPACE, lambda o: [namespace_of(o)])
        _ensure_index(self.sets, BY_NAMESPACE, lambda o: [namespace_of(o)])
        self.sets.add_handler(on_add=self._on_set, on_update=lambda _o, n: self._on_set(n),
                              on_delete=self._on_set)
        self.pods.add_handler(on_add=self._on_pod, on_update=self._on_pod_update,
                              on_delete=self._on_pod)
        self.pod_control = PodControl(client, self.pods, recorder)

    # -- event handlers: enqueue only --------------------------------------------------------

    def _on_set(self, rs: Obj) -> None:
        self.enqueue(object_key(rs))

    def _on_pod(self, pod: Obj) -> None:
        for key in owner_keys(pod, "ReplicaSet", self.sets):
            self.enqueue(key)

    def _on_pod_update(self, old: Obj, new: Obj) -> None:
        self._on_pod(new)
        if ownership_changed(old, new):
            self._on_pod(old)

    # -- sync ------------------------------------------------------------------------------------

    async def sync(self, key: Hashable) -> None:
        key = str(key)
        rs = self.sets.get(key)
        if rs is None:
            self.pod_control.forget(key)
            return  # gone: the garbage collector removes its pods
        try:
            selector = check_selector(rs)
        except SelectorError as exc:
            self._event(rs, WARNING, "InvalidSelector", f"invalid selector: {exc}")
            return  # non-transient: wait for the user to fix the spec
        pods = await self._claim_pods(rs, selector)
        step = control.plan(rs, pods, now=time.time(), manage=self.pod_control.satisfied(key))
        failure: tuple[str, str] | None = None
        try:
            await self.pod_control.apply(_with_kind(rs), key, step.create, step.delete)
        except Exception as exc:
            failure = ("FailedCreate" if step.create else "FailedDelete", message(exc))
            raise
        finally:
            status = step.status
            if failure is not None:
                status = control.compute_status(rs, [p for p in pods if control.is_active(p)],
                                                time.time(), failure)
            await self._write_status(rs, status)
        if step.requeue_after is not None:
            self.queue.add_after(key, step.requeue_after)

    async def _claim_pods(self, rs: Obj, selector: dict[str, Any]) -> list[Obj]:
        owned = self.pods.by_index(BY_CONTROLLER, str(meta_of(rs).get("uid", "")))
        candidates = [p for p in self.pods.by_index(BY_NAMESPACE, namespace_of(rs))
                      if controller_ref(p) is None]
        if not candidates and all(match_label_selector(selector, labels_of(p)) for p in owned):
            return owned
        ref = owner_reference({"apiVersion": "apps/v1", "kind": "ReplicaSet", **rs})
        return await claim(self.client, PODS, rs, ref, owned, candidates, selector)

    def _event(self, rs: Obj, type_: str, reason: str, text: str) -> None:
        self.pod_control.event(_with_kind(rs), type_, reason, text)

    async def _write_status(self, rs: Obj, status: Mapping[str, Any]) -> None:
        old = rs.get("status") or {}
        if all(old.get(k) == v for k, v in status.items()) and set(old) <= set(status):
            return
        new = {**rs, "status": dict(status), "metadata": {**meta_of(rs)}}
        try:
            await self.client.update_status(REPLICASETS, new)
        except errors.NotFound:
            return
        except errors.Conflict:
            raise workerloop.StaleCache(f"status of ReplicaSet {name_of(rs)}") from None


def _with_kind(rs: Obj) -> Obj:
    return {"apiVersion": "apps/v1", "kind": "ReplicaSet", **rs}


__all__ = ["ReplicaSetController", "check_selector", "claim", "controller_uid", "owner_keys",
           "ownership_changed"]
