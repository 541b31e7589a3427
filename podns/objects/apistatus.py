"""The `meta/v1 Status` object: the body of every API error and of some write results.

One typed shape for the Status that crosses package boundaries: the API server builds it for
every error (`podns.api.statuserror`), the node agent answers its failures with it, the exec and
attach error channel carries it (`podns.objects.remotecommand`), and the API client reads it back
into its exception hierarchy (`podns.kube.errors`). Kubernetes declares it once in
`apimachinery/pkg/apis/meta/v1/types.go`; this module is that declaration (kopf's `errors.py`
types the same payload as `RawStatus` / `RawStatusDetails`).

The TypedDicts are `total=False` because the wire leaves fields out (a Success Status has no
`message`; the exec error channel omits `kind` and `apiVersion`; a Status read from a peer may lack
anything): readers use `.get`. The builders write the keys in kube-apiserver's order, so the JSON
they produce is byte-identical to what the server sent before they existed.
"""

from __future__ import annotations

from typing import Any, Literal, TypedDict, TypeGuard


class StatusCause(TypedDict, total=False):
    """One cause of a failure (`metav1.StatusCause`): which field, why."""

    reason: str
    message: str
    field: str


class StatusDetails(TypedDict, total=False):
    """What a Status is about (`metav1.StatusDetails`); every field is optional on the wire."""

    name: str
    group: str
    kind: str
    uid: str
    causes: list[StatusCause]
    retryAfterSeconds: int


class Status(TypedDict, total=False):
    """A `meta/v1 Status` (`metav1.Status`)."""

    kind: str
    apiVersion: str
    metadata: dict[str, Any]
    status: Literal["Success", "Failure"]
    message: str
    reason: str
    code: int
    details: StatusDetails


def failure(code: int, reason: str, message: str, details: StatusDetails | None = None) -> Status:
    """A Failure Status with the HTTP `code`, machine-readable `reason` and `message`; `details`
    only when given (kube-apiserver leaves the key out otherwise)."""
    body: Status = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    if details is not None:
        body["details"] = details
    return body


def success(*, details: StatusDetails | None = None, code: int | None = None) -> Status:
    """A Success Status: `details` for a delete that finished at once, `code` for a subresource
    create (binding, eviction) that answers 201 with a Status."""
    body: Status = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"}
    if details is not None:
        body["details"] = details
    if code is not None:
        body["code"] = code
    return body


def is_status(body: object) -> TypeGuard[Status]:
    """Whether a decoded JSON body is a Status (the only check a reader can make: every field is
    optional, so the fields are read with `.get` afterwards)."""
    return isinstance(body, dict) and body.get("kind") == "Status"


__all__ = ["Status", "StatusCause", "StatusDetails", "failure", "is_status", "success"]
