"""Property: for random objects of every served kind, generated from the schema tables,
decoding is a fixed point and the encoding survives a decode unchanged.

This checks the encoder and decoder against each other across all ~200 messages (the real
kubectl bytes in test_protobuf_kubectl.py anchor both to the real wire format).
"""

from __future__ import annotations

import base64
import functools
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from podns.api.encoding import protobuf
from podns.api.encoding.protobuf import schema as sch

SCHEMA = sch.load()
MAX_DEPTH = 4

INT_RANGES = {"int32": (-(2**31), 2**31 - 1), "int64": (-(2**63), 2**63 - 1),
              "uint32": (0, 2**32 - 1), "uint64": (0, 2**64 - 1)}
TIMES = st.datetimes(min_value=datetime(1970, 1, 1), max_value=datetime(9999, 1, 1),
                     timezones=st.just(UTC))
TEXT = st.text(max_size=8)


def scalar(typ: str) -> st.SearchStrategy[Any]:
    if typ == "string":
        return TEXT
    if typ == "bool":
        return st.booleans()
    if typ == "double":
        return st.floats(allow_nan=False, allow_infinity=False)
    if typ == "bytes":
        return st.binary(max_size=8).map(lambda b: base64.b64encode(b).decode())
    lo, hi = INT_RANGES[typ]
    return st.integers(lo, hi)


def special(ref: str) -> st.SearchStrategy[Any] | None:
    if ref == sch.TIME:
        return TIMES.map(lambda t: t.strftime("%Y-%m-%dT%H:%M:%SZ"))
    if ref == sch.MICRO_TIME:
        return TIMES.map(lambda t: t.strftime("%Y-%m-%dT%H:%M:%S.%fZ"))
    if ref == sch.INT_OR_STRING:
        return st.one_of(st.integers(-(2**31), 2**31 - 1), TEXT)
    if ref == sch.QUANTITY:
        return st.sampled_from(["1", "100m", "1Gi", "0.5", "2e3"])
    if ref in (sch.FIELDS_V1, sch.RAW_EXTENSION):
        return st.dictionaries(TEXT, st.integers(-5, 5), max_size=2)
    return None


def value(f: sch.Field | None, typ: str, ref: Any, depth: int) -> st.SearchStrategy[Any]:
    if typ == "msg":
        spec = special(ref)
        return spec if spec is not None else message(ref, depth + 1)
    return scalar(typ)


@functools.cache
def message(name: str, depth: int = 0) -> st.SearchStrategy[dict[str, Any]]:
    """Objects of one message; past MAX_DEPTH only empty ones (the Go zero value)."""
    if depth > MAX_DEPTH:
        return st.just({})
    parts: list[st.SearchStrategy[dict[str, Any]]] = []
    for f in SCHEMA.messages[name].fields:
        if f.inline:
            parts.append(message(f.ref, depth))
            continue
        if f.type == "map":
            key_t, val_t, val_ref = f.ref
            v: st.SearchStrategy[Any] = st.dictionaries(scalar(key_t), value(None, val_t, val_ref, depth),
                                                        max_size=2)
        elif f.repeated:
            v = st.lists(value(f, f.type, f.ref, depth), max_size=2)
        else:
            v = value(f, f.type, f.ref, depth)
        parts.append(st.one_of(st.just({}), v.map(lambda x, k=f.json_name: {k: x})))
    return st.tuples(*parts).map(lambda ds: {k: v for d in ds for k, v in d.items()})


KINDS = sorted({k for k in SCHEMA.kinds if not k.endswith(" Status")})


@st.composite
def objects(draw: st.DrawFn) -> dict[str, Any]:
    key = draw(st.sampled_from(KINDS))
    api_version, kind = key.split(" ", 1)
    body = draw(message(SCHEMA.kinds[key]))
    return {"apiVersion": api_version, "kind": kind, **body}


@pytest.mark.timeout(90)
@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(objects())
def test_decode_is_a_fixed_point_and_keeps_the_encoding(obj: dict[str, Any]) -> None:
    """Given any object of a served kind, then decode(encode(obj)) re-encodes to the same
    bytes (nothing lost or invented on the wire) and decoding it again changes nothing."""
    body = protobuf.encode(obj)
    decoded = protobuf.decode(body)
    assert protobuf.encode(decoded) == body
    assert protobuf.decode(protobuf.encode(decoded)) == decoded
