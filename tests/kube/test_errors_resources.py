"""Status -> exception mapping, and resource paths."""

from __future__ import annotations

import pytest

from podns.kube import errors
from podns.kube.resources import CONFIGMAPS, ENDPOINTSLICES, LEASES, NODES, PODS, STATEFULSETS


@pytest.mark.parametrize(
    ("code", "reason", "cls"),
    [
        (400, "BadRequest", errors.BadRequest),
        (401, "Unauthorized", errors.Unauthorized),
        (403, "Forbidden", errors.Forbidden),
        (404, "NotFound", errors.NotFound),
        (405, "MethodNotAllowed", errors.MethodNotAllowed),
        (409, "AlreadyExists", errors.AlreadyExists),
        (409, "Conflict", errors.Conflict),
        (410, "Expired", errors.Gone),
        (410, "Gone", errors.Gone),
        (422, "Invalid", errors.Invalid),
        (429, "TooManyRequests", errors.TooManyRequests),
        (500, "InternalError", errors.ServerError),
        (503, "ServiceUnavailable", errors.ServerError),
        (418, "Teapot", errors.APIError),
    ],
    ids=lambda v: str(v) if not isinstance(v, type) else v.__name__,
)
def test_status_maps_to_most_specific_class(code: int, reason: str, cls: type) -> None:
    """Each Status code (and AlreadyExists' reason) picks one class, all under APIError."""
    status = {"kind": "Status", "status": "Failure", "code": code, "reason": reason,
              "message": "m", "details": {"name": "x", "retryAfterSeconds": 3}}
    err = errors.api_error(status)
    assert type(err) is cls
    assert isinstance(err, errors.APIError) and isinstance(err, errors.KubeError)
    assert (err.code, err.reason, err.message, err.details["name"]) == (code, reason, "m", "x")
    assert err.status is status and err.retry_after == 3.0
    assert str(err) == f"{code} {reason}: m"


def test_already_exists_is_a_conflict() -> None:
    assert issubclass(errors.AlreadyExists, errors.Conflict)


def test_non_status_bodies_are_synthesised() -> None:
    """A non-Status body becomes a Failure Status with the code's reason and the text."""
    status = errors.status_from_body(503, "upstream down\n")
    assert status["reason"] == "ServiceUnavailable" and status["message"] == "upstream down"
    assert errors.status_from_body(404, {"not": "a status"})["message"] == "HTTP 404"
    garbage = errors.api_error({"code": "nonsense"})
    assert type(garbage) is errors.APIError and garbage.code == 0 and garbage.details == {}


@pytest.mark.parametrize(
    ("resource", "args", "path"),
    [
        (PODS, (None,), "/api/v1/pods"),
        (PODS, ("ns",), "/api/v1/namespaces/ns/pods"),
        (PODS, ("ns", "p", "status"), "/api/v1/namespaces/ns/pods/p/status"),
        (NODES, (None, "n1"), "/api/v1/nodes/n1"),
        (NODES, ("ignored", "n1"), "/api/v1/nodes/n1"),
        (ENDPOINTSLICES, ("ns",), "/apis/discovery.k8s.io/v1/namespaces/ns/endpointslices"),
        (STATEFULSETS, ("ns", "web", "scale"), "/apis/apps/v1/namespaces/ns/statefulsets/web/scale"),
        (LEASES, ("kube-system", "l"), "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/l"),
    ],
    ids=["all-ns", "ns", "status", "cluster", "cluster-ignores-ns", "group", "scale", "lease"],
)
def test_paths(resource: object, args: tuple, path: str) -> None:
    assert resource.path(*args) == path  # type: ignore[attr-defined]


def test_path_errors_and_names() -> None:
    with pytest.raises(ValueError, match="namespace is required"):
        PODS.path(None, "p")
    with pytest.raises(ValueError, match="needs an object name"):
        PODS.path("ns", None, "status")
    assert CONFIGMAPS.api_version == "v1" and STATEFULSETS.api_version == "apps/v1"
    assert str(ENDPOINTSLICES) == "endpointslices.discovery.k8s.io" and str(PODS) == "pods"
