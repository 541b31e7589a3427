"""Endpoints as the load balancer sees them: one address and port of one pod.

Sources produce them (from DNS answers or EndpointSlices); policies and health tracking key on
`Endpoint.key`, so the same pod seen again after a refresh keeps its statistics.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One pod behind a service.

    `hostname` is the pod's stable name when it has one (`db-0`), else None. `ready` is the
    EndpointSlice ready condition (DNS sources only ever see ready endpoints); `terminating`
    endpoints are drained: never picked for new work, existing connections are left alone.
    """

    address: str
    port: int
    hostname: str | None = None
    ready: bool = True
    serving: bool = True
    terminating: bool = False
    node_name: str | None = None
    zone: str | None = None

    @property
    def key(self) -> str:
        """Identity across refreshes: `address:port` (`[v6]:port` for IPv6)."""
        if ":" in self.address:
            return f"[{self.address}]:{self.port}"
        return f"{self.address}:{self.port}"

    @property
    def usable(self) -> bool:
        """Whether new work may go here at all (ready and not terminating)."""
        return self.ready and not self.terminating

    def __str__(self) -> str:
        return f"{self.hostname or self.address} ({self.key})"
