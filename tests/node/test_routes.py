"""`podns.node.routes.plan`: which peer gets which route (host-gw, vxlan, same machine), and which
bad input gets none and an error (pure: no I/O)."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest

from podns.node.routes import Reach, plan, vtep_ll

#: how the test machine reaches each address
PATHS = {"192.168.1.2": Reach("link", dev="eth0"), "192.168.1.3": Reach("link", dev="eth0"),
         "10.0.9.2": Reach("gateway", dev="eth0", detail="via 192.168.1.254"),
         "127.0.0.1": Reach("local", dev="lo"), "203.0.113.9": Reach("unreachable", detail="no route")}


def node(name: str, cidr: str | None, ip: str | None) -> dict[str, Any]:
    return {"metadata": {"name": name}, "spec": {"podCIDR": cidr} if cidr else {},
            "status": {"addresses": [{"type": "InternalIP", "address": ip}] if ip else []}}


def run(nodes: list[dict[str, Any]], backend: str = "auto", host: list[str] = ()) -> Any:  # type: ignore[assignment]
    return plan([node("me", "10.244.0.0/24", "192.168.1.1"), *nodes], own="me", own_cidr="10.244.0.0/24",
                backend=backend, lookup=PATHS.__getitem__,
                host_nets=[ipaddress.IPv4Network(h) for h in host],
                bridges=[ipaddress.IPv4Network("10.244.0.0/24"), ipaddress.IPv4Network("10.244.3.0/24")])


def test_auto_uses_host_gw_on_the_link_vxlan_behind_a_gateway_nothing_for_local() -> None:
    """given peers on the LAN, behind a router and on this machine: host-gw via the peer's
    address, vxlan via the peer's VXLAN address, no route for the local one; no error."""
    p = run([node("b", "10.244.1.0/24", "192.168.1.2"), node("c", "10.244.2.0/24", "10.0.9.2"),
             node("d", "10.244.3.0/24", "127.0.0.1"), node("e", None, "192.168.1.3")])
    assert p.errors == []
    assert {c: (r.backend, r.via, r.dev) for c, r in p.routes.items()} == {
        "10.244.1.0/24": ("host-gw", "192.168.1.2", "eth0"),
        "10.244.2.0/24": ("vxlan", "10.244.2.0", "podns-vxlan")}
    assert p.local == ["d"]


def test_ipv4_cidr_of_dual_stack_peers_routed_ipv6_only_and_loopback_peers_left_out() -> None:
    """given an IPv6-primary dual-stack peer, an IPv6-only one and a loopback-mode one: the first
    is routed by its IPv4 CIDR, the others get no route and no error."""
    dual = node("b", "fd00:1::/64", "192.168.1.2")
    dual["spec"]["podCIDRs"] = ["fd00:1::/64", "10.244.1.0/24"]
    p = run([dual, node("c", "fd00:2::/64", "192.168.1.3"), node("d", "127.1.0.0/16", "127.0.0.1")])
    assert (list(p.routes), p.errors, p.local) == (["10.244.1.0/24"], [], [])


def test_vxlan_backend_encapsulates_every_remote_peer() -> None:
    p = run([node("b", "10.244.1.0/24", "192.168.1.2")], backend="vxlan")
    assert [(r.backend, r.peer_ip) for r in p.routes.values()] == [("vxlan", "192.168.1.2")]


@pytest.mark.parametrize(("nodes", "backend", "host", "error"), [
    ([node("b", "10.244.0.128/25", "192.168.1.2")], "auto", [],
     "node b: pod CIDR 10.244.0.128/25 overlaps this node's 10.244.0.0/24"),
    ([node("b", "10.244.1.0/24", "192.168.1.2"), node("c", "10.244.1.0/25", "192.168.1.3")], "auto", [],
     "nodes b and c: pod CIDRs 10.244.1.0/24 and 10.244.1.0/25 overlap"),
    ([node("b", "10.244.1.0/24", "192.168.1.2")], "auto", ["10.244.1.0/26"],
     "node b: pod CIDR 10.244.1.0/24 overlaps a network of this machine (10.244.1.0/26)"),
    ([node("b", "10.244.1.0/24", "203.0.113.9")], "auto", [],
     "node b: InternalIP 203.0.113.9 is unreachable from this machine (no route)"),
    ([node("b", "10.244.1.0/24", None)], "auto", [], "node b: no InternalIP address"),
    ([node("b", "10.244.5.0/24", "127.0.0.1")], "auto", [],
     "node b: InternalIP 127.0.0.1 is an address of this machine, but its pod CIDR 10.244.5.0/24 is not "
     "on a bridge here (is that node's --node-ip its address on the network the nodes share?)"),
    ([node("b", "10.244.1.0/24", "10.0.9.2")], "host-gw", [],
     "node b: InternalIP 10.0.9.2 is behind a gateway (via 192.168.1.254), not on a link this machine "
     "shares: host-gw cannot route to it (use --pod-network-backend vxlan or auto)"),
], ids=["overlaps-own", "peers-overlap", "overlaps-host", "unreachable", "no-address", "local-no-bridge",
        "hostgw-gateway"])
def test_bad_input_gets_no_route_and_an_error(nodes: list[dict[str, Any]], backend: str, host: list[str],
                                              error: str) -> None:
    """given a peer with bad input, it gets no route (nor does a peer it overlaps) and the error
    names it; a good peer beside it is still routed."""
    p = run([*nodes, node("ok", "10.244.9.0/24", "192.168.1.3")], backend, host)
    assert p.errors == [error]
    assert list(p.routes) == ["10.244.9.0/24"]


# -- IPv6 (dual-stack nodes) ---------------------------------------------------------------------

PATHS6 = {**PATHS, "fd77::2": Reach("link", dev="eth0"), "fd77::3": Reach("link", dev="eth0"),
          "fd99::2": Reach("gateway", dev="eth0", detail="via fd77::fe")}


def node6(name: str, cidr: str, cidr6: str, ip: str, ip6: str | None = None) -> dict[str, Any]:
    n = node(name, cidr, ip)
    n["spec"]["podCIDRs"] = [cidr, cidr6]
    if ip6:
        n["status"]["addresses"].append({"type": "InternalIP", "address": ip6})
    return n


def run6(nodes: list[dict[str, Any]], backend: str = "auto", own_ip6: str | None = "fd77::1",
         host: list[str] = ()) -> Any:  # type: ignore[assignment]
    me = node6("me", "10.244.0.0/24", "fd00:10:244::/64", "192.168.1.1", own_ip6)
    return plan([me, *nodes], own="me", own_cidr="10.244.0.0/24", own_cidr6="fd00:10:244::/64",
                backend=backend, lookup=PATHS6.__getitem__,
                host_nets=[ipaddress.ip_network(h) for h in host],
                bridges=[ipaddress.IPv4Network("10.244.0.0/24"), ipaddress.IPv4Network("10.244.3.0/24")])


def test_vtep_link_local_address_is_the_ipv4_vtep_address() -> None:
    assert vtep_ll("10.244.1.0/24") == "fe80::af4:100"
    assert vtep_ll("10.244.255.0/24") != vtep_ll("10.244.254.0/24")


def test_ipv6_host_gw_via_the_peers_ipv6_internal_ip() -> None:
    """given dual-stack nodes that both have an IPv6 InternalIP on the shared link: the peer's
    IPv6 pod CIDR goes host-gw via its IPv6 address, beside its IPv4 route."""
    p = run6([node6("b", "10.244.1.0/24", "fd00:10:244:1::/64", "192.168.1.2", "fd77::2")])
    assert p.errors == []
    assert {c: (r.backend, r.via, r.dev, r.peer_ip) for c, r in p.routes.items()} == {
        "10.244.1.0/24": ("host-gw", "192.168.1.2", "eth0", "192.168.1.2"),
        "fd00:10:244:1::/64": ("host-gw", "fd77::2", "eth0", "fd77::2")}


@pytest.mark.parametrize(("peer_ip6", "own_ip6", "backend"), [
    (None, "fd77::1", "auto"), ("fd77::2", None, "auto"), ("fd77::2", "fd77::1", "vxlan"),
    ("fd99::2", "fd77::1", "auto"), (None, "fd77::1", "vxlan")],
    ids=["peer-v4-only", "self-v4-only", "vxlan-backend", "v6-behind-gateway", "vxlan-v4-only"])
def test_ipv6_rides_the_ipv4_vxlan_tunnel_without_a_shared_ipv6_link(
        peer_ip6: str | None, own_ip6: str | None, backend: str) -> None:
    """given a dual-stack peer that IPv6 host-gw cannot reach (either node without an IPv6
    InternalIP, the vxlan backend, or its IPv6 address behind a router): its IPv6 pod CIDR goes
    through the IPv4 VXLAN tunnel to its IPv4 InternalIP, next hop its device's link-local
    address; its IPv4 route is unchanged."""
    p = run6([node6("b", "10.244.1.0/24", "fd00:10:244:1::/64", "192.168.1.2", peer_ip6)], backend, own_ip6)
    assert p.errors == []
    r = p.routes["fd00:10:244:1::/64"]
    assert (r.backend, r.via, r.dev, r.peer_ip) == ("vxlan", "fe80::af4:100", "podns-vxlan", "192.168.1.2")
    assert p.routes["10.244.1.0/24"].backend == ("vxlan" if backend == "vxlan" else "host-gw")


def test_ipv6_not_routed_when_this_node_has_no_ipv6_pods() -> None:
    """given a single-stack IPv4 node: a dual-stack peer is routed by its IPv4 CIDR only."""
    p = run([node6("b", "10.244.1.0/24", "fd00:10:244:1::/64", "192.168.1.2", "fd77::2")])
    assert (list(p.routes), p.errors) == (["10.244.1.0/24"], [])


def test_same_machine_peer_gets_no_ipv6_route_either() -> None:
    p = run6([node6("d", "10.244.3.0/24", "fd00:10:244:3::/64", "127.0.0.1")])
    assert (p.routes, p.local, p.errors) == ({}, ["d"], [])


@pytest.mark.parametrize(("nodes", "backend", "host", "error"), [
    ([node6("b", "10.244.1.0/24", "fd00:10:244::/80", "192.168.1.2", "fd77::2")], "auto", [],
     "node b: pod CIDR fd00:10:244::/80 overlaps this node's fd00:10:244::/64"),
    ([node6("b", "10.244.1.0/24", "fd00:10:244:1::/64", "192.168.1.2", "fd77::2"),
      node6("c", "10.244.2.0/24", "fd00:10:244:1::/64", "192.168.1.3", "fd77::3")], "auto", [],
     "nodes b and c: pod CIDRs fd00:10:244:1::/64 and fd00:10:244:1::/64 overlap"),
    ([node6("b", "10.244.1.0/24", "fd00:10:244:1::/64", "192.168.1.2", "fd77::2")], "auto",
     ["fd00:10:244:1::/96"],
     "node b: pod CIDR fd00:10:244:1::/64 overlaps a network of this machine (fd00:10:244:1::/96)"),
    ([node6("b", "10.244.1.0/24", "fd00:10:244:1::/64", "192.168.1.2")], "host-gw", [],
     "node b: host-gw routes the IPv6 pod CIDR fd00:10:244:1::/64 only via IPv6 InternalIPs and that "
     "node has none (give both nodes --node-ip <IPv4>,<IPv6>, or use --pod-network-backend auto or vxlan)"),
    ([node6("b", "10.244.1.0/24", "fd00:10:244:1::/64", "192.168.1.2", "fd99::2")], "host-gw", [],
     "node b: IPv6 InternalIP fd99::2 is behind a gateway (via fd77::fe): host-gw cannot route its pod "
     "CIDR fd00:10:244:1::/64 (use --pod-network-backend vxlan or auto)"),
], ids=["overlaps-own", "peers-overlap", "overlaps-host", "hostgw-no-ipv6-address", "hostgw-v6-gateway"])
def test_bad_ipv6_input_drops_that_route_only(nodes: list[dict[str, Any]], backend: str, host: list[str],
                                               error: str) -> None:
    """given a peer with a bad IPv6 side: its IPv6 route is not made and the error names it;
    its IPv4 route and a good peer beside it (both families) are still routed."""
    ok = node6("ok", "10.244.9.0/24", "fd00:10:244:9::/64", "192.168.1.3", "fd77::3")
    p = run6([*nodes, ok], backend, host=host)
    assert p.errors == [error]
    assert "fd00:10:244:9::/64" in p.routes and "10.244.9.0/24" in p.routes
    assert not any(":" in c for c, r in p.routes.items() if r.node in ("b", "c"))
    assert all(c in p.routes for n in nodes for c in n["spec"]["podCIDRs"] if ":" not in c
               and n["metadata"]["name"] == "b")
