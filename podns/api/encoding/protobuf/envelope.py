"""The Kubernetes protobuf envelope: `k8s\\0` magic + runtime.Unknown around the object bytes.

    runtime.Unknown { TypeMeta typeMeta = 1 {apiVersion = 1, kind = 2}; bytes raw = 2;
                      string contentEncoding = 3; string contentType = 4 }

Error wording follows kube-apiserver's protobuf serializer ("empty data", "provided data does
not appear to be a protobuf message, expected prefix [107 56 115 0]", "empty body") and its
create handler ("Service in version \\"v1\\" cannot be handled as a Namespace: ...").
"""

from __future__ import annotations

from typing import Any

from podns.api.encoding.protobuf import schema as sch
from podns.api.encoding.protobuf.decode import MAGIC, Decoder
from podns.api.encoding.protobuf.errors import DecodeError
from podns.api.encoding.protobuf.wire import LEN, WireError, Writer, iter_fields

#: the only content type an envelope may declare for its raw bytes (empty means the same)
PROTOBUF = "application/vnd.kubernetes.protobuf"


def split_envelope(body: bytes) -> tuple[str, str, bytes]:
    """Check the magic and unwrap runtime.Unknown: (apiVersion, kind, raw object bytes)."""
    if not body:
        raise DecodeError("empty data")
    if not body.startswith(MAGIC):
        raise DecodeError(
            "provided data does not appear to be a protobuf message, expected prefix [107 56 115 0]")
    if len(body) == len(MAGIC):
        raise DecodeError("empty body")
    api_version = kind = encoding = content_type = ""
    raw = b""
    try:
        for number, wtype, value in iter_fields(body, len(MAGIC)):
            if wtype != LEN or not isinstance(value, bytes):  # LEN fields are bytes
                continue  # no varint fields in Unknown: skipped like any unknown field
            if number == 1:
                for n, w, v in iter_fields(value):
                    if w != LEN or not isinstance(v, bytes):
                        continue
                    if n == 1:
                        api_version = _ascii(v)
                    elif n == 2:
                        kind = _ascii(v)
            elif number == 2:
                raw = value
            elif number == 3:
                encoding = _ascii(value)
            elif number == 4:
                content_type = _ascii(value)
    except WireError as exc:
        raise DecodeError(f"runtime.Unknown envelope: {exc}") from None
    if encoding:
        raise DecodeError(f"unsupported content encoding {encoding!r} in the protobuf envelope", 415)
    if content_type and content_type.split(";", 1)[0].strip() != PROTOBUF:
        raise DecodeError(f"unsupported content type {content_type!r} in the protobuf envelope", 415)
    return api_version, kind, raw


def decode_envelope(body: bytes, *, expect: tuple[str, str] | None = None, strict: bool = False,
                    depth: int = 0) -> dict[str, Any]:
    """Decode a whole protobuf body into the JSON-shaped object (see `podns.api.encoding.protobuf`)."""
    api_version, kind, raw = split_envelope(body)
    if expect is not None:
        # kube's copyKindDefaults: an envelope without TypeMeta takes the URL's
        api_version = api_version or expect[0]
        kind = kind or expect[1]
    if not kind:
        raise DecodeError("Object 'Kind' is missing in the protobuf envelope")
    schema = sch.load()
    msg = schema.message_for(api_version, kind)
    version = api_version.rsplit("/", 1)[-1]
    if expect is not None and (api_version, kind) != tuple(expect):
        raise DecodeError(
            f'{kind} in version "{version}" cannot be handled as a {expect[1]}: '
            f"the object provided is unrecognized (must be of type {expect[1]})")
    if msg is None:
        raise DecodeError(
            f'no kind "{kind}" is registered for version "{api_version}" in scheme "podns"')
    obj = Decoder(schema, strict=strict, depth=depth).message(msg.name, raw, "")
    return {"kind": kind, "apiVersion": api_version, **obj}


def wrap_envelope(api_version: str, kind: str, raw: bytes) -> bytes:
    """The inverse of `split_envelope`: magic + runtime.Unknown around `raw`."""
    type_meta = Writer()
    type_meta.bytes_field(1, api_version.encode())
    type_meta.bytes_field(2, kind.encode())
    w = Writer()
    w.bytes_field(1, type_meta.getvalue())
    w.bytes_field(2, raw)
    w.bytes_field(3, b"")
    w.bytes_field(4, b"")
    return MAGIC + w.getvalue()


def _ascii(b: bytes) -> str:
    return b.decode("utf-8", errors="replace")
