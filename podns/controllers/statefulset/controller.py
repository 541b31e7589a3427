"""The StatefulSet controller: informers -> queue of StatefulSet keys -> `sync` -> pods, claims,
revisions and status.

Handlers enqueue the key of the StatefulSet an object belongs to (its controller owner reference
for pods and revisions; the StatefulSets naming a Service as `serviceName` for Services). `sync`
re-reads the set, its pods, revisions and the namespace's claims from the caches, makes sure a
ControllerRevision exists for the current template (the update revision), asks the pure
`control.plan` for this step's actions, applies them through `StatefulPodControl`, writes the
status when it changed and prunes old revisions beyond `revisionHistoryLimit`.

Bad input is reported, not retried: an invalid selector gives a Warning event `InvalidSelector`
and the set is left alone until it changes; a `serviceName` without a Service gives a Warning
event `FailedServiceLookup` (pods are still created: the Service may come later, and DNS names
appear when it does).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Hashable, Mapping
from typing import Any

from podns.controllers import _indexes, _revision, workerloop
from podns.controllers._indexes import ensure as _ensure_index
from podns.controllers._owned import (
    BY_CONTROLLER,
    BY_NAMESPACE,
    controller_key,
    controller_uid,
    namespace,
    ownership_changed,
    watch_owner,
)
from podns.controllers.sharedinformers import SharedInformers
from podns.controllers.statefulset import control
from podns.controllers.statefulset.pod_control import StatefulPodControl
from podns.kube import errors
from podns.kube.client import Client
from podns.kube.events import WARNING, EventRecorder
from podns.kube.resources import (
    CONTROLLERREVISIONS,
    PERSISTENTVOLUMECLAIMS,
    PODS,
    SERVICES,
    STATEFULSETS,
)
from podns.objects import (
    Obj,
    Selector,
    SelectorError,
    controller_ref,
    join_key,
    labels_of,
    meta_of,
    name_of,
    namespace_of,
    object_key,
    owner_reference,
    selector_from_label_selector,
)
from podns.objects.wellknown import REVISION_LABEL

log = logging.getLogger(__name__)

class StatefulSetController(workerloop.Controller):
    """Runs StatefulSets: stable pod identities, ordered or parallel, claims, rolling updates."""

    name = "statefulset-controller"
    max_retries = None  # requeued with back-off until it succeeds, as upstream
    workers = 2

    def __init__(self, client: Client, informers: SharedInformers, *,
                 recorder: EventRecorder | None = None) -> None:
        super().__init__()
        self.client = client
        self.recorder = recorder
        self.pod_control = StatefulPodControl(client, recorder)
        self.sets = informers.get(STATEFULSETS)
        self.pods = informers.get(PODS)
        self.revisions = informers.get(CONTROLLERREVISIONS)
        self.claims = informers.get(PERSISTENTVOLUMECLAIMS)
        self.services = informers.get(SERVICES)
        _ensure_index(self.pods, BY_CONTROLLER, controller_uid)
        _indexes.index_pods(self.pods)
        _ensure_index(self.revisions, BY_CONTROLLER, controller_uid)
        _ensure_index(self.claims, BY_NAMESPACE, namespace)
        _ensure_index(self.sets, BY_NAMESPACE, namespace)
        watch_owner(self, self.sets)
        self.pods.add_handler(on_add=self._on_pod, on_update=self._on_pod_update,
                              on_delete=self._on_owned)
        self.revisions.add_handler(on_delete=self._on_owned)
        self.services.add_handler(on_add=self._on_service)
        self._warned_service: set[str] = set()

    # -- event handlers: enqueue only --------------------------------------------------------

    def _on_set(self, sts: Obj) -> None:
        self.enqueue(object_key(sts))

    def _on_owned(self, obj: Obj) -> None:
        key = controller_key(obj, "StatefulSet")
        if key is not None:
            self.enqueue(key)

    def _on_pod(self, pod: Obj) -> None:
        """Owned pods enqueue their set; orphans enqueue the sets that might adopt them."""
        if controller_ref(pod) is not None:
            self._on_owned(pod)
            return
        for sts in self.sets.by_index(BY_NAMESPACE, namespace_of(pod)):
            if control.ordinal_of(pod, name_of(sts)) is not None:
                self._on_set(sts)

    def _on_pod_update(self, old: Obj, new: Obj) -> None:
        self._on_pod(new)
        if ownership_changed(old, new):
            self._on_pod(old)

    def _on_service(self, svc: Obj) -> None:
        for sts in self.sets.by_index(BY_NAMESPACE, namespace_of(svc)):
            if (sts.get("spec") or {}).get("serviceName") == name_of(svc):
                self._on_set(sts)

    # -- sync ------------------------------------------------------------------------------------

    async def sync(self, key: Hashable) -> None:
        key = str(key)
        sts = self.sets.get(key)
        if sts is None:
            self._warned_service.discard(key)
            return  # gone: the garbage collector removes its pods and revisions
        selector = (sts.get("spec") or {}).get("selector")
        try:
            if not selector or not (selector.get("matchLabels") or selector.get("matchExpressions")):
                raise SelectorError("empty selector")
            compiled = selector_from_label_selector(selector)
            template_labels = ((sts["spec"].get("template") or {}).get("metadata") or {}).get("labels") or {}
            if not compiled.matches(template_labels):
                raise SelectorError("selector does not match template labels")
        except SelectorError as exc:
            self._warn(sts, "InvalidSelector", f"invalid selector: {exc}")
            return  # non-transient: wait for the user to fix the spec
        self._check_service(key, sts)
        uid = str(meta_of(sts).get("uid", ""))
        pods = await self._claim_pods(sts, selector, compiled)
        revisions = self.revisions.by_index(BY_CONTROLLER, uid)
        update = await self._update_revision(sts, revisions)
        current_name = (sts.get("status") or {}).get("currentRevision")
        current = next((r for r in revisions if name_of(r) == current_name), update)
        ns = namespace_of(sts)
        claims = {name_of(c): c for c in self.claims.by_index(BY_NAMESPACE, ns)}
        now = time.time()
        step = control.plan(sts, pods, claims, current=current, update=update, now=now)
        try:
            await self.pod_control.apply(sts, step.actions, parallel=control.is_parallel(sts))
        finally:
            await self._write_status(sts, step.status)
        await self._truncate_history(sts, revisions, pods, step.status)
        if step.requeue_after is not None:
            self.queue.add_after(key, step.requeue_after)

    async def _claim_pods(self, sts: Obj, selector: dict[str, Any], compiled: Selector) -> list[Obj]:
        """The pods this set controls, after adopting orphans named `<set>-<n>` that match its
        selector and releasing pods that stopped matching it (Kubernetes' ControllerRefManager).
        The patches carry the pod's resourceVersion, so a concurrent change makes them fail
        (Conflict, retried) instead of adopting a pod that changed meanwhile."""
        uid = str(meta_of(sts).get("uid", ""))
        owned = {object_key(p): p for p in self.pods.by_index(BY_CONTROLLER, uid)}
        if meta_of(sts).get("deletionTimestamp"):
            return list(owned.values())  # being deleted (maybe orphaning): never adopt
        match_pairs = selector.get("matchLabels") or {}
        candidates = _indexes.pods_for_selector(self.pods, namespace_of(sts), match_pairs)
        changes: list[tuple[Obj, list[Obj]]] = []
        for pod in candidates:
            if (controller_ref(pod) is None and not meta_of(pod).get("deletionTimestamp")
                    and control.ordinal_of(pod, name_of(sts)) is not None
                    and compiled.matches(labels_of(pod))):
                refs = [*(meta_of(pod).get("ownerReferences") or []),
                        owner_reference({"apiVersion": "apps/v1", "kind": "StatefulSet", **sts})]
                changes.append((pod, refs))
        for key, pod in list(owned.items()):
            if not compiled.matches(labels_of(pod)):
                refs = [r for r in meta_of(pod).get("ownerReferences") or [] if r.get("uid") != uid]
                changes.append((pod, refs))
                del owned[key]
        for pod, refs in changes:
            patch = {"metadata": {"ownerReferences": refs or None,
                                  "resourceVersion": meta_of(pod).get("resourceVersion")}}
            try:
                patched = await self.client.patch(PODS, name_of(pod), patch, namespace_of(pod))
            except errors.NotFound:
                continue
            if controller_ref(patched) is not None:
                owned[object_key(patched)] = patched
        return list(owned.values())

    def _warn(self, sts: Obj, reason: str, message: str) -> None:
        if self.recorder is not None:
            self.recorder.event(sts, WARNING, reason, message)
        log.debug("%s/%s: %s", namespace_of(sts), name_of(sts), message)

    def _check_service(self, key: str, sts: Obj) -> None:
        service = (sts.get("spec") or {}).get("serviceName")
        if not service or self.services.get(join_key(namespace_of(sts), service)) is not None:
            self._warned_service.discard(key)
            return
        if key not in self._warned_service and self.services.has_synced:
            self._warned_service.add(key)
            self._warn(sts, "FailedServiceLookup",
                       f"governing Service {service!r} of StatefulSet {name_of(sts)} does not exist;"
                       " pods get no DNS names until it is created")

    async def _update_revision(self, sts: Obj, revisions: list[Obj]) -> Obj:
        """The revision of the current template, created when missing. A name taken by a
        revision with another template bumps `status.collisionCount` (and retries)."""
        collisions = int((sts.get("status") or {}).get("collisionCount") or 0)
        want = _revision.new_revision(sts, _revision.next_number(revisions), collisions)
        existing = _revision.equal_revision(revisions, want)
        if existing is not None:
            bumped = _revision.rolled_back(revisions, existing)
            if bumped is not None:
                return await self.client.update(CONTROLLERREVISIONS, bumped)
            return existing
        try:
            return await self.client.create(CONTROLLERREVISIONS, want, namespace_of(sts))
        except errors.AlreadyExists:
            found = await self.client.get(CONTROLLERREVISIONS, name_of(want), namespace_of(sts))
            if _revision.revision_template(found) == _revision.revision_template(want) \
                    and _revision.is_owned_by(found, sts):
                return found
            status = dict(sts.get("status") or {})
            status["collisionCount"] = collisions + 1
            await self._write_status(sts, status, force=True)
            raise workerloop.StaleCache(f"revision name collision for {name_of(sts)}") from None

    async def _write_status(self, sts: Obj, status: Mapping[str, Any], *, force: bool = False) -> None:
        old = sts.get("status") or {}
        if not force and all(old.get(k) == v for k, v in status.items()):
            return
        new = {**sts, "status": dict(status)}
        new["metadata"] = {**meta_of(sts)}
        try:
            await self.client.update_status(STATEFULSETS, new)
        except errors.NotFound:
            return
        except errors.Conflict:
            raise workerloop.StaleCache(f"status of {name_of(sts)}") from None

    async def _truncate_history(self, sts: Obj, revisions: list[Obj], pods: list[Obj],
                                status: Mapping[str, Any]) -> None:
        limit = (sts.get("spec") or {}).get("revisionHistoryLimit")
        limit = _revision.DEFAULT_HISTORY_LIMIT if limit is None else int(limit)
        live = {status.get("currentRevision"), status.get("updateRevision")}
        live |= {labels_of(p).get(REVISION_LABEL) for p in pods}
        for old in _revision.history_to_delete(revisions, {str(x) for x in live if x}, limit):
            try:
                await self.client.delete(CONTROLLERREVISIONS, name_of(old), namespace_of(old))
            except errors.NotFound:
                pass


__all__ = ["StatefulSetController"]
