"""The audit log (`--audit-log FILE`): one JSON line per request, as kube-apiserver's audit log at
the Metadata level (`audit.k8s.io/v1` Event): who (user, source IP, user agent), what (verb,
resource, namespace, name, subresource, request URI), the answer's status code, when it was
received and completed, and the latency (annotation `podns.io/latency`). No request or response
bodies: Metadata level, so Secrets' values never reach the log.

Lines are written when the request completes (watches and logs streams when they end), with
O_APPEND from one writer, so lines never interleave. The file is created 0600 without following
a symlink; `-` writes to standard output, as kube-apiserver's `--audit-log-path -`.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TextIO

import orjson
from aiohttp import web

from podns.api import statuserror
from podns.api.handlers.dispatch import IMPERSONATOR, USER
from podns.api.handlers.requestinfo import Lookup, parse_path

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
#: the user of a request without valid credentials (kube-apiserver's anonymous user)
ANONYMOUS = "system:anonymous"
#: HTTP method -> verb for non-resource URLs (kube-apiserver's lowercased method)
_NON_RESOURCE = {"GET": "get", "HEAD": "head", "POST": "post", "PUT": "put", "PATCH": "patch",
                 "DELETE": "delete", "OPTIONS": "options"}


class AuditLog:
    """Where audit events go. `middleware(lookup)` is the outermost filter of the API app."""

    def __init__(self, path: str) -> None:
        """Open `path` for appending (created 0600, never through a symlink); `-` is stdout.
        Raises OSError when it cannot be opened."""
        self.path = path
        if path == "-":
            self._out: TextIO = sys.stdout
        else:
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
            self._out = os.fdopen(fd, "a", buffering=1)  # line-buffered: each event is one write

    def write(self, event: dict[str, Any]) -> None:
        self._out.write(orjson.dumps(event).decode() + "\n")

    def close(self) -> None:
        if self._out is not sys.stdout:
            self._out.close()

    def middleware(self, lookup: Lookup) -> Callable[..., Any]:
        """An aiohttp middleware logging one event per request (after every other filter)."""

        @web.middleware
        async def audit(request: web.Request, handler: Handler) -> web.StreamResponse:
            received, started = _now(), time.monotonic()
            code = 500
            try:
                resp = await handler(request)
                code = resp.status
                return resp
            except web.HTTPException as exc:
                code = exc.status
                raise
            except asyncio.CancelledError:
                code = 499  # the client left before an answer (nginx's "client closed request")
                raise
            finally:
                self.write(event(request, lookup, code=code, received=received,
                                 latency=time.monotonic() - started))

        return audit


def _user(request: web.Request) -> dict[str, Any]:
    """Who sent the request (the impersonator when there is one: the impersonated user goes in
    `impersonatedUser`, as in Kubernetes' audit events)."""
    user = request.get(IMPERSONATOR) or request.get(USER)
    return user.to_json() if user is not None else {"username": ANONYMOUS}


def event(request: web.Request, lookup: Lookup, *, code: int, received: str,
          latency: float) -> dict[str, Any]:
    """The `audit.k8s.io/v1` Event (Metadata level) of one completed request."""
    ev: dict[str, Any] = {
        "kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "Metadata",
        "auditID": str(uuid.uuid4()), "stage": "ResponseComplete",
        "requestURI": request.path_qs, "verb": _NON_RESOURCE.get(request.method, request.method.lower()),
        "user": _user(request),
        "sourceIPs": [request.remote or ""], "userAgent": request.headers.get("User-Agent", ""),
        "responseStatus": {"metadata": {}, "code": code},
        "requestReceivedTimestamp": received, "stageTimestamp": _now(),
        "annotations": {"podns.io/latency": f"{latency:.6f}s"},
    }
    if request.get(IMPERSONATOR) is not None and (as_user := request.get(USER)) is not None:
        ev["impersonatedUser"] = as_user.to_json()
    try:
        info = parse_path(request.path, request.method, request.query, lookup)
    except (statuserror.ApiError, IndexError):
        return ev  # not a resource URL (discovery, health, dashboard) or not one we serve
    ref: dict[str, Any] = {"resource": info.rt.resource, "apiGroup": info.rt.group,
                           "apiVersion": info.rt.version}
    if info.namespace:
        ref["namespace"] = info.namespace
    if info.name:
        ref["name"] = info.name
    if info.subresource:
        ref["subresource"] = info.subresource
    ev["verb"], ev["objectRef"] = info.verb, ref
    return ev


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
