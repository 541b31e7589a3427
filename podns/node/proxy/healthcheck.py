"""Health check node ports: kube-proxy's service health server, for both of podns's proxiers.

A LoadBalancer Service with `externalTrafficPolicy: Local` gets a `healthCheckNodePort` from the
API server; a cloud load balancer asks every node `GET http://<node>:<healthCheckNodePort>/` and
sends traffic only to the nodes that answer 200, i.e. those with an endpoint of the Service
(`nodeName`), since the others drop it. This module serves that answer, as kube-proxy's
`pkg/proxy/healthcheck` does: any path, `200` while the Service has a ready endpoint on this node,
`503` otherwise, with the JSON body `{"service": {"namespace": ..., "name": ...},
"localEndpoints": N, "serviceProxyHealthy": true}` and the header
`X-Load-Balancing-Endpoint-Weight: N`.

What it owns: one TCP listener per health check node port, on each address it was given (the
kernel proxier: every address, as kube-proxy; the userspace proxy: its node addresses). A port
that cannot be listened on is handed to `on_unbindable` (the proxiers log it once and raise a
Warning Event `FailedToStartServiceHealthcheck` on the Service, kube-proxy's reason) and tried
again at the next `sync`; it never fails a sync. `HealthReporter` is that reporting, shared;
`health_checks` computes what to serve from the API objects (pure).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from podns.kube.events import EventRecorder
from podns.node.proxy.serviceports import ready_backends

log = logging.getLogger(__name__)
Obj = dict[str, Any]

#: seconds a client gets to send its request head; and the most of it that is read (bytes)
REQUEST_TIMEOUT = 5.0
REQUEST_LIMIT = 8192


@dataclass(frozen=True, slots=True)
class HealthCheck:
    """What one health check node port answers: the Service and its endpoints on this node."""

    namespace: str
    name: str
    local_endpoints: int

    def response(self) -> bytes:
        """The whole HTTP/1.1 response (kube-proxy's status, headers and body)."""
        body = json.dumps({"service": {"namespace": self.namespace, "name": self.name},
                           "localEndpoints": self.local_endpoints, "serviceProxyHealthy": True},
                          indent=1).encode()
        status = "200 OK" if self.local_endpoints else "503 Service Unavailable"
        head = (f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n"
                f"X-Content-Type-Options: nosniff\r\n"
                f"X-Load-Balancing-Endpoint-Weight: {self.local_endpoints}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n")
        return head.encode() + body


def health_checks(services: Iterable[Obj], slices_of: Callable[[Obj], Iterable[Obj]],
                  node: str) -> dict[int, HealthCheck]:
    """`healthCheckNodePort` -> what it answers, for every LoadBalancer Service with
    `externalTrafficPolicy: Local` among `services`; `slices_of(service)` gives its
    EndpointSlices. Local endpoints are counted once per address, whatever their ports."""
    out: dict[int, HealthCheck] = {}
    for svc in services:
        spec = svc.get("spec") or {}
        port = spec.get("healthCheckNodePort")
        if spec.get("type") != "LoadBalancer" or spec.get("externalTrafficPolicy") != "Local" \
                or not isinstance(port, int) or not port:
            continue
        slices = list(slices_of(svc))
        local = {ip for p in spec.get("ports") or []
                 for ip, _ in ready_backends(slices, p.get("name") or "", p.get("protocol") or "TCP",
                                             node=node)}
        meta = svc.get("metadata") or {}
        out[port] = HealthCheck(str(meta.get("namespace") or ""), str(meta.get("name") or ""), len(local))
    return out


class HealthServer:
    """Listens on the health check node ports `sync` is given. `addrs`: where (None: every
    address of the machine); `on_unbindable(check, address, port, error)`: told about a port
    that cannot be listened on (at each `sync` that tries it)."""

    def __init__(self, addrs: Sequence[str] | None = None, *,
                 on_unbindable: Callable[[HealthCheck, str, int, OSError], None] | None = None) -> None:
        self.addrs: list[str | None] = list(addrs) if addrs is not None else [None]
        self.on_unbindable = on_unbindable
        self.checks: dict[int, HealthCheck] = {}
        self.servers: dict[tuple[int, str | None], asyncio.Server] = {}

    async def sync(self, checks: Mapping[int, HealthCheck]) -> None:
        """Serve exactly `checks`: answers change at once, listeners open and close."""
        self.checks = dict(checks)
        for key in [k for k in self.servers if k[0] not in checks]:
            await self._close(self.servers.pop(key))
        for port in checks:
            for addr in self.addrs:
                if (port, addr) in self.servers:
                    continue
                try:
                    self.servers[(port, addr)] = await asyncio.start_server(
                        functools.partial(self._handle, port), addr, port,
                        reuse_address=True, limit=REQUEST_LIMIT)
                except OSError as exc:
                    if self.on_unbindable is not None:
                        self.on_unbindable(checks[port], addr or "*", port, exc)

    async def stop(self) -> None:
        await self.sync({})

    @staticmethod
    async def _close(server: asyncio.Server) -> None:
        server.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(server.wait_closed(), 1.0)

    async def _handle(self, port: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            with contextlib.suppress(asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
                await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), REQUEST_TIMEOUT)
            check = self.checks.get(port)
            if check is not None:
                writer.write(check.response())
                await writer.drain()
        except OSError:
            pass
        finally:
            writer.close()


class HealthReporter:
    """Says, once per Service, address and port, that a health check node port cannot be
    listened on: a warning in the log and a Warning Event `FailedToStartServiceHealthcheck` on
    the Service (`events`: None, the log only; `lookup(key)`: the Service object of `ns/name`
    from the proxier's cache). Its `__call__` is `HealthServer.on_unbindable`."""

    def __init__(self, events: EventRecorder | None, node: str,
                 lookup: Callable[[str], Obj | None]) -> None:
        self.events = events
        self.node = node
        self.lookup = lookup
        self._said: set[tuple[str, str, str, int]] = set()

    def __call__(self, check: HealthCheck, addr: str, port: int, exc: OSError) -> None:
        key = (check.namespace, check.name, addr, port)
        if key in self._said:
            return
        self._said.add(key)
        message = (f"node {self.node}: cannot listen on {addr}:{port}/TCP for healthCheckNodePort "
                   f"{port} ({exc.strerror or exc}); it is not served on this address")
        log.warning("proxy: Service %s/%s: %s", check.namespace, check.name, message)
        svc = self.lookup(f"{check.namespace}/{check.name}")
        if self.events is not None and svc is not None:
            self.events.event({"kind": "Service", "apiVersion": "v1", **svc}, "Warning",
                              "FailedToStartServiceHealthcheck", message)
