"""Helpers on object metadata: keys, owner references, conditions and RFC 3339 timestamps.

One spelling of the `"namespace/name"` key for the whole project (`object_key` /
`split_key`), Kubernetes' controller-reference rules, and condition lists as Kubernetes'
`meta.SetStatusCondition` maintains them. Pure: dicts in, dicts out, no I/O; the functions
that change an object say so and change it in place (callers own a private copy).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

Obj = dict[str, Any]


def object_key(obj: Mapping[str, Any]) -> str:
    """`"namespace/name"` for namespaced objects, `"name"` for cluster-scoped ones."""
    md = obj.get("metadata") or {}
    ns = md.get("namespace") or ""
    name = md.get("name") or ""
    return f"{ns}/{name}" if ns else name


def split_key(key: str) -> tuple[str, str]:
    """Inverse of `object_key`: `(namespace, name)`, namespace `""` when cluster-scoped.
    Raises ValueError for a key with more than one '/'."""
    parts = key.split("/")
    if len(parts) == 1:
        return "", parts[0]
    if len(parts) == 2:
        return parts[0], parts[1]
    raise ValueError(f"unexpected key format: {key!r}")


# ---------------------------------------------------------------------------------------------
# timestamps


def format_time(when: dt.datetime) -> str:
    """RFC 3339 at second precision in UTC (`2024-01-02T03:04:05Z`), as metav1.Time."""
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def format_micro_time(when: dt.datetime) -> str:
    """RFC 3339 with microseconds (`...05.123456Z`), as metav1.MicroTime (Lease, events.k8s.io)."""
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def now() -> str:
    """The current time as a metav1.Time string."""
    return format_time(dt.datetime.now(dt.UTC))


def parse_time(value: str) -> dt.datetime:
    """Parse an RFC 3339 timestamp (with `Z` or an offset, optional fraction); ValueError if
    malformed. Returns an aware datetime."""
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    parsed = dt.datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        raise ValueError(f"timestamp without a time zone: {value!r}")
    return parsed


# ---------------------------------------------------------------------------------------------
# owner references


def controller_ref(obj: Mapping[str, Any]) -> Obj | None:
    """The owner reference with `controller: true`, or None."""
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("controller"):
            return dict(ref)
    return None


def make_controller_ref(owner: Mapping[str, Any], *, block_owner_deletion: bool = True) -> Obj:
    """An owner reference naming `owner` as the controller (what controllers put on objects
    they create, e.g. a StatefulSet on its pods)."""
    md = owner.get("metadata") or {}
    return {
        "apiVersion": owner.get("apiVersion", ""),
        "kind": owner.get("kind", ""),
        "name": md.get("name", ""),
        "uid": md.get("uid", ""),
        "controller": True,
        "blockOwnerDeletion": block_owner_deletion,
    }


def is_controlled_by(obj: Mapping[str, Any], owner: Mapping[str, Any]) -> bool:
    """Whether `obj`'s controller reference points at `owner` (by uid)."""
    ref = controller_ref(obj)
    owner_uid = (owner.get("metadata") or {}).get("uid")
    return ref is not None and bool(owner_uid) and ref.get("uid") == owner_uid


def set_owner_reference(obj: Obj, ref: Mapping[str, Any]) -> None:
    """Add or replace (by uid) an owner reference on `obj`, in place."""
    md = obj.setdefault("metadata", {})
    refs = [r for r in md.get("ownerReferences") or [] if r.get("uid") != ref.get("uid")]
    refs.append(dict(ref))
    md["ownerReferences"] = refs


# ---------------------------------------------------------------------------------------------
# conditions


def get_condition(obj_or_status: Mapping[str, Any], cond_type: str) -> Obj | None:
    """The condition of `cond_type` from an object (its `status.conditions`) or a status."""
    status = obj_or_status.get("status", obj_or_status)
    if not isinstance(status, Mapping):
        return None
    for cond in status.get("conditions") or []:
        if cond.get("type") == cond_type:
            return dict(cond)
    return None


def is_condition_true(obj_or_status: Mapping[str, Any], cond_type: str) -> bool:
    cond = get_condition(obj_or_status, cond_type)
    return cond is not None and cond.get("status") == "True"


def set_condition(
    obj: Obj,
    cond_type: str,
    status: str,
    *,
    reason: str = "",
    message: str = "",
    at: str | None = None,
    time_field: str = "lastTransitionTime",
) -> bool:
    """Set a condition in `obj["status"]["conditions"]` in place, as `meta.SetStatusCondition`:
    the transition time changes only when `status` changes. Returns whether anything changed.
    `time_field` lets pods also keep `lastProbeTime` semantics untouched."""
    conds: list[Obj] = obj.setdefault("status", {}).setdefault("conditions", [])
    stamp = at or now()
    for cond in conds:
        if cond.get("type") != cond_type:
            continue
        changed = False
        if cond.get("status") != status:
            cond["status"] = status
            cond[time_field] = stamp
            changed = True
        for key, value in (("reason", reason), ("message", message)):
            if value and cond.get(key) != value:
                cond[key] = value
                changed = True
            elif not value and key in cond:
                del cond[key]
                changed = True
        return changed
    new: Obj = {"type": cond_type, "status": status, time_field: stamp}
    if reason:
        new["reason"] = reason
    if message:
        new["message"] = message
    conds.append(new)
    return True


def remove_condition(obj: Obj, cond_type: str) -> bool:
    """Remove a condition in place; returns whether one was removed."""
    status = obj.get("status") or {}
    conds = status.get("conditions") or []
    kept = [c for c in conds if c.get("type") != cond_type]
    if len(kept) == len(conds):
        return False
    status["conditions"] = kept
    return True
