"""podns.objects.apistatus: the Status builders write kube-apiserver's keys in its order."""

from __future__ import annotations

import orjson

from podns.objects import apistatus


def test_failure_is_the_wire_status_in_kube_apiservers_key_order() -> None:
    """Given a 404 with details, the JSON is what kube-apiserver sends, byte for byte."""
    body = apistatus.failure(404, "NotFound", 'pods "x" not found', {"name": "x", "kind": "pods"})
    assert orjson.dumps(body) == (
        b'{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",'
        b'"message":"pods \\"x\\" not found","reason":"NotFound","code":404,'
        b'"details":{"name":"x","kind":"pods"}}')


def test_failure_without_details_leaves_the_key_out() -> None:
    """Given no details, the body has no `details` key (not null)."""
    assert "details" not in apistatus.failure(400, "BadRequest", "bad")


def test_success_with_code_or_details() -> None:
    """A subresource create answers Success with code 201; a delete with details."""
    assert orjson.dumps(apistatus.success(code=201)) == (
        b'{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Success","code":201}')
    assert apistatus.success(details={"name": "x", "uid": "u"})["details"] == {"name": "x", "uid": "u"}


def test_is_status_only_for_a_status_object() -> None:
    """Only a JSON object whose kind is Status is one; lists, strings and other kinds are not."""
    assert apistatus.is_status({"kind": "Status"})
    assert not apistatus.is_status({"kind": "Pod"})
    assert not apistatus.is_status([{"kind": "Status"}])
    assert not apistatus.is_status("Status")
