"""The Source protocol and the service target it resolves.

A source keeps a service's endpoint list current and pushes every new list to the balancer's
`update` callback (from the balancer's event loop). `start` returns once the first answer is in
(an empty list is an answer: the service has no endpoints) or raises `ResolutionError` when the
first attempt failed outright; later failures keep the last known list and are retried in the
background.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from podns.lb.endpoint import Endpoint

#: called with the complete new endpoint list and, for an empty list, why it is empty
Update = Callable[[list[Endpoint], str | None], None]

DEFAULT_ZONE = "cluster.local"


@dataclass(frozen=True, slots=True)
class Target:
    """A service to resolve.

    `name` is as the user wrote it: `db-service`, `db-service.default`, or the full
    `db-service.default.svc.cluster.local`. `port` is a port name (`postgres`, resolved through
    SRV or the slice's named ports), a number, or None (the slice's only port, or 0).
    """

    name: str
    port: int | str | None = None
    namespace: str = "default"
    zone: str = DEFAULT_ZONE

    @property
    def service(self) -> str:
        return self.name.split(".", 1)[0]

    @property
    def service_namespace(self) -> str:
        parts = self.name.rstrip(".").split(".")
        return parts[1] if len(parts) > 1 else self.namespace

    @property
    def fqdn(self) -> str:
        """The name to ask DNS for, with a trailing dot: short names get the cluster suffix."""
        name = self.name.rstrip(".")
        parts = name.split(".")
        if len(parts) == 1:
            name = f"{name}.{self.namespace}.svc.{self.zone}"
        elif len(parts) == 2:
            name = f"{name}.svc.{self.zone}"
        return name + "."


class Source(Protocol):
    """Keeps a target's endpoints current; see the module docstring for the contract."""

    async def start(self, target: Target, update: Update) -> None: ...

    async def refresh(self) -> None:
        """Re-resolve soon (called after connection failures)."""
        ...

    async def close(self) -> None: ...
