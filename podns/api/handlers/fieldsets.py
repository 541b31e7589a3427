"""Field sets of server-side apply: which fields an applier owns, in Kubernetes' `FieldsV1` form.

A field set is a set of paths. A path is a tuple of tokens as in `managedFields[].fieldsV1`:
`f:<field>` for an object field or map key, `k:<json of the merge key>` for an element of a
list merged by key (`k:{"name":"db"}`), and a trailing `.` for "the element itself". Scalars,
lists without a merge key (atomic) and empty objects are leaves.

`apply` implements the part of server-side apply `kubectl apply --server-side` relies on: the
applied configuration is merged into the live object with strategic-merge rules, and fields the
same manager applied last time but no longer does are removed, unless another applier owns
them too. Field ownership of non-apply writers (Update) is not tracked, so there are no apply
conflicts; an applier's removal wins over a later update of the same field.
"""

from __future__ import annotations

from typing import Any

import orjson

from podns.api.handlers.patch import PatchError, merge_key, strategic_merge_patch

Obj = dict[str, Any]
Path = tuple[str, ...]

#: fields that identify an object rather than belong to an applier
_IDENTITY = {("f:apiVersion",), ("f:kind",), ("f:metadata", "f:name"),
             ("f:metadata", "f:namespace"), ("f:metadata", "f:resourceVersion"),
             ("f:metadata", "f:managedFields"), ("f:metadata", "f:uid")}


def _key_token(elem: Obj, key: str) -> str:
    return "k:" + orjson.dumps({key: elem.get(key)}).decode()


def field_set(obj: Any, path: Path = (), names: tuple[str, ...] = ()) -> set[Path]:
    """The paths of every field in `obj` (an applied configuration)."""
    out: set[Path] = set()
    if isinstance(obj, dict) and obj:
        for k, v in obj.items():
            if k.startswith("$"):
                continue
            out |= field_set(v, (*path, f"f:{k}"), (*names, k))
        return out - _IDENTITY
    if isinstance(obj, list) and obj and names:
        key = merge_key(names)
        if key is not None and all(isinstance(e, dict) and key in e for e in obj):
            for elem in obj:
                elem_path = (*path, _key_token(elem, key))
                out.add((*elem_path, "."))
                out |= field_set(elem, elem_path, names)
            return out
    out.add(path)
    return out - _IDENTITY


def to_fields_v1(paths: set[Path]) -> Obj:
    """Nested `FieldsV1` JSON of a field set."""
    root: Obj = {}
    for p in sorted(paths):
        node = root
        for token in p:
            node = node.setdefault(token, {})
    return root


def from_fields_v1(doc: Any, prefix: Path = ()) -> set[Path]:
    """The field set of a `FieldsV1` document (leaves are empty objects)."""
    out: set[Path] = set()
    if not isinstance(doc, dict):
        return out
    for token, child in doc.items():
        path = (*prefix, token)
        if isinstance(child, dict) and child:
            out |= from_fields_v1(child, path)
        else:
            out.add(path)
    return out


def _remove(obj: Any, path: Path) -> None:
    """Delete the field at `path` from `obj` in place (missing paths are ignored)."""
    if not path or not isinstance(obj, dict):
        return
    token, rest = path[0], path[1:]
    if not token.startswith("f:"):
        return
    field = token[2:]
    if field not in obj:
        return
    if not rest:
        del obj[field]
        return
    child = obj[field]
    if isinstance(child, list) and rest[0].startswith("k:"):
        try:
            ident = orjson.loads(rest[0][2:])
        except orjson.JSONDecodeError:
            return
        for i, elem in enumerate(child):
            if isinstance(elem, dict) and all(elem.get(k) == v for k, v in ident.items()):
                if rest[1:] == (".",):
                    child.pop(i)
                else:
                    _remove(elem, rest[1:])
                return
        return
    _remove(child, rest)


def owned_by_others(managed: list[Obj], manager: str) -> set[Path]:
    """Fields other appliers own."""
    out: set[Path] = set()
    for entry in managed:
        if isinstance(entry, dict) and entry.get("operation") == "Apply" and \
                entry.get("manager") != manager and not entry.get("subresource"):
            out |= from_fields_v1(entry.get("fieldsV1"))
    return out


def apply(live: Obj, applied: Obj, manager: str) -> Obj:
    """Server-side apply of `applied` by `manager` onto `live`; returns the new object with
    the manager's `managedFields` entry holding its new field set."""
    if not isinstance(applied, dict):
        raise PatchError("apply patch must be an object")
    if not isinstance(applied.get("metadata", {}), dict):
        raise PatchError("metadata of an apply patch must be an object")
    managed = [e for e in ((live.get("metadata") or {}).get("managedFields") or [])
               if isinstance(e, dict)]
    mine = next((e for e in managed if e.get("manager") == manager and
                 e.get("operation") == "Apply" and not e.get("subresource")), None)
    new_fields = field_set(applied)
    start = live
    if mine is not None:
        dropped = from_fields_v1(mine.get("fieldsV1")) - new_fields - owned_by_others(
            managed, manager)
        if dropped:
            start = orjson.loads(orjson.dumps(live))
            # whole elements first: removing an element's key field first would lose it
            for path in sorted(dropped, key=lambda p: (p[-1] != ".", len(p))):
                _remove(start, path)
    out = strategic_merge_patch(start, applied)
    set_fields(out, manager, new_fields)
    return out


def set_fields(obj: Obj, manager: str, fields: set[Path]) -> None:
    """Record `fields` as the (manager, Apply) entry's `fieldsV1` in `obj`'s managedFields."""
    md = obj.setdefault("metadata", {})
    entries = [e for e in (md.get("managedFields") or []) if isinstance(e, dict) and not (
        e.get("manager") == manager and e.get("operation") == "Apply" and
        not e.get("subresource"))]
    entries.append({"manager": manager, "operation": "Apply", "fieldsType": "FieldsV1",
                    "fieldsV1": to_fields_v1(fields)})
    md["managedFields"] = entries
