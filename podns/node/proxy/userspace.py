"""ClusterIP proxy: what kube-proxy's userspace mode did, in asyncio.

For every Service with a cluster IP, the proxy listens on `clusterIP:port` for each of its ports
(TCP and UDP) and forwards each connection (TCP) or client flow (UDP) to one endpoint that takes
traffic (ready, serving, not terminating: `serviceports.ready_backends`), chosen round-robin, from
the Service's EndpointSlices (`kubernetes.io/service-name` label; the slice port with the Service
port's name). A refused backend is skipped and the next one tried,
as the userspace proxier did. Headless Services (`clusterIP: None`) get nothing: clients reach
their pods directly, which is the point of them.

Changes follow the informers synchronously: a slice update replaces the backend list in memory
at once (new connections use it within milliseconds; established ones are left alone); listeners
are opened and closed as Services come and go.

Loopback mode: a cluster IP is connectable only if it is a local address, so the API server's
service CIDR must be a loopback range (e.g. `--service-cidr 127.96.0.0/16`); Services whose
address cannot be bound are skipped and counted in `unbindable`. Several agents on one machine
all listen with SO_REUSEPORT, so the kernel spreads clients over equivalent proxies. In netns
mode the kernel NAT proxier (`nftables.py`) serves the cluster IPs and this proxy only those on
loopback (`serves`), which pods in their own namespaces cannot reach anyway.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import socket
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, cast

from podns.kube.client import Client
from podns.kube.informer import Informer
from podns.kube.resources import ENDPOINTSLICES, SERVICES
from podns.node.proxy.serviceports import PROTOCOLS, cluster_ips, ready_backends
from podns.objects import join_key, object_key
from podns.objects.wellknown import SERVICE_NAME_LABEL

log = logging.getLogger(__name__)
Obj = dict[str, Any]

CONNECT_TIMEOUT = 2.0
#: a UDP client flow with no traffic for this long is forgotten
UDP_IDLE = 60.0
BUFFER = 65536


@dataclass(eq=False)
class Backends:
    """The ready endpoints of one Service port, rotated round-robin."""

    addrs: list[tuple[str, int]] = field(default_factory=list)
    _rr: itertools.count[int] = field(default_factory=itertools.count)

    def order(self) -> list[tuple[str, int]]:
        """Every backend, starting with the next one in turn."""
        if not self.addrs:
            return []
        start = next(self._rr) % len(self.addrs)
        return self.addrs[start:] + self.addrs[:start]


class _TCPListener:
    def __init__(self, backends: Backends) -> None:
        self.backends = backends
        self.server: asyncio.Server | None = None

    async def start(self, host: str, port: int) -> None:
        self.server = await asyncio.start_server(self._handle, host, port, reuse_port=True,
                                                 reuse_address=True)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        for host, port in self.backends.order():
            try:
                upstream = await asyncio.wait_for(asyncio.open_connection(host, port), CONNECT_TIMEOUT)
                break
            except (OSError, TimeoutError):
                continue
        if upstream is None:
            writer.close()  # no ready endpoint: refuse, as kube-proxy's REJECT does
            return
        up_reader, up_writer = upstream
        try:
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        finally:
            up_writer.close()
            writer.close()

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.server.wait_closed(), 1.0)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy one direction; pass a half-close on as a half-close. On an error the destination is
    closed, which also ends the opposite direction (it reads from the same socket)."""
    try:
        while True:
            data = await reader.read(BUFFER)
            if not data:
                break
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (OSError, RuntimeError):
        writer.close()


class _UDPFlow(asyncio.DatagramProtocol):
    """One client's flow to its backend; replies go back through the listening socket."""

    def __init__(self, listener: _UDPListener, client: tuple[str, int]) -> None:
        self.listener = listener
        self.client = client
        self.transport: asyncio.DatagramTransport | None = None
        self.last = asyncio.get_running_loop().time()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # a datagram endpoint's transport (uvloop's is not an asyncio.DatagramTransport subclass)
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.last = asyncio.get_running_loop().time()
        if self.listener.transport is not None:
            self.listener.transport.sendto(data, self.client)


class _UDPListener(asyncio.DatagramProtocol):
    def __init__(self, backends: Backends) -> None:
        self.backends = backends
        self.transport: asyncio.DatagramTransport | None = None
        self.flows: dict[tuple[str, int], _UDPFlow] = {}
        self._pending: dict[tuple[str, int], list[bytes]] = {}
        self._reaper: asyncio.Task[None] | None = None
        #: flows being opened (kept: the loop holds tasks only weakly)
        self._opening: set[asyncio.Task[None]] = set()

    async def start(self, host: str, port: int) -> None:
        loop = asyncio.get_running_loop()
        sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
        await loop.create_datagram_endpoint(lambda: self, sock=sock)
        self._reaper = loop.create_task(self._reap(), name=f"udp-proxy-reaper:{port}")

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # a datagram endpoint's transport (uvloop's is not an asyncio.DatagramTransport subclass)
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        flow = self.flows.get(addr)
        if flow is not None and flow.transport is not None:
            flow.last = asyncio.get_running_loop().time()
            flow.transport.sendto(data)
            return
        if addr in self._pending:
            self._pending[addr].append(data)
            return
        order = self.backends.order()
        if not order:
            return  # dropped: no ready endpoint
        self._pending[addr] = [data]
        task = asyncio.get_running_loop().create_task(self._open(addr, order[0]),
                                                      name=f"udp-proxy-open:{addr[0]}:{addr[1]}")
        self._opening.add(task)
        task.add_done_callback(self._opening.discard)

    async def _open(self, client: tuple[str, int], backend: tuple[str, int]) -> None:
        loop = asyncio.get_running_loop()
        try:
            _, flow = await loop.create_datagram_endpoint(lambda: _UDPFlow(self, client), remote_addr=backend)
        except OSError:
            self._pending.pop(client, None)
            return
        self.flows[client] = flow
        for data in self._pending.pop(client, []):
            if flow.transport is not None:
                flow.transport.sendto(data)

    async def _reap(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(UDP_IDLE / 4)
            now = loop.time()
            for client, flow in list(self.flows.items()):
                if now - flow.last > UDP_IDLE:
                    if flow.transport is not None:
                        flow.transport.close()
                    del self.flows[client]

    async def stop(self) -> None:
        if self._reaper is not None:
            self._reaper.cancel()
        for flow in self.flows.values():
            if flow.transport is not None:
                flow.transport.close()
        self.flows.clear()
        if self.transport is not None:
            self.transport.close()


#: What serves one (ip, port, protocol) of a Service: both have start(host, port) and stop().
_Listener = _TCPListener | _UDPListener


class ServiceProxy:
    """Listens on every Service's cluster IP and ports; see the module docstring."""

    def __init__(self, client: Client, serves: Callable[[str], bool] | None = None) -> None:
        """`serves(cluster_ip)` says which cluster IPs this proxy listens on (None: all)."""
        self.client = client
        self.serves = serves
        self.services = Informer(client, SERVICES, name="proxy:services")
        self.slices = Informer(client, ENDPOINTSLICES, name="proxy:endpointslices")
        self.slices.add_index("service", lambda s: [
            f"{s.get('metadata', {}).get('namespace')}/"
            f"{(s.get('metadata', {}).get('labels') or {}).get(SERVICE_NAME_LABEL, '')}"])
        #: (ip, port, protocol) -> (listener, backends, service key, port name)
        self.listeners: dict[tuple[str, int, str], tuple[_Listener, Backends, str, str]] = {}
        self.unbindable: set[tuple[str, int, str]] = set()
        self._pending: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self.services.add_handler(on_add=self._on_service, on_update=lambda o, n: self._on_service(n),
                                  on_delete=self._on_service)
        self.slices.add_handler(on_add=self._on_slice, on_update=lambda o, n: self._on_slice(n),
                                on_delete=self._on_slice)
        self.services.start()
        self.slices.start()
        await self.services.wait_synced()
        await self.slices.wait_synced()
        await self.settle()

    async def settle(self) -> None:
        """Wait until listeners being opened or closed are done (tests, start-up)."""
        while self._pending:
            await asyncio.gather(*list(self._pending), return_exceptions=True)

    async def stop(self) -> None:
        await self.services.stop()
        await self.slices.stop()
        await self.settle()
        for listener, *_ in self.listeners.values():
            await listener.stop()
        self.listeners.clear()

    # -- event handling: synchronous table updates, async socket work -------------------------

    def _on_slice(self, sl: Obj) -> None:
        meta = sl.get("metadata", {})
        svc = (meta.get("labels") or {}).get(SERVICE_NAME_LABEL)
        if svc:
            self._refresh_backends(join_key(str(meta.get("namespace") or ""), svc))

    def _refresh_backends(self, svc_key: str) -> None:
        slices = self.slices.by_index("service", svc_key)
        for (_ip, _port, proto), (_l, backends, key, port_name) in self.listeners.items():
            if key == svc_key:
                backends.addrs = ready_backends(slices, port_name, proto)

    def _on_service(self, svc: Obj) -> None:
        key = object_key(svc)
        current = self.services.get(key)
        wanted: dict[tuple[str, int, str], str] = {}
        if current is not None:
            spec = current.get("spec") or {}
            for ip in cluster_ips(current):
                if self.serves is not None and not self.serves(ip):
                    continue
                for p in spec.get("ports") or []:
                    proto = p.get("protocol") or "TCP"
                    if proto in PROTOCOLS and p.get("port"):
                        wanted[(ip, int(p["port"]), proto)] = p.get("name") or ""
        for addr, (listener, _b, owner, _n) in list(self.listeners.items()):
            if owner == key and addr not in wanted:
                del self.listeners[addr]
                self._spawn(listener.stop())
        for addr, port_name in wanted.items():
            if addr not in self.listeners:
                backends = Backends()
                new: _Listener = _TCPListener(backends) if addr[2] == "TCP" else _UDPListener(backends)
                self.listeners[addr] = (new, backends, key, port_name)
                self._spawn(self._listen(addr, new))
            else:
                listener, backends, _owner, _ = self.listeners[addr]
                self.listeners[addr] = (listener, backends, key, port_name)
        self._refresh_backends(key)

    async def _listen(self, addr: tuple[str, int, str], listener: _Listener) -> None:
        try:
            await listener.start(addr[0], addr[1])
            self.unbindable.discard(addr)
        except OSError as exc:
            # warn once per agent: with a non-loopback service CIDR every Service would repeat it
            level = logging.DEBUG if self.unbindable else logging.WARNING
            log.log(level, "proxy: cannot listen on %s:%d/%s (%s); in loopback mode the service "
                    "CIDR must be a loopback range (e.g. --service-cidr 127.96.0.0/16)",
                    addr[0], addr[1], addr[2], exc)
            self.unbindable.add(addr)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)
