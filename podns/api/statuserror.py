"""Kubernetes `Status` errors: one exception type, one builder per reason.

Every error the API server answers is a `meta/v1 Status` body with the HTTP code, `reason` and
message wording Kubernetes uses (kubectl prints `Error from server (<reason>): <message>`, the
Python client raises `ApiException(status=<code>)`), so clients cannot tell podns from
kube-apiserver by its errors. Handlers raise `ApiError`; the app's error middleware turns it
into the response. Any other exception escaping a handler is a bug and becomes a 500
`InternalError` Status (never a traceback page).
"""

from __future__ import annotations

from collections.abc import Iterable

from podns.api.resources.base import FieldError
from podns.objects import apistatus
from podns.objects.apistatus import Status, StatusCause, StatusDetails

#: media types accepted for PATCH, in the order kube-apiserver lists them in its 415 message
PATCH_TYPES = (
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
    "application/apply-patch+yaml",
)


class ApiError(Exception):
    """A request failed with a Kubernetes `Status` (code, reason, message, details)."""

    def __init__(
        self, code: int, reason: str, message: str, details: StatusDetails | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details
        self.headers = headers or {}

    def status(self) -> Status:
        """The `Status` body of this error."""
        return apistatus.failure(self.code, self.reason, self.message, self.details)


def qualified(resource: str, group: str) -> str:
    """`pods`, `statefulsets.apps`: how Kubernetes names a resource in messages."""
    return f"{resource}.{group}" if group else resource


def _details(name: str, group: str, kind: str) -> StatusDetails:
    details: StatusDetails = {"name": name}
    if group:
        details["group"] = group
    details["kind"] = kind
    return details


def not_found(resource: str, name: str, group: str = "") -> ApiError:
    """404: `pods "x" not found`."""
    return ApiError(404, "NotFound", f'{qualified(resource, group)} "{name}" not found',
                    _details(name, group, resource))


def no_such_resource() -> ApiError:
    """404 for an unknown URL or resource type."""
    return ApiError(404, "NotFound", "the server could not find the requested resource", {})


def already_exists(resource: str, name: str, group: str = "") -> ApiError:
    """409: `pods "x" already exists`."""
    return ApiError(409, "AlreadyExists", f'{qualified(resource, group)} "{name}" already exists',
                    _details(name, group, resource))


def conflict(resource: str, name: str, group: str = "", why: str = "") -> ApiError:
    """409 optimistic-concurrency failure, worded as kube-apiserver does."""
    why = why or ("the object has been modified; please apply your changes to the latest "
                  "version and try again")
    return ApiError(409, "Conflict",
                    f'Operation cannot be fulfilled on {qualified(resource, group)} "{name}": {why}',
                    _details(name, group, resource))


def invalid(kind: str, name: str, errors: Iterable[FieldError], group: str = "") -> ApiError:
    """422: `Service "x" is invalid: spec.ports[0].port: Invalid value: ...` with causes."""
    errs = list(errors)
    parts = [f"{e.field}: {e.message}" for e in errs]
    summary = parts[0] if len(parts) == 1 else "[" + ", ".join(parts) + "]"
    details = _details(name, group, kind)
    details["causes"] = [{"reason": e.reason, "message": e.message, "field": e.field} for e in errs]
    return ApiError(422, "Invalid", f'{kind} "{name}" is invalid: {summary}', details)


def bad_request(message: str) -> ApiError:
    """400 BadRequest (malformed body, wrong kind, bad query parameter)."""
    return ApiError(400, "BadRequest", message)


def unauthorized() -> ApiError:
    """401: no or an unknown bearer token."""
    return ApiError(401, "Unauthorized", "Unauthorized")


def forbidden(user: str, verb: str, resource: str, group: str, namespace: str | None,
              name: str | None = None, subresource: str = "", reason: str = "") -> ApiError:
    """403 worded like the RBAC authorizer's denial; `reason` (an authorizer's, e.g. the Node
    authorizer's "no relationship found ...") follows after a colon, as kube-apiserver adds it."""
    res = f"{resource}/{subresource}" if subresource else resource
    what = f'{qualified(resource, group)} "{name}"' if name else qualified(resource, group)
    where = f' in the namespace "{namespace}"' if namespace else " at the cluster scope"
    msg = (f'{what} is forbidden: User "{user}" cannot {verb} resource "{res}" '
           f'in API group "{group}"{where}' + (f": {reason}" if reason else ""))
    details: StatusDetails = {"kind": resource}
    if name:
        details["name"] = name
    if group:
        details["group"] = group
    return ApiError(403, "Forbidden", msg, details)


def admission_forbidden(resource: str, name: str, group: str, why: str) -> ApiError:
    """403 from an admission plugin or a policy check (`pods "x" is forbidden: pod rejected:
    ...`; NodeRestriction's and RBAC escalation's refusals)."""
    what = f'{qualified(resource, group)} "{name}"' if name else qualified(resource, group)
    return ApiError(403, "Forbidden", f"{what} is forbidden: {why}", _details(name, group, resource))


def method_not_allowed() -> ApiError:
    """405: the verb is not served on this resource."""
    return ApiError(405, "MethodNotAllowed",
                    "the server does not allow this method on the requested resource", {})


def unsupported_media_type(content_type: str, accepted: Iterable[str] = PATCH_TYPES) -> ApiError:
    """415 for a body in a format the endpoint does not take."""
    return ApiError(
        415, "UnsupportedMediaType",
        f'the body of the request was in an unknown format "{content_type}" - accepted media '
        f"types include: {', '.join(accepted)}",
    )


def too_large(limit: int) -> ApiError:
    """413 for a request body (or resulting object) over the limit."""
    return ApiError(413, "RequestEntityTooLarge", f"Request entity too large: limit is {limit}")


def expired(message: str) -> ApiError:
    """410 Expired: a resourceVersion older than the kept history."""
    return ApiError(410, "Expired", message)


def too_large_resource_version(requested: int, current: int, retry_after: int = 1) -> ApiError:
    """504 Timeout: a resourceVersion the store has not reached after the wait (kube-apiserver's
    storage.NewTooLargeResourceVersionError); clients retry after `retry_after` seconds."""
    cause: StatusCause = {"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}
    return ApiError(504, "Timeout", f"Timeout: Too large resource version: {requested}, current: {current}",
                    {"causes": [cause], "retryAfterSeconds": retry_after},
                    headers={"Retry-After": str(retry_after)})


def unavailable(message: str = "the store is unavailable") -> ApiError:
    """503: the backend cannot serve the request now."""
    return ApiError(503, "ServiceUnavailable", message, headers={"Retry-After": "1"})


def internal(message: str) -> ApiError:
    """500: a bug; the message never includes a traceback."""
    return ApiError(500, "InternalError", f"Internal error occurred: {message}")


def success(resource: str, name: str, uid: str, group: str = "") -> Status:
    """The `Status` a delete returns when the object is gone at once (namespaces return it too)."""
    details = _details(name, group, resource)
    details["uid"] = uid
    return apistatus.success(details=details)
