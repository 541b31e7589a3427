"""Server-set object metadata: uid, timestamps, generation, managedFields; store keys.

These are the fields kube-apiserver owns whatever the client sends: `uid` and
`creationTimestamp` are set once on create and kept on every update; `generation` starts at 1
and is bumped when the kind's `Strategy.spec_changed` says so; `resourceVersion` belongs to the
store; `managedFields` records one entry per (manager, operation) as far as `kubectl apply
--server-side` needs (its `fieldsV1` is left empty: podns does not track field ownership).
"""

from __future__ import annotations

import uuid
from typing import Any

import orjson

from podns.api.resources.base import ResourceType
from podns.objects.times import now_rfc3339

Obj = dict[str, Any]

#: metadata fields only the server sets; a client's values are replaced by the stored ones
SERVER_META = ("uid", "creationTimestamp", "generation", "deletionTimestamp",
               "deletionGracePeriodSeconds", "selfLink")


def store_key(rt: ResourceType, namespace: str | None, name: str) -> str:
    """The store key of one object (`<resource>/<namespace>/<name>`; not `podns.objects.object_key`)."""
    if rt.namespaced:
        return f"{rt.store_resource}/{namespace}/{name}"
    return f"{rt.store_resource}/{name}"


def collection_prefix(rt: ResourceType, namespace: str | None) -> str:
    """The store prefix of a collection (one namespace, or all when `namespace` is None)."""
    if rt.namespaced and namespace:
        return f"{rt.store_resource}/{namespace}/"
    return f"{rt.store_resource}/"


def stamp_create(obj: Obj, rt: ResourceType) -> None:
    """Set the server-owned fields of a new object."""
    obj["apiVersion"] = rt.api_version
    obj["kind"] = rt.kind
    meta = obj.setdefault("metadata", {})
    for field in (*SERVER_META, "resourceVersion"):
        meta.pop(field, None)
    meta["uid"] = str(uuid.uuid4())
    meta["creationTimestamp"] = now_rfc3339()
    meta["generation"] = 1


def carry_over(new: Obj, old: Obj, rt: ResourceType) -> None:
    """Keep the server-owned metadata of `old` on an update's `new` object."""
    new["apiVersion"] = rt.api_version
    new["kind"] = rt.kind
    meta = new.setdefault("metadata", {})
    old_meta = old.get("metadata") or {}
    for field in SERVER_META:
        if field in old_meta:
            meta[field] = old_meta[field]
        else:
            meta.pop(field, None)
    if "managedFields" not in meta and "managedFields" in old_meta:
        meta["managedFields"] = clone(old_meta["managedFields"])


def record_manager(obj: Obj, rt: ResourceType, manager: str | None, operation: str,
                   subresource: str = "") -> None:
    """Upsert the managedFields entry of (`manager`, `operation`, `subresource`)."""
    meta = obj.setdefault("metadata", {})
    entries = [e for e in (meta.get("managedFields") or []) if isinstance(e, dict)]
    manager = manager or "unknown"
    entry: Obj = {"manager": manager, "operation": operation, "apiVersion": rt.api_version,
                  "time": now_rfc3339(), "fieldsType": "FieldsV1", "fieldsV1": {}}
    if subresource:
        entry["subresource"] = subresource
    same = (manager, operation, subresource)
    for e in entries:
        if (e.get("manager"), e.get("operation"), e.get("subresource", "")) == same and \
                e.get("fieldsV1"):
            entry["fieldsV1"] = e["fieldsV1"]  # set by server-side apply (fieldsets.py)
    entries = [e for e in entries if (e.get("manager"), e.get("operation"),
                                      e.get("subresource", "")) != same]
    entries.append(entry)
    meta["managedFields"] = entries


def clone(obj: Any) -> Any:
    """A deep copy of JSON-like data; an orjson round trip is several times faster than
    `copy.deepcopy` on Kubernetes objects (this is on every write's path)."""
    return orjson.loads(orjson.dumps(obj))


def rv_of(obj: Obj) -> int:
    """The store revision an object carries."""
    return int((obj.get("metadata") or {}).get("resourceVersion") or 0)
