"""Bad protobuf bodies: every one is a DecodeError with a Kubernetes status code, never a crash.

Covers the envelope (empty, wrong magic, magic only, content encodings), kinds (unknown, not
matching the URL), corrupt and truncated bytes at every length, wrong wire types, unknown
field numbers (skipped as Kubernetes does, or rejected when strict), and a fuzz test.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from podns.api.encoding import protobuf
from podns.api.encoding.protobuf import schema
from podns.api.encoding.protobuf.encode import encode_message
from podns.api.encoding.protobuf.envelope import wrap_envelope
from podns.api.encoding.protobuf.wire import Writer

#: kubectl 1.33's real body for `kubectl create service nodeport np --tcp=80:8080 --node-port=30080`
KUBECTL_SERVICE = (
    b'k8s\x00\n\r\n\x02v1\x12\x07Service\x12g\n\x1d\n\x02np\x12\x00\x1a\x00"\x00*\x002\x008\x00B\x00Z'
    b'\t\n\x03app\x12\x02np\x12B\n\x1d\n\x0780-8080\x12\x03TCP\x18P"\x07\x08\x00\x10\x90?\x1a\x00('
    b'\x80\xeb\x01\x12\t\n\x03app\x12\x02np\x1a\x00"\x08NodePort:\x00B\x00R\x00Z\x00`\x00h\x00\x1a'
    b'\x02\n\x00\x1a\x00"\x00'
)
SERVICE = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
           "spec": {"ports": [{"port": 80, "targetPort": "http"}], "selector": {"app": "web"}}}


def _error(body: bytes, **kw: object) -> protobuf.DecodeError:
    with pytest.raises(protobuf.DecodeError) as info:
        protobuf.decode(body, **kw)  # type: ignore[arg-type]
    assert info.value.message == str(info.value)
    return info.value


def test_real_kubectl_body_decodes() -> None:
    """Given kubectl 1.33's NodePort Service bytes, then the JSON kubectl 1.27 would send."""
    assert protobuf.decode(KUBECTL_SERVICE) == {
        "kind": "Service", "apiVersion": "v1",
        "metadata": {"name": "np", "creationTimestamp": None, "labels": {"app": "np"}},
        "spec": {"ports": [{"name": "80-8080", "protocol": "TCP", "port": 80, "targetPort": 8080,
                            "nodePort": 30080}],
                 "selector": {"app": "np"}, "type": "NodePort"},
        "status": {"loadBalancer": {}}}


@pytest.mark.parametrize(("body", "code", "words"), [
    (b"", 400, "empty data"),
    (b'{"kind":"Service"}', 400, "expected prefix [107 56 115 0]"),
    (b"k8s", 400, "expected prefix"),
    (b"k8s\x00", 400, "empty body"),
    (b"k8s\x00\xff", 400, "truncated varint"),
    (b"k8s\x00\x0a\x50abc", 400, "claims 80 bytes"),
    (b"k8s\x00\x0b", 400, "wire type 3"),
    (b"k8s\x00\x00\x00", 400, "field number 0"),
], ids=["empty", "json-not-protobuf", "short-magic", "magic-only", "bad-varint", "overlong-length",
        "group-wire-type", "field-zero"])
def test_envelope_errors(body: bytes, code: int, words: str) -> None:
    """Given a body that is not a well-formed envelope, then a 400 in kube-apiserver's words."""
    err = _error(body)
    assert err.code == code
    assert words in err.message


@pytest.mark.parametrize(("field", "value"), [(3, b"gzip"), (4, b"application/json")])
def test_unreadable_content_encoding_or_type_is_415(field: int, value: bytes) -> None:
    """Given an envelope declaring a contentEncoding/contentType podns cannot read, then 415."""
    w = Writer()
    w.bytes_field(field, value)
    body = protobuf.encode(SERVICE) + w.getvalue()  # a later field wins, as in protobuf
    err = _error(body)
    assert err.code == 415
    assert value.decode() in err.message


def test_unknown_kind_is_400() -> None:
    """Given an envelope of a kind podns does not serve, then 400 'no kind ... is registered'."""
    err = _error(wrap_envelope("storage.k8s.io/v1", "StorageClass", b""))
    assert err.code == 400
    assert 'no kind "StorageClass" is registered for version "storage.k8s.io/v1"' in err.message


def test_kind_not_matching_the_url_is_400() -> None:
    """Given a Service body posted where a Namespace is expected, then 400 as kube words it."""
    err = _error(protobuf.encode(SERVICE), expect=("v1", "Namespace"))
    assert err.code == 400
    assert err.message.startswith('Service in version "v1" cannot be handled as a Namespace')


def test_envelope_without_type_meta_takes_the_urls_kind() -> None:
    """Given an envelope with empty TypeMeta, then the URL's kind is used (copyKindDefaults);
    without a URL kind it is a 400."""
    raw = encode_message(schema.load(), "k8s.io/api/core/v1.ConfigMap", {"metadata": {"name": "c"}})
    body = wrap_envelope("", "", raw)
    decoded = protobuf.decode(body, expect=("v1", "ConfigMap"))
    assert decoded["metadata"]["name"] == "c"
    assert (decoded["apiVersion"], decoded["kind"]) == ("v1", "ConfigMap")
    assert "missing" in _error(body).message


def test_wrong_wire_type_is_400() -> None:
    """Given metadata.name sent as a varint, then a 400 naming the field."""
    meta = Writer()
    meta.varint_field(1, 7)
    obj = Writer()
    obj.bytes_field(1, meta.getvalue())
    err = _error(wrap_envelope("v1", "ConfigMap", obj.getvalue()))
    assert err.code == 400
    assert "metadata.name" in err.message


def test_unknown_field_numbers_are_skipped_unless_strict() -> None:
    """Given field numbers the tables do not know (a newer client), then they are skipped as
    gogo-protobuf does; with strict, a 400 naming the number and the message."""
    extra = Writer()
    extra.bytes_field(999, b"future")
    extra.varint_field(1000, 1)
    msg = encode_message(schema.load(), "k8s.io/api/core/v1.Service", SERVICE)
    body = wrap_envelope("v1", "Service", msg + extra.getvalue())
    assert protobuf.decode(body) == protobuf.decode(protobuf.encode(SERVICE))
    err = _error(body, strict=True)
    assert err.code == 400
    assert "unknown field number 999 in v1.Service" in err.message


def test_every_truncation_is_a_400() -> None:
    """Given kubectl's body cut at every length, then each is a clean 400 or, where the cut
    falls between fields of the envelope, a valid decode; never another exception."""
    for n in range(len(KUBECTL_SERVICE)):
        try:
            protobuf.decode(KUBECTL_SERVICE[:n])
        except protobuf.DecodeError as exc:
            assert exc.code == 400


def test_every_single_byte_corruption_is_handled() -> None:
    """Given kubectl's body with any one byte replaced, then a decode or a DecodeError."""
    for i in range(4, len(KUBECTL_SERVICE)):
        for b in (0x00, 0x7F, 0x80, 0xFF, 0x0A, 0x12):
            body = KUBECTL_SERVICE[:i] + bytes([b]) + KUBECTL_SERVICE[i + 1:]
            try:
                protobuf.decode(body)
            except protobuf.DecodeError as exc:
                assert exc.code in (400, 415)


def test_out_of_range_time_is_400() -> None:
    """Given a creationTimestamp past year 9999 (Go's JSON refuses it), then 400."""
    ts = Writer()
    ts.varint_field(1, 10**12)
    meta = Writer()
    meta.bytes_field(8, ts.getvalue())
    obj = Writer()
    obj.bytes_field(1, meta.getvalue())
    err = _error(wrap_envelope("v1", "ConfigMap", obj.getvalue()))
    assert "metadata.creationTimestamp" in err.message


@pytest.mark.timeout(60)
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300))
def test_fuzz_arbitrary_bytes(data: bytes) -> None:
    """Any bytes after the magic: a dict or a DecodeError, nothing else."""
    try:
        assert isinstance(protobuf.decode(b"k8s\x00" + data), dict)
    except protobuf.DecodeError as exc:
        assert exc.code in (400, 415)


@pytest.mark.timeout(60)
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(0, len(KUBECTL_SERVICE) - 1), st.integers(0, 255)),
                min_size=1, max_size=6),
       st.sampled_from(["Service", "Pod", "StatefulSet", "EndpointSlice", "Lease", "Secret"]))
def test_fuzz_mutated_real_bodies(edits: list[tuple[int, int]], kind: str) -> None:
    """Real kubectl bytes with random byte edits, re-labelled as other kinds: never a crash."""
    body = bytearray(KUBECTL_SERVICE)
    for pos, val in edits:
        body[pos] = val
    bodies = [bytes(body)]
    start = KUBECTL_SERVICE.index(b"\x12g") + 2  # the Service message inside the envelope
    bodies.append(wrap_envelope("apps/v1" if kind == "StatefulSet" else
                                "discovery.k8s.io/v1" if kind == "EndpointSlice" else
                                "coordination.k8s.io/v1" if kind == "Lease" else "v1",
                                kind, bytes(body[start:])))
    for b in bodies:
        try:
            assert isinstance(protobuf.decode(b), dict)
        except protobuf.DecodeError as exc:
            assert exc.code in (400, 415)
