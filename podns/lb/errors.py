"""Errors raised by podns.lb.

    LBError
    ├── NoEndpoints        the service has no usable endpoint (unknown, empty, or all draining)
    ├── EndpointNotFound   `pool.endpoint(name)` named a pod that is not in the pool
    ├── ResolutionError    the source could not resolve the service (cause chained)
    └── ConnectError       every attempt to connect failed (the attempts' errors attached)

Timeouts are `TimeoutError`. Nothing else escapes: foreign exceptions (dnspython, the
Kubernetes client) are converted here with their cause chained.
"""

from __future__ import annotations


class LBError(Exception):
    """Root of podns.lb's errors."""


class NoEndpoints(LBError):
    """The service currently has no endpoint that may take new work."""


class EndpointNotFound(LBError):
    """No endpoint with that hostname (or address) is in the pool."""


class ResolutionError(LBError):
    """The source failed to resolve the service; `__cause__` holds the underlying error."""


class ConnectError(LBError):
    """Connecting failed on every endpoint tried; `.attempts` lists (endpoint, error) pairs."""

    def __init__(self, message: str, attempts: list[tuple[object, BaseException]]) -> None:
        super().__init__(message)
        self.attempts = attempts
