"""Pods across machines on one LAN (host-gw): two simulated machines (`tests/netsim.py`) on a bridge,
`podns up --pod-network netns` on machine a, `podns node` on machine b; real kubectl, real routes.

Proves the Kubernetes network model across machines: pod to pod both ways by pod IP, a pod on b
resolving `db-0.db-service` (cluster DNS through b's relay) and connecting to it on a; each node's
route to the other's pod CIDR via its InternalIP and `NetworkUnavailable=False`; a Node with an
overlapping CIDR gets no route and turns the condition True with the reason; a node that leaves
takes its routes with it (its own on a clean stop, the others' once its Node is deleted)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator

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
    def __init__(self, lab: Lab, cp: ControlPlane, a: Machine, b: Machine,
                 node_b: subprocess.Popen[bytes]) -> None:
        self.lab, self.cp, self.a, self.b, self.node_b = lab, cp, a, b, node_b


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    work = tmp_path_factory.mktemp("hostgw")
    with Lab() as lab:
        lan = lab.lan("lan", "192.168.77.0/24")
        a, b = lab.machine("a", lan), lab.machine("b", lan)
        cp = podns_up(a, work)
        node_b = podns_node(b, cp, work)
        # a second agent on machine a: a same-machine peer (no route, its bridge is local)
        podns_node(a, cp, work, name="a2")
        yield Cluster(lab, cp, a, b, node_b)
    assert lab.leftovers() == []


def test_pods_reach_each_other_and_dns_across_machines(cluster: Cluster) -> None:
    """given pods on machine a and machine b: each reaches the other's server by pod IP (both
    ways), and a pod on b resolves db-0.db-service (db-0 runs on a) and connects to it."""
    cp = cluster.cp
    apply(cp, *db("a"), pod("srv-b", "b"), pod("cli-a", "a", serve=False), pod("cli-b", "b", serve=False))
    names = ("db-0", "srv-b", "cli-a", "cli-b")
    ips = {n: wait(lambda n=n: ready_ip(cp, n), 90, f"{n} Ready") for n in names}
    # node IPAM: the controller cut both from the default cluster CIDR, a first (podns up's node)
    assert (pod_cidr(cp, "a"), pod_cidr(cp, "b")) == ("10.244.0.0/24", "10.244.1.0/24")
    assert wait(lambda: talk(cp, "cli-a", ips["srv-b"]), 30, "a -> b by pod IP") == "srv-b"
    assert wait(lambda: talk(cp, "cli-b", ips["db-0"]), 30, "b -> a by pod IP") == "db-0"
    assert wait(lambda: talk(cp, "cli-b", "db-0.db-service"), 30, "b -> db-0.db-service") == "db-0"
    got = cp.kubectl("exec", "cli-b", "--", "getent", "hosts", "db-0.db-service")
    assert got.stdout.split()[0] == ips["db-0"], got


def test_second_agent_on_one_machine_is_routed_too(cluster: Cluster) -> None:
    """given a second node agent a2 on machine a (same InternalIP, its own bridge and CIDR): its
    pod is reached from b (b routes a2's CIDR via a) and from a pod of node a (bridge to bridge);
    a and a2 need no route to each other and say so."""
    cp = cluster.cp
    apply(cp, pod("srv-a2", "a2"))
    ip = wait(lambda: ready_ip(cp, "srv-a2"), 90, "srv-a2 Ready")
    assert wait(lambda: ready_ip(cp, "cli-b") and ready_ip(cp, "cli-a"), 90, "clients Ready")
    assert wait(lambda: talk(cp, "cli-b", ip), 30, "b -> a2") == "srv-a2"
    assert wait(lambda: talk(cp, "cli-a", ip), 30, "a -> a2") == "srv-a2"
    assert podns_routes(cluster.b)[pod_cidr(cp, "a2")]["gateway"] == cluster.a.addr
    assert pod_cidr(cp, "a2") not in podns_routes(cluster.a)
    cond = wait(lambda: network_condition(cp, "a2"), 30, "a2's NetworkUnavailable")
    assert cond["status"] == "False" and "a (same machine)" in cond["message"], cond


def test_routes_via_internal_ip_and_condition(cluster: Cluster) -> None:
    """each machine routes the other's pod CIDR via the other's LAN address (host-gw, proto 158),
    and each Node says NetworkUnavailable=False (RouteCreated)."""
    cp, a, b = cluster.cp, cluster.a, cluster.b
    for here, there in ((a, b), (b, a)):
        cidr = pod_cidr(cp, there.name)
        routes = wait(lambda here=here, cidr=cidr: podns_routes(here).get(cidr) and podns_routes(here),
                      30, f"route on {here.name}")
        assert routes[cidr]["gateway"] == there.addr and routes[cidr]["dev"] == "eth0", routes
        cond = wait(lambda here=here: network_condition(cp, here.name), 30, "NetworkUnavailable")
        assert (cond["status"], cond["reason"]) == ("False", "RouteCreated"), cond


def test_overlapping_node_gets_no_route_and_a_clear_condition(cluster: Cluster) -> None:
    """given a Node whose pod CIDR overlaps node b's: no route to it is programmed on a (nor is b's
    replaced), a's NetworkUnavailable turns True naming both; once it is deleted, False again."""
    cp, a = cluster.cp, cluster.a
    bad = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "overlap"},
           "spec": {"podCIDR": pod_cidr(cp, "b")}}
    r = cp.kubectl("apply", "-f", "-", input=json.dumps(bad))
    assert r.returncode == 0, r.stderr
    cp.kubectl("patch", "node", "overlap", "--subresource=status", "--type=merge", "-p",
               json.dumps({"status": {"addresses": [{"type": "InternalIP", "address": cluster.b.addr}]}}))
    cond = wait(lambda: (c := network_condition(cp, "a")) and c["status"] == "True" and c, 30,
                "NetworkUnavailable True")
    assert cond["reason"] == "NoRouteCreated" and "overlap" in cond["message"], cond
    assert "b" in cond["message"] and pod_cidr(cp, "b") in cond["message"]
    assert pod_cidr(cp, "b") not in podns_routes(a)  # neither of the two is routed
    # an InternalIP this machine has no route to: no route either, and the reason
    far = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "far"},
           "spec": {"podCIDR": "10.250.0.0/24"}}
    assert cp.kubectl("apply", "-f", "-", input=json.dumps(far)).returncode == 0
    cp.kubectl("patch", "node", "far", "--subresource=status", "--type=merge", "-p",
               json.dumps({"status": {"addresses": [{"type": "InternalIP", "address": "203.0.113.9"}]}}))
    cond = wait(lambda: (c := network_condition(cp, "a")) and "far" in c["message"] and c, 30, "far reported")
    assert "node far: InternalIP 203.0.113.9 is unreachable from this machine" in cond["message"], cond
    assert "10.250.0.0/24" not in podns_routes(a)
    cp.kubectl("delete", "node", "overlap", "far", "--wait=false")
    cond = wait(lambda: (c := network_condition(cp, "a")) and c["status"] == "False" and c, 30,
                "NetworkUnavailable False again")
    assert wait(lambda: pod_cidr(cp, "b") in podns_routes(a), 30, "b's route back")


def test_routes_go_with_the_node(cluster: Cluster) -> None:
    """node b stopped cleanly leaves no podns route on b; Node b deleted, a's route to it goes."""
    cp, a, b = cluster.cp, cluster.a, cluster.b
    cidr_b = pod_cidr(cp, "b")
    assert b.stop(cluster.node_b) == 0
    assert podns_routes(b) == {}
    assert cidr_b in podns_routes(a)  # the Node is still there (as the kubelet's is, once stopped)
    cp.kubectl("delete", "node", "b", "--wait=false")
    wait(lambda: cidr_b not in podns_routes(a), 30, "a's route to b removed")
