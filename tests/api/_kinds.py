"""Helpers for the per-kind strategy tests: run the create/update pipeline the handlers run."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from podns.api.resources.base import FieldError, ResourceType
from podns.api.resources.registry import REGISTRY
from podns.store.memory import MemoryStore

Obj = dict[str, Any]


def rt(kind: str, group: str = "") -> ResourceType:
    found = REGISTRY.by_kind(group, kind)
    assert found is not None, kind
    return found


def create(t: ResourceType, obj: Obj) -> tuple[Obj, list[FieldError]]:
    """prepare_for_create -> default -> validate, on a private copy."""
    out = copy.deepcopy(obj)
    if t.namespaced:
        out.setdefault("metadata", {}).setdefault("namespace", "default")
    t.strategy.prepare_for_create(out)
    t.strategy.default(out)
    return out, t.strategy.validate(out)


def update(t: ResourceType, new: Obj, old: Obj) -> tuple[Obj, list[FieldError]]:
    out = copy.deepcopy(new)
    if t.namespaced:
        out.setdefault("metadata", {}).setdefault("namespace", "default")
    t.strategy.prepare_for_update(out, old)
    t.strategy.default(out)
    return out, t.strategy.validate(out) + t.strategy.validate_update(out, old)


def fields(errs: list[FieldError]) -> list[str]:
    return [e.field for e in errs]


@dataclass
class Ctx:
    """An AdmissionContext over a real in-memory store."""

    store: MemoryStore
    service_cidr: str = "10.96.0.0/24"
    node_port_range: tuple[int, int] = (30000, 32767)
