"""Server-side printing: meta.k8s.io/v1 `Table`s built from a kind's printer columns.

`kubectl get` asks for `application/json;as=Table;v=v1;g=meta.k8s.io` and prints what comes
back, so these Tables are what users see. A kind's Strategy gives its columns (after Name,
with Age placed where Kubernetes places it) and each row's cells without Name and Age; this
module adds the Name cell (unless the kind prints its name elsewhere, as Events do) and the
Age cell, and attaches each row's object as `includeObject` asks: `Metadata` (default, a
`PartialObjectMetadata` that kubectl needs for `-A` and `kind/name`), `Object` or `None`.
Watch events carry single-row Tables; only the first carries `columnDefinitions`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from functools import cache
from typing import Any

from podns.api.resources import _printing
from podns.api.resources._printing import AGE
from podns.api.resources.base import Column, Obj, ResourceType

NAME_COLUMN = Column(
    "Name",
    format="name",
    description=(
        "Name must be unique within a namespace. Is required when creating resources, although some "
        "resources may allow a client to request the generation of an appropriate name automatically. "
        "Name is primarily intended for creation idempotence and configuration definition. Cannot be "
        "updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names"
    ),
)
INCLUDE_OBJECT = ("None", "Metadata", "Object")

human_duration = _printing.human_duration  # re-exported: kubectl's Age formatting


@cache
def _columns(rt: ResourceType) -> tuple[Column, ...]:
    cols = list(rt.strategy.columns())
    if rt.strategy.name_column:
        cols.insert(0, NAME_COLUMN)
        if not any(c.name == "Age" for c in cols):
            cols.append(AGE)
    return tuple(cols)


def columns_of(rt: ResourceType) -> list[Column]:
    """The full column list of a kind's Table, Name and Age included (computed once per kind:
    columns are static)."""
    return list(_columns(rt))


def column_definition(col: Column) -> Obj:
    return {
        "name": col.name, "type": col.type, "format": col.format,
        "description": col.description, "priority": col.priority,
    }


def row_cells(rt: ResourceType, obj: Obj) -> list[Any]:
    """One row's cells in column order (Name and Age filled in here)."""
    given = iter(rt.strategy.cells(obj))
    md = obj.get("metadata") or {}
    own_name = rt.strategy.name_column
    out: list[Any] = []
    for col in _columns(rt):
        if col is NAME_COLUMN:
            out.append(md.get("name", ""))
        elif own_name and col.name == "Age":
            out.append(_printing.since(md.get("creationTimestamp")))
        else:
            out.append(next(given, ""))
    return out


def partial_metadata(obj: Obj) -> Obj:
    """The `PartialObjectMetadata` of an object (what a Metadata row carries)."""
    return {
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": dict(obj.get("metadata") or {}),
    }


def _row_object(obj: Obj, include: str) -> Obj | None:
    if include == "None":
        return None
    if include == "Object":
        return obj
    return partial_metadata(obj)


def table(
    rt: ResourceType,
    items: Iterable[Obj],
    query: Mapping[str, str] | None = None,
    *,
    list_rv: int | str | None = None,
    with_columns: bool = True,
) -> Obj:
    """A Table of `items`. `query` is the request's query (for `includeObject`); `list_rv`
    becomes `metadata.resourceVersion`; `with_columns=False` leaves the column definitions out
    (null), as Kubernetes does for watch events after the first. Raises ValueError for an
    unknown `includeObject` (a 400 for the caller)."""
    include = (query or {}).get("includeObject") or "Metadata"
    if include not in INCLUDE_OBJECT:
        raise ValueError(
            f'includeObject: Unsupported value: "{include}": supported values: "None", "Metadata", "Object"'
        )
    rows = []
    for obj in items:
        row: Obj = {"cells": row_cells(rt, obj)}
        row_obj = _row_object(obj, include)
        if row_obj is not None:
            row["object"] = row_obj
        rows.append(row)
    metadata: Obj = {}
    if list_rv is not None:
        metadata["resourceVersion"] = str(list_rv)
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": metadata,
        "columnDefinitions": [column_definition(c) for c in columns_of(rt)] if with_columns else None,
        "rows": rows,
    }


def render_table(rt: ResourceType, items: Iterable[Obj], *, include_object: str = "Metadata",
                 with_columns: bool = True, list_rv: int | str | None = None) -> Obj:
    """`table` with `includeObject` given directly (the request machinery's entry point)."""
    return table(rt, items, {"includeObject": include_object}, list_rv=list_rv,
                 with_columns=with_columns)
