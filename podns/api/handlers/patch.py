"""The four PATCH flavours of the Kubernetes API, as pure functions on JSON-like data.

- `merge_patch`: JSON merge patch (RFC 7386): objects merge recursively, `null` deletes, any
  other value (lists included) replaces.
- `json_patch`: JSON patch (RFC 6902): add, remove, replace, move, copy, test.
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

import copy
from typing import Any

import orjson

from podns.objects.mergepatch import merge_patch as merge_patch  # the RFC 7386 flavour

Obj = dict[str, Any]
Path = tuple[str, ...]


class PatchError(Exception):
    """A patch that cannot be applied; `code` is 400 (malformed) or 422 (does not apply)."""

    def __init__(self, message: str, code: int = 400) -> None:
        super().__init__(message)
        self.code = code


# -- JSON patch (RFC 6902) ---------------------------------------------------------------------


def _pointer(path: Any) -> list[str]:
    if not isinstance(path, str) or (path and not path.startswith("/")):
        raise PatchError(f"invalid JSON pointer: {path!r}")
    if path == "":
        return []
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _index(container: list[Any], token: str, *, allow_end: bool) -> int:
    if token == "-" and allow_end:
        return len(container)
    if not token.isdigit() or (len(token) > 1 and token.startswith("0")):
        raise PatchError(f"invalid array index: {token!r}", 422)
    idx = int(token)
    if idx > len(container) or (idx == len(container) and not allow_end):
        raise PatchError(f"array index out of bounds: {idx}", 422)
    return idx


def _parent(doc: Any, tokens: list[str], path: str) -> Any:
    cur = doc
    for token in tokens[:-1]:
        if isinstance(cur, dict):
            if token not in cur:
                raise PatchError(f"doc is missing path: {path!r}", 422)
            cur = cur[token]
        elif isinstance(cur, list):
            cur = cur[_index(cur, token, allow_end=False)]
        else:
            raise PatchError(f"doc is missing path: {path!r}", 422)
    return cur


def _get(doc: Any, path: str) -> Any:
    tokens = _pointer(path)
    if not tokens:
        return doc
    parent = _parent(doc, tokens, path)
    last = tokens[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise PatchError(f"doc is missing path: {path!r}", 422)
        return parent[last]
    if isinstance(parent, list):
        return parent[_index(parent, last, allow_end=False)]
    raise PatchError(f"doc is missing path: {path!r}", 422)


def _remove(doc: Any, path: str) -> Any:
    tokens = _pointer(path)
    if not tokens:
        raise PatchError("cannot remove the document root", 422)
    parent = _parent(doc, tokens, path)
    last = tokens[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise PatchError(f"unable to remove nonexistent key: {last}: missing value", 422)
        return parent.pop(last)
    if isinstance(parent, list):
        return parent.pop(_index(parent, last, allow_end=False))
    raise PatchError(f"doc is missing path: {path!r}", 422)


def _add(doc: Any, path: str, value: Any, *, replace: bool = False) -> Any:
    tokens = _pointer(path)
    if not tokens:
        return value
    parent = _parent(doc, tokens, path)
    last = tokens[-1]
    if isinstance(parent, dict):
        if replace and last not in parent:
            raise PatchError(f"replace operation does not apply: doc is missing key: {path}", 422)
        parent[last] = value
    elif isinstance(parent, list):
        if replace:
            parent[_index(parent, last, allow_end=False)] = value
        else:
            parent.insert(_index(parent, last, allow_end=True), value)
    else:
        raise PatchError(f"doc is missing path: {path!r}", 422)
    return doc


def json_patch(doc: Any, ops: Any) -> Any:
    """Apply an RFC 6902 operation list; returns the new document (the input is not modified)."""
    if not isinstance(ops, list):
        raise PatchError("json patch must be a list of operations")
    doc = orjson.loads(orjson.dumps(doc))
    for op in ops:
        if not isinstance(op, dict) or "op" not in op:
            raise PatchError(f"invalid json patch operation: {op!r}")
        kind, path = op["op"], op.get("path")
        if path is None:
            raise PatchError(f"json patch operation {kind!r} has no path")
        if kind in ("add", "replace", "test") and "value" not in op:
            raise PatchError(f"json patch operation {kind!r} has no value")
        if kind == "add":
            doc = _add(doc, path, copy.deepcopy(op["value"]))
        elif kind == "remove":
            _remove(doc, path)
        elif kind == "replace":
            doc = _add(doc, path, copy.deepcopy(op["value"]), replace=True)
        elif kind in ("move", "copy"):
            src = op.get("from")
            if src is None:
                raise PatchError(f"json patch operation {kind!r} has no from")
            value = _remove(doc, src) if kind == "move" else copy.deepcopy(_get(doc, src))
            doc = _add(doc, path, value)
        elif kind == "test":
            if _get(doc, path) != op["value"]:
                raise PatchError(f"testing value {path} failed: test failed", 422)
        else:
            raise PatchError(f"Unexpected kind: {kind}")
    return doc


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
        return {k: _strip(v) for k, v in value.items()
                if not k.startswith("$") and v is not None}
    if isinstance(value, list):
        return [_strip(v) for v in value if not (isinstance(v, dict) and v.get("$patch"))]
    return value


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
        return _strip({k: v for k, v in patch.items() if k != "$patch"})
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
        return _strip([e for e in patch if not (isinstance(e, dict) and e.get("$patch"))])
    field = path[-1]
    if field in PRIMITIVE_MERGE:
        out = list(orig)
        out.extend(v for v in patch if v not in out)
        return out
    key = merge_key(path)
    if key is None or not all(isinstance(e, dict) for e in patch) or \
            not all(isinstance(e, dict) for e in orig):
        return _strip(patch)
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
