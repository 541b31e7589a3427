"""Bad input and authorization: every failure is a Kubernetes Status with the right code."""

from __future__ import annotations

from typing import Any

import pytest

from podns.api.encoding import codec
from podns.api.handlers import rest

from .conftest import Api

PODS = "/api/v1/namespaces/default/pods"
SVCS = "/api/v1/namespaces/default/services"


def assert_status(r: Any, code: int, reason: str) -> None:
    assert r.status == code, r.body
    assert r.body["kind"] == "Status" and r.body["apiVersion"] == "v1"
    assert r.body["status"] == "Failure"
    assert r.body["code"] == code and r.body["reason"] == reason, r.body


@pytest.mark.parametrize(("method", "path", "raw", "ctype", "code", "reason"), [
    ("POST", PODS, b"{not json", "application/json", 400, "BadRequest"),
    ("POST", PODS, b"", "application/json", 400, "BadRequest"),
    ("POST", PODS, b"[1, 2]", "application/json", 400, "BadRequest"),
    ("POST", PODS, b"a: [b", "application/yaml", 400, "BadRequest"),
    ("POST", PODS, b"<xml/>", "application/xml", 415, "UnsupportedMediaType"),
    ("POST", PODS, b'{"apiVersion":"apps/v1","kind":"Pod","metadata":{"name":"a"}}',
     "application/json", 400, "BadRequest"),
    ("POST", PODS, b'{"apiVersion":"v1","kind":"Service","metadata":{"name":"a"}}',
     "application/json", 400, "BadRequest"),
    ("POST", PODS, b'{"metadata":{"name":"a","namespace":"other"}}', "application/json", 400,
     "BadRequest"),
    ("POST", PODS, b'{"metadata":{}}', "application/json", 422, "Invalid"),
    ("POST", PODS, b'{"metadata":{"name":"Bad_Name"}}', "application/json", 422, "Invalid"),
    ("GET", "/api/v1/namespaces/default/widgets", None, None, 404, "NotFound"),
    ("GET", "/apis/nope/v1/things", None, None, 404, "NotFound"),
    ("GET", f"{PODS}/missing", None, None, 404, "NotFound"),
    ("PATCH", f"{PODS}/missing", b"{}", "application/merge-patch+json", 404, "NotFound"),
    ("PATCH", f"{PODS}/x", b"{}", "text/html", 415, "UnsupportedMediaType"),
    ("PUT", PODS, b"{}", "application/json", 405, "MethodNotAllowed"),
    ("GET", f"{PODS}?limit=abc", None, None, 400, "BadRequest"),
    ("POST", f"{PODS}?fieldValidation=Loose", b'{"metadata":{"name":"a"}}', "application/json",
     400, "BadRequest"),
    ("POST", f"{PODS}?dryRun=Some", b'{"metadata":{"name":"a"}}', "application/json", 400,
     "BadRequest"),
], ids=["malformed-json", "empty-body", "json-array", "malformed-yaml", "unknown-media-type",
        "wrong-apiVersion", "wrong-kind", "namespace-mismatch", "no-name", "invalid-name",
        "unknown-resource", "unknown-group", "missing-object", "patch-missing",
        "unknown-patch-type", "put-collection", "bad-limit", "bad-fieldValidation",
        "bad-dryRun"])
async def test_bad_requests_get_the_right_status(api: Api, method: str, path: str,
                                                 raw: bytes | None, ctype: str | None,
                                                 code: int, reason: str) -> None:
    """Each bad request gets its Kubernetes Status; none is a 500."""
    r = await api.call(method, path, raw=raw, content_type=ctype)
    assert_status(r, code, reason)


async def test_invalid_lists_causes_with_field_paths(api: Api) -> None:
    """422 Invalid carries details.causes[].field for each invalid field."""
    r = await api.post(SVCS, {"metadata": {"name": "s"}, "spec": {"ports": [
        {"port": 70000}, {"port": 0}]}})
    assert_status(r, 422, "Invalid")
    assert [c["field"] for c in r.body["details"]["causes"]] == ["spec.ports[0].port",
                                                                 "spec.ports[1].port"]
    assert r.body["message"].startswith('Service "s" is invalid: [spec.ports[0].port: ')


async def test_immutable_field_update_is_invalid(api: Api) -> None:
    """Changing clusterIP of a service is a 422 from the strategy's validate_update."""
    await api.post(SVCS, {"metadata": {"name": "s"}, "spec": {"clusterIP": "10.96.0.5"}})
    r = await api.patch(f"{SVCS}/s", {"spec": {"clusterIP": "10.96.0.6"}})
    assert_status(r, 422, "Invalid")


async def test_oversized_body_is_413(api: Api) -> None:
    """A body over 3 MiB is refused with 413 RequestEntityTooLarge."""
    raw = b'{"metadata":{"name":"big"},"data":{"x":"' + b"a" * (codec.MAX_BODY_BYTES + 10) + b'"}}'
    r = await api.call("POST", "/api/v1/namespaces/default/configmaps", raw=raw)
    assert_status(r, 413, "RequestEntityTooLarge")


async def test_oversized_object_is_413(api: Api) -> None:
    """An object over 1.5 MiB (but a body under 3 MiB) is refused and not stored."""
    body = {"metadata": {"name": "big"}, "data": {"x": "a" * (rest.MAX_OBJECT_BYTES + 10)}}
    r = await api.post("/api/v1/namespaces/default/configmaps", body)
    assert_status(r, 413, "RequestEntityTooLarge")
    assert (await api.get("/api/v1/namespaces/default/configmaps/big")).status == 404


async def test_field_validation_strict_warn_ignore(api: Api) -> None:
    """Unknown fields: Strict -> 400, Warn (default) -> Warning header, Ignore -> silence."""
    body = {"metadata": {"name": "a"}, "spec": {}, "bogus": 1}
    r = await api.post(f"{PODS}?fieldValidation=Strict", body)
    assert_status(r, 400, "BadRequest")
    assert r.body["message"] == 'strict decoding error: unknown field "bogus"'
    r = await api.post(PODS, body)
    assert r.status == 201 and 'unknown field \\"bogus\\"' in r.headers["Warning"]
    body["metadata"]["name"] = "b"
    r = await api.post(f"{PODS}?fieldValidation=Ignore", body)
    assert r.status == 201 and "Warning" not in r.headers


async def test_warning_for_a_field_name_with_control_characters_is_escaped(api: Api) -> None:
    """Given an unknown field whose name holds CR, LF, a backslash and non-ASCII, the create
    answers 201 with one Warning header quoting the name with escapes (it used to break the
    header and drop the connection)."""
    body = {"metadata": {"name": "esc"}, "spec": {}, "x\r\ny: 1\\é": 1}
    r = await api.post(PODS, body)
    assert r.status == 201, r.body
    assert r.headers.getall("Warning") == [
        '299 - "unknown field \\"x\\r\\ny: 1\\\\\\u00e9\\\""']


@pytest.mark.parametrize("token", [None, "wrong"], ids=["no-token", "wrong-token"])
async def test_requests_without_valid_token_are_401(api: Api, token: str | None) -> None:
    """Resources and discovery need a token; the answer is a 401 Status."""
    for path in (PODS, "/api", "/apis"):
        r = await api.get(path, token=token)
        assert_status(r, 401, "Unauthorized")


async def test_health_and_version_are_public(api: Api) -> None:
    """/healthz, /livez, /readyz and /version answer without a token."""
    for path in ("/healthz", "/livez", "/readyz"):
        r = await api.get(path, token=None)
        assert r.status == 200 and r.body == "ok"
    r = await api.get("/version", token=None)
    assert r.status == 200 and r.body["major"] == "1"


async def test_readonly_token_reads_but_cannot_write(api: Api) -> None:
    """The read-only token may get/list/watch; writes are 403 Forbidden worded like RBAC."""
    assert (await api.get(PODS, token="readonly")).status == 200
    r = await api.post(PODS, {"metadata": {"name": "a"}}, token="readonly")
    assert_status(r, 403, "Forbidden")
    assert r.body["message"] == ('pods is forbidden: User "readonly" cannot create resource '
                                 '"pods" in API group "" in the namespace "default"')
    r = await api.delete(f"{PODS}/a", token="readonly")
    assert_status(r, 403, "Forbidden")
