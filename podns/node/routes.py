"""Routes between nodes in namespace mode: every other node's pod CIDR, via host-gw or VXLAN.

Each node agent with `--pod-network netns` watches the Nodes and keeps, in its own network
namespace (the machine's), one route per other node's `spec.podCIDR`:

- **host-gw** (flannel's host-gw, Calico without BGP): `<peer CIDR> via <peer InternalIP>` when the
  peer's InternalIP is on a link this machine shares (no gateway on the way);
- **vxlan**: when it is not, the pods' packets are encapsulated by the kernel (`ip link add
  podns-vxlan type vxlan`, VNI 1, UDP 8472 as flannel): the device holds this node's CIDR's network
  address (/32), each peer gets an all-zeros FDB entry (`bridge fdb append 00:00:00:00:00:00 dst
  <peer>`: ARP for the peer's device is sent to every peer and the answer is learned) and the
  route `<peer CIDR> via <peer CIDR's network address> dev podns-vxlan onlink`;
- **same machine**: a peer whose InternalIP is an address of this namespace (several agents on one
  host) needs no route: its bridge's own route is already here.

`--pod-network-backend auto` (default) chooses per peer; `host-gw` refuses a peer behind a gateway;
`vxlan` encapsulates every peer on another machine. IP forwarding is switched on in the namespace
once a peer needs it (a node that stays alone changes nothing).

Plan, then apply (STYLE 2.7.2): `plan()` is pure (Nodes + what this machine's routing table says
about each peer address -> routes and errors); `Routes.apply()` makes the table match: it replaces
the routes of the plan and deletes every route it programmed earlier that the plan no longer has
(a Node deleted, its CIDR or address changed). A peer with bad input (no or malformed pod CIDR, a
CIDR overlapping this node's, another peer's or a network of this machine, an InternalIP that this
machine cannot reach, or one behind a gateway with `host-gw`) gets no route at all, and the errors
become this Node's `NetworkUnavailable` condition (True, reason `NoRouteCreated`, the errors as the
message); False with `RouteCreated` when every peer is routed. Every route is tagged `proto 158`
and listed in `<data dir>/routes.json`, so a restarted agent removes what a crashed one left; a
clean `stop()` removes all of them and the VXLAN device.

Blocking `ip` calls run in a worker thread; `ip` failures are reported in the condition, never
raised out of the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import os
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from podns.kube.client import Client
from podns.kube.informer import Informer
from podns.kube.resources import NODES
from podns.node import netns

log = logging.getLogger(__name__)
Obj = dict[str, Any]

BACKENDS = ("auto", "host-gw", "vxlan")
ROUTE_PROTO = netns.ROUTE_PROTO
VXLAN_DEV = "podns-vxlan"
#: flannel's VNI and the Linux VXLAN port (IANA's 4789 is often taken by other overlays)
VXLAN_ID = "1"
VXLAN_PORT = "8472"
#: re-check the table this often even without Node events (a route removed by hand comes back)
RESYNC = 30.0
ZERO_MAC = "00:00:00:00:00:00"


@dataclass(frozen=True, slots=True)
class Reach:
    """What this machine's routing table says about a peer's InternalIP (`ip route get`)."""

    kind: str  # "local" (an address of this namespace), "link" (no gateway), "gateway", "unreachable"
    dev: str = ""
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Route:
    """One route to a peer's pod CIDR."""

    node: str
    cidr: str
    peer_ip: str
    backend: str  # "host-gw" or "vxlan"
    dev: str

    @property
    def via(self) -> str:
        """host-gw: the peer's address; vxlan: the peer's VXLAN device (its CIDR's network address)."""
        if self.backend == "host-gw":
            return self.peer_ip
        return str(ipaddress.ip_network(self.cidr).network_address)


@dataclass(slots=True)
class Plan:
    routes: dict[str, Route]  # cidr -> route
    local: list[str]  # nodes on this machine (no route needed)
    errors: list[str]


def _internal_ip(node: Obj) -> str:
    for a in (node.get("status") or {}).get("addresses") or []:
        if a.get("type") == "InternalIP" and a.get("address"):
            return str(a["address"])
    return ""


def _ipv4_cidr(node: Obj) -> str:
    """The node's IPv4 pod CIDR as written (from `spec.podCIDRs`, any position, else
    `spec.podCIDR`): "" when it has none; a malformed entry is returned as is (for the error)."""
    spec = node.get("spec") or {}
    raw = [str(c) for c in spec.get("podCIDRs") or []]
    if not raw and spec.get("podCIDR"):
        raw = [str(spec["podCIDR"])]
    for cidr in raw:
        try:
            if ipaddress.ip_network(cidr, strict=False).version == 4:
                return cidr
        except ValueError:
            return cidr
    return ""


def plan(nodes: list[Obj], *, own: str, own_cidr: str, backend: str, lookup: Callable[[str], Reach],
         host_nets: list[ipaddress.IPv4Network | ipaddress.IPv6Network],
         bridges: list[ipaddress.IPv4Network | ipaddress.IPv6Network] | None = None) -> Plan:
    """The routes this node needs to every other Node in `nodes`, and why any peer gets none.

    `lookup(ip)` says how this machine reaches `ip`; `host_nets` are this machine's own networks
    (no pod CIDR may overlap one); `bridges` the pod CIDRs of the podns bridges of this machine
    (a peer whose InternalIP is local must have its bridge here; None: not checked). Peers
    without an IPv4 pod CIDR (IPv6 only: routes are IPv4) and loopback-mode peers (127/8: their
    pods are local to their machine by design) are left out, not errors. Pure: no I/O."""
    mine = ipaddress.ip_network(own_cidr, strict=False)
    errors: list[str] = []
    cidrs: dict[str, ipaddress.IPv4Network] = {}
    for node in sorted(nodes, key=lambda n: str(n.get("metadata", {}).get("name", ""))):
        name = str(node.get("metadata", {}).get("name", ""))
        if name == own:
            continue
        raw = _ipv4_cidr(node)
        if not raw:
            continue  # not allocated yet, or IPv6 only: nothing to route (not an error)
        try:
            net = ipaddress.ip_network(raw, strict=False)
        except ValueError:
            errors.append(f"node {name}: pod CIDR {raw!r} is not a CIDR")
            continue
        if isinstance(net, ipaddress.IPv4Network) and not net.is_loopback:
            cidrs[name] = net
    overlapping: set[str] = set()
    names = list(cidrs)
    for i, a in enumerate(names):
        if cidrs[a].overlaps(mine):
            errors.append(f"node {a}: pod CIDR {cidrs[a]} overlaps this node's {mine}")
            overlapping.add(a)
        for b in names[i + 1:]:
            if cidrs[a].overlaps(cidrs[b]):
                errors.append(f"nodes {a} and {b}: pod CIDRs {cidrs[a]} and {cidrs[b]} overlap")
                overlapping |= {a, b}
        clash = [str(h) for h in host_nets if cidrs[a].overlaps(h)]
        if clash:
            errors.append(f"node {a}: pod CIDR {cidrs[a]} overlaps a network of this machine "
                          f"({', '.join(clash)})")
            overlapping.add(a)
    by_name = {str(n.get("metadata", {}).get("name", "")): n for n in nodes}
    routes: dict[str, Route] = {}
    local: list[str] = []
    for name, net in cidrs.items():
        if name in overlapping:
            continue
        addr = _internal_ip(by_name[name])
        if not addr:
            errors.append(f"node {name}: no InternalIP address")
            continue
        path = lookup(addr)
        if path.kind == "local" and bridges is not None and not any(net == b for b in bridges):
            errors.append(f"node {name}: InternalIP {addr} is an address of this machine, but its pod "
                          f"CIDR {net} is not on a bridge here (is that node's --node-ip its address "
                          "on the network the nodes share?)")
        elif path.kind == "local":
            local.append(name)
        elif path.kind == "unreachable":
            errors.append(f"node {name}: InternalIP {addr} is unreachable from this machine"
                          + (f" ({path.detail})" if path.detail else ""))
        elif path.kind == "gateway" and backend == "host-gw":
            errors.append(f"node {name}: InternalIP {addr} is behind a gateway ({path.detail}), not "
                          "on a link this machine shares: host-gw cannot route to it (use "
                          "--pod-network-backend vxlan or auto)")
        elif backend == "vxlan" or path.kind == "gateway":
            routes[str(net)] = Route(name, str(net), addr, "vxlan", VXLAN_DEV)
        else:
            routes[str(net)] = Route(name, str(net), addr, "host-gw", path.dev)
    return Plan(routes, local, errors)


# -- the machine's side (blocking `ip` calls) --------------------------------------------------


def lookup(addr: str) -> Reach:
    """How this namespace reaches `addr` (`ip -j route get`)."""
    try:
        out = netns.ip("-j", "route", "get", addr)
    except netns.NetnsError as exc:
        return Reach("unreachable", detail=str(exc).split(": ", 1)[-1])
    try:
        got = (json.loads(out) or [{}])[0]
    except (ValueError, IndexError):
        return Reach("unreachable", detail=f"ip route get {addr}: unreadable answer")
    if got.get("type") == "local" or got.get("dev") == "lo":
        return Reach("local", dev="lo")
    if got.get("type") in ("unreachable", "prohibit", "blackhole"):
        return Reach("unreachable", detail=str(got.get("type")))
    if got.get("gateway"):
        return Reach("gateway", dev=str(got.get("dev", "")), detail=f"via {got['gateway']}")
    return Reach("link", dev=str(got.get("dev", "")))


def _forwarding_on() -> None:
    path = Path("/proc/sys/net/ipv4/ip_forward")
    if path.read_text().strip() != "1":
        path.write_text("1\n")
        log.info("pod network: IPv4 forwarding switched on (routes to other nodes' pods)")


class Routes:
    """The routes of one node (see the module docstring). `report(status, reason, message)` is
    called with the `NetworkUnavailable` condition whenever it changes."""

    def __init__(self, client: Client, *, node: str, node_ip: str, cidr: str, backend: str,
                 state_dir: Path, report: Callable[[str, str, str], None]) -> None:
        if backend not in BACKENDS:
            raise ValueError(f"pod network backend {backend!r}: not one of {', '.join(BACKENDS)}")
        self.client = client
        self.node = node
        self.node_ip = node_ip
        self.cidr = str(ipaddress.ip_network(cidr, strict=False))
        self.backend = backend
        self.report = report
        self.state = state_dir / "routes.json"
        #: cidr -> route, as programmed in the table now
        self.programmed: dict[str, Route] = {}
        self.vxlan_peers: set[str] = set()
        self.informer: Informer | None = None
        self._kick = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._condition: tuple[str, str, str] | None = None
        self.last_plan: Plan | None = None

    async def start(self) -> None:
        """Watch the Nodes, program the first plan, keep following."""
        await asyncio.to_thread(self._forget_leftovers)
        self.informer = Informer(self.client, NODES, name=f"node:{self.node}:routes")
        self.informer.add_handler(on_add=lambda _o: self._kick.set(),
                                  on_update=lambda _o, _n: self._kick.set(),
                                  on_delete=lambda _o: self._kick.set())
        self.informer.start()
        await self.informer.wait_synced()
        await self.sync()
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"routes:{self.node}")

    async def stop(self) -> None:
        """Remove every route, FDB entry and the VXLAN device this node made."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self.informer is not None:
            await self.informer.stop()
        await asyncio.to_thread(self._teardown)

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._kick.wait(), RESYNC)
            self._kick.clear()
            await self.sync()

    async def sync(self) -> None:
        """Plan from the Node cache and apply; report the condition if it changed."""
        assert self.informer is not None
        nodes = self.informer.list()
        try:
            result = await asyncio.to_thread(self._sync_blocking, nodes)
        except (netns.NetnsError, OSError) as exc:
            result = Plan({}, [], [f"programming routes: {exc}"])
        self.last_plan = result
        if result.errors:
            cond = ("True", "NoRouteCreated", "; ".join(result.errors))
        else:
            routed = [f"{r.node} ({r.backend})" for r in result.routes.values()]
            routed += [f"{n} (same machine)" for n in result.local]
            cond = ("False", "RouteCreated", "routes to the pods of every node are programmed"
                    + (f": {', '.join(routed)}" if routed else " (no other node)"))
        if cond != self._condition:
            if result.errors:
                log.warning("node %s: pod network: %s", self.node, cond[2])
            self._condition = cond
            self.report(*cond)

    def _sync_blocking(self, nodes: list[Obj]) -> Plan:
        host_nets = netns.host_networks()
        bridges = netns.bridge_networks()
        p = plan(nodes, own=self.node, own_cidr=self.cidr, backend=self.backend, lookup=lookup,
                 host_nets=host_nets, bridges=bridges)
        self.apply(p)
        return p

    # -- applying a plan -------------------------------------------------------------------------

    def apply(self, p: Plan) -> None:
        """Make the table hold exactly the routes of `p` (of those this node programs). A route
        that fails is left out (and its error added to `p.errors`), never half made."""
        for cidr in [c for c in self.programmed if c not in p.routes or p.routes[c] != self.programmed[c]]:
            self._remove(self.programmed.pop(cidr))
        vx = {r.peer_ip for r in p.routes.values() if r.backend == "vxlan"}
        for peer in self.vxlan_peers - vx:
            _bridge("fdb", "del", ZERO_MAC, "dev", VXLAN_DEV, "dst", peer)
        self.vxlan_peers &= vx
        if not vx:
            self._delete_vxlan()
        if p.routes or p.local:
            _forwarding_on()
        for cidr, route in p.routes.items():
            if self.programmed.get(cidr) == route:
                continue
            try:
                self._add(route)
            except netns.NetnsError as exc:
                p.errors.append(f"node {route.node}: route to {cidr}: {exc}")
                continue
            self.programmed[cidr] = route
        self._save()

    def _add(self, route: Route) -> None:
        if route.backend == "vxlan":
            self._ensure_vxlan()
            if route.peer_ip not in self.vxlan_peers:
                _bridge("fdb", "append", ZERO_MAC, "dev", VXLAN_DEV, "dst", route.peer_ip, check=True)
                self.vxlan_peers.add(route.peer_ip)
            netns.ip("route", "replace", route.cidr, "via", route.via, "dev", VXLAN_DEV, "onlink",
                     "proto", ROUTE_PROTO)
        else:
            netns.ip("route", "replace", route.cidr, "via", route.via, "dev", route.dev,
                     "proto", ROUTE_PROTO)

    def _remove(self, route: Route) -> None:
        netns.ip("route", "del", route.cidr, "proto", ROUTE_PROTO, check=False)

    def _ensure_vxlan(self) -> None:
        if netns.ip_json("link", "show", "dev", VXLAN_DEV):
            return
        args = ["link", "add", VXLAN_DEV, "type", "vxlan", "id", VXLAN_ID, "local", self.node_ip,
                "dstport", VXLAN_PORT]
        dev = _dev_of(self.node_ip)
        if dev:
            args += ["dev", dev]  # the kernel then sizes the MTU: the link's less the headers
        netns.ip(*args)
        try:
            netns.ip("addr", "add", f"{ipaddress.ip_network(self.cidr).network_address}/32", "dev", VXLAN_DEV)
            netns.ip("link", "set", VXLAN_DEV, "up")
        except netns.NetnsError:
            self._delete_vxlan()
            raise

    def _delete_vxlan(self) -> None:
        if netns.ip_json("link", "show", "dev", VXLAN_DEV):
            netns.ip("link", "del", VXLAN_DEV, check=False)
        self.vxlan_peers.clear()

    def _teardown(self) -> None:
        for route in list(self.programmed.values()):
            self._remove(route)
        self.programmed.clear()
        self._delete_vxlan()
        self._save()

    # -- state (crash clean-up) --------------------------------------------------------------------

    def _save(self) -> None:
        with contextlib.suppress(OSError):
            self.state.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.state.with_suffix(".tmp")
            tmp.write_text(json.dumps({"routes": sorted(self.programmed)}))
            os.replace(tmp, self.state)

    def _forget_leftovers(self) -> None:
        """Remove the routes a previous run of this agent recorded (the plan adds back what is
        still wanted) and its VXLAN device."""
        try:
            old = json.loads(self.state.read_text()).get("routes") or []
        except (OSError, ValueError):
            old = []
        for cidr in old:
            netns.ip("route", "del", str(cidr), "proto", ROUTE_PROTO, check=False)
        self._delete_vxlan()
        self._save()


def _bridge(*args: str, check: bool = False) -> None:
    """`bridge args...` (iproute2's FDB tool); NetnsError when `check` and it fails."""
    try:
        out = subprocess.run(["bridge", *args], capture_output=True, text=True, timeout=netns.IP_TIMEOUT)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise netns.NetnsError(f"bridge {' '.join(args)}: {exc}") from exc
    if check and out.returncode != 0:
        raise netns.NetnsError(f"bridge {' '.join(args)}: {out.stderr.strip()}")


def _dev_of(addr: str) -> str:
    """The link holding address `addr` in this namespace ("" when none does)."""
    for link in netns.ip_json("addr"):
        for a in link.get("addr_info") or []:
            if a.get("local") == addr:
                return str(link.get("ifname", ""))
    return ""
