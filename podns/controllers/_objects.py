"""Pure helpers on raw Kubernetes objects (dicts) that the controllers share.

Owns: keys (`object_key`, `split_key`), label-selector matching (Service equality selectors and
`metav1.LabelSelector` with matchExpressions), pod readiness and conditions, owner references and
RFC 3339 timestamps. No I/O, no podns imports, so every function here is trivially unit-tested.

Objects handed in are never mutated: they usually come straight from an informer cache, which
is shared by every controller in the process (Kubernetes `stateful_pod_control.go`: "make a copy
so we don't mutate the shared cache").
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any

Obj = dict[str, Any]


class SelectorError(ValueError):
    """A label selector that cannot be evaluated (unknown operator, bad values)."""


def object_key(obj: Mapping[str, Any]) -> str:
    """The work-queue key of an object: "namespace/name", or "name" when cluster-scoped."""
    meta = obj.get("metadata") or {}
    ns = meta.get("namespace") or ""
    return f"{ns}/{meta.get('name', '')}" if ns else str(meta.get("name", ""))


def split_key(key: str) -> tuple[str, str]:
    """Split a key built by `object_key` into (namespace, name); namespace "" when cluster-scoped."""
    ns, sep, name = key.partition("/")
    return (ns, name) if sep else ("", ns)


def meta(obj: Mapping[str, Any]) -> dict[str, Any]:
    """The object's metadata, or an empty dict."""
    return obj.get("metadata") or {}


def name_of(obj: Mapping[str, Any]) -> str:
    return str(meta(obj).get("name", ""))


def namespace_of(obj: Mapping[str, Any]) -> str:
    return str(meta(obj).get("namespace") or "")


def labels_of(obj: Mapping[str, Any]) -> dict[str, str]:
    return meta(obj).get("labels") or {}


def now_rfc3339(now: float | None = None) -> str:
    """`now` (seconds since the epoch; None = the current time) as Kubernetes writes times."""
    t = dt.datetime.now(dt.UTC) if now is None else dt.datetime.fromtimestamp(now, dt.UTC)
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: str | None) -> float | None:
    """Seconds since the epoch of an RFC 3339 time, or None when absent or unparseable."""
    if not value:
        return None
    try:
        return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


# --- label selectors -------------------------------------------------------------------------


def match_labels(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    """Equality selector (Service `spec.selector`): every key present with that value."""
    return all(labels.get(k) == v for k, v in selector.items())


def validate_label_selector(selector: Mapping[str, Any] | None) -> None:
    """Raise `SelectorError` when a `metav1.LabelSelector` cannot be evaluated."""
    for expr in (selector or {}).get("matchExpressions") or []:
        op = expr.get("operator")
        values = expr.get("values") or []
        if not expr.get("key"):
            raise SelectorError("matchExpressions[].key: required")
        if op in ("In", "NotIn"):
            if not values:
                raise SelectorError(f"{expr.get('key')}: values must be non-empty for operator {op}")
        elif op in ("Exists", "DoesNotExist"):
            if values:
                raise SelectorError(f"{expr.get('key')}: values must be empty for operator {op}")
        else:
            raise SelectorError(f"{expr.get('key')}: unsupported operator {op!r}")


def match_label_selector(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """Whether `labels` match a `metav1.LabelSelector` (matchLabels AND matchExpressions).

    An empty selector matches everything and a None selector matches nothing, as in
    Kubernetes' `LabelSelectorAsSelector`. Raises `SelectorError` for invalid expressions.
    """
    if selector is None:
        return False
    validate_label_selector(selector)
    if not match_labels(selector.get("matchLabels") or {}, labels):
        return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and key in labels and labels[key] in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def selector_string(selector: Mapping[str, Any] | None) -> str:
    """A `metav1.LabelSelector` in the string form `kubectl` and `Scale.status.selector` use."""
    parts = [f"{k}={v}" for k, v in sorted(((selector or {}).get("matchLabels") or {}).items())]
    for expr in (selector or {}).get("matchExpressions") or []:
        key, op, values = expr.get("key"), expr.get("operator"), sorted(expr.get("values") or [])
        if op == "In":
            parts.append(f"{key} in ({','.join(values)})")
        elif op == "NotIn":
            parts.append(f"{key} notin ({','.join(values)})")
        elif op == "Exists":
            parts.append(str(key))
        elif op == "DoesNotExist":
            parts.append(f"!{key}")
    return ",".join(parts)


# --- conditions ----------------------------------------------------------------------------


def get_condition(obj: Mapping[str, Any], ctype: str) -> dict[str, Any] | None:
    """The status condition of type `ctype`, or None."""
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond.get("type") == ctype:
            return cond
    return None


def pod_is_ready(pod: Mapping[str, Any]) -> bool:
    """The pod's `Ready` condition is True (Kubernetes `podutil.IsPodReady`)."""
    cond = get_condition(pod, "Ready")
    return bool(cond and cond.get("status") == "True")


def pod_is_available(pod: Mapping[str, Any], min_ready_seconds: int, now: float) -> bool:
    """Ready for at least `min_ready_seconds` (Kubernetes `podutil.IsPodAvailable`)."""
    if not pod_is_ready(pod):
        return False
    if min_ready_seconds <= 0:
        return True
    since = parse_time((get_condition(pod, "Ready") or {}).get("lastTransitionTime"))
    return since is not None and since + min_ready_seconds <= now


def pod_phase(pod: Mapping[str, Any]) -> str:
    return str((pod.get("status") or {}).get("phase") or "Pending")


def is_terminating(obj: Mapping[str, Any]) -> bool:
    return bool(meta(obj).get("deletionTimestamp"))


def set_condition(conditions: list[dict[str, Any]], new: dict[str, Any], now: str) -> bool:
    """Put `new` into `conditions` (a private list), keeping `lastTransitionTime` when the status
    is unchanged. Returns whether anything changed."""
    for i, cond in enumerate(conditions):
        if cond.get("type") != new["type"]:
            continue
        same = all(cond.get(k) == v for k, v in new.items() if k not in ("lastTransitionTime",
                                                                          "lastHeartbeatTime"))
        if same:
            return False
        merged = {**new}
        merged["lastTransitionTime"] = (
            cond.get("lastTransitionTime", now) if cond.get("status") == new["status"] else now
        )
        conditions[i] = merged
        return True
    conditions.append({**new, "lastTransitionTime": now})
    return True


# --- owner references ----------------------------------------------------------------------


def owner_reference(owner: Mapping[str, Any], *, controller: bool = True) -> dict[str, Any]:
    """An ownerReference to `owner` with blockOwnerDeletion (as controllers set them)."""
    return {
        "apiVersion": owner.get("apiVersion", "v1"),
        "kind": owner.get("kind", ""),
        "name": name_of(owner),
        "uid": meta(owner).get("uid", ""),
        "controller": controller,
        "blockOwnerDeletion": True,
    }


def controller_ref(obj: Mapping[str, Any]) -> dict[str, Any] | None:
    """The ownerReference with `controller: true`, or None."""
    for ref in meta(obj).get("ownerReferences") or []:
        if ref.get("controller"):
            return ref
    return None


def is_controlled_by(obj: Mapping[str, Any], owner: Mapping[str, Any]) -> bool:
    ref = controller_ref(obj)
    return bool(ref and ref.get("uid") == meta(owner).get("uid"))


def first(items: Iterable[Any]) -> Any:
    """The first item, or None."""
    return next(iter(items), None)
