"""Errors of the API client, mirroring the Kubernetes `Status`.

podns components never see aiohttp, ssl or socket exceptions: the client converts them here,
at the boundary, chaining the cause (`raise TransportError(...) from exc`), so the HTTP library
can change without touching any caller.

Our exception hierarchy::

    KubeError                      root: anything this package raises on purpose
    ├── ConfigError                a kubeconfig that cannot be used
    ├── TransportError             no API server could be reached / the connection broke
    └── APIError                   the server answered with a failure Status
        ├── BadRequest             400
        ├── Unauthorized           401
        ├── Forbidden              403
        ├── NotFound               404
        ├── MethodNotAllowed       405
        ├── Conflict               409 (update conflict: stale resourceVersion)
        │   └── AlreadyExists      409 with reason AlreadyExists
        ├── Gone                   410 (resourceVersion too old: relist)
        ├── Invalid                422 (validation failed; details.causes name the fields)
        ├── TooManyRequests        429
        └── ServerError            5xx

Catch the narrowest class that has one meaning for you: `NotFound` on get means "does not
exist"; `Conflict` on update means "re-read and retry"; `Gone` on watch means "relist".
"""

from __future__ import annotations

from typing import Any

from podns.objects import apistatus
from podns.objects.apistatus import Status, StatusDetails


class KubeError(Exception):
    """Something the API client could not do."""


class ConfigError(KubeError):
    """The kubeconfig is missing, unreadable or names something that does not exist."""


class TransportError(KubeError):
    """No API server could be reached, or the connection broke mid-request."""


class APIError(KubeError):
    """The API server answered with a failure `Status`.

    `status` is the Status object as sent (or synthesised from the HTTP status when the body
    was not a Status); `code`, `reason`, `message`, `details` are its fields.
    """

    def __init__(self, status: Status, *, retry_after: float | None = None) -> None:
        self.status: Status = status
        self.retry_after = retry_after
        super().__init__(f"{self.code} {self.reason}: {self.message}")

    @property
    def code(self) -> int:
        """The HTTP status code (Status.code)."""
        try:
            return int(self.status.get("code") or 0)
        except (TypeError, ValueError):
            return 0

    @property
    def reason(self) -> str:
        """The machine-readable reason (`NotFound`, `AlreadyExists`, `Conflict`, `Expired`...)."""
        return str(self.status.get("reason") or "")

    @property
    def message(self) -> str:
        """The human-readable message."""
        return str(self.status.get("message") or "")

    @property
    def details(self) -> StatusDetails:
        """Status.details (name, group, kind, causes, retryAfterSeconds); {} when absent."""
        details = self.status.get("details")
        return details if isinstance(details, dict) else {}


class BadRequest(APIError):
    """The request was malformed (400)."""


class Unauthorized(APIError):
    """No valid credentials were presented (401)."""


class Forbidden(APIError):
    """The credentials may not do this (403)."""


class NotFound(APIError):
    """The object (or the resource, or the namespace) does not exist (404)."""


class MethodNotAllowed(APIError):
    """The resource does not support this verb (405)."""


class Conflict(APIError):
    """The write conflicted with the stored object, usually a stale resourceVersion (409)."""


class AlreadyExists(Conflict):
    """An object with that name already exists (409, reason AlreadyExists)."""


class Gone(APIError):
    """The requested resourceVersion is older than the history the server keeps (410)."""


class Invalid(APIError):
    """The object failed validation (422); `details["causes"]` names each bad field."""


class TooManyRequests(APIError):
    """The server asked us to slow down (429); `retry_after` says for how long."""


class ServerError(APIError):
    """The server failed (5xx)."""


_BY_CODE: dict[int, type[APIError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    405: MethodNotAllowed,
    409: Conflict,
    410: Gone,
    422: Invalid,
    429: TooManyRequests,
}

_REASON_BY_CODE: dict[int, str] = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    409: "Conflict",
    410: "Expired",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
}


def error_class(code: int, reason: str = "") -> type[APIError]:
    """The most specific APIError subclass for an HTTP code and Status reason."""
    if code == 409 and reason == "AlreadyExists":
        return AlreadyExists
    if code >= 500:
        return ServerError
    return _BY_CODE.get(code, APIError)


def status_from_body(code: int, body: Any, fallback_message: str = "") -> Status:
    """A Status for an error response: the body when it is one, otherwise synthesised from
    the HTTP code (kopf drops non-Status bodies the same way)."""
    if apistatus.is_status(body):
        status = body.copy()
        status.setdefault("code", code)
        return status
    message = fallback_message or (body if isinstance(body, str) else "")
    return apistatus.failure(code, _REASON_BY_CODE.get(code, "Unknown"),
                             message.strip()[:1000] or f"HTTP {code}")


def api_error(status: Status, *, retry_after: float | None = None) -> APIError:
    """The matching APIError for a Status (also used for watch ERROR events)."""
    code = 0
    try:
        code = int(status.get("code") or 0)
    except (TypeError, ValueError):
        pass
    if retry_after is None:
        details = status.get("details")
        if isinstance(details, dict) and details.get("retryAfterSeconds"):
            try:
                retry_after = float(details["retryAfterSeconds"])
            except (TypeError, ValueError):
                retry_after = None
    return error_class(code, str(status.get("reason") or ""))(status, retry_after=retry_after)


__all__ = [
    "APIError",
    "AlreadyExists",
    "BadRequest",
    "ConfigError",
    "Conflict",
    "Forbidden",
    "Gone",
    "Invalid",
    "KubeError",
    "MethodNotAllowed",
    "NotFound",
    "ServerError",
    "Status",
    "TooManyRequests",
    "TransportError",
    "Unauthorized",
    "api_error",
    "error_class",
    "status_from_body",
]
