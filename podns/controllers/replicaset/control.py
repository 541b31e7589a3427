"""The ReplicaSet control: one ReplicaSet and its pods -> this step's pod creations, deletions
and status (Kubernetes `pkg/controller/replicaset/replica_set.go`).

Pure. `plan(rs, pods, now=...)` compares the active pods the set controls (not terminating, not
Succeeded/Failed: `controller.FilterActivePods`) with `spec.replicas`:

- too few: new pods from the template (`generateName: <rs>-`, the template's labels and
  annotations, a controller owner reference), at most `BURST_REPLICAS` per step; the caller
  creates them in slow-start batches (1, 2, 4, ...) and stops at the first failure;
- too many: the pods that hurt least to lose, in Kubernetes' order (`getPodsToDelete` with
  `ActivePodsWithRanks`): unscheduled before scheduled, Pending before Unknown before Running,
  not Ready before Ready, lower `controller.kubernetes.io/pod-deletion-cost` first, pods on nodes
  crowded with siblings first, Ready for a shorter time first, more container restarts first,
  newer before older.

Status is computed from the pods as observed (`calculateStatus`): replicas, fullyLabeledReplicas,
readyReplicas, availableReplicas (Ready for `minReadySeconds`), observedGeneration and the
`ReplicaFailure` condition the caller reports when a create or delete failed.
"""

from __future__ import annotations

import copy
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from podns.objects import (
    Obj,
    is_terminating,
    labels_of,
    match_labels,
    meta_of,
    name_of,
    namespace_of,
    now_rfc3339,
    owner_reference,
    parse_time,
    phase_of,
    pod_is_available,
    pod_is_ready,
    ready_since,
)

#: Kubernetes' `BurstReplicas`: at most this many creations or deletions per sync, so one huge
#: scale-up cannot flood the API server
BURST_REPLICAS = 500
#: annotation a user sets to steer which pods go first on scale-down
DELETION_COST = "controller.kubernetes.io/pod-deletion-cost"
REPLICA_FAILURE = "ReplicaFailure"


@dataclass(slots=True)
class RsPlan:
    """This step's pods to create (bodies) and delete (copies), the status to write, and when
    to look again (seconds; None = only on the next change) for `minReadySeconds`."""

    create: list[Obj] = field(default_factory=list)
    delete: list[Obj] = field(default_factory=list)
    status: Obj = field(default_factory=dict)
    requeue_after: float | None = None


def replicas_of(obj: Mapping[str, Any]) -> int:
    """`spec.replicas`, defaulted to 1 as the API server does."""
    value = (obj.get("spec") or {}).get("replicas")
    return 1 if value is None else max(0, int(value))


def is_active(pod: Mapping[str, Any]) -> bool:
    """Counts towards `replicas` (Kubernetes `IsPodActive`)."""
    return phase_of(pod) not in ("Succeeded", "Failed") and not is_terminating(pod)


def new_pod(rs: Mapping[str, Any], owner_kind: str = "ReplicaSet", api_version: str = "apps/v1") -> Obj:
    """A pod from the set's template (Kubernetes `GetPodFromTemplate`)."""
    template = (rs.get("spec") or {}).get("template") or {}
    tmeta = template.get("metadata") or {}
    pod_meta: Obj = {
        "generateName": f"{name_of(rs)}-",
        "namespace": namespace_of(rs),
        "labels": dict(tmeta.get("labels") or {}),
        "ownerReferences": [owner_reference({"apiVersion": api_version, "kind": owner_kind, **rs})],
    }
    if tmeta.get("annotations"):
        pod_meta["annotations"] = dict(tmeta["annotations"])
    if tmeta.get("finalizers"):
        pod_meta["finalizers"] = list(tmeta["finalizers"])
    return {"apiVersion": "v1", "kind": "Pod", "metadata": pod_meta,
            "spec": copy.deepcopy(template.get("spec") or {})}


def _ready_since(pod: Mapping[str, Any]) -> float | None:
    """When a Ready pod became Ready; None when it is not Ready."""
    return ready_since(pod) if pod_is_ready(pod) else None


def _restarts(pod: Mapping[str, Any]) -> int:
    return max((int(c.get("restartCount") or 0)
                for c in (pod.get("status") or {}).get("containerStatuses") or []), default=0)


def _cost(pod: Mapping[str, Any]) -> int:
    try:
        return int((meta_of(pod).get("annotations") or {}).get(DELETION_COST, 0))
    except ValueError:
        return 0


_PHASE_RANK = {"Pending": 0, "Unknown": 1, "Running": 2}


def deletion_order(pods: Sequence[Mapping[str, Any]], related: Sequence[Mapping[str, Any]] = ()
                   ) -> list[Mapping[str, Any]]:
    """`pods` sorted so the ones to delete first come first (Kubernetes `ActivePodsWithRanks`);
    `related` are the pods whose per-node count ranks doubled-up pods (default: `pods`)."""
    per_node = Counter((p.get("spec") or {}).get("nodeName") for p in (related or pods))

    def key(pod: Mapping[str, Any]) -> tuple[Any, ...]:
        node = (pod.get("spec") or {}).get("nodeName")
        since = _ready_since(pod)
        created = parse_time(meta_of(pod).get("creationTimestamp"))
        return (
            1 if node else 0,
            _PHASE_RANK.get(phase_of(pod), 3),
            1 if pod_is_ready(pod) else 0,
            _cost(pod),
            -per_node[node] if node else 0,
            -(since or 0.0) if since is not None else float("-inf"),
            -_restarts(pod),
            -(created or 0.0) if created is not None else float("-inf"),
        )

    return sorted(pods, key=key)


def compute_status(rs: Mapping[str, Any], pods: Sequence[Mapping[str, Any]], now: float,
                   failure: tuple[str, str] | None = None) -> Obj:
    """The ReplicaSet status from its active pods; `failure` is (reason, message) of a failed
    create/delete in this step, which sets `ReplicaFailure` (cleared when a step succeeds)."""
    spec = rs.get("spec") or {}
    min_ready = int(spec.get("minReadySeconds") or 0)
    template_labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
    old = rs.get("status") or {}
    conditions = [c for c in old.get("conditions") or [] if c.get("type") != REPLICA_FAILURE]
    existing = next((c for c in old.get("conditions") or [] if c.get("type") == REPLICA_FAILURE), None)
    if failure is not None:
        if existing is not None:
            conditions.append(existing)
        else:
            conditions.append({"type": REPLICA_FAILURE, "status": "True", "reason": failure[0],
                               "message": failure[1], "lastTransitionTime": now_rfc3339(now)})
    status: Obj = {
        "replicas": len(pods),
        "fullyLabeledReplicas": sum(1 for p in pods if match_labels(template_labels, labels_of(p))),
        "readyReplicas": sum(1 for p in pods if pod_is_ready(p)),
        "availableReplicas": sum(1 for p in pods if pod_is_available(p, min_ready, now)),
        "observedGeneration": meta_of(rs).get("generation", 0),
    }
    if conditions:
        status["conditions"] = conditions
    return status


def _next_available(pods: Sequence[Mapping[str, Any]], min_ready: int, now: float) -> float | None:
    """Seconds until the first Ready-but-not-yet-available pod becomes available."""
    waits = [since + min_ready - now for p in pods
             if (since := _ready_since(p)) is not None and since + min_ready > now]
    return min(waits) if waits else None


def plan(rs: Mapping[str, Any], pods: Sequence[Mapping[str, Any]], *, now: float,
         manage: bool = True) -> RsPlan:
    """This step for `rs`. `pods` are all pods it controls (terminating and finished ones
    included: they are filtered here); `manage` False (the caller still waits for its previous
    creations/deletions to show up in its cache) only computes the status."""
    active = [p for p in pods if is_active(p)]
    result = RsPlan(status=compute_status(rs, active, now))
    if manage and not is_terminating(rs):
        diff = len(active) - replicas_of(rs)
        if diff < 0:
            result.create = [new_pod(rs) for _ in range(min(-diff, BURST_REPLICAS))]
        elif diff > 0:
            doomed = deletion_order(active)[:min(diff, BURST_REPLICAS)]
            result.delete = [copy.deepcopy(dict(p)) for p in doomed]
    min_ready = int((rs.get("spec") or {}).get("minReadySeconds") or 0)
    if min_ready > 0:
        wait = _next_available(active, min_ready, now)
        if wait is not None:
            result.requeue_after = wait + 0.05
    return result
