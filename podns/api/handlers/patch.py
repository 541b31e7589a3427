"""The four PATCH flavours of the Kubernetes API, as pure functions on JSON-like data.

- `merge_patch`: JSON merge patch (RFC 7386): objects merge recursively, `null` deletes, any
  other value (lists included) replaces.
- `json_patch`: JSON patch (RFC 6902): add, remove, replace, move, copy, test (`podns.objects.jsonpatch`,
  shared with the fake client).
- `strategic_merge_patch`: Kubernetes' strategic merge patch. Lists of objects with a merge key
  (containers/env/volumes by `name`, container ports by `containerPort`, Service ports by
  `port`, conditions by `type`, volumeMounts by `mountPath`, ...) merge element-wise; other
  lists are replaced; `metadata.finalizers` merges as a set. Directives: `$patch: replace |
  delete` (on maps and list elements), `$retainKeys`, `$setElementOrder/<list>` and
  `$deleteFromPrimitiveList/<list>`, as `kubectl apply`/`edit` emit them.
- `apply_patch`: the merge step of server-side apply (the applied configuration merged into the
  live object with strategic-merge rules); field ownership is `podns.api.handlers.fieldsets`'.

Errors raise `PatchError` with the HTTP code Kubernetes uses (400 malformed, 422 failed test or
missing path); the handler turns it into a Status.
"""

from __future__ import annotations

from typing import Any

import orjson

from podns.objects.jsonpatch import PatchError as PatchError  # one error for every flavour
from podns.objects.jsonpatch import json_patch as json_patch  # the RFC 6902 flavour
from podns.objects.mergepatch import merge_patch as merge_patch  # the RFC 7386 flavour

Obj = dict[str, Any]
Path = tuple[str, ...]


# -- strategic merge patch ---------------------------------------------------------------------

#: list field -> merge key, as the `patchMergeKey` tags of the Kubernetes Go types
MERGE_KEYS: dict[str, str] = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
    "imagePullSecrets": "name",
    "conditions": "type",
    "ownerReferences": "uid",
    "hostAliases": "ip",
    "addresses": "type",
    "resourceClaims": "name",
    "topologySpreadConstraints": "topologyKey",
    "readinessGates": "conditionType",
    "podIPs": "ip",
    "hostIPs": "ip",
}
#: containers' `ports` merge by containerPort, a Service's `spec.ports` by port
_CONTAINER_LISTS = frozenset({"containers", "initContainers", "ephemeralContainers"})
#: lists of scalars merged as sets (patchStrategy "merge" on a primitive list)
PRIMITIVE_MERGE = frozenset({"finalizers"})
#: lists that look keyed but are atomic in Kubernetes (replaced whole)
ATOMIC_UNDER = frozenset({"endpoints"})


def merge_key(path: Path) -> str | None:
    """The merge key of the list at `path` (dict keys from the root), None if replaced whole."""
    field = path[-1]
    if field == "ports":
        if len(path) >= 2 and path[-2] in _CONTAINER_LISTS:
            return "containerPort"
        # Service spec.ports merge by port; EndpointSlice/Endpoints ports are atomic
        return "port" if path == ("spec", "ports") else None
    if field == "addresses" and (len(path) < 2 or path[-2] != "status"):
        return None  # EndpointSlice/Endpoints addresses are atomic; Node status.addresses by type
    if field == "conditions" and len(path) >= 2 and path[-2] in ATOMIC_UNDER:
        return None  # EndpointSlice endpoint conditions is a struct, not a list
    return MERGE_KEYS.get(field)


def _strip(value: Any) -> Any:
    """Remove patch directives from a value that is inserted as is."""
    if isinstance(value, dict):
        return _strip_map(value)
    if isinstance(value, list):
        return _strip_list(value)
    return value


def _strip_map(value: Obj) -> Obj:
    """`_strip` of a map: its directive keys and null values dropped, its values stripped."""
    return {k: _strip(v) for k, v in value.items() if not k.startswith("$") and v is not None}


def _strip_list(value: list[Any]) -> list[Any]:
    """`_strip` of a list: elements that are directives ({"$patch": ...}) dropped, the rest stripped."""
    return [_strip(v) for v in value if not (isinstance(v, dict) and v.get("$patch"))]


def strategic_merge_patch(original: Obj, patch: Obj) -> Obj:
    """Apply a strategic merge patch to an object; returns the new object."""
    if not isinstance(patch, dict):
        raise PatchError("strategic merge patch must be a JSON object")
    # one copy up front; below, merging works in place on it
    start = orjson.loads(orjson.dumps(original)) if isinstance(original, dict) else {}
    result = _smp_map(start, patch, ())
    return result if result is not None else {}


def _smp_map(original: Obj, patch: Obj, path: Path) -> Obj | None:
    directive = patch.get("$patch")
    if directive == "delete":
        return None
    if directive == "replace":
        return _strip_map({k: v for k, v in patch.items() if k != "$patch"})
    if directive not in (None, "merge"):
        raise PatchError(f"Unknown patch type: {directive}, expected one of: replace, merge, delete")
    result = original  # a private copy (see strategic_merge_patch)
    orders: dict[str, list[Any]] = {}
    for key, value in patch.items():
        if key in ("$patch", "$retainKeys"):
            continue
        if key.startswith("$setElementOrder/"):
            orders[key.split("/", 1)[1]] = value if isinstance(value, list) else []
            continue
        if key.startswith("$deleteFromPrimitiveList/"):
            field = key.split("/", 1)[1]
            drop = value if isinstance(value, list) else []
            if isinstance(result.get(field), list):
                result[field] = [v for v in result[field] if v not in drop]
            continue
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict):
            cur = result.get(key)
            merged = _smp_map(cur if isinstance(cur, dict) else {}, value, (*path, key))
            if merged is None:
                result.pop(key, None)
            else:
                result[key] = merged
        elif isinstance(value, list):
            result[key] = _smp_list(result.get(key), value, (*path, key))
        else:
            result[key] = value
    for field, order in orders.items():
        if isinstance(result.get(field), list):
            result[field] = _reorder(result[field], order, merge_key((*path, field)))
    retain = patch.get("$retainKeys")
    if isinstance(retain, list):
        result = {k: v for k, v in result.items() if k in retain}
    return result


def _smp_list(original: Any, patch: list[Any], path: Path) -> list[Any]:
    orig = original if isinstance(original, list) else []
    if any(isinstance(e, dict) and e.get("$patch") == "replace" for e in patch):
        return _strip_list([e for e in patch if not (isinstance(e, dict) and e.get("$patch"))])
    field = path[-1]
    if field in PRIMITIVE_MERGE:
        out = list(orig)
        out.extend(v for v in patch if v not in out)
        return out
    key = merge_key(path)
    if key is None or not all(isinstance(e, dict) for e in patch) or \
            not all(isinstance(e, dict) for e in orig):
        return _strip_list(patch)
    result = orig  # a private copy (see strategic_merge_patch)
    for elem in patch:
        if key not in elem:
            raise PatchError(f"map: {elem} does not contain declared merge key: {key}")
        idx = next((i for i, o in enumerate(result) if o.get(key) == elem[key]), None)
        if elem.get("$patch") == "delete":
            if idx is not None:
                result.pop(idx)
            continue
        if idx is None:
            result.append(_strip(elem))
        else:
            merged = _smp_map(result[idx], elem, path)
            if merged is None:
                result.pop(idx)
            else:
                result[idx] = merged
    return result


def _reorder(items: list[Any], order: list[Any], key: str | None) -> list[Any]:
    """Put `items` in `$setElementOrder` order; items it does not mention keep their order
    after the ones it does."""
    def ident(item: Any) -> Any:
        return item.get(key) if key is not None and isinstance(item, dict) else item

    wanted = [ident(o) for o in order]
    positions = {w: i for i, w in enumerate(wanted) if isinstance(w, str | int | float)}
    mentioned = [i for i in items if ident(i) in positions]
    rest = [i for i in items if ident(i) not in positions]
    mentioned.sort(key=lambda i: positions[ident(i)])
    return mentioned + rest


# -- server-side apply -------------------------------------------------------------------------


def apply_patch(live: Obj, applied: Obj) -> Obj:
    """Merge an applied configuration into the live object (no field ownership tracking)."""
    if not isinstance(applied, dict):
        raise PatchError("apply patch must be an object")
    return strategic_merge_patch(live, applied)
