"""Kubernetes protobuf request bodies (`application/vnd.kubernetes.protobuf`).

kubectl 1.32+ sends its imperative `create` bodies (namespace, service, configmap, secret,
deployment, ...) in Kubernetes' protobuf encoding and does not fall back to JSON. This package
turns such a body into exactly the dict the same client would have sent as JSON, so the rest
of the API server sees only JSON-shaped objects:

    obj = protobuf.decode(body)          # {"apiVersion": "v1", "kind": "Service", ...}
    body = protobuf.encode(obj)          # the inverse (tests; optional protobuf answers)

Only `DecodeError` (with `.code` 400 or 415 and `.message`) ever escapes `decode`.
The message tables come from kubectl's own compiled types; see docs/protobuf.md.
"""

from __future__ import annotations

from typing import Any

from podns.api.encoding.protobuf.encode import EncodeError, encode
from podns.api.encoding.protobuf.envelope import PROTOBUF, decode_envelope
from podns.api.encoding.protobuf.errors import DecodeError

__all__ = ["PROTOBUF", "DecodeError", "EncodeError", "decode", "encode", "supported_kinds"]


def decode(body: bytes, *, expect: tuple[str, str] | None = None, strict: bool = False) -> dict[str, Any]:
    """Decode a protobuf request body into a JSON-shaped object.

    `expect` is the (apiVersion, kind) the URL serves: it fills an envelope without TypeMeta
    and turns a different kind into a 400, as kube-apiserver does. `strict` rejects unknown
    field numbers (Kubernetes itself skips them; see docs/protobuf.md). Raises `DecodeError`."""
    try:
        return decode_envelope(bytes(body), expect=expect, strict=strict)
    except DecodeError:
        raise
    except (ValueError, KeyError, IndexError, OverflowError, RecursionError) as exc:
        # defence in depth: the decoder checks every bound, but a gap must be a 400, not a 500
        raise DecodeError(f"malformed protobuf body: {exc}") from None


def supported_kinds() -> list[tuple[str, str]]:
    """The (apiVersion, kind) pairs this package can decode."""
    from podns.api.encoding.protobuf import schema

    pairs = [k.split(" ", 1) for k in schema.load().kinds]
    return [(api_version, kind) for api_version, kind in pairs]
