"""Wire format and value encodings, built byte by byte (independent of the package's encoder)."""

from __future__ import annotations

import pytest

from podns.api.encoding import protobuf
from podns.api.encoding.protobuf.envelope import wrap_envelope
from podns.api.encoding.protobuf.wire import VARINT, WireError, Writer, iter_fields, read_varint, to_signed


def msg(*fields: tuple[int, int | bytes]) -> bytes:
    """A message from (number, value) pairs: ints as varints, bytes as length-delimited."""
    w = Writer()
    for number, value in fields:
        if isinstance(value, bytes):
            w.bytes_field(number, value)
        else:
            w.varint_field(number, value)
    return w.getvalue()


@pytest.mark.parametrize(("raw", "value"), [
    (b"\x00", 0), (b"\x7f", 127), (b"\x80\x01", 128), (b"\xac\x02", 300),
    (b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", 2**64 - 1),
])
def test_varints(raw: bytes, value: int) -> None:
    assert read_varint(raw, 0, len(raw)) == (value, len(raw))
    w = Writer()
    w.varint(value)
    assert w.getvalue() == raw


@pytest.mark.parametrize("raw", [b"\x80", b"\xff" * 11, b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\x7f"],
                         ids=["truncated", "too-long", "over-64-bits"])
def test_bad_varints(raw: bytes) -> None:
    with pytest.raises(WireError):
        read_varint(raw, 0, len(raw))


def test_negative_int32_is_sign_extended_to_ten_bytes() -> None:
    """protobuf writes a negative int32 as a 64-bit varint; the decoder reads it back as int32."""
    w = Writer()
    w.varint_field(1, -1)
    [(number, wtype, value)] = list(iter_fields(w.getvalue()))
    assert (number, wtype) == (1, VARINT) and len(w.getvalue()) == 11
    assert to_signed(value, 32) == -1


def _configmap(*meta: tuple[int, int | bytes], rest: bytes = b"") -> dict:
    return protobuf.decode(wrap_envelope("v1", "ConfigMap", msg((1, msg(*meta))) + rest))


def test_time_and_microtime() -> None:
    """Time is RFC 3339 to the second (nanos dropped, as apimachinery does); MicroTime keeps
    microseconds; an empty Time message is Go's zero Time, written null."""
    meta = _configmap((1, b"c"), (8, msg((1, 1704164645), (2, 999_999_999))))["metadata"]
    assert meta["creationTimestamp"] == "2024-01-02T03:04:05Z"
    assert _configmap((8, b""))["metadata"]["creationTimestamp"] is None
    event = protobuf.decode(wrap_envelope("v1", "Event", msg((10, msg((1, 1704164645), (2, 123456789))))))
    assert event["eventTime"] == "2024-01-02T03:04:05.123456Z"
    assert event["firstTimestamp"] is None and "count" not in event


def test_labels_map_and_merged_message_occurrences() -> None:
    """Map entries arrive as repeated (key=1, value=2) messages; a message field sent twice
    is merged (protobuf semantics), so labels from both halves survive."""
    entry_a = msg((1, b"a"), (2, b"1"))
    entry_b = msg((1, b"b"), (2, b"2"))
    body = wrap_envelope("v1", "ConfigMap", msg((1, msg((11, entry_a)))) + msg((1, msg((11, entry_b)))))
    assert protobuf.decode(body)["metadata"]["labels"] == {"a": "1", "b": "2"}


def test_secret_bytes_are_base64_and_map_value_may_be_missing() -> None:
    body = wrap_envelope("v1", "Secret", msg((2, msg((1, b"k"), (2, b"\x00\xff"))), (2, msg((1, b"e")))))
    assert protobuf.decode(body)["data"] == {"k": "AP8=", "e": ""}


def test_pointer_false_is_kept_and_plain_false_is_omitted() -> None:
    """EndpointConditions.ready is *bool: an explicit false means not ready and must survive;
    ServiceSpec.publishNotReadyAddresses is a plain omitempty bool: false disappears."""
    conditions = msg((1, 0), (2, 1))
    endpoint = msg((1, b"10.0.0.1"), (2, conditions))
    slice_ = protobuf.decode(wrap_envelope("discovery.k8s.io/v1", "EndpointSlice",
                                           msg((2, endpoint), (4, b"IPv4"))))
    assert slice_["endpoints"][0]["conditions"] == {"ready": False, "serving": True}
    assert slice_["ports"] is None  # `json:"ports"` without omitempty: Go writes null
    svc = protobuf.decode(wrap_envelope("v1", "Service", msg((2, msg((13, 0), (3, b""))))))
    assert svc["spec"] == {}


def test_int_or_string_and_quantity() -> None:
    port = msg((1, b"http"), (3, 80), (4, msg((1, 1), (2, 0), (3, b"web"))))
    svc = protobuf.decode(wrap_envelope("v1", "Service", msg((2, msg((1, port))))))
    assert svc["spec"]["ports"] == [{"name": "http", "port": 80, "targetPort": "web"}]
    requests = msg((1, b"storage"), (2, msg((1, b"1Gi"))))
    pvc = protobuf.decode(wrap_envelope("v1", "PersistentVolumeClaim",
                                        msg((2, msg((2, msg((2, requests))))))))
    assert pvc["spec"]["resources"] == {"requests": {"storage": "1Gi"}}


def test_inline_volume_source() -> None:
    """Volume.volumeSource is `json:",inline"`: its fields sit in the volume object itself."""
    empty_dir = msg((2, msg((1, b"128Mi"))))
    volume = msg((1, b"scratch"), (2, msg((2, empty_dir))))
    pod = protobuf.decode(wrap_envelope("v1", "Pod", msg((2, msg((1, volume))))))
    assert pod["spec"]["volumes"] == [{"name": "scratch", "emptyDir": {"sizeLimit": "128Mi"}}]


def test_controller_revision_data_json_or_nested_envelope() -> None:
    """RawExtension holds JSON (or, from a protobuf client, another envelope)."""
    rev = protobuf.decode(wrap_envelope("apps/v1", "ControllerRevision",
                                        msg((2, msg((1, b'{"spec":{"x":1}}'))), (3, 2))))
    assert rev["data"] == {"spec": {"x": 1}} and rev["revision"] == 2
    inner = protobuf.encode({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}})
    rev = protobuf.decode(wrap_envelope("apps/v1", "ControllerRevision", msg((2, msg((1, inner))))))
    assert rev["data"]["kind"] == "ConfigMap" and rev["revision"] == 0
    with pytest.raises(protobuf.DecodeError):
        protobuf.decode(wrap_envelope("apps/v1", "ControllerRevision", msg((2, msg((1, b"{nope"))))))


def test_invalid_utf8_becomes_replacement_characters() -> None:
    """Go's JSON writes invalid UTF-8 as U+FFFD; so does the decoder (no crash, no bytes)."""
    assert _configmap((1, b"a\xffb"))["metadata"]["name"] == "a\ufffdb"
