"""`podns.node.routes.plan`: which peer gets which route (host-gw, vxlan, same machine), and which
bad input gets none and an error (pure: no I/O)."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest

from podns.node.routes import Reach, plan

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
