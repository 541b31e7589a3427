"""The ReplicaSet controller: informers -> queue of ReplicaSet keys -> `sync` -> pods and status.

Handlers enqueue the key of the ReplicaSet a pod belongs to (its controller owner reference), or
for an orphan pod the ReplicaSets of its namespace whose selector matches it (they may adopt it).
`sync` re-reads the set and its namespace's pods from the caches, adopts matching orphans and
releases owned pods that stopped matching (Kubernetes' `ControllerRefManager`, with the pod's
resourceVersion as precondition), asks the pure `control.plan` for this step and applies it:
creations in slow-start batches (1, 2, 4, ...: a quota or admission failure costs one request,
not hundreds), deletions in parallel, then the status when it changed.

Expectations (Kubernetes `ControllerExpectations`): pods this controller created or deleted that
its cache does not show yet. Until they show (or `EXPECTATIONS_TIMEOUT` passes), `sync` only
writes status, so a cache lagging behind our own writes never makes it create twice.

Bad input (an empty or invalid selector) is reported as a Warning event and not retried.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Hashable, Mapping
from typing import Any

from podns.controllers import runtime
from podns.controllers._indexes import ensure as _ensure_index
from podns.controllers.replicaset import control
from podns.kube import errors
from podns.kube.client import Client
from podns.kube.events import NORMAL, WARNING, EventRecorder
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
#: seconds after which unseen creations/deletions are no longer waited for (Kubernetes' value)
EXPECTATIONS_TIMEOUT = 300.0


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


class ReplicaSetController(runtime.Controller):
    """Keeps `spec.replicas` interchangeable pods of each ReplicaSet running."""

    name = "replicaset-controller"
    workers = 2

    def __init__(self, client: Client, informers: runtime.SharedInformers, *,
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
        #: per set key: (pod keys created but not yet cached, pod keys deleted but still
        #: cached, when), see the module docstring
        self._expect: dict[str, tuple[set[str], set[str], float]] = {}

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

    # -- expectations ------------------------------------------------------------------------

    def _satisfied(self, key: str) -> bool:
        entry = self._expect.get(key)
        if entry is None:
            return True
        adds, dels, since = entry
        adds = {k for k in adds if self.pods.get(k) is None}
        dels = {k for k in dels
                if (p := self.pods.get(k)) is not None and not meta_of(p).get("deletionTimestamp")}
        if (not adds and not dels) or time.monotonic() - since > EXPECTATIONS_TIMEOUT:
            self._expect.pop(key, None)
            return True
        self._expect[key] = (adds, dels, since)
        return False

    # -- sync ------------------------------------------------------------------------------------

    async def sync(self, key: Hashable) -> None:
        key = str(key)
        rs = self.sets.get(key)
        if rs is None:
            self._expect.pop(key, None)
            return  # gone: the garbage collector removes its pods
        try:
            selector = check_selector(rs)
        except SelectorError as exc:
            self._event(rs, WARNING, "InvalidSelector", f"invalid selector: {exc}")
            return  # non-transient: wait for the user to fix the spec
        pods = await self._claim_pods(rs, selector)
        step = control.plan(rs, pods, now=time.time(), manage=self._satisfied(key))
        failure: tuple[str, str] | None = None
        try:
            await self._apply(key, rs, step)
        except Exception as exc:
            reason = "FailedCreate" if step.create else "FailedDelete"
            failure = (reason, str(getattr(exc, "message", None) or exc))
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

    async def _apply(self, key: str, rs: Obj, step: control.RsPlan) -> None:
        """Create in slow-start batches, delete in parallel; raise the first failure."""
        adds: set[str] = set()
        dels: set[str] = {object_key(p) for p in step.delete}
        if step.create or step.delete:
            self._expect[key] = (adds, dels, time.monotonic())
        ns = namespace_of(rs)
        pending, batch = list(step.create), 1
        while pending:
            now, pending = pending[:batch], pending[batch:]
            results = await asyncio.gather(*(self.client.create(PODS, p, ns) for p in now),
                                           return_exceptions=True)
            failed = None
            for r in results:
                if isinstance(r, BaseException):
                    failed = failed or r
                    self._event(rs, WARNING, "FailedCreate", f"Error creating: {_message(r)}")
                else:
                    adds.add(object_key(r))
                    self._event(rs, NORMAL, "SuccessfulCreate", f"Created pod: {name_of(r)}")
            if failed is not None:
                raise failed
            batch *= 2
        results = await asyncio.gather(*(self._delete(rs, p) for p in step.delete), return_exceptions=True)
        failures = [r for r in results if isinstance(r, BaseException)]
        if failures:
            raise failures[0]

    async def _delete(self, rs: Obj, pod: Obj) -> None:
        try:
            await self.client.delete(PODS, name_of(pod), namespace_of(pod))
        except errors.NotFound:
            return
        except errors.KubeError as exc:
            self._event(rs, WARNING, "FailedDelete", f"Error deleting: {_message(exc)}")
            raise
        self._event(rs, NORMAL, "SuccessfulDelete", f"Deleted pod: {name_of(pod)}")

    def _event(self, rs: Obj, type_: str, reason: str, message: str) -> None:
        if self.recorder is not None:
            self.recorder.event({"apiVersion": "apps/v1", "kind": "ReplicaSet", **rs}, type_, reason, message)

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
            raise runtime.StaleCache(f"status of ReplicaSet {name_of(rs)}") from None


def _message(exc: BaseException) -> str:
    return str(getattr(exc, "message", None) or exc)


__all__ = ["ReplicaSetController", "check_selector", "claim", "controller_uid", "owner_keys",
           "ownership_changed"]
