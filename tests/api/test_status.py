"""Status builders word errors exactly as kube-apiserver does."""

from __future__ import annotations

from podns.api import statuserror
from podns.api.resources.base import FieldError


def test_not_found_and_already_exists_name_group_qualified_resources() -> None:
    """Non-core resources are named `<plural>.<group>` and details carry the group."""
    err = statuserror.not_found("statefulsets", "db", "apps")
    assert (err.code, err.reason) == (404, "NotFound")
    assert err.message == 'statefulsets.apps "db" not found'
    assert err.status()["details"] == {"name": "db", "group": "apps", "kind": "statefulsets"}
    err = statuserror.already_exists("pods", "web-0")
    assert (err.code, err.message) == (409, 'pods "web-0" already exists')


def test_conflict_message() -> None:
    """The optimistic-concurrency 409 reads as Kubernetes' does."""
    err = statuserror.conflict("services", "s")
    assert err.reason == "Conflict" and err.message == (
        'Operation cannot be fulfilled on services "s": the object has been modified; please '
        "apply your changes to the latest version and try again")


def test_invalid_single_and_multiple_causes() -> None:
    """One cause is inlined; several are bracketed; every cause is in details.causes."""
    one = FieldError("spec.ports[0].port", "FieldValueInvalid",
                     "Invalid value: 0: must be between 1 and 65535, inclusive")
    err = statuserror.invalid("Service", "s", [one])
    assert err.code == 422 and err.message == (
        'Service "s" is invalid: spec.ports[0].port: Invalid value: 0: must be between 1 and '
        "65535, inclusive")
    two = FieldError("metadata.name", "FieldValueRequired", "Required value")
    err = statuserror.invalid("StatefulSet", "db", [one, two], "apps")
    assert err.message.startswith('StatefulSet "db" is invalid: [spec.ports[0].port: ')
    assert err.message.endswith("metadata.name: Required value]")
    body = err.status()
    assert body["details"]["kind"] == "StatefulSet" and body["details"]["group"] == "apps"
    assert [c["field"] for c in body["details"]["causes"]] == ["spec.ports[0].port",
                                                               "metadata.name"]


def test_forbidden_wording_and_status_shape() -> None:
    """403 names the user, verb, resource, group and namespace like the RBAC authorizer."""
    err = statuserror.forbidden("readonly", "delete", "statefulsets", "apps", "default", "db")
    assert err.message == ('statefulsets.apps "db" is forbidden: User "readonly" cannot delete '
                           'resource "statefulsets" in API group "apps" in the namespace '
                           '"default"')
    err = statuserror.forbidden("readonly", "create", "namespaces", "", None)
    assert err.message.endswith('in API group "" at the cluster scope')
    body = err.status()
    assert {k: body[k] for k in ("kind", "apiVersion", "status", "code", "reason")} == {
        "kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 403,
        "reason": "Forbidden"}


def test_other_builders_codes_and_reasons() -> None:
    """Each builder carries its HTTP code and reason."""
    cases = [
        (statuserror.bad_request("x"), 400, "BadRequest"),
        (statuserror.unauthorized(), 401, "Unauthorized"),
        (statuserror.method_not_allowed(), 405, "MethodNotAllowed"),
        (statuserror.expired("too old resource version: 1 (5)"), 410, "Expired"),
        (statuserror.too_large(3145728), 413, "RequestEntityTooLarge"),
        (statuserror.unsupported_media_type("text/html"), 415, "UnsupportedMediaType"),
        (statuserror.internal("boom"), 500, "InternalError"),
        (statuserror.unavailable(), 503, "ServiceUnavailable"),
    ]
    for err, code, reason in cases:
        assert (err.code, err.reason, err.status()["code"]) == (code, reason, code)
    assert "application/strategic-merge-patch+json" in statuserror.unsupported_media_type("a").message
    assert statuserror.unavailable().headers == {"Retry-After": "1"}
