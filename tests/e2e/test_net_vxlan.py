"""Pods across machines on different subnets (VXLAN): machine a on one LAN, machines b and c on
another, a router between them (`tests/netsim.py`); `podns up --pod-network netns` on a, `podns
node` on b (backend auto) and on c (backend host-gw).

Proves: pod to pod both ways between a and b through the kernel's VXLAN device (routes via
`podns-vxlan`, one FDB entry per peer), a pod on b resolving `db-0.db-service` and connecting to it
on a; c, told to use host-gw, refuses the peer behind the router (NetworkUnavailable True, no
route) but routes its LAN neighbour b; a node that leaves takes its routes and FDB entries with it."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e._machines import (
    apply,
    db,
    network_condition,
    pod,
    pod_cidr,
    podns_routes,
    ready_ip,
    talk,
    wait,
)
from tests.netsim import ControlPlane, Lab, Machine, needs_root, podns_node, podns_up

pytestmark = [pytest.mark.e2e, pytest.mark.netns, pytest.mark.timeout(240), needs_root]


class Cluster:
    def __init__(self, cp: ControlPlane, a: Machine, b: Machine, c: Machine,
                 node_b: subprocess.Popen[bytes], work: Path) -> None:
        self.cp, self.a, self.b, self.c, self.node_b, self.work = cp, a, b, c, node_b, work


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    work = tmp_path_factory.mktemp("vxlan")
    with Lab() as lab:
        lan1, lan2 = lab.lan("lan1", "192.168.81.0/24"), lab.lan("lan2", "192.168.82.0/24")
        lab.router("r", lan1, lan2)
        a, b, c = lab.machine("a", lan1), lab.machine("b", lan2), lab.machine("c", lan2)
        cp = podns_up(a, work)
        node_b = podns_node(b, cp, work)
        # machine c already routes 10.244.2.0/24 (what node IPAM will give it): c must pick another
        c.ip("route", "add", "10.244.2.0/24", "via", str(lan2.gateway))
        podns_node(c, cp, work, "--pod-network-backend", "host-gw")
        yield Cluster(cp, a, b, c, node_b, work)
    assert lab.leftovers() == []


def fdb_peers(m: Machine) -> set[str]:
    """The VXLAN device's flood entries (one per peer) on machine `m`."""
    out = m.run("bridge", "-j", "fdb", "show", "dev", "podns-vxlan")
    if out.returncode != 0:
        return set()
    return {str(e["dst"]) for e in json.loads(out.stdout or "[]") if e.get("mac") == "00:00:00:00:00:00"}


def test_pods_reach_each_other_through_vxlan(cluster: Cluster) -> None:
    """given pods on a and b (different subnets): each reaches the other's server by pod IP, and
    a pod on b resolves db-0.db-service (on a) and connects to it; the routes go via podns-vxlan."""
    cp, a, b = cluster.cp, cluster.a, cluster.b
    apply(cp, *db("a"), pod("srv-b", "b"), pod("cli-a", "a", serve=False), pod("cli-b", "b", serve=False))
    names = ("db-0", "srv-b", "cli-a", "cli-b")
    ips = {n: wait(lambda n=n: ready_ip(cp, n), 90, f"{n} Ready") for n in names}
    assert wait(lambda: talk(cp, "cli-a", ips["srv-b"]), 30, "a -> b by pod IP") == "srv-b"
    assert wait(lambda: talk(cp, "cli-b", ips["db-0"]), 30, "b -> a by pod IP") == "db-0"
    assert wait(lambda: talk(cp, "cli-b", "db-0.db-service"), 30, "b -> db-0.db-service") == "db-0"
    cidr_a, cidr_b = pod_cidr(cp, "a"), pod_cidr(cp, "b")
    route = podns_routes(a)[cidr_b]
    assert (route["dev"], route["gateway"]) == ("podns-vxlan", cidr_b.split("/")[0]), route
    assert podns_routes(b)[cidr_a]["dev"] == "podns-vxlan"
    assert b.addr in fdb_peers(a) and a.addr in fdb_peers(b)
    cond = wait(lambda: network_condition(cp, "b"), 30, "b's NetworkUnavailable")
    assert (cond["status"], cond["reason"]) == ("False", "RouteCreated")
    assert "a (vxlan)" in cond["message"], cond


def test_assigned_cidr_overlapping_the_machine_is_replaced(cluster: Cluster) -> None:
    """node IPAM gave a, b, c 10.244.0-2.0/24 in turn; machine c has a route over 10.244.2.0/24, so
    c's agent chose the next free block itself, recorded it in its Node and said why."""
    cp = cluster.cp
    assert [pod_cidr(cp, n) for n in "abc"] == ["10.244.0.0/24", "10.244.1.0/24", "10.244.3.0/24"]
    log = (cluster.work / "c-node.log").read_text()
    assert "the assigned pod CIDR 10.244.2.0/24 is not usable on this machine" in log, log[-3000:]


def test_host_gw_refuses_a_peer_behind_a_router(cluster: Cluster) -> None:
    """node c (backend host-gw) routes b (same LAN) but not a (behind the router): no half route,
    NetworkUnavailable True naming a and the way out."""
    cp, c = cluster.cp, cluster.c
    cond = wait(lambda: (x := network_condition(cp, "c")) and x["status"] == "True" and x, 30,
                "c's condition")
    assert cond["reason"] == "NoRouteCreated"
    assert f"node a: InternalIP {cluster.a.addr} is behind a gateway" in cond["message"], cond
    routes = podns_routes(c)
    assert pod_cidr(cp, "a") not in routes and routes[pod_cidr(cp, "b")]["gateway"] == cluster.b.addr
    assert c.run("ip", "link", "show", "podns-vxlan").returncode != 0


def test_routes_and_fdb_go_with_the_node(cluster: Cluster) -> None:
    """b stopped cleanly: no podns route, no VXLAN device on b; Node b deleted: a's route and FDB
    entry for b go (c's stay)."""
    cp, a, b = cluster.cp, cluster.a, cluster.b
    cidr_b = pod_cidr(cp, "b")
    assert b.stop(cluster.node_b) == 0
    assert podns_routes(b) == {} and b.run("ip", "link", "show", "podns-vxlan").returncode != 0
    cp.kubectl("delete", "node", "b", "--wait=false")
    wait(lambda: cidr_b not in podns_routes(a), 30, "a's route to b removed")
    assert fdb_peers(a) == {cluster.c.addr}  # c, behind the router too, is still a peer of a
