"""Server-side printing glue: a `meta.k8s.io/v1 Table` for `kubectl get` (lists, gets, watches).

Rendering rows is the api-kinds side's (`podns.api.encoding.tables.render_table`, built on each
Strategy's `columns()`/`cells()`); until that module exists this falls back to the same
contract directly: a Name column, the Strategy's columns, and Age when the Strategy has none.
`includeObject` (None | Metadata (default) | Object) decides what each row's `object` holds.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from podns.api import statuserror
from podns.api.resources.base import Column, ResourceType

Obj = dict[str, Any]


def _age(timestamp: str | None) -> str:
    if not timestamp:
        return "<unknown>"
    try:
        then = dt.datetime.strptime(timestamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)
    except ValueError:
        return "<unknown>"
    secs = int((dt.datetime.now(dt.UTC) - then).total_seconds())
    if secs < 120:
        return f"{max(secs, 0)}s"
    if secs < 3600 * 3:
        return f"{secs // 60}m"
    if secs < 86400 * 2:
        return f"{secs // 3600}h"
    return f"{secs // 86400}d"


def _row_object(rt: ResourceType, obj: Obj, include: str) -> Obj | None:
    if include == "None":
        return None
    if include == "Object":
        return obj
    return {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
            "metadata": obj.get("metadata") or {}}


def table(rt: ResourceType, objects: list[Obj], query: Mapping[str, str], *, list_rv: int,
          with_columns: bool = True) -> Obj:
    """A Table of `objects` with the kind's printer columns."""
    include = query.get("includeObject") or "Metadata"
    if include not in ("None", "Metadata", "Object"):
        raise statuserror.bad_request(f'includeObject parameter unsupported: "{include}"')
    try:
        from podns.api.encoding import tables  # the api-kinds renderer, when present
    except ImportError:
        tables = None  # type: ignore[assignment]
    render = getattr(tables, "render_table", None) if tables is not None else None
    if render is not None:
        out: Obj = render(rt, objects, include_object=include, with_columns=with_columns)
        out.setdefault("metadata", {})["resourceVersion"] = str(list_rv)
        return out
    strategy = rt.strategy
    cols = list(strategy.columns())
    name_first = getattr(strategy, "name_column", True)
    if not any(c.name == "Age" for c in cols):
        cols.append(Column("Age", description="CreationTimestamp of the object."))
    definitions = []
    if name_first:
        definitions.append({"name": "Name", "type": "string", "format": "name", "priority": 0,
                            "description": "Name must be unique within a namespace."})
    definitions += [{"name": c.name, "type": c.type, "format": c.format, "priority": c.priority,
                     "description": c.description} for c in cols]
    rows = []
    for obj in objects:
        md = obj.get("metadata") or {}
        given = list(strategy.cells(obj))
        cells: list[Any] = [md.get("name", "")] if name_first else []
        # Strategies may leave the Age cell to us: fill it where the column is
        it = iter(given)
        missing = len(cols) - len(given)
        for c in cols:
            if c.name == "Age" and missing > 0:
                cells.append(_age(md.get("creationTimestamp")))
                missing -= 1
            else:
                cells.append(next(it, ""))
        row: Obj = {"cells": cells}
        ro = _row_object(rt, obj, include)
        if ro is not None:
            row["object"] = ro
        rows.append(row)
    out = {"kind": "Table", "apiVersion": "meta.k8s.io/v1",
           "metadata": {"resourceVersion": str(list_rv)}, "rows": rows}
    if with_columns:
        out["columnDefinitions"] = definitions
    else:
        out["columnDefinitions"] = None
    return out
