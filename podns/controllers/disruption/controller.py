"""The disruption controller: informers -> queue of PodDisruptionBudget keys -> `sync` -> status.

Handlers enqueue the budgets of a pod's namespace whose selector matches it (old and new labels),
and every budget of a namespace when a ReplicaSet, Deployment or StatefulSet there changes scale.
`sync` reads the budget's pods from the pod cache, the scale of their controllers (a ReplicaSet
owned by a Deployment counts as the Deployment, as Kubernetes' `getExpectedScale` does), asks the
pure `control.compute_status` and writes it when it changed. The API server's eviction
subresource reads `status.disruptionsAllowed` and records evictions in `status.disruptedPods`.
"""

from __future__ import annotations

import time
from collections.abc import Hashable, Mapping
from typing import Any

from podns.controllers import workerloop
from podns.controllers._indexes import ensure as _ensure_index
from podns.controllers._owned import BY_NAMESPACE
from podns.controllers.disruption import control
from podns.controllers.sharedinformers import SharedInformers
from podns.kube import errors
from podns.kube.client import Client
from podns.kube.resources import DEPLOYMENTS, PODDISRUPTIONBUDGETS, PODS, REPLICASETS, STATEFULSETS
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
)


class DisruptionController(workerloop.Controller):
    """Keeps each PodDisruptionBudget's status (how many pods may be disrupted) current."""

    name = "disruption-controller"
    workers = 2

    def __init__(self, client: Client, informers: SharedInformers) -> None:
        super().__init__()
        self.client = client
        self.budgets = informers.get(PODDISRUPTIONBUDGETS)
        self.pods = informers.get(PODS)
        self.sets = informers.get(REPLICASETS)
        self.deployments = informers.get(DEPLOYMENTS)
        self.statefulsets = informers.get(STATEFULSETS)
        _ensure_index(self.pods, BY_NAMESPACE, lambda o: [namespace_of(o)])
        _ensure_index(self.budgets, BY_NAMESPACE, lambda o: [namespace_of(o)])
        self.budgets.add_handler(on_add=self._on_budget, on_update=lambda _o, n: self._on_budget(n),
                                 on_delete=self._on_budget)
        self.pods.add_handler(on_add=self._on_pod, on_update=self._on_pod_update, on_delete=self._on_pod)
        for informer in (self.sets, self.deployments, self.statefulsets):
            informer.add_handler(on_add=self._on_scale, on_update=lambda _o, n: self._on_scale(n),
                                 on_delete=self._on_scale)

    def _on_budget(self, pdb: Obj) -> None:
        self.enqueue(object_key(pdb))

    def _on_pod(self, pod: Obj) -> None:
        for pdb in self.budgets.by_index(BY_NAMESPACE, namespace_of(pod)):
            try:
                if match_label_selector((pdb.get("spec") or {}).get("selector"), labels_of(pod)):
                    self._on_budget(pdb)
            except SelectorError:
                continue

    def _on_pod_update(self, old: Obj, new: Obj) -> None:
        self._on_pod(new)
        if labels_of(old) != labels_of(new):
            self._on_pod(old)

    def _on_scale(self, obj: Obj) -> None:
        for pdb in self.budgets.by_index(BY_NAMESPACE, namespace_of(obj)):
            self._on_budget(pdb)

    def expected_scale(self, pods: list[Obj]) -> int | None:
        """Sum of the replicas of the pods' controllers (each counted once), None when a pod has
        no controller podns knows the scale of."""
        scales: dict[str, int] = {}
        for pod in pods:
            ref = controller_ref(pod)
            if ref is None:
                return None
            ns = namespace_of(pod)
            owner: Mapping[str, Any] | None = None
            if ref.get("kind") == "ReplicaSet":
                owner = self.sets.get(join_key(ns, str(ref.get("name") or "")))
                parent = controller_ref(owner) if owner is not None else None
                if parent is not None and parent.get("kind") == "Deployment":
                    owner = self.deployments.get(join_key(ns, str(parent.get("name") or "")))
            elif ref.get("kind") == "StatefulSet":
                owner = self.statefulsets.get(join_key(ns, str(ref.get("name") or "")))
            if owner is None:
                return None
            replicas = (owner.get("spec") or {}).get("replicas")
            scales[str(meta_of(owner).get("uid", ""))] = 1 if replicas is None else int(replicas)
        return sum(scales.values())

    async def sync(self, key: Hashable) -> None:
        pdb = self.budgets.get(str(key))
        if pdb is None:
            return
        selector = (pdb.get("spec") or {}).get("selector")
        try:
            pods = [p for p in self.pods.by_index(BY_NAMESPACE, namespace_of(pdb))
                    if selector is not None and match_label_selector(selector, labels_of(p))]
        except SelectorError:
            pods = []
        status = control.compute_status(pdb, pods, self.expected_scale(pods), now=time.time())
        if status.get("disruptedPods"):
            self.queue.add_after(str(key), control.DELETION_TIMEOUT)
        if (pdb.get("status") or {}) == status:
            return
        try:
            await self.client.update_status(PODDISRUPTIONBUDGETS, {**pdb, "status": status})
        except errors.NotFound:
            return
        except errors.Conflict:
            raise workerloop.StaleCache(f"status of PodDisruptionBudget {name_of(pdb)}") from None


__all__ = ["DisruptionController"]
