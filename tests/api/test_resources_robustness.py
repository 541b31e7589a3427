"""No input crashes a kind's hooks: malformed objects get FieldErrors, never exceptions (which
the server would turn into a 500). A seeded fuzzer builds objects that follow each kind's schema
loosely: known field names whose values are sometimes right and sometimes of the wrong type."""

from __future__ import annotations

import copy
import random
from typing import Any

import pytest

from podns.api.encoding import tables
from podns.api.resources import schema
from podns.api.resources.base import ResourceType
from podns.api.resources.registry import REGISTRY, schema_type

ROUNDS = 150  # per kind; a few seconds in all

_LEAVES: list[Any] = [None, True, False, 0, -1, 1, 80, 70000, 1.5, "", "x", "None", "Always", "TCP",
                      "10.96.0.10", "1Gi", "app", "a b", "http", {}, []]


def _junk(rng: random.Random, depth: int = 0) -> Any:
    roll = rng.random()
    if depth > 2 or roll < 0.6:
        return rng.choice(_LEAVES)
    if roll < 0.8:
        return [_junk(rng, depth + 1) for _ in range(rng.randint(0, 2))]
    return {rng.choice(["a", "name", "port", "x"]): _junk(rng, depth + 1) for _ in range(rng.randint(0, 2))}


def _shaped(rng: random.Random, type_name: str, depth: int = 0) -> Any:
    if depth > 4 or rng.random() < 0.08:
        return _junk(rng)
    out: dict[str, Any] = {}
    for name, ft in schema.fields_of(type_name).items():
        if rng.random() < 0.5:
            continue
        if ft.kind == "ref":
            out[name] = _shaped(rng, ft.name, depth + 1)
        elif ft.kind == "list" and ft.name not in schema.SCALARS:
            out[name] = [_shaped(rng, ft.name, depth + 1) for _ in range(rng.randint(0, 2))]
        elif ft.kind == "map":
            out[name] = {"k": rng.choice(_LEAVES)} if rng.random() < 0.8 else _junk(rng)
        else:
            out[name] = _junk(rng)
    return out


def _object(rng: random.Random, rt: ResourceType) -> dict:
    body = _shaped(rng, schema_type(rt))
    obj = body if isinstance(body, dict) else {"spec": body}
    md = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
    md["name"] = "x"
    if rt.namespaced:
        md["namespace"] = "default"
    else:
        md.pop("namespace", None)
    obj.update(apiVersion=rt.api_version, kind=rt.kind, metadata=md)
    return obj


@pytest.mark.parametrize("rt", REGISTRY.all(), ids=lambda t: t.kind)
def test_hooks_never_raise(rt: ResourceType) -> None:
    """For loosely shaped objects of each kind, create/update/status hooks return normally
    (with or without FieldErrors), and everything that could be stored prints."""
    rng = random.Random(f"podns-{rt.kind}")
    s = rt.strategy
    for _ in range(ROUNDS):
        new, old = _object(rng, rt), _object(rng, rt)
        try:
            s.unknown_fields(copy.deepcopy(new))
            created = copy.deepcopy(new)
            s.prepare_for_create(created)
            s.default(created)
            assert isinstance(s.validate(created), list)
            if s.shape_errors(created):
                continue  # refused: never stored, so never an update's `old` nor printed
            updated = copy.deepcopy(old)
            s.prepare_for_update(updated, created)
            s.default(updated)
            s.validate(updated)
            s.validate_update(updated, created)
            s.spec_changed(updated, created)
            status = copy.deepcopy(old)
            s.prepare_for_status_update(status, created)
            s.default(status)
            s.validate(status)
            for path in s.selectable_fields:
                s.field_value(created, path)
            s.deletion_grace_seconds(created, None)
            stored = [o for o in (created, updated, status) if not s.shape_errors(o)]
            tables.table(rt, stored, {}, list_rv=1)
        except Exception as exc:
            raise AssertionError(f"{rt.kind} hooks raised on\nnew={new}\nold={old}") from exc
