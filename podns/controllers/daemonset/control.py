"""The DaemonSet control: one DaemonSet, the nodes and its pods -> this step's pod creations,
deletions and status (Kubernetes `pkg/controller/daemon/daemon_controller.go`, `update.go`).

Pure. `plan(ds, nodes, pods, now=...)`:

- a node should run the daemon pod when it matches the template's `nodeSelector` and required
  node affinity and every NoSchedule/NoExecute taint is tolerated (`NodeShouldRunDaemonPod`);
  readiness and `unschedulable` do not matter, since daemon pods tolerate them (the tolerations
  Kubernetes adds, `AddOrUpdateDaemonPodTolerations`, are added here too);
- such a node without a pod gets one (a node that only stopped tolerating a NoSchedule taint
  keeps its pod, counted misscheduled; NoExecute evicts) (`generateName: <ds>-`, bound to the node with
  `spec.nodeName` and a `metadata.name` node affinity, as Kubernetes writes it), a node with
  several keeps the oldest, a node that should not run it loses its pods; failed pods are deleted
  (and recreated on the next step);
- RollingUpdate: pods whose `controller-revision-hash` is not the template's are deleted, at most
  `maxUnavailable` (int or percent of the desired nodes, rounded up; default 1) nodes without an
  available pod at a time, then recreated from the new template; OnDelete: only pods someone
  deletes come back updated;
- status: desiredNumberScheduled, currentNumberScheduled, numberMisscheduled, numberReady,
  numberAvailable, numberUnavailable, updatedNumberScheduled, observedGeneration.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from podns.controllers._hash import template_hash
from podns.controllers.scheduler import matches_node_affinity, tolerates_taints
from podns.objects import (
    Obj,
    is_terminating,
    labels_of,
    match_labels,
    meta_of,
    name_of,
    namespace_of,
    owner_reference,
    parse_time,
    phase_of,
    pod_is_available,
    pod_is_ready,
)

HASH_LABEL = "controller-revision-hash"
#: the tolerations every daemon pod gets (Kubernetes `AddOrUpdateDaemonPodTolerations`)
DAEMON_TOLERATIONS = (
    {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute"},
    {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"},
    {"key": "node.kubernetes.io/disk-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/memory-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/pid-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"},
)


@dataclass(slots=True)
class DsPlan:
    """This step's pods to create (bodies) and delete (copies), the status, and when to look
    again (seconds; None = only on the next change) for `minReadySeconds`."""

    create: list[Obj] = field(default_factory=list)
    delete: list[Obj] = field(default_factory=list)
    status: Obj = field(default_factory=dict)
    requeue_after: float | None = None


def _spec(ds: Mapping[str, Any]) -> Mapping[str, Any]:
    return ds.get("spec") or {}


def revision_hash(ds: Mapping[str, Any]) -> str:
    """The hash of the current template (pods carry it in `controller-revision-hash`)."""
    collisions = int((ds.get("status") or {}).get("collisionCount") or 0)
    return template_hash(_spec(ds).get("template") or {}, collisions)


def pod_template(ds: Mapping[str, Any]) -> Obj:
    """The template as a pod spec with the daemon tolerations added."""
    template = copy.deepcopy(dict(_spec(ds).get("template") or {}))
    spec = template.setdefault("spec", {})
    tolerations = list(spec.get("tolerations") or [])
    for tol in DAEMON_TOLERATIONS:
        if not any(t.get("key") == tol["key"] and t.get("effect") == tol["effect"] for t in tolerations):
            tolerations.append(dict(tol))
    spec["tolerations"] = tolerations
    return template


def should_run(ds: Mapping[str, Any], node: Mapping[str, Any]) -> tuple[bool, bool]:
    """`NodeShouldRunDaemonPod`: (should run: selector, required node affinity and every
    NoSchedule/NoExecute taint tolerated; should continue running: the same, but only NoExecute
    taints count, so a NoSchedule taint added later keeps the pod where it is)."""
    pod = {"spec": pod_template(ds)["spec"]}
    selector = pod["spec"].get("nodeSelector") or {}
    if not (match_labels(selector, labels_of(node)) and matches_node_affinity(pod, node)):
        return False, False
    no_execute = {"spec": {"taints": [t for t in (node.get("spec") or {}).get("taints") or []
                                      if t.get("effect") == "NoExecute"]}}
    return tolerates_taints(pod, node), tolerates_taints(pod, no_execute)


def new_pod(ds: Mapping[str, Any], node: str, digest: str) -> Obj:
    """The daemon pod for `node`."""
    template = pod_template(ds)
    tmeta = template.get("metadata") or {}
    spec = template.get("spec") or {}
    spec["nodeName"] = node
    spec["affinity"] = _affinity_for(spec.get("affinity"), node)
    pod_meta: Obj = {
        "generateName": f"{name_of(ds)}-",
        "namespace": namespace_of(ds),
        "labels": {**(tmeta.get("labels") or {}), HASH_LABEL: digest},
        "ownerReferences": [owner_reference({"apiVersion": "apps/v1", "kind": "DaemonSet", **ds})],
    }
    if tmeta.get("annotations"):
        pod_meta["annotations"] = dict(tmeta["annotations"])
    return {"apiVersion": "v1", "kind": "Pod", "metadata": pod_meta, "spec": spec}


def _affinity_for(affinity: Any, node: str) -> Obj:
    """Kubernetes' `ReplaceDaemonSetPodNodeNameNodeAffinity`: required affinity to this node."""
    out = copy.deepcopy(affinity) if isinstance(affinity, dict) else {}
    term = {"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node]}]}
    out.setdefault("nodeAffinity", {})["requiredDuringSchedulingIgnoredDuringExecution"] = {
        "nodeSelectorTerms": [term]}
    return out


def _max_unavailable(ds: Mapping[str, Any], desired: int) -> int:
    rolling = ((_spec(ds).get("updateStrategy") or {}).get("rollingUpdate") or {})
    value = rolling.get("maxUnavailable", 1)
    if isinstance(value, str) and value.endswith("%"):
        return max(1, math.ceil(int(value[:-1]) * desired / 100)) if desired else 0
    return int(value)


def plan(ds: Mapping[str, Any], nodes: Sequence[Mapping[str, Any]], pods: Sequence[Mapping[str, Any]],
         *, now: float, manage: bool = True) -> DsPlan:
    """This step for `ds`: `nodes` all nodes, `pods` the pods it controls; `manage` False (our
    earlier writes are not cached yet) only computes status."""
    result = DsPlan()
    digest = revision_hash(ds)
    min_ready = int(_spec(ds).get("minReadySeconds") or 0)
    by_node: dict[str, list[Mapping[str, Any]]] = {}
    for pod in pods:
        if is_terminating(pod):
            continue
        by_node.setdefault(str((pod.get("spec") or {}).get("nodeName") or ""), []).append(pod)
    verdicts = {name_of(n): should_run(ds, n) for n in nodes}
    wanted = {n for n, (run, _) in verdicts.items() if run}
    keep = {n for n, (_, stay) in verdicts.items() if stay}
    rolling = ((_spec(ds).get("updateStrategy") or {}).get("type") or "RollingUpdate") == "RollingUpdate"
    unavailable_nodes = 0
    outdated: list[Mapping[str, Any]] = []
    for node in sorted(wanted):
        mine = sorted(by_node.get(node, []), key=lambda p: (parse_time(meta_of(p).get("creationTimestamp"))
                                                          or 0.0, name_of(p)))
        failed = [p for p in mine if phase_of(p) == "Failed"]
        running = [p for p in mine if phase_of(p) != "Failed"]
        result.delete.extend(copy.deepcopy(dict(p)) for p in failed)
        if not running:
            result.create.append(new_pod(ds, node, digest))
            unavailable_nodes += 1
            continue
        result.delete.extend(copy.deepcopy(dict(p)) for p in running[1:])
        pod = running[0]
        if not pod_is_available(pod, min_ready, now):
            unavailable_nodes += 1
        if labels_of(pod).get(HASH_LABEL) != digest:
            outdated.append(pod)
    for node, mine in by_node.items():
        if node not in wanted and node not in keep:
            result.delete.extend(copy.deepcopy(dict(p)) for p in mine)
    if rolling and outdated:
        budget = _max_unavailable(ds, len(wanted)) - unavailable_nodes
        # unavailable outdated pods go first: replacing them costs no availability
        outdated.sort(key=lambda p: pod_is_available(p, min_ready, now))
        for pod in outdated:
            if pod_is_available(pod, min_ready, now):
                if budget <= 0:
                    continue
                budget -= 1
            result.delete.append(copy.deepcopy(dict(pod)))
    result.status = _status(ds, wanted, by_node, digest, min_ready, now)
    if not manage or meta_of(ds).get("deletionTimestamp"):
        result.create, result.delete = [], []
    return result


def _status(ds: Mapping[str, Any], wanted: set[str], by_node: Mapping[str, list[Mapping[str, Any]]],
            digest: str, min_ready: int, now: float) -> Obj:
    current = ready = available = updated = 0
    for node in wanted:
        pods = [p for p in by_node.get(node, []) if phase_of(p) != "Failed"]
        if not pods:
            continue
        current += 1
        pod = pods[0]
        ready += pod_is_ready(pod)
        available += pod_is_available(pod, min_ready, now)
        updated += labels_of(pod).get(HASH_LABEL) == digest
    status: Obj = {
        "currentNumberScheduled": current,
        "numberMisscheduled": sum(1 for n, pods in by_node.items() if n not in wanted and pods),
        "desiredNumberScheduled": len(wanted),
        "numberReady": ready,
        "observedGeneration": int(meta_of(ds).get("generation") or 0),
        "updatedNumberScheduled": updated,
        "numberAvailable": available,
        "numberUnavailable": len(wanted) - available,
    }
    for key in ("numberAvailable", "numberUnavailable", "updatedNumberScheduled"):
        if not status[key]:
            del status[key]  # omitempty in Kubernetes
    if (ds.get("status") or {}).get("collisionCount"):
        status["collisionCount"] = ds["status"]["collisionCount"]
    return status
