"""Encoding JSON-shaped objects into Kubernetes protobuf, the way client-go's gogo code does.

The inverse of `decode`: non-pointer scalars and structs are always written (zero values
included), pointer fields only when set, fields in increasing number order, map entries in
sorted key order. `decode(encode(obj))` gives `obj` back in the form a Go client would send.

The API server answers JSON (every client that asks for protobuf also accepts JSON, and a JSON
answer cannot lose a field the tables might miss); this encoder serves the tests, which build
protobuf bodies for kinds kubectl never sends that way (StatefulSet, EndpointSlice, Lease, ...).
"""

from __future__ import annotations

import base64
import re
import struct
from datetime import UTC, datetime
from typing import Any

import orjson

from podns.api.encoding.protobuf import schema as sch
from podns.api.encoding.protobuf.wire import Writer


class EncodeError(ValueError):
    """The object does not fit the message tables (unknown kind, value of the wrong type)."""


_TIME_RE = re.compile(r"^(\d{4})-(\d\d)-(\d\d)[Tt](\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?([Zz]|[+-]\d\d:\d\d)$")


def encode(obj: dict[str, Any]) -> bytes:
    """A whole body: `k8s\\0` + runtime.Unknown around the object's message bytes."""
    from podns.api.encoding.protobuf.envelope import wrap_envelope

    api_version, kind = obj.get("apiVersion", ""), obj.get("kind", "")
    schema = sch.load()
    msg = schema.message_for(api_version, kind)
    if msg is None:
        raise EncodeError(f"no protobuf message for {api_version} {kind}")
    return wrap_envelope(api_version, kind, encode_message(schema, msg.name, obj))


def encode_message(schema: sch.Schema, name: str, obj: dict[str, Any]) -> bytes:
    """The bytes of message `name` for the JSON-shaped dict `obj` (no envelope)."""
    if not isinstance(obj, dict):
        raise EncodeError(f"{name}: expected an object, got {type(obj).__name__}")
    w = Writer()
    for f in sorted(schema.messages[name].fields, key=lambda f: f.number):
        if f.inline:
            w.bytes_field(f.number, encode_message(schema, f.ref, obj))
            continue
        present = obj.get(f.json_name) is not None
        value = obj.get(f.json_name)
        if f.type == "map":
            entries = value or {}
            for key in sorted(entries):
                entry = Writer()
                entry.bytes_field(1, str(key).encode())
                _write(schema, entry, 2, f.ref[1], f.ref[2], entries[key])
                w.bytes_field(f.number, entry.getvalue())
        elif f.repeated:
            if present and not isinstance(value, list):
                raise EncodeError(f"{f.json_name}: expected a list")
            for item in value or ():
                _write(schema, w, f.number, f.type, f.ref, item)
        elif present or (not f.pointer and f.type != "bytes"):
            _write(schema, w, f.number, f.type, f.ref, value)
    return w.getvalue()


def _write(schema: sch.Schema, w: Writer, number: int, typ: str, ref: Any, value: Any) -> None:
    if typ == "msg":
        w.bytes_field(number, _message_value(schema, ref, value))
    elif typ == "string":
        w.bytes_field(number, _check(value, str, "").encode())
    elif typ == "bytes":
        w.bytes_field(number, base64.b64decode(_check(value, str, "")))
    elif typ == "bool":
        w.varint_field(number, int(_check(value, bool, False)))
    elif typ == "double":
        w.fixed64_field(number, int.from_bytes(struct.pack("<d", float(value or 0)), "little"))
    else:
        if isinstance(value, bool) or not isinstance(value, int | None):
            raise EncodeError(f"field {number}: expected an integer, got {value!r}")
        w.varint_field(number, value or 0)


def _message_value(schema: sch.Schema, ref: str, value: Any) -> bytes:
    w = Writer()
    if ref in (sch.TIME, sch.MICRO_TIME):
        if value is None:
            return b""  # the zero Time marshals to nothing
        seconds, nanos = _parse_time(value)
        w.varint_field(1, seconds)
        w.varint_field(2, nanos if ref == sch.MICRO_TIME else 0)
    elif ref == sch.INT_OR_STRING:
        if isinstance(value, str):
            w.varint_field(1, 1)
            w.varint_field(2, 0)
            w.bytes_field(3, value.encode())
        else:
            w.varint_field(1, 0)
            w.varint_field(2, _check(value, int, 0))
            w.bytes_field(3, b"")
    elif ref == sch.QUANTITY:
        w.bytes_field(1, str(value if value is not None else "0").encode())
    elif ref in (sch.FIELDS_V1, sch.RAW_EXTENSION):
        if value is not None:
            w.bytes_field(1, orjson.dumps(value))
    elif ref == sch.DURATION:
        raise EncodeError("encoding metav1.Duration is not supported")
    else:
        return encode_message(schema, ref, value if value is not None else {})
    return w.getvalue()


def _parse_time(value: Any) -> tuple[int, int]:
    m = _TIME_RE.match(_check(value, str, ""))
    if not m:
        raise EncodeError(f"not an RFC 3339 time: {value!r}")
    y, mo, d, h, mi, s, frac, tz = m.groups()
    when = datetime(int(y), int(mo), int(d), int(h), int(mi), int(s), tzinfo=UTC)
    seconds = int((when - datetime(1970, 1, 1, tzinfo=UTC)).total_seconds())
    if tz not in ("Z", "z"):
        sign = 1 if tz[0] == "+" else -1
        seconds -= sign * (int(tz[1:3]) * 3600 + int(tz[4:6]) * 60)
    return seconds, int((frac or "0").ljust(9, "0"))


def _check(value: Any, typ: type, default: Any) -> Any:
    if value is None:
        return default
    if not isinstance(value, typ) or (typ is int and isinstance(value, bool)):
        raise EncodeError(f"expected {typ.__name__}, got {value!r}")
    return value
