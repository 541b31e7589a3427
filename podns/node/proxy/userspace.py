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

NodePorts (when this proxy is the node's proxier: loopback mode, `--proxy-mode userspace`): for
a Service of type NodePort or LoadBalancer the proxy also listens on `<address>:<nodePort>` of
every address in `node_addrs` (127.0.0.1 and the node's InternalIPs), balancing to the same
endpoints as its ClusterIP. These listeners do not share their port (no SO_REUSEPORT): a port
some other process holds is not served, said once per Service port in the log and in a Warning
Event `FailedToBindNodePort` on the Service, and tried again when the Service changes.

A LoadBalancer with `externalTrafficPolicy: Local` also gets its `healthCheckNodePort` answered
on those addresses (`healthcheck.py`).

Traffic policies (kube-proxy's): `internalTrafficPolicy: Local` gives ClusterIP connections
this node's endpoints only (`nodeName`); `externalTrafficPolicy: Local` gives NodePort
connections from outside the node this node's endpoints only, while clients on the node itself
(a loopback or node address) reach every endpoint. None there: the connection is closed (UDP:
the datagram dropped). A proxy cannot keep a client's source address: the endpoint sees the
proxy's.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ipaddress
import itertools
import logging
import socket
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from podns.kube.client import Client
from podns.kube.events import EventRecorder
from podns.kube.informer import Informer
from podns.kube.resources import ENDPOINTSLICES, SERVICES
from podns.node.proxy.healthcheck import HealthReporter, HealthServer, health_checks
from podns.node.proxy.serviceports import (
    PROTOCOLS,
    cluster_ips,
    node_port_type,
    ready_backends,
    traffic_policies,
)
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
    """The endpoints of one Service port, rotated round-robin, and the traffic policy that says
    which of them a client may reach."""

    #: every endpoint that takes traffic
    addrs: list[tuple[str, int]] = field(default_factory=list)
    #: those on this node
    local: list[tuple[str, int]] = field(default_factory=list)
    #: the traffic policy of this listener is Local (internal for a ClusterIP listener, external
    #: for a NodePort one)
    local_only: bool = False
    #: a NodePort listener: clients on the node itself (`from_node`) reach every endpoint even
    #: when `local_only` (kube-proxy's short-circuit)
    external: bool = False
    from_node: Callable[[str | None], bool] = field(default=lambda _ip: False)
    _rr: itertools.count[int] = field(default_factory=itertools.count)

    def order(self, client: str | None = None) -> list[tuple[str, int]]:
        """Every backend `client` (its address; None: unknown) may reach, starting with the
        next one in turn."""
        pool = self.addrs
        if self.local_only and not (self.external and self.from_node(client)):
            pool = self.local
        if not pool:
            return []
        start = next(self._rr) % len(pool)
        return pool[start:] + pool[:start]


class _TCPListener:
    def __init__(self, backends: Backends) -> None:
        self.backends = backends
        self.server: asyncio.Server | None = None

    async def start(self, host: str, port: int, *, shared: bool = True) -> None:
        """Listen on host:port; `shared`: with SO_REUSEPORT (several agents of one cluster)."""
        self.server = await asyncio.start_server(self._handle, host, port, reuse_port=shared,
                                                 reuse_address=True)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        peer = writer.get_extra_info("peername")
        for host, port in self.backends.order(str(peer[0]) if peer else None):
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

    async def start(self, host: str, port: int, *, shared: bool = True) -> None:
        """Listen on host:port; `shared`: with SO_REUSEPORT (several agents of one cluster)."""
        loop = asyncio.get_running_loop()
        sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM)
        try:
            if shared:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind((host, port))
        except OSError:
            sock.close()
            raise
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
        order = self.backends.order(addr[0])
        if not order:
            return  # dropped: no endpoint this client may reach
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


#: what a listener serves: a cluster IP's port, or a node address's node port
CLUSTER, NODE = "cluster", "node"


@dataclass(eq=False)
class _Serving:
    """One listener and what it serves."""

    listener: _Listener
    backends: Backends
    service: str  # the Service's key
    port_name: str
    kind: str  # CLUSTER or NODE


class ServiceProxy:
    """Listens on every Service's cluster IP and ports (and node ports); see the module
    docstring."""

    def __init__(self, client: Client, serves: Callable[[str], bool] | None = None, *,
                 node: str | None = None, node_addrs: Sequence[str] = ()) -> None:
        """`serves(cluster_ip)` says which cluster IPs this proxy listens on (None: all).
        `node`: this node's name (the endpoints of a traffic policy Local are those with this
        `nodeName`; None: no endpoint is local). `node_addrs`: where node ports are listened on
        (empty: node ports are not served here, e.g. the kernel proxier serves them). A node
        port that cannot be bound is evented as `podns-proxy` of `node` (None: logged only)."""
        self.client = client
        self.serves = serves
        self.node = node
        self.node_addrs = tuple(dict.fromkeys(node_addrs))
        self.events = EventRecorder(client, "podns-proxy", host=node) if node else None
        self.services = Informer(client, SERVICES, name="proxy:services")
        self.slices = Informer(client, ENDPOINTSLICES, name="proxy:endpointslices")
        self.slices.add_index("service", lambda s: [
            f"{s.get('metadata', {}).get('namespace')}/"
            f"{(s.get('metadata', {}).get('labels') or {}).get(SERVICE_NAME_LABEL, '')}"])
        #: (ip, port, protocol) -> what listens there
        self.listeners: dict[tuple[str, int, str], _Serving] = {}
        self.unbindable: set[tuple[str, int, str]] = set()
        #: (Service uid, address) of the node ports already reported as not bindable
        self._reported: set[tuple[str, tuple[str, int, str]]] = set()
        self._pending: set[asyncio.Task[None]] = set()
        #: health check node ports (on the node addresses, with the node ports)
        self.health = HealthServer(self.node_addrs, on_unbindable=HealthReporter(
            self.events, node or "", self.services.get)) if self.node_addrs and node else None
        self._health_dirty = asyncio.Event()
        self._health_task: asyncio.Task[None] | None = None

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
        if self.health is not None:
            await self._sync_health()
            self._health_task = asyncio.get_running_loop().create_task(
                self._health_loop(), name="proxy:health-check-node-ports")

    async def _sync_health(self) -> None:
        """Serve the health check node ports the caches call for now."""
        if self.health is not None and self.node is not None:
            self._health_dirty.clear()
            slices = self.slices
            await self.health.sync(health_checks(
                self.services.list(), lambda svc: slices.by_index("service", object_key(svc)), self.node))

    async def _health_loop(self) -> None:
        while True:
            await self._health_dirty.wait()
            await self._sync_health()

    async def settle(self) -> None:
        """Wait until listeners being opened or closed are done (tests, start-up)."""
        while self._pending:
            await asyncio.gather(*list(self._pending), return_exceptions=True)

    async def stop(self) -> None:
        await self.services.stop()
        await self.slices.stop()
        if self._health_task is not None:
            self._health_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._health_task
        if self.health is not None:
            await self.health.stop()
        await self.settle()
        for serving in self.listeners.values():
            await serving.listener.stop()
        self.listeners.clear()
        if self.events is not None:
            await self.events.stop()

    def from_node(self, ip: str | None) -> bool:
        """Whether a client at `ip` is on this node (a loopback or node address)."""
        if not ip:
            return False
        try:
            addr = ipaddress.ip_address(ip.split("%", 1)[0])
        except ValueError:
            return False
        mapped = getattr(addr, "ipv4_mapped", None)
        addr = mapped or addr
        return addr.is_loopback or str(addr) in self.node_addrs

    # -- event handling: synchronous table updates, async socket work -------------------------

    def _on_slice(self, sl: Obj) -> None:
        self._health_dirty.set()
        meta = sl.get("metadata", {})
        svc = (meta.get("labels") or {}).get(SERVICE_NAME_LABEL)
        if svc:
            self._refresh_backends(join_key(str(meta.get("namespace") or ""), svc))

    def _refresh_backends(self, svc_key: str) -> None:
        slices = self.slices.by_index("service", svc_key)
        for (_ip, _port, proto), serving in self.listeners.items():
            if serving.service == svc_key:
                serving.backends.addrs = ready_backends(slices, serving.port_name, proto)
                serving.backends.local = (ready_backends(slices, serving.port_name, proto, node=self.node)
                                          if self.node is not None else [])

    def _wanted(self, svc: Obj) -> dict[tuple[str, int, str], tuple[str, str]]:
        """(ip, port, protocol) -> (port name, CLUSTER or NODE) of every listener `svc` needs."""
        spec = svc.get("spec") or {}
        wanted: dict[tuple[str, int, str], tuple[str, str]] = {}
        ports = [p for p in spec.get("ports") or []
                 if (p.get("protocol") or "TCP") in PROTOCOLS and p.get("port")]
        for ip in cluster_ips(svc):
            if self.serves is not None and not self.serves(ip):
                continue
            for p in ports:
                wanted[(ip, int(p["port"]), p.get("protocol") or "TCP")] = (p.get("name") or "", CLUSTER)
        if node_port_type(svc) and cluster_ips(svc):
            for addr in self.node_addrs:
                for p in ports:
                    if p.get("nodePort"):
                        wanted.setdefault((addr, int(p["nodePort"]), p.get("protocol") or "TCP"),
                                          (p.get("name") or "", NODE))
        return wanted

    def _on_service(self, svc: Obj) -> None:
        self._health_dirty.set()
        key = object_key(svc)
        current = self.services.get(key)
        wanted = self._wanted(current) if current is not None else {}
        internal_local, external_local = traffic_policies(current) if current is not None else (False, False)
        for addr, serving in list(self.listeners.items()):
            if serving.service == key and (addr not in wanted or wanted[addr][1] != serving.kind):
                del self.listeners[addr]
                self._spawn(serving.listener.stop())
        for addr, (port_name, kind) in wanted.items():
            found = self.listeners.get(addr)
            if found is None:
                backends = Backends(external=kind == NODE, from_node=self.from_node)
                new: _Listener = _TCPListener(backends) if addr[2] == "TCP" else _UDPListener(backends)
                serving = self.listeners[addr] = _Serving(new, backends, key, port_name, kind)
                self._spawn(self._listen(addr, serving))
            else:
                serving = found
            serving.service, serving.port_name = key, port_name
            serving.backends.local_only = internal_local if kind == CLUSTER else external_local
        self._refresh_backends(key)

    async def _listen(self, addr: tuple[str, int, str], serving: _Serving) -> None:
        try:
            await serving.listener.start(addr[0], addr[1], shared=serving.kind == CLUSTER)
            self.unbindable.discard(addr)
        except OSError as exc:
            if serving.kind == NODE:
                self._node_port_unbindable(addr, serving, exc)
            else:
                # warn once per agent: with a non-loopback service CIDR every Service would repeat it
                level = logging.DEBUG if self.unbindable else logging.WARNING
                log.log(level, "proxy: cannot listen on %s:%d/%s (%s); in loopback mode the service "
                        "CIDR must be a loopback range (e.g. --service-cidr 127.96.0.0/16)",
                        addr[0], addr[1], addr[2], exc)
                self.unbindable.add(addr)
            if self.listeners.get(addr) is serving:  # tried again when the Service changes
                del self.listeners[addr]

    def _node_port_unbindable(self, addr: tuple[str, int, str], serving: _Serving, exc: OSError) -> None:
        """Say (log and Warning Event on the Service, once per Service and address) that a node
        port cannot be listened on."""
        svc = self.services.get(serving.service)
        seen = (str(((svc or {}).get("metadata") or {}).get("uid") or serving.service), addr)
        if seen in self._reported:
            return
        self._reported.add(seen)
        why = exc.strerror or str(exc)
        if exc.errno == errno.EADDRINUSE:
            why += ": another process holds the port"
        message = (f"node {self.node or ''}: cannot listen on {addr[0]}:{addr[1]}/{addr[2]} for "
                   f"nodePort {addr[1]} ({why}); it is not served on this address (give the "
                   "Service another nodePort)")
        log.warning("proxy: Service %s: %s", serving.service, message)
        if self.events is not None and svc is not None:
            self.events.event({"kind": "Service", "apiVersion": "v1", **svc}, "Warning",
                              "FailedToBindNodePort", message)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)
