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
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

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
    """One route to a peer's pod CIDR (IPv4 or IPv6): `<cidr> via <via> dev <dev>`.

    `peer_ip` is where the packets go on the machines' network: the peer's InternalIP of the
    CIDR's family (host-gw), or its IPv4 InternalIP, the VXLAN tunnel's far end (vxlan, both
    families). `via` is the next hop: host-gw the peer's address; vxlan the peer's VXLAN device,
    its IPv4 CIDR's network address for IPv4 and `vtep_ll()` of it for IPv6."""

    node: str
    cidr: str
    peer_ip: str
    backend: str  # "host-gw" or "vxlan"
    dev: str
    via: str


@dataclass(slots=True)
class Plan:
    routes: dict[str, Route]  # cidr -> route
    local: list[str]  # nodes on this machine (no route needed)
    errors: list[str]


def vtep_ll(cidr4: str) -> str:
    """The IPv6 link-local address of a node's VXLAN device: `fe80::` followed by the 32 bits of
    its IPv4 pod CIDR's network address (`fe80::af4:100` for 10.244.1.0/24), the address its IPv4
    side already holds. Derived, never published: every node computes every peer's from its Node,
    and two nodes never share one (their IPv4 CIDRs do not overlap)."""
    v4 = ipaddress.IPv4Network(cidr4, strict=False).network_address
    return str(ipaddress.IPv6Address(int(ipaddress.IPv6Address("fe80::")) | int(v4)))


def _internal_ips(node: Obj) -> dict[int, str]:
    """The node's first InternalIP of each family (4 -> address, 6 -> address)."""
    out: dict[int, str] = {}
    for a in (node.get("status") or {}).get("addresses") or []:
        if a.get("type") == "InternalIP" and a.get("address"):
            with contextlib.suppress(ValueError):
                out.setdefault(ipaddress.ip_address(str(a["address"])).version, str(a["address"]))
    return out


def _pod_cidrs(node: Obj) -> dict[int, str]:
    """The node's pod CIDR of each family as written (from `spec.podCIDRs`, any position, else
    `spec.podCIDR`); a malformed entry is returned under 0 (for the error)."""
    spec = node.get("spec") or {}
    raw = [str(c) for c in spec.get("podCIDRs") or []]
    if not raw and spec.get("podCIDR"):
        raw = [str(spec["podCIDR"])]
    out: dict[int, str] = {}
    for cidr in raw:
        try:
            out.setdefault(ipaddress.ip_network(cidr, strict=False).version, cidr)
        except ValueError:
            out.setdefault(0, cidr)
    return out


def _overlaps(cidrs: dict[str, Network], mine: Network | None, host_nets: list[Network],
              errors: list[str]) -> set[str]:
    """The peers (of one family) whose CIDR overlaps this node's, another peer's or a network of
    this machine; each overlap is added to `errors`."""
    bad: set[str] = set()
    names = list(cidrs)
    for i, a in enumerate(names):
        if mine is not None and cidrs[a].overlaps(mine):
            errors.append(f"node {a}: pod CIDR {cidrs[a]} overlaps this node's {mine}")
            bad.add(a)
        for b in names[i + 1:]:
            if cidrs[a].overlaps(cidrs[b]):
                errors.append(f"nodes {a} and {b}: pod CIDRs {cidrs[a]} and {cidrs[b]} overlap")
                bad |= {a, b}
        clash = [str(h) for h in host_nets if cidrs[a].overlaps(h)]
        if clash:
            errors.append(f"node {a}: pod CIDR {cidrs[a]} overlaps a network of this machine "
                          f"({', '.join(clash)})")
            bad.add(a)
    return bad


def plan(nodes: list[Obj], *, own: str, own_cidr: str, backend: str, lookup: Callable[[str], Reach],
         host_nets: list[Network], bridges: list[Network] | None = None,
         own_cidr6: str | None = None) -> Plan:
    """The routes this node needs to every other Node in `nodes`, and why any peer gets none.

    `lookup(ip)` says how this machine reaches `ip`; `host_nets` are this machine's own networks
    (no pod CIDR may overlap one); `bridges` the pod CIDRs of the podns bridges of this machine
    (a peer whose InternalIP is local must have its bridge here; None: not checked).

    IPv4: every peer's IPv4 pod CIDR, host-gw or vxlan (module docstring). IPv6, only when this
    node has an IPv6 pod CIDR (`own_cidr6`; its pods have no IPv6 address otherwise): a peer's
    IPv6 pod CIDR goes host-gw via the peer's IPv6 InternalIP when both nodes have one and it is
    on a shared link (and the backend is not vxlan); otherwise through the IPv4 VXLAN tunnel
    (IPv6 inside, IPv4 outside) via the peer's VXLAN device's link-local address `vtep_ll`;
    `host-gw` without IPv6 InternalIPs is an error. The two ends of a pair take the same decision
    from the same facts, so both use the tunnel or neither does. Each family is judged on its own:
    an error drops that family's route of the peer, never a part of one. Peers without a pod
    CIDR and loopback-mode peers (127/8: their pods are local to their machine by design) are
    left out, not errors. Pure: no I/O."""
    errors: list[str] = []
    by_name = {str(n.get("metadata", {}).get("name", "")): n for n in nodes}
    own_ips = _internal_ips(by_name.get(own, {}))
    families: dict[int, dict[str, Network]] = {4: {}, 6: {}}
    for name in sorted(by_name):
        if name == own:
            continue
        got = _pod_cidrs(by_name[name])
        if 0 in got:
            errors.append(f"node {name}: pod CIDR {got[0]!r} is not a CIDR")
        for version in (4, 6):
            if version in got:
                net = ipaddress.ip_network(got[version], strict=False)
                if not net.is_loopback:
                    families[version][name] = net
    mine4 = ipaddress.ip_network(own_cidr, strict=False)
    mine6 = ipaddress.ip_network(own_cidr6, strict=False) if own_cidr6 else None
    bad4 = _overlaps(families[4], mine4, host_nets, errors)
    bad6 = _overlaps(families[6], mine6, host_nets, errors) if mine6 is not None else set(families[6])
    routes: dict[str, Route] = {}
    local: list[str] = []
    reach: dict[str, Reach] = {}  # peer -> how its IPv4 InternalIP is reached (when routable)
    for name, net in families[4].items():
        if name in bad4:
            continue
        addr = _internal_ips(by_name[name]).get(4, "")
        if not addr:
            errors.append(f"node {name}: no InternalIP address")
            continue
        path = lookup(addr)
        if path.kind == "local" and bridges is not None and not any(net == b for b in bridges):
            errors.append(f"node {name}: InternalIP {addr} is an address of this machine, but its pod "
                          f"CIDR {net} is not on a bridge here (is that node's --node-ip its address "
                          "on the network the nodes share?)")
            continue
        if path.kind == "unreachable":
            errors.append(f"node {name}: InternalIP {addr} is unreachable from this machine"
                          + (f" ({path.detail})" if path.detail else ""))
            continue
        reach[name] = path
        if path.kind == "local":
            local.append(name)
        elif path.kind == "gateway" and backend == "host-gw":
            errors.append(f"node {name}: InternalIP {addr} is behind a gateway ({path.detail}), not "
                          "on a link this machine shares: host-gw cannot route to it (use "
                          "--pod-network-backend vxlan or auto)")
        elif backend == "vxlan" or path.kind == "gateway":
            routes[str(net)] = Route(name, str(net), addr, "vxlan", VXLAN_DEV, str(net.network_address))
        else:
            routes[str(net)] = Route(name, str(net), addr, "host-gw", path.dev, addr)
    for name, net in families[6].items():
        if name in bad6 or name in local:
            continue
        route = _route6(name, net, by_name[name], own_v6=6 in own_ips, backend=backend,
                        lookup=lookup, reach4=reach.get(name), cidr4=families[4].get(name), errors=errors)
        if route is not None:
            routes[str(net)] = route
    return Plan(routes, local, errors)


def _route6(name: str, net: Network, node: Obj, *, own_v6: bool, backend: str,
            lookup: Callable[[str], Reach], reach4: Reach | None, cidr4: Network | None,
            errors: list[str]) -> Route | None:
    """The route to peer `name`'s IPv6 pod CIDR `net` (see `plan`), or None with an error added
    (or without one when the peer is on this machine: its bridge is here)."""
    ips = _internal_ips(node)
    addr6 = ips.get(6, "")
    if addr6 and own_v6 and backend != "vxlan":
        path = lookup(addr6)
        if path.kind == "local":
            return None  # same machine: its bridge (and its IPv6 route) is here
        if path.kind == "link":
            return Route(name, str(net), addr6, "host-gw", path.dev, addr6)
        if backend == "host-gw":
            why = (f"is behind a gateway ({path.detail})" if path.kind == "gateway"
                   else "is unreachable from this machine" + (f" ({path.detail})" if path.detail else ""))
            errors.append(f"node {name}: IPv6 InternalIP {addr6} {why}: host-gw cannot route its pod "
                          f"CIDR {net} (use --pod-network-backend vxlan or auto)")
            return None
    elif backend == "host-gw":
        whose = "that node has" if own_v6 else "this node has"
        errors.append(f"node {name}: host-gw routes the IPv6 pod CIDR {net} only via IPv6 InternalIPs "
                      f"and {whose} none (give both nodes --node-ip <IPv4>,<IPv6>, or use "
                      "--pod-network-backend auto or vxlan)")
        return None
    if reach4 is None or cidr4 is None:
        if ips.get(4) and cidr4 is not None:
            return None  # its IPv4 side is broken: that error is already listed
        errors.append(f"node {name}: its IPv6 pod CIDR {net} can go only through the VXLAN tunnel, "
                      "which needs an IPv4 InternalIP and an IPv4 pod CIDR on both nodes")
        return None
    return Route(name, str(net), ips[4], "vxlan", VXLAN_DEV, vtep_ll(str(cidr4)))


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


def _forwarding_on(versions: set[int]) -> None:
    """Switch IPv4 (and, for 6 in `versions`, IPv6) forwarding on in this namespace."""
    if 4 in versions:
        path = Path("/proc/sys/net/ipv4/ip_forward")
        if path.read_text().strip() != "1":
            path.write_text("1\n")
            log.info("pod network: IPv4 forwarding switched on (routes to other nodes' pods)")
    if 6 in versions:
        path = Path("/proc/sys/net/ipv6/conf/all/forwarding")
        if path.read_text().strip() != "1":
            path.write_text("1\n")
            log.info("pod network: IPv6 forwarding switched on (routes to other nodes' pods; "
                     "links with accept_ra=1 stop taking router advertisements, see docs/pod-network.md)")


class Routes:
    """The routes of one node (see the module docstring). `report(status, reason, message)` is
    called with the `NetworkUnavailable` condition whenever it changes."""

    def __init__(self, client: Client, *, node: str, node_ip: str, cidr: str, backend: str,
                 state_dir: Path, report: Callable[[str, str, str], None], cidr6: str | None = None) -> None:
        """`node_ip`: this node's IPv4 InternalIP (the VXLAN device's local end); `cidr`, `cidr6`:
        this node's IPv4 pod CIDR and, dual-stack, its IPv6 one (then IPv6 routes are kept too)."""
        if backend not in BACKENDS:
            raise ValueError(f"pod network backend {backend!r}: not one of {', '.join(BACKENDS)}")
        self.client = client
        self.node = node
        self.node_ip = node_ip
        self.cidr = str(ipaddress.ip_network(cidr, strict=False))
        self.cidr6 = str(ipaddress.ip_network(cidr6, strict=False)) if cidr6 else None
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
                 host_nets=host_nets, bridges=bridges, own_cidr6=self.cidr6)
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
            _forwarding_on({4} | {ipaddress.ip_network(c).version for c in p.routes}
                           | ({6} if p.local and self.cidr6 else set()))
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
        family = "-6" if ":" in route.cidr else "-4"
        # IPv4 over VXLAN: the peer's device address is not on a subnet of ours (onlink); IPv6:
        # its link-local address is, on the device
        onlink = ["onlink"] if route.backend == "vxlan" and family == "-4" else []
        netns.ip(family, "route", "replace", route.cidr, "via", route.via, "dev", route.dev, *onlink,
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
            if self.cidr6:  # IPv6 pods' traffic rides the same tunnel, next hop this address
                netns.ip("-6", "addr", "add", f"{vtep_ll(self.cidr)}/64", "dev", VXLAN_DEV, "nodad")
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
