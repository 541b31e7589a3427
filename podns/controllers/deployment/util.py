"""Deployment helpers (Kubernetes `pkg/controller/deployment/util/deployment_util.go`).

Pure: the rolling-update fenceposts (`max_surge`, `max_unavailable`), revision annotations,
finding the new and old ReplicaSets of a Deployment, the ReplicaSet built for a template
(`pod-template-hash` in its name, labels and selector), proportional-scaling fractions, status
counts and the Deployment conditions with their reasons.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TypeVar

from podns.controllers._hash import template_hash
from podns.objects import Obj, meta_of, name_of, namespace_of, owner_reference, parse_time

#: label (and selector) that ties a ReplicaSet's pods to its template
POD_TEMPLATE_HASH = "pod-template-hash"
REVISION = "deployment.kubernetes.io/revision"
REVISION_HISTORY = "deployment.kubernetes.io/revision-history"
DESIRED_REPLICAS = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS = "deployment.kubernetes.io/max-replicas"
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
#: Deployment annotations not copied to its ReplicaSets (`annotationsToSkip`)
SKIPPED_ANNOTATIONS = frozenset({LAST_APPLIED, REVISION, REVISION_HISTORY, DESIRED_REPLICAS,
                                 MAX_REPLICAS, "deprecated.deployment.rollback.to"})

# condition types and reasons, with Kubernetes' spelling
PROGRESSING, AVAILABLE, REPLICA_FAILURE = "Progressing", "Available", "ReplicaFailure"
NEW_RS_CREATED = "NewReplicaSetCreated"
FOUND_NEW_RS = "FoundNewReplicaSet"
NEW_RS_AVAILABLE = "NewReplicaSetAvailable"
RS_UPDATED = "ReplicaSetUpdated"
TIMED_OUT = "ProgressDeadlineExceeded"
PAUSED = "DeploymentPaused"
RESUMED = "DeploymentResumed"
MIN_AVAILABLE = "MinimumReplicasAvailable"
MIN_UNAVAILABLE = "MinimumReplicasUnavailable"


def spec(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return obj.get("spec") or {}


def replicas(obj: Mapping[str, Any]) -> int:
    """`spec.replicas` (default 1)."""
    value = spec(obj).get("replicas")
    return 1 if value is None else max(0, int(value))


def status_int(obj: Mapping[str, Any], name: str) -> int:
    return int((obj.get("status") or {}).get(name) or 0)


def is_rolling(d: Mapping[str, Any]) -> bool:
    return ((spec(d).get("strategy") or {}).get("type") or "RollingUpdate") == "RollingUpdate"


def scaled_value(value: Any, total: int, round_up: bool) -> int:
    """An IntOrString (`3`, `"25%"`) against `total` (`GetScaledValueFromIntOrPercent`)."""
    if isinstance(value, str) and value.endswith("%"):
        fraction = int(value[:-1]) * total / 100
        return math.ceil(fraction) if round_up else math.floor(fraction)
    return int(value)


def fenceposts(d: Mapping[str, Any]) -> tuple[int, int]:
    """(maxSurge, maxUnavailable) resolved against `spec.replicas` (`ResolveFenceposts`): surge
    rounds up, unavailability down, and both zero means one may be unavailable."""
    rolling = (spec(d).get("strategy") or {}).get("rollingUpdate") or {}
    desired = replicas(d)
    surge = scaled_value(rolling.get("maxSurge", "25%"), desired, True)
    unavailable = scaled_value(rolling.get("maxUnavailable", "25%"), desired, False)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, unavailable


def max_surge(d: Mapping[str, Any]) -> int:
    return fenceposts(d)[0] if is_rolling(d) else 0


def max_unavailable(d: Mapping[str, Any]) -> int:
    if not is_rolling(d) or replicas(d) == 0:
        return 0
    return min(fenceposts(d)[1], replicas(d))


def revision_of(obj: Mapping[str, Any]) -> int:
    try:
        return int((meta_of(obj).get("annotations") or {}).get(REVISION, 0))
    except ValueError:
        return 0


def max_revision(sets: Iterable[Mapping[str, Any]]) -> int:
    return max((revision_of(rs) for rs in sets), default=0)


#: a ReplicaSet as the caller holds it (a cached Mapping or its private Obj copy): the sorting and
#: filtering helpers hand back the same type they were given
RS = TypeVar("RS", bound=Mapping[str, Any])


def _created(obj: Mapping[str, Any]) -> tuple[float, str]:
    return (parse_time(meta_of(obj).get("creationTimestamp")) or 0.0, name_of(obj))


def by_creation(sets: Iterable[RS]) -> list[RS]:
    """Oldest first, then by name (`ReplicaSetsByCreationTimestamp`)."""
    return sorted(sets, key=_created)


def template_without_hash(template: Mapping[str, Any]) -> Obj:
    t = copy.deepcopy(dict(template))
    labels = (t.get("metadata") or {}).get("labels")
    if isinstance(labels, dict):
        labels.pop(POD_TEMPLATE_HASH, None)
    return t


def equal_ignore_hash(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Templates equal up to the `pod-template-hash` label (`EqualIgnoreHash`)."""
    def norm(t: Mapping[str, Any]) -> Obj:
        out = template_without_hash(t)
        md = out.get("metadata") or {}
        md.pop("creationTimestamp", None)
        if not md.get("labels"):
            md.pop("labels", None)
        out["metadata"] = md
        if not md:
            out.pop("metadata")
        return out
    return norm(a) == norm(b)


def find_new(d: Mapping[str, Any], sets: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The oldest ReplicaSet whose template is the Deployment's (`FindNewReplicaSet`)."""
    template = spec(d).get("template") or {}
    for rs in by_creation(sets):
        if equal_ignore_hash(spec(rs).get("template") or {}, template):
            return rs
    return None


def new_replica_set(d: Mapping[str, Any], revision: int, new_replicas: int) -> Obj:
    """The ReplicaSet for the Deployment's template: `<deploy>-<hash>` with the hash label in
    its template and selector, annotations copied, a controller owner reference."""
    template = copy.deepcopy(dict(spec(d).get("template") or {}))
    collisions = int((d.get("status") or {}).get("collisionCount") or 0)
    digest = template_hash(template_without_hash(template), collisions)
    tmeta = template.setdefault("metadata", {})
    tmeta["labels"] = {**(tmeta.get("labels") or {}), POD_TEMPLATE_HASH: digest}
    selector = copy.deepcopy(dict(spec(d).get("selector") or {}))
    selector["matchLabels"] = {**(selector.get("matchLabels") or {}), POD_TEMPLATE_HASH: digest}
    rs: Obj = {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {
            "name": f"{name_of(d)}-{digest}",
            "namespace": namespace_of(d),
            "labels": dict(tmeta["labels"]),
            "ownerReferences": [owner_reference({"apiVersion": "apps/v1", "kind": "Deployment", **d})],
        },
        "spec": {
            "replicas": new_replicas,
            "minReadySeconds": int(spec(d).get("minReadySeconds") or 0),
            "selector": selector,
            "template": template,
        },
    }
    set_new_annotations(d, rs, revision, exists=False)
    return rs


def set_replicas_annotations(rs: Obj, desired: int, maximum: int) -> bool:
    """`SetReplicasAnnotations`; returns whether anything changed."""
    ann = rs["metadata"].setdefault("annotations", {})
    changed = False
    for k, v in ((DESIRED_REPLICAS, str(desired)), (MAX_REPLICAS, str(maximum))):
        if ann.get(k) != v:
            ann[k] = v
            changed = True
    return changed


def replicas_annotations_need_update(rs: Mapping[str, Any], desired: int, maximum: int) -> bool:
    ann = meta_of(rs).get("annotations") or {}
    return ann.get(DESIRED_REPLICAS) != str(desired) or ann.get(MAX_REPLICAS) != str(maximum)


def set_new_annotations(d: Mapping[str, Any], rs: Obj, revision: int, *, exists: bool) -> bool:
    """`SetNewReplicaSetAnnotations`: copy the Deployment's annotations, move the revision to
    `revision` (keeping the old one in `revision-history` when a ReplicaSet is reused) and set
    the replicas annotations when new. Returns whether anything changed."""
    ann = rs["metadata"].setdefault("annotations", {})
    before = dict(ann)
    for k, v in (meta_of(d).get("annotations") or {}).items():
        if k not in SKIPPED_ANNOTATIONS:
            ann[k] = v
    old = ann.get(REVISION, "")
    try:
        old_number = int(old) if old else 0
    except ValueError:
        old_number = 0
    if old_number < revision:
        ann[REVISION] = str(revision)
        if old:
            history = [h for h in ann.get(REVISION_HISTORY, "").split(",") if h]
            ann[REVISION_HISTORY] = ",".join([*history, old])
    if not exists:
        set_replicas_annotations(rs, replicas(d), replicas(d) + max_surge(d))
    return bool(ann != before)


def desired_annotation(rs: Mapping[str, Any]) -> int | None:
    try:
        return int((meta_of(rs).get("annotations") or {})[DESIRED_REPLICAS])
    except (KeyError, ValueError):
        return None


def max_annotation(rs: Mapping[str, Any]) -> int | None:
    try:
        return int((meta_of(rs).get("annotations") or {})[MAX_REPLICAS])
    except (KeyError, ValueError):
        return None


def active(sets: Iterable[RS | None]) -> list[RS]:
    """ReplicaSets with pods wanted (`FilterActiveReplicaSets`)."""
    return [rs for rs in sets if rs is not None and replicas(rs) > 0]


def spec_count(sets: Iterable[Mapping[str, Any] | None]) -> int:
    """Sum of `spec.replicas` (`GetReplicaCountForReplicaSets`)."""
    return sum(replicas(rs) for rs in sets if rs is not None)


def status_count(sets: Iterable[Mapping[str, Any] | None], name: str) -> int:
    """Sum of a status count (`GetActualReplicaCountForReplicaSets`, ...Ready..., ...Available...)."""
    return sum(status_int(rs, name) for rs in sets if rs is not None)


def counted_available(rs: Mapping[str, Any]) -> int:
    """The available pods a scale-down may count on: `status.availableReplicas`, but never more
    than `spec.replicas`. Right after a ReplicaSet is scaled down its status still counts the pods
    being removed; counting them would let the next step remove more than `maxUnavailable`
    allows (Kubernetes reads the raw status and has that window; podns closes it)."""
    return min(status_int(rs, "availableReplicas"), replicas(rs))


def new_rs_replicas(d: Mapping[str, Any], all_sets: Sequence[Mapping[str, Any] | None],
                    new: Mapping[str, Any] | None) -> int:
    """How many replicas the new ReplicaSet may have now (`NewRSNewReplicas`)."""
    if not is_rolling(d):
        return replicas(d)
    current_new = replicas(new) if new is not None else 0
    current = spec_count(all_sets)
    limit = replicas(d) + max_surge(d)
    if current >= limit:
        return current_new
    return current_new + min(limit - current, replicas(d) - current_new)


def is_saturated(d: Mapping[str, Any], rs: Mapping[str, Any] | None) -> bool:
    if rs is None:
        return False
    return (replicas(rs) == replicas(d) and desired_annotation(rs) == replicas(d)
            and status_int(rs, "availableReplicas") == replicas(d))


def proportion(rs: Mapping[str, Any], d: Mapping[str, Any], to_add: int, added: int) -> int:
    """This ReplicaSet's share of `to_add` (`GetProportion`)."""
    if replicas(rs) == 0 or to_add == 0 or to_add == added:
        return 0
    fraction = _fraction(rs, d)
    allowed = to_add - added
    return min(fraction, allowed) if to_add > 0 else max(fraction, allowed)


def _fraction(rs: Mapping[str, Any], d: Mapping[str, Any]) -> int:
    if replicas(d) == 0:
        return -replicas(rs)
    new_max = replicas(d) + max_surge(d)
    old_max = max_annotation(rs)
    if not old_max:
        old_max = status_int(d, "replicas")
        if old_max == 0:
            return 0
    size = replicas(rs) * new_max / old_max
    rounded = math.floor(size + 0.5) if size >= 0 else -math.floor(-size + 0.5)
    return int(rounded) - replicas(rs)


def condition(status: Mapping[str, Any], ctype: str) -> Obj | None:
    for c in status.get("conditions") or []:
        if c.get("type") == ctype:
            return dict(c)
    return None


def new_condition(ctype: str, status: str, reason: str, message: str, now: str) -> Obj:
    return {"type": ctype, "status": status, "lastUpdateTime": now, "lastTransitionTime": now,
            "reason": reason, "message": message}


def set_condition(status: Obj, cond: Obj) -> None:
    """`SetDeploymentCondition`: same status and reason -> unchanged; same status -> keep the
    transition time; the condition replaces the old one of its type."""
    current = condition(status, cond["type"])
    if current is not None and current.get("status") == cond["status"] \
            and current.get("reason") == cond["reason"]:
        return
    if current is not None and current.get("status") == cond["status"]:
        cond = {**cond, "lastTransitionTime": current.get("lastTransitionTime")}
    status["conditions"] = [*(c for c in status.get("conditions") or [] if c.get("type") != cond["type"]),
                            cond]


def remove_condition(status: Obj, ctype: str) -> None:
    conditions = [c for c in status.get("conditions") or [] if c.get("type") != ctype]
    if conditions:
        status["conditions"] = conditions
    else:
        status.pop("conditions", None)


def has_progress_deadline(d: Mapping[str, Any]) -> bool:
    deadline = spec(d).get("progressDeadlineSeconds")
    return deadline is not None and int(deadline) < 2**31 - 1


def complete(d: Mapping[str, Any], status: Mapping[str, Any]) -> bool:
    """`DeploymentComplete`: every replica updated and available, the spec observed."""
    want = replicas(d)
    return (int(status.get("updatedReplicas") or 0) == want and int(status.get("replicas") or 0) == want
            and int(status.get("availableReplicas") or 0) == want
            and int(status.get("observedGeneration") or 0) >= int(meta_of(d).get("generation") or 0))


def progressing(d: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    """`DeploymentProgressing`: more updated, ready or available pods, or fewer old ones."""
    old = d.get("status") or {}

    def n(s: Mapping[str, Any], k: str) -> int:
        return int(s.get(k) or 0)

    return (n(new, "updatedReplicas") > n(old, "updatedReplicas")
            or n(new, "replicas") - n(new, "updatedReplicas") < n(old, "replicas") - n(old, "updatedReplicas")
            or n(new, "readyReplicas") > n(old, "readyReplicas")
            or n(new, "availableReplicas") > n(old, "availableReplicas"))


def timed_out(d: Mapping[str, Any], status: Mapping[str, Any], now: float) -> bool:
    """`DeploymentTimedOut`: no progress for `progressDeadlineSeconds` since the Progressing
    condition's last update."""
    if not has_progress_deadline(d):
        return False
    cond = condition(status, PROGRESSING)
    if cond is None or cond.get("reason") == NEW_RS_AVAILABLE:
        return False
    if cond.get("reason") == TIMED_OUT:
        return True
    since = parse_time(cond.get("lastUpdateTime"))
    return since is not None and since + int(spec(d)["progressDeadlineSeconds"]) < now
