"""Table-driven decoding of Kubernetes protobuf messages into JSON-shaped dicts.

The output is what Go's encoding/json would write for the same Go value after client-go's
protobuf unmarshal, so an object that arrives as protobuf is byte-for-byte the object that
would have arrived as JSON from the same client:

- non-pointer scalars are always on the wire (gogo-protobuf writes zero values); they are
  dropped again when the JSON tag says `omitempty` and the value is zero;
- pointer scalars (`*int32 replicas`, `*bool ready`) are kept whenever present, zero included;
- non-pointer structs always appear (`"spec": {}`), pointer structs only when present;
- absent lists and maps are omitted, or `null` when their JSON tag has no `omitempty`;
- the special types: Time -> RFC 3339 seconds (`null` when zero), MicroTime -> microseconds,
  IntOrString -> int or str, Quantity -> its string, bytes -> base64, FieldsV1 and
  RawExtension -> the embedded JSON;
- unknown field numbers are skipped, as gogo-protobuf's generated Unmarshal does (Kubernetes'
  `fieldValidation=Strict` does not apply to protobuf), unless `strict` is asked for.

Errors are `DecodeError` (400) and nothing else.
"""

from __future__ import annotations

import base64
import struct
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from podns.api.encoding.protobuf import schema as sch
from podns.api.encoding.protobuf.errors import DecodeError
from podns.api.encoding.protobuf.wire import (
    FIXED32,
    FIXED64,
    LEN,
    VARINT,
    WireError,
    iter_fields,
    read_varint,
    to_signed,
)

#: Kubernetes' protobuf magic prefix ("k8s\0")
MAGIC = b"k8s\x00"

#: nesting bound for RawExtensions that hold another envelope (ControllerRevision.data)
MAX_ENVELOPE_DEPTH = 4

_WIRE_OF = {"string": LEN, "bytes": LEN, "msg": LEN, "map": LEN, "bool": VARINT, "int32": VARINT,
            "int64": VARINT, "uint32": VARINT, "uint64": VARINT, "double": FIXED64}
_WIRE_NAMES = {VARINT: "varint", FIXED64: "fixed64", LEN: "bytes", FIXED32: "fixed32"}
_ZERO = {"string": "", "bool": False, "int32": 0, "int64": 0, "uint32": 0, "uint64": 0,
         "double": 0.0}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
#: Go's time.MarshalJSON refuses years outside [0, 9999]; Python's datetime starts at year 1
_MIN_SECONDS = -62135596800  # 0001-01-01T00:00:00Z
_MAX_SECONDS = 253402300799  # 9999-12-31T23:59:59Z


class Decoder:
    """Decodes messages of one schema; `strict` turns unknown field numbers into errors."""

    def __init__(self, schema: sch.Schema, *, strict: bool = False, depth: int = 0) -> None:
        self.schema = schema
        self.strict = strict
        self.depth = depth

    # -- messages ---------------------------------------------------------------------------

    def message(self, name: str, buf: bytes, path: str) -> dict[str, Any]:
        """Decode `buf` as message `name` into a JSON-shaped dict; `path` names it in errors."""
        msg = self.schema.messages[name]
        raw: dict[int, list[tuple[int, Any]]] = {}
        try:
            for number, wtype, value in iter_fields(buf):
                if number not in msg.by_number:
                    if self.strict:
                        raise DecodeError(
                            f"strict decoding error: unknown field number {number} in "
                            f"{_short(name)} at {path or '<root>'}")
                    continue
                raw.setdefault(number, []).append((wtype, value))
        except WireError as exc:
            raise DecodeError(f"{_short(name)} at {path or '<root>'}: {exc}") from None
        out: dict[str, Any] = {}
        for f in msg.fields:
            values = raw.get(f.number)
            if values is None and f.omitempty and f.type != "msg":
                continue  # absent and omitempty: nothing to write (the common case, kept fast)
            fpath = f"{path}.{f.json_name}" if path else f.json_name
            self._field(f, values or [], out, fpath)
        return out

    def _field(self, f: sch.Field, values: list[tuple[int, Any]], out: dict[str, Any],
               path: str) -> None:
        if f.type == "map":
            self._map(f, values, out, path)
        elif f.repeated:
            items = self._list(f, values, path)
            if items:
                out[f.json_name] = items
            elif not f.omitempty:
                out[f.json_name] = None
        elif f.type == "msg":
            if values:
                data = b"".join(self._bytes(f, w, v, path) for w, v in values)  # repeated = merge
                value = self._value_msg(f.ref, data, path)
            elif f.pointer:
                if not f.omitempty:
                    out[f.json_name] = None
                return
            else:
                value = self._value_msg(f.ref, None, path)
            if f.inline and isinstance(value, dict):
                out.update(value)
            else:
                out[f.json_name] = value
        elif f.type == "bytes":
            if values:
                data = self._bytes(f, *values[-1], path)
                if data or not f.omitempty:
                    out[f.json_name] = base64.b64encode(data).decode()
            elif not f.omitempty:
                out[f.json_name] = None
        else:
            if values:
                value = self._scalar(f, *values[-1], path)
                if f.pointer or not f.omitempty or value != _ZERO[f.type]:
                    out[f.json_name] = value
            elif f.pointer:
                if not f.omitempty:
                    out[f.json_name] = None
            elif not f.omitempty:
                out[f.json_name] = _ZERO[f.type]

    def _list(self, f: sch.Field, values: list[tuple[int, Any]], path: str) -> list[Any]:
        items: list[Any] = []
        for wtype, value in values:
            p = f"{path}[{len(items)}]"
            if f.type == "msg":
                items.append(self._value_msg(f.ref, self._bytes(f, wtype, value, p), p))
            elif f.type == "string":
                items.append(_text(self._bytes(f, wtype, value, p)))
            elif f.type == "bytes":
                items.append(base64.b64encode(self._bytes(f, wtype, value, p)).decode())
            elif wtype == LEN and _WIRE_OF[f.type] != LEN:  # packed repeated scalars
                items.extend(self._packed(f, value, p))
            else:
                items.append(self._scalar(f, wtype, value, p))
        return items

    def _map(self, f: sch.Field, values: list[tuple[int, Any]], out: dict[str, Any],
             path: str) -> None:
        key_type, val_type, val_ref = f.ref
        result: dict[str, Any] = {}
        for wtype, value in values:
            entry = self._bytes(f, wtype, value, path)
            key: Any = _ZERO.get(key_type, "")
            val: tuple[int, int | bytes] | None = None
            try:
                for number, ew, ev in iter_fields(entry):
                    if number == 1:
                        if ew != LEN or not isinstance(ev, bytes):  # LEN fields are bytes
                            raise DecodeError(f"{path}: map key of wire type {_WIRE_NAMES[ew]}")
                        key = _text(ev)
                    elif number == 2:
                        val = (ew, ev)
            except WireError as exc:
                raise DecodeError(f"{path}: {exc}") from None
            p = f"{path}[{key}]"
            if val_type == "msg":
                data = self._bytes(f, val[0], val[1], p) if val else None
                result[key] = self._value_msg(val_ref, data, p)
            elif val_type in ("string", "bytes"):
                data = self._bytes(f, val[0], val[1], p) if val else b""
                result[key] = _text(data) if val_type == "string" else base64.b64encode(data).decode()
            else:
                result[key] = self._scalar(sch.Field(2, "", val_type, None, False, False, False, False),
                                           val[0], val[1], p) if val else _ZERO[val_type]
        if result:
            out[f.json_name] = result
        elif not f.omitempty:
            out[f.json_name] = None

    # -- values -----------------------------------------------------------------------------

    def _bytes(self, f: sch.Field, wtype: int, value: object, path: str) -> bytes:
        if wtype != LEN or not isinstance(value, bytes):  # a LEN field's value is bytes
            raise DecodeError(f"{path}: wrong wire type {_WIRE_NAMES[wtype]} for field {f.number}")
        return value

    def _scalar(self, f: sch.Field, wtype: int, value: Any, path: str) -> Any:
        t = f.type
        if t == "string":
            return _text(self._bytes(f, wtype, value, path))
        want = _WIRE_OF[t]
        if wtype != want:
            raise DecodeError(f"{path}: wrong wire type {_WIRE_NAMES[wtype]} for field {f.number}")
        if t == "bool":
            return value != 0
        if t == "int32":
            return to_signed(value, 32)
        if t == "int64":
            return to_signed(value, 64)
        if t == "uint32":
            return value & 0xFFFFFFFF
        if t == "double":
            return struct.unpack("<d", value.to_bytes(8, "little"))[0]
        return value

    def _packed(self, f: sch.Field, buf: bytes, path: str) -> list[Any]:
        items = []
        pos = 0
        try:
            while pos < len(buf):
                if f.type == "double":
                    if len(buf) - pos < 8:
                        raise WireError("truncated packed fixed64")
                    items.append(struct.unpack_from("<d", buf, pos)[0])
                    pos += 8
                    continue
                v, pos = read_varint(buf, pos, len(buf))
                items.append(self._scalar(f, VARINT, v, path))
        except WireError as exc:
            raise DecodeError(f"{path}: {exc}") from None
        return items

    def _value_msg(self, ref: str, data: bytes | None, path: str) -> Any:
        """A message-typed value; `data` None means absent (the Go zero value)."""
        special = _SPECIAL.get(ref)
        if special is not None:
            return special(self, data or b"", path)
        return self.message(ref, data or b"", path)

    # -- the types with their own JSON form ---------------------------------------------------

    def _fields(self, data: bytes, path: str) -> dict[int, tuple[int, Any]]:
        try:
            return {n: (w, v) for n, w, v in iter_fields(data)}
        except WireError as exc:
            raise DecodeError(f"{path}: {exc}") from None

    def _int(self, fields: dict[int, tuple[int, Any]], n: int, bits: int, path: str) -> int:
        if n not in fields:
            return 0
        w, v = fields[n]
        if w != VARINT:
            raise DecodeError(f"{path}: wrong wire type {_WIRE_NAMES[w]} for field {n}")
        return to_signed(v, bits)

    def _time(self, data: bytes, path: str, *, micro: bool) -> str | None:
        if not data:
            return None  # the zero Time: Go writes null
        fields = self._fields(data, path)
        seconds = self._int(fields, 1, 64, path)
        nanos = self._int(fields, 2, 32, path)
        if not _MIN_SECONDS <= seconds <= _MAX_SECONDS or not 0 <= nanos <= 999_999_999:
            raise DecodeError(f"{path}: timestamp out of range ({seconds}s, {nanos}ns)")
        # fromtimestamp() can't reach year 0001 on every platform; a timedelta can
        when = _EPOCH + timedelta(seconds=seconds)
        if micro:
            return when.strftime("%Y-%m-%dT%H:%M:%S") + f".{nanos // 1000:06d}Z"
        return when.strftime("%Y-%m-%dT%H:%M:%SZ")

    def _int_or_string(self, data: bytes, path: str) -> int | str:
        fields = self._fields(data, path)
        if self._int(fields, 1, 64, path) == 1:
            w, v = fields.get(3, (LEN, b""))
            if w != LEN:
                raise DecodeError(f"{path}: wrong wire type {_WIRE_NAMES[w]} for strVal")
            return _text(v)
        return self._int(fields, 2, 32, path)

    def _quantity(self, data: bytes, path: str) -> str:
        w, v = self._fields(data, path).get(1, (LEN, b""))
        if w != LEN:
            raise DecodeError(f"{path}: wrong wire type {_WIRE_NAMES[w]} for Quantity")
        return _text(v) or "0"

    def _duration(self, data: bytes, path: str) -> str:
        return _go_duration(self._int(self._fields(data, path), 1, 64, path))

    def _raw_json(self, data: bytes, path: str) -> Any:
        """FieldsV1 and RawExtension: field 1 holds JSON (or, for RawExtension, an envelope)."""
        w, raw = self._fields(data, path).get(1, (LEN, b""))
        if w != LEN:
            raise DecodeError(f"{path}: wrong wire type {_WIRE_NAMES[w]} for raw")
        if not raw:
            return None
        if raw.startswith(MAGIC):
            if self.depth >= MAX_ENVELOPE_DEPTH:
                raise DecodeError(f"{path}: protobuf envelopes nested too deep")
            from podns.api.encoding.protobuf.envelope import decode_envelope

            return decode_envelope(raw, strict=self.strict, depth=self.depth + 1)
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise DecodeError(f"{path}: embedded object is neither JSON nor protobuf") from None


_SPECIAL = {
    sch.TIME: lambda d, data, path: d._time(data, path, micro=False),
    sch.MICRO_TIME: lambda d, data, path: d._time(data, path, micro=True),
    sch.INT_OR_STRING: Decoder._int_or_string,
    sch.QUANTITY: Decoder._quantity,
    sch.DURATION: Decoder._duration,
    sch.FIELDS_V1: Decoder._raw_json,
    sch.RAW_EXTENSION: Decoder._raw_json,
}


def _text(b: bytes) -> str:
    # Go's encoding/json writes invalid UTF-8 as U+FFFD, so the JSON path would do the same
    return b.decode("utf-8", errors="replace")


def _short(name: str) -> str:
    return name.rsplit("/", 1)[-1]


def _go_duration(ns: int) -> str:
    """Go's time.Duration.String() ("1h2m3.5s", "0s", "150ms")."""
    if ns == 0:
        return "0s"
    sign = "-" if ns < 0 else ""
    ns = abs(ns)
    if ns < 1_000_000_000:
        for unit, size in (("ms", 1_000_000), ("µs", 1_000), ("ns", 1)):
            if ns >= size:
                return sign + _trim(ns / size) + unit
    h, rest = divmod(ns, 3600 * 10**9)
    m, rest = divmod(rest, 60 * 10**9)
    s = _trim(rest / 10**9) + "s"
    if h:
        return f"{sign}{h}h{m}m{s}"
    if m:
        return f"{sign}{m}m{s}"
    return sign + s


def _trim(x: float) -> str:
    return f"{x:.9f}".rstrip("0").rstrip(".")
