"""The Deployment controller: informers -> queue of Deployment keys -> `sync` -> ReplicaSets and
status.

Handlers enqueue the Deployment a ReplicaSet belongs to (its controller owner reference), for an
orphan ReplicaSet the Deployments of its namespace whose selector matches it (they may adopt
it), and for a deleted pod the Deployment owning its ReplicaSet (Recreate waits for old pods to
be gone). `sync` re-reads the Deployment and its namespace's ReplicaSets from the caches, adopts
matching orphans and releases owned ReplicaSets that stopped matching (`_owned.claim`), asks
the pure `sync.plan` for this step and applies it: ReplicaSet writes in order (stopping at the
first failure), events for those that succeeded, then the status.

A new ReplicaSet's name is taken by another with a different template (a hash collision, or a
foreign object): `status.collisionCount` is bumped, which changes the hash, and the sync is
retried (Kubernetes does the same). An empty selector is reported as a Warning event
`SelectingAll` and not acted on (the API server refuses such Deployments; this guards older
objects).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Hashable

from podns.controllers import workerloop
from podns.controllers._indexes import ensure as _ensure_index
from podns.controllers._owned import (
    BY_CONTROLLER,
    claim_owned,
    controller_key,
    controller_uid,
    watch_owned,
)
from podns.controllers.deployment import sync as control
from podns.controllers.deployment import util as du
from podns.controllers.sharedinformers import SharedInformers
from podns.kube import errors
from podns.kube.client import Client
from podns.kube.events import NORMAL, WARNING, EventRecorder
from podns.kube.resources import DEPLOYMENTS, PODS, REPLICASETS
from podns.objects import (
    Obj,
    SelectorError,
    controller_ref,
    meta_of,
    name_of,
    namespace_of,
    owner_reference,
    validate_label_selector,
)

log = logging.getLogger(__name__)


class DeploymentController(workerloop.Controller):
    """Rolls Deployments out over ReplicaSets."""

    name = "deployment-controller"
    workers = 2

    def __init__(self, client: Client, informers: SharedInformers, *,
                 recorder: EventRecorder | None = None) -> None:
        super().__init__()
        self.client = client
        self.recorder = recorder
        self.deployments = informers.get(DEPLOYMENTS)
        self.sets = informers.get(REPLICASETS)
        self.pods = informers.get(PODS)
        _ensure_index(self.pods, BY_CONTROLLER, controller_uid)
        self._on_set = watch_owned(self, "Deployment", self.deployments, self.sets)
        self.pods.add_handler(on_delete=self._on_pod_delete)

    # -- event handlers: enqueue only --------------------------------------------------------

    def _on_pod_delete(self, pod: Obj) -> None:
        key = controller_key(pod, "ReplicaSet")
        rs = self.sets.get(key) if key is not None else None
        if rs is not None:
            self._on_set(rs)

    # -- sync ------------------------------------------------------------------------------------

    async def sync(self, key: Hashable) -> None:
        key = str(key)
        d = self.deployments.get(key)
        if d is None:
            return  # gone: the garbage collector removes its ReplicaSets
        d = {"apiVersion": "apps/v1", "kind": "Deployment", **d}
        selector = (d.get("spec") or {}).get("selector")
        try:
            validate_label_selector(selector)
        except SelectorError as exc:
            self._event(d, WARNING, "InvalidSelector", f"invalid selector: {exc}")
            return  # non-transient: wait for the user to fix the spec
        if not selector or not (selector.get("matchLabels") or selector.get("matchExpressions")):
            self._event(d, WARNING, "SelectingAll",
                        "This deployment is selecting all pods. A non-empty selector is required.")
            return
        sets = await claim_owned(self.client, REPLICASETS, self.sets, d, owner_reference(d), selector)
        pods_by_set = {name_of(rs): self.pods.by_index(BY_CONTROLLER, str(meta_of(rs).get("uid", "")))
                       for rs in sets}
        step = control.plan(d, sets, pods_by_set, now=time.time())
        await self._apply(d, step)
        if step.requeue_after is not None:
            self.queue.add_after(key, step.requeue_after)

    async def _apply(self, d: Obj, step: control.DeploymentPlan) -> None:
        """Run the ReplicaSet writes in order (each update carries the resourceVersion of our
        latest write of that ReplicaSet), then the status; raise the first failure."""
        versions: dict[str, str] = {}
        ns = namespace_of(d)
        for write in step.writes:
            obj = write.obj
            if write.kind == "create_rs":
                try:
                    created = await self.client.create(REPLICASETS, obj, ns)
                except errors.AlreadyExists:
                    await self._collision(d, obj)
                    raise
                versions[name_of(created)] = str(meta_of(created).get("resourceVersion", ""))
            elif write.kind == "update_rs":
                if name_of(obj) in versions:
                    obj["metadata"]["resourceVersion"] = versions[name_of(obj)]
                try:
                    updated = await self.client.update(REPLICASETS, obj, ns)
                except errors.Conflict:
                    raise workerloop.StaleCache(f"ReplicaSet {name_of(obj)}") from None
                versions[name_of(updated)] = str(meta_of(updated).get("resourceVersion", ""))
            else:
                try:
                    await self.client.delete(REPLICASETS, name_of(obj), ns)
                except errors.NotFound:
                    pass
            if write.event is not None:
                self._event(d, NORMAL, *write.event)
        if step.status_update is not None:
            try:
                await self.client.update_status(DEPLOYMENTS, step.status_update)
            except errors.NotFound:
                return
            except errors.Conflict:
                raise workerloop.StaleCache(f"status of Deployment {name_of(d)}") from None

    async def _collision(self, d: Obj, want: Obj) -> None:
        """The new ReplicaSet's name is taken: ours with the same template means our cache is
        behind (StaleCache); anything else bumps `status.collisionCount` and retries."""
        try:
            found = await self.client.get(REPLICASETS, name_of(want), namespace_of(want))
        except errors.NotFound:
            raise workerloop.StaleCache(f"ReplicaSet {name_of(want)} deleted meanwhile") from None
        ref = controller_ref(found)
        same = du.equal_ignore_hash((found.get("spec") or {}).get("template") or {},
                                    (want.get("spec") or {}).get("template") or {})
        if same and ref is not None and ref.get("uid") == meta_of(d).get("uid"):
            raise workerloop.StaleCache(f"ReplicaSet {name_of(want)} not cached yet")
        status = dict(d.get("status") or {})
        status["collisionCount"] = int(status.get("collisionCount") or 0) + 1
        try:
            await self.client.update_status(DEPLOYMENTS, {**d, "status": status})
        except errors.Conflict:
            pass
        raise workerloop.StaleCache(f"hash collision for ReplicaSet {name_of(want)}")

    def _event(self, d: Obj, type_: str, reason: str, message: str) -> None:
        if self.recorder is not None:
            self.recorder.event(d, type_, reason, message)


__all__ = ["DeploymentController"]
