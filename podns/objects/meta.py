"""Object metadata: keys, accessors, owner references and status conditions.

One spelling of the `"namespace/name"` key for the whole project (`object_key` / `join_key` /
`split_key`, client-go's `MetaNamespaceKeyFunc` / `SplitMetaNamespaceKey`), Kubernetes'
controller-reference rules, and condition lists as Kubernetes' `meta.SetStatusCondition`
maintains them.

`OwnerReference` and `Condition` type the two shapes controllers write and every component reads
(`metav1.OwnerReference`, `metav1.Condition` and its Pod/Node variants); objects themselves stay
plain dicts as the API serves them (`Obj`).

Pure: dicts in, values out, no I/O. Objects handed in are never mutated (they usually come from
an informer cache shared by every component of the process; Kubernetes
`stateful_pod_control.go`: "make a copy so we don't mutate the shared cache"), except by
`set_condition` and `set_owner_reference`, which say so and change the caller's private copy.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypedDict

from podns.objects.times import now_rfc3339

Obj = dict[str, Any]


class OwnerReference(TypedDict, total=False):
    """An entry of `metadata.ownerReferences` (`metav1.OwnerReference`); `owner_reference`
    writes every field, one read from an object may lack the optional ones."""

    apiVersion: str
    kind: str
    name: str
    uid: str
    controller: bool
    blockOwnerDeletion: bool


class Condition(TypedDict, total=False):
    """An entry of `status.conditions` (`metav1.Condition`, and the Pod/Node variants that add
    `lastProbeTime` / `lastHeartbeatTime`); `status` is `"True"`, `"False"` or `"Unknown"`."""

    type: str
    status: str
    reason: str
    message: str
    lastTransitionTime: str
    lastProbeTime: str | None
    lastHeartbeatTime: str
    observedGeneration: int


# ---------------------------------------------------------------------------------------------
# keys and accessors


def join_key(namespace: str, name: str) -> str:
    """The key of the object `name` in `namespace`: `"namespace/name"`, or `"name"` when the
    namespace is empty (cluster-scoped objects)."""
    return f"{namespace}/{name}" if namespace else name


def object_key(obj: Mapping[str, Any]) -> str:
    """The key of an object (work queues, informer caches): `join_key` of its metadata."""
    return join_key(namespace_of(obj), name_of(obj))


def split_key(key: str) -> tuple[str, str]:
    """Inverse of `join_key`: `(namespace, name)`, namespace `""` when cluster-scoped.

    Raises ValueError for a key with more than one '/', as client-go's `SplitMetaNamespaceKey`
    does: such a key was not made by `join_key`, and a caller must not guess an object from it."""
    parts = key.split("/")
    if len(parts) == 1:
        return "", parts[0]
    if len(parts) == 2:
        return parts[0], parts[1]
    raise ValueError(f"unexpected key format: {key!r}")


def meta_of(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    """The object's metadata, or an empty mapping."""
    return obj.get("metadata") or {}


def name_of(obj: Mapping[str, Any]) -> str:
    return str(meta_of(obj).get("name") or "")


def namespace_of(obj: Mapping[str, Any]) -> str:
    """The object's namespace, `""` for cluster-scoped objects."""
    return str(meta_of(obj).get("namespace") or "")


def labels_of(obj: Mapping[str, Any]) -> Mapping[str, str]:
    return meta_of(obj).get("labels") or {}


def is_terminating(obj: Mapping[str, Any]) -> bool:
    """The object has a `deletionTimestamp` (graceful deletion or finalizers pending)."""
    return bool(meta_of(obj).get("deletionTimestamp"))


# ---------------------------------------------------------------------------------------------
# owner references


def owner_reference(owner: Mapping[str, Any], *, controller: bool = True) -> OwnerReference:
    """An owner reference to `owner` with `blockOwnerDeletion`, as controllers put on the objects
    they create (a StatefulSet on its pods, a Service on its EndpointSlices). `apiVersion`
    defaults to `v1` for list items that come without one."""
    md = meta_of(owner)
    return {
        "apiVersion": owner.get("apiVersion", "v1"),
        "kind": owner.get("kind", ""),
        "name": md.get("name", ""),
        "uid": md.get("uid", ""),
        "controller": controller,
        "blockOwnerDeletion": True,
    }


def controller_ref(obj: Mapping[str, Any]) -> OwnerReference | None:
    """The owner reference with `controller: true`, or None (Kubernetes `metav1.GetControllerOf`)."""
    refs: list[OwnerReference] = meta_of(obj).get("ownerReferences") or []
    for ref in refs:
        if ref.get("controller"):
            return ref
    return None


def is_controlled_by(obj: Mapping[str, Any], owner: Mapping[str, Any]) -> bool:
    """Whether `obj`'s controller reference points at `owner` (by uid)."""
    ref = controller_ref(obj)
    owner_uid = meta_of(owner).get("uid")
    return ref is not None and bool(owner_uid) and ref.get("uid") == owner_uid


def set_owner_reference(obj: Obj, ref: OwnerReference) -> None:
    """Add or replace (by uid) an owner reference on `obj`, in place."""
    md = obj.setdefault("metadata", {})
    refs = [r for r in md.get("ownerReferences") or [] if r.get("uid") != ref.get("uid")]
    refs.append(dict(ref))
    md["ownerReferences"] = refs


# ---------------------------------------------------------------------------------------------
# conditions


#: condition fields that record when, not what: a condition differing only in them is unchanged
_TIME_FIELDS = ("lastTransitionTime", "lastHeartbeatTime", "lastProbeTime")


def get_condition(obj_or_status: Mapping[str, Any], cond_type: str) -> Condition | None:
    """The condition of `cond_type` from an object (its `status.conditions`) or a status."""
    status = obj_or_status.get("status", obj_or_status)
    if not isinstance(status, Mapping):
        return None
    conditions: list[Condition] = status.get("conditions") or []
    for cond in conditions:
        if cond.get("type") == cond_type:
            return cond
    return None


def is_condition_true(obj_or_status: Mapping[str, Any], cond_type: str) -> bool:
    cond = get_condition(obj_or_status, cond_type)
    return cond is not None and cond.get("status") == "True"


def set_condition(conditions: list[Condition], new: Condition, *, now: str | None = None) -> bool:
    """Put `new` into `conditions` (the caller's private list), as Kubernetes'
    `meta.SetStatusCondition`: `lastTransitionTime` moves (to `now`, default the current time)
    only when the status changes. Returns whether anything but a time field changed; when
    nothing did, the list is left as it was."""
    stamp = now or now_rfc3339()
    for i, cond in enumerate(conditions):
        if cond.get("type") != new["type"]:
            continue
        if all(cond.get(k) == v for k, v in new.items() if k not in _TIME_FIELDS):
            return False
        same_status = cond.get("status") == new.get("status")
        conditions[i] = {**new, "lastTransitionTime": cond.get("lastTransitionTime", stamp)
                         if same_status else stamp}
        return True
    conditions.append({**new, "lastTransitionTime": stamp})
    return True

