"""The StatefulSet control: one StatefulSet, its pods and claims -> this step's actions + status.

Pure. `plan(...)` states what the controller does now to move the set towards its target:
`spec.replicas` pods `<name>-<ordinal>` for ordinals `[start, start+replicas)`, each with its
claims, all at the update revision (or the current one below the partition), Running and Ready.
It is called again on every change (level-triggered), so each call only takes the next safe step:

- OrderedReady: create the lowest missing pod and stop until it is Running and Ready (and, with
  `minReadySeconds`, available); delete condemned pods highest ordinal first, one at a time,
  only while all others are healthy.
- Parallel: create and delete all at once, without waiting.
- Failed (or Succeeded) pods are deleted; the next step recreates them with the same name, and
  the same claims, since claim names only depend on the ordinal.
- RollingUpdate: when every pod exists and is healthy, delete the highest-ordinal pod at or above
  the partition that is not at the update revision (it comes back updated); OnDelete: only pods
  the user deletes are recreated at the update revision.
- `persistentVolumeClaimRetentionPolicy.whenScaled: Delete` deletes the claims of ordinals that
  were scaled away once their pod is gone; `whenDeleted: Delete` makes the StatefulSet own its
  claims, so the garbage collector removes them with it.

Actions come back in the order they must run (claims before their pod); the caller applies them
in order and stops at the first failure. Status is computed from the pods as observed.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from podns.controllers._revision import revision_template
from podns.objects import (
    Obj,
    is_terminating,
    labels_of,
    meta_of,
    name_of,
    namespace_of,
    owner_reference,
    phase_of,
    pod_is_available,
    pod_is_ready,
    ready_since,
)
from podns.objects.wellknown import POD_INDEX_LABEL, POD_NAME_LABEL, REVISION_LABEL

ActionKind = Literal["create_pvc", "create_pod", "delete_pod", "patch_pod", "delete_pvc", "patch_pvc"]


@dataclass(slots=True)
class Action:
    """One write: `obj` is the object to create, or the (copied) object to delete/patch; `patch`
    is the merge patch for `patch_*` actions."""

    kind: ActionKind
    obj: Obj
    patch: Obj | None = None


@dataclass(slots=True)
class StsPlan:
    """This step's actions (in order), the status to write, and when to look again (seconds,
    None = only on the next change) for `minReadySeconds`."""

    actions: list[Action] = field(default_factory=list)
    status: Obj = field(default_factory=dict)
    requeue_after: float | None = None


def ordinal_of(pod: Mapping[str, Any], sts_name: str) -> int | None:
    """The ordinal in a pod name `<sts>-<n>`, or None for foreign names."""
    m = re.fullmatch(re.escape(sts_name) + r"-(\d+)", name_of(pod))
    return int(m.group(1)) if m else None


def claim_name(template_name: str, sts_name: str, ordinal: int) -> str:
    return f"{template_name}-{sts_name}-{ordinal}"


def _spec(sts: Mapping[str, Any]) -> Mapping[str, Any]:
    return sts.get("spec") or {}


def start_ordinal(sts: Mapping[str, Any]) -> int:
    return int((_spec(sts).get("ordinals") or {}).get("start") or 0)


def replicas_of(sts: Mapping[str, Any]) -> int:
    value = _spec(sts).get("replicas")
    return 1 if value is None else max(0, int(value))


def partition_of(sts: Mapping[str, Any]) -> int:
    strategy = _spec(sts).get("updateStrategy") or {}
    return int((strategy.get("rollingUpdate") or {}).get("partition") or 0)


def is_rolling_update(sts: Mapping[str, Any]) -> bool:
    return ((_spec(sts).get("updateStrategy") or {}).get("type") or "RollingUpdate") == "RollingUpdate"


def is_parallel(sts: Mapping[str, Any]) -> bool:
    return _spec(sts).get("podManagementPolicy") == "Parallel"


def _retention(sts: Mapping[str, Any], when: str) -> str:
    return (_spec(sts).get("persistentVolumeClaimRetentionPolicy") or {}).get(when) or "Retain"


def new_claim(sts: Mapping[str, Any], template: Mapping[str, Any], ordinal: int) -> Obj:
    """The PersistentVolumeClaim of one ordinal for one volumeClaimTemplate."""
    labels = dict((_spec(sts).get("selector") or {}).get("matchLabels") or {})
    labels.update((template.get("metadata") or {}).get("labels") or {})
    claim: Obj = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {
            "name": claim_name(name_of(template), name_of(sts), ordinal),
            "namespace": namespace_of(sts),
            "labels": labels,
        },
        "spec": copy.deepcopy(template.get("spec") or {}),
    }
    if _retention(sts, "whenDeleted") == "Delete":
        claim["metadata"]["ownerReferences"] = [
            owner_reference({"apiVersion": "apps/v1", "kind": "StatefulSet", **sts})]
    return claim


def new_pod(sts: Mapping[str, Any], revision: Mapping[str, Any], ordinal: int) -> Obj:
    """The pod of `ordinal` built from `revision`'s template (Kubernetes
    `newVersionedStatefulSetPod`): stable name, hostname, subdomain, identity labels, claims."""
    template = revision_template(revision)
    tmeta = template.get("metadata") or {}
    name = f"{name_of(sts)}-{ordinal}"
    labels = dict(tmeta.get("labels") or {})
    labels.update({POD_NAME_LABEL: name, POD_INDEX_LABEL: str(ordinal), REVISION_LABEL: name_of(revision)})
    spec = copy.deepcopy(template.get("spec") or {})
    spec["hostname"] = name
    if _spec(sts).get("serviceName"):
        spec["subdomain"] = _spec(sts)["serviceName"]
    claims = _spec(sts).get("volumeClaimTemplates") or []
    if claims:
        by_name = {name_of(t): t for t in claims}
        volumes = [v for v in spec.get("volumes") or [] if v.get("name") not in by_name]
        for tname in by_name:
            volumes.append({"name": tname, "persistentVolumeClaim": {
                "claimName": claim_name(tname, name_of(sts), ordinal)}})
        spec["volumes"] = volumes
    pod_meta: Obj = {
        "name": name,
        "namespace": namespace_of(sts),
        "labels": labels,
        "ownerReferences": [owner_reference({"apiVersion": "apps/v1", "kind": "StatefulSet", **sts})],
    }
    if tmeta.get("annotations"):
        pod_meta["annotations"] = dict(tmeta["annotations"])
    return {"apiVersion": "v1", "kind": "Pod", "metadata": pod_meta, "spec": spec}


def _healthy(pod: Mapping[str, Any], min_ready: int, now: float) -> bool:
    return (phase_of(pod) == "Running" and not is_terminating(pod)
            and pod_is_available(pod, min_ready, now))


def _available_in(pod: Mapping[str, Any], min_ready: int, now: float) -> float | None:
    """Seconds until a Ready pod becomes available, or None when it is not Ready."""
    if not pod_is_ready(pod) or min_ready <= 0:
        return None
    since = ready_since(pod)
    return None if since is None else max(0.0, since + min_ready - now)


def compute_status(sts: Mapping[str, Any], pods: Sequence[Mapping[str, Any]], current: str, update: str,
                   now: float) -> Obj:
    """The StatefulSet status from the observed pods (Kubernetes `computeReplicaStatus` plus
    `completeRollingUpdate`)."""
    min_ready = int(_spec(sts).get("minReadySeconds") or 0)
    live = [p for p in pods if not is_terminating(p)]
    ready = sum(1 for p in live if phase_of(p) == "Running" and pod_is_ready(p))
    available = sum(1 for p in live if phase_of(p) == "Running" and pod_is_available(p, min_ready, now))
    n_current = sum(1 for p in live if labels_of(p).get(REVISION_LABEL) == current)
    n_updated = sum(1 for p in live if labels_of(p).get(REVISION_LABEL) == update)
    replicas = len(live)
    old = sts.get("status") or {}
    status: Obj = {
        "observedGeneration": meta_of(sts).get("generation", 0),
        "replicas": replicas,
        "readyReplicas": ready,
        "availableReplicas": available,
        "currentReplicas": n_current,
        "updatedReplicas": n_updated,
        "currentRevision": current,
        "updateRevision": update,
        "collisionCount": int(old.get("collisionCount") or 0),
        "conditions": list(old.get("conditions") or []),
    }
    want = replicas_of(sts)
    if is_rolling_update(sts) and n_updated == replicas == want and ready == replicas:
        status["currentRevision"] = update
        status["currentReplicas"] = n_updated
    return status


def plan(
    sts: Mapping[str, Any],
    pods: Sequence[Mapping[str, Any]],
    claims: Mapping[str, Mapping[str, Any]],
    *,
    current: Mapping[str, Any],
    update: Mapping[str, Any],
    now: float,
) -> StsPlan:
    """This step's actions for `sts`. `pods` are the pods it controls, `claims` the existing
    PersistentVolumeClaims of its namespace by name, `current`/`update` its current and update
    ControllerRevisions, `now` the time (seconds since the epoch) for `minReadySeconds`.

    Phases, in Kubernetes' order: create missing pods and repair existing ones (ordinal order),
    delete condemned pods beyond the replica count (highest first), forget scaled-down claims,
    then roll pods to the update revision (highest ordinal first). With OrderedReady the first
    phase that acts or waits ends the step."""
    result = StsPlan()
    result.status = compute_status(sts, pods, name_of(current), name_of(update), now)
    if is_terminating(sts):
        return result  # being deleted: the garbage collector removes the pods
    slots, condemned = _by_ordinal(sts, pods)
    stop, waiting = _create_and_repair(sts, slots, claims, result, current=current, update=update, now=now)
    if stop or _delete_condemned(sts, slots, condemned, result, waiting=waiting, now=now):
        return result
    _delete_scaled_claims(sts, pods, claims, result)
    if is_rolling_update(sts) and len(slots) >= replicas_of(sts) and not waiting:
        _roll(sts, slots, result, update=update, now=now)
    return result


def _by_ordinal(sts: Mapping[str, Any], pods: Sequence[Mapping[str, Any]]
                ) -> tuple[dict[int, Mapping[str, Any]], list[Mapping[str, Any]]]:
    """The pods in the set's ordinal range by ordinal, and the condemned rest (highest first)."""
    name, start, want = name_of(sts), start_ordinal(sts), replicas_of(sts)
    slots: dict[int, Mapping[str, Any]] = {}
    condemned: list[Mapping[str, Any]] = []
    for pod in pods:
        ordinal = ordinal_of(pod, name)
        if ordinal is not None and start <= ordinal < start + want:
            slots[ordinal] = pod
        else:
            condemned.append(pod)
    condemned.sort(key=lambda p: -(ordinal_of(p, name) or 0))
    return slots, condemned


def _create_and_repair(
    sts: Mapping[str, Any],
    slots: Mapping[int, Mapping[str, Any]],
    claims: Mapping[str, Mapping[str, Any]],
    result: StsPlan,
    *,
    current: Mapping[str, Any],
    update: Mapping[str, Any],
    now: float,
) -> tuple[bool, bool]:
    """Create missing pods (and their claims), replace finished ones, repair identity and storage
    of the others, in ordinal order. Returns (stop: OrderedReady acted or waits, waiting: some
    pod is not healthy yet)."""
    name, start, want = name_of(sts), start_ordinal(sts), replicas_of(sts)
    min_ready = int(_spec(sts).get("minReadySeconds") or 0)
    monotonic = not is_parallel(sts)
    templates = _spec(sts).get("volumeClaimTemplates") or []
    waiting = False
    for ordinal in range(start, start + want):
        pod = slots.get(ordinal)
        if pod is not None and phase_of(pod) in ("Failed", "Succeeded") and not is_terminating(pod):
            result.actions.append(Action("delete_pod", copy.deepcopy(dict(pod))))
            if monotonic:
                return True, waiting
            continue
        for t in templates:
            if claim_name(name_of(t), name, ordinal) not in claims:
                result.actions.append(Action("create_pvc", new_claim(sts, t, ordinal)))
        if pod is None:
            old = is_rolling_update(sts) and ordinal < start + partition_of(sts)  # below the partition
            result.actions.append(Action("create_pod", new_pod(sts, current if old else update, ordinal)))
            if monotonic:
                return True, waiting
            continue
        # an existing pod: identity repaired, then (OrderedReady) wait for health
        fix = _identity_patch(pod, ordinal)
        if fix:
            result.actions.append(Action("patch_pod", copy.deepcopy(dict(pod)), fix))
        if not _healthy(pod, min_ready, now):
            wait = _available_in(pod, min_ready, now)
            if wait is not None and phase_of(pod) == "Running":
                result.requeue_after = min(result.requeue_after or wait, wait) + 0.05
            if monotonic:
                return True, True
            waiting = True
    return False, waiting


def _delete_condemned(
    sts: Mapping[str, Any],
    slots: Mapping[int, Mapping[str, Any]],
    condemned: Sequence[Mapping[str, Any]],
    result: StsPlan,
    *,
    waiting: bool,
    now: float,
) -> bool:
    """Delete pods beyond the replica count, highest ordinal first (OrderedReady: one at a time,
    only while every other pod is healthy). Returns whether the step must end here."""
    min_ready = int(_spec(sts).get("minReadySeconds") or 0)
    monotonic = not is_parallel(sts)
    for i, pod in enumerate(condemned):
        if is_terminating(pod):
            if monotonic:
                return True
            continue
        if monotonic and (waiting or any(not _healthy(p, min_ready, now) for p in condemned[i + 1:])
                          or any(not _healthy(p, min_ready, now) for p in slots.values())):
            return True
        result.actions.append(Action("delete_pod", copy.deepcopy(dict(pod))))
        if monotonic:
            return True
    return False


def _roll(sts: Mapping[str, Any], slots: Mapping[int, Mapping[str, Any]], result: StsPlan, *,
          update: Mapping[str, Any], now: float) -> None:
    """RollingUpdate: delete the highest-ordinal pod above the partition that is not at the
    update revision, once every pod above it is updated and healthy."""
    start, want = start_ordinal(sts), replicas_of(sts)
    min_ready = int(_spec(sts).get("minReadySeconds") or 0)
    floor = start + max(0, partition_of(sts))
    for ordinal in range(start + want - 1, floor - 1, -1):
        pod = slots[ordinal]
        if labels_of(pod).get(REVISION_LABEL) != name_of(update) and not is_terminating(pod):
            result.actions.append(Action("delete_pod", copy.deepcopy(dict(pod))))
            return
        if not _healthy(pod, min_ready, now):
            return  # wait for the updated pod before touching the next one


def _identity_patch(pod: Mapping[str, Any], ordinal: int) -> Obj | None:
    labels = labels_of(pod)
    want = {POD_NAME_LABEL: name_of(pod), POD_INDEX_LABEL: str(ordinal)}
    missing = {k: v for k, v in want.items() if labels.get(k) != v}
    return {"metadata": {"labels": missing}} if missing else None


def _delete_scaled_claims(sts: Mapping[str, Any], pods: Sequence[Mapping[str, Any]],
                          claims: Mapping[str, Mapping[str, Any]], result: StsPlan) -> None:
    """whenScaled: Delete -> claims of ordinals above the target whose pod is gone."""
    if _retention(sts, "whenScaled") != "Delete":
        return
    name = name_of(sts)
    start, want = start_ordinal(sts), replicas_of(sts)
    existing = {ordinal_of(p, name) for p in pods}
    for t in _spec(sts).get("volumeClaimTemplates") or []:
        prefix = f"{name_of(t)}-{name}-"
        for cname, claim in claims.items():
            tail = cname[len(prefix):] if cname.startswith(prefix) else ""
            if not tail.isdigit():
                continue
            ordinal = int(tail)
            if (ordinal < start or ordinal >= start + want) and ordinal not in existing:
                result.actions.append(Action("delete_pvc", copy.deepcopy(dict(claim))))
