"""Dual-stack pods across machines: IPv6 pod to pod, AAAA, an IPv6 ClusterIP, host-gw and VXLAN.

Three simulated machines (`tests/netsim.py`): a and b share a dual-stack LAN and start their
nodes with an IPv4 and an IPv6 `--node-ip`; c sits on another, IPv4-only subnet behind a router.
`podns up` on a has a dual-stack service CIDR and cluster CIDR (unique to this run); `podns node`
on b and c. So a <-> b route IPv6 pods host-gw via each other's IPv6 InternalIP, and a, b <-> c
carry IPv6 pods inside the IPv4 VXLAN tunnel (next hop the peer device's link-local address).

Proves: node IPAM gives each Node an IPv4 and an IPv6 pod CIDR; a pod on b and a pod on c
connect over IPv6 to db-0 on a and a pod on a back to each; `dig AAAA db-0.db-service...` on b
(its node's DNS relay) answers db-0's IPv6 address; a pod on b reaches a RequireDualStack
Service's IPv6 ClusterIP (db-0 behind it, on a); the IPv6 routes are the ones expected; an
agent killed and restarted removes the routes of a Node deleted meanwhile; c stopped cleanly
leaves no route, and Node c deleted takes a's routes to it."""

from __future__ import annotations

import functools
import ipaddress
import json
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e._machines import apply, db, node, pod, podns_routes, talk, wait
from tests.netsim import ControlPlane, Lab, Machine, needs_root, podns_node, podns_up

pytestmark = [pytest.mark.e2e, pytest.mark.netns, pytest.mark.timeout(300), needs_root]

_N = os.getpid() % 200
#: this run's ranges (inside the lab's namespaces only; unique so runs side by side read apart)
CLUSTER_CIDR = f"10.{_N + 20}.0.0/16,fd00:{_N:x}:244::/56"
SERVICE_CIDR = f"172.{16 + _N % 16}.0.0/16,fd00:{_N:x}:96::/112"
ZONE = "cluster.local"

LB = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "db-lb"},
      "spec": {"ipFamilyPolicy": "RequireDualStack", "selector": {"app": "db"},
               "ports": [{"port": 80, "targetPort": 5432}]}}


class Cluster:
    def __init__(self, cp: ControlPlane, a: Machine, b: Machine, c: Machine, work: Path,
                 nodes: dict[str, subprocess.Popen[bytes]]) -> None:
        self.cp, self.a, self.b, self.c, self.work, self.nodes = cp, a, b, c, work, nodes


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    work = tmp_path_factory.mktemp("dualstack")
    with Lab() as lab:
        lan1 = lab.lan("lan1", "192.168.86.0/24", subnet6=f"fd86:{_N:x}::/64")
        lan2 = lab.lan("lan2", "192.168.87.0/24")
        lab.router("r", lan1, lan2)
        a, b, c = lab.machine("a", lan1), lab.machine("b", lan1), lab.machine("c", lan2)
        cp = podns_up(a, work, "--service-cidr", SERVICE_CIDR, "--cluster-cidr", CLUSTER_CIDR)
        extra = ("--service-cidr", SERVICE_CIDR)
        nodes = {"b": podns_node(b, cp, work, *extra), "c": podns_node(c, cp, work, *extra)}
        yield Cluster(cp, a, b, c, work, nodes)
    assert lab.leftovers() == []


def cidrs(cp: ControlPlane, name: str) -> dict[int, str]:
    """The Node's pod CIDRs by IP version."""
    got = ((node(cp, name) or {}).get("spec") or {}).get("podCIDRs") or []
    return {ipaddress.ip_network(c).version: str(c) for c in got}


def ready_ips(cp: ControlPlane, name: str) -> dict[int, str] | None:
    """The pod's IPs by IP version once it is Ready with both."""
    r = cp.kubectl("get", "pod", name, "-o", "json")
    if r.returncode != 0:
        return None
    st = json.loads(r.stdout).get("status") or {}
    if not any(c["type"] == "Ready" and c["status"] == "True" for c in st.get("conditions") or []):
        return None
    ips: dict[int, str] = {ipaddress.ip_address(x["ip"]).version: str(x["ip"])
                           for x in st.get("podIPs") or []}
    return ips if len(ips) == 2 else None


def test_ipv6_pod_to_pod_dns_and_clusterip_across_machines(cluster: Cluster) -> None:
    """given dual-stack pods on a, b and c: b's and c's reach db-0 (on a) over IPv6, a pod on a
    reaches each of them over IPv6 (host-gw to b, VXLAN to c); dig AAAA on b answers db-0's
    IPv6 address; a pod on b reaches the RequireDualStack Service's IPv6 ClusterIP."""
    cp = cluster.cp
    assert [sorted(cidrs(cp, n)) for n in "abc"] == [[4, 6]] * 3
    cluster6 = ipaddress.IPv6Network(CLUSTER_CIDR.split(",")[1])
    blocks = [ipaddress.IPv6Network(cidrs(cp, n)[6]) for n in "abc"]
    assert all(x.prefixlen == 64 and x.subnet_of(cluster6) for x in blocks) and len(set(blocks)) == 3
    apply(cp, *db("a", dual=True), LB, pod("srv-b", "b", dual=True), pod("srv-c", "c", dual=True))
    ips: dict[str, dict[int, str]] = {}
    for n in ("db-0", "srv-b", "srv-c"):
        ips[n] = wait(functools.partial(ready_ips, cp, n), 120, f"{n} Ready")
    assert all(ipaddress.ip_address(ips[n][6]) in b for n, b in zip(("db-0", "srv-b", "srv-c"), blocks,
                                                                     strict=True))
    assert wait(lambda: talk(cp, "srv-b", ips["db-0"][6]), 30, "b -> a over IPv6") == "db-0"
    assert wait(lambda: talk(cp, "db-0", ips["srv-b"][6]), 30, "a -> b over IPv6") == "srv-b"
    assert wait(lambda: talk(cp, "srv-c", ips["db-0"][6]), 30, "c -> a over IPv6 (VXLAN)") == "db-0"
    assert wait(lambda: talk(cp, "db-0", ips["srv-c"][6]), 30, "a -> c over IPv6 (VXLAN)") == "srv-c"
    assert wait(lambda: talk(cp, "srv-b", ips["srv-c"][6]), 30, "b -> c over IPv6 (VXLAN)") == "srv-c"
    # DNS from machine b, through b's node relay (on its bridge's gateway address)
    relay = str(ipaddress.ip_network(cidrs(cp, "b")[4]).network_address + 1)
    name = f"db-0.db-service.default.svc.{ZONE}"

    def aaaa() -> list[str]:
        out = cluster.b.run("dig", f"@{relay}", "+short", "+time=2", "+tries=3", "AAAA", name)
        return out.stdout.split()

    assert wait(lambda: aaaa() == [ips["db-0"][6]] and aaaa(), 30, "AAAA of db-0 on b") == [ips["db-0"][6]]
    lb = json.loads(cp.kubectl("get", "svc", "db-lb", "-o", "json").stdout)["spec"]
    vip6 = lb["clusterIPs"][1]
    assert ipaddress.ip_address(vip6) in ipaddress.ip_network(SERVICE_CIDR.split(",")[1])
    assert wait(lambda: talk(cp, "srv-b", vip6, 80), 30, "b -> IPv6 ClusterIP") == "db-0"


def test_ipv6_routes_host_gw_and_vxlan(cluster: Cluster) -> None:
    """a routes b's IPv6 pod CIDR via b's IPv6 InternalIP on eth0 (host-gw) and c's through
    podns-vxlan via c's device's link-local address; c routes both a's and b's through the
    tunnel; the device holds that address."""
    cp, a, b, c = cluster.cp, cluster.a, cluster.b, cluster.c
    ra = wait(lambda: (r := podns_routes(a, "-6")) and cidrs(cp, "c")[6] in r and r, 30, "a's IPv6 routes")
    assert (ra[cidrs(cp, "b")[6]]["gateway"], ra[cidrs(cp, "b")[6]]["dev"]) == (b.addr6, "eth0"), ra
    vtep_c = str(ipaddress.IPv6Address("fe80::")
                 + int(ipaddress.ip_network(cidrs(cp, "c")[4]).network_address))
    assert (ra[cidrs(cp, "c")[6]]["gateway"], ra[cidrs(cp, "c")[6]]["dev"]) == (vtep_c, "podns-vxlan"), ra
    rc = podns_routes(c, "-6")
    assert {rc[cidrs(cp, n)[6]]["dev"] for n in "ab"} == {"podns-vxlan"}, rc
    assert f"inet6 {vtep_c}/64" in c.ip("-6", "addr", "show", "dev", "podns-vxlan")


def test_restarted_agent_removes_the_routes_its_crashed_predecessor_left(cluster: Cluster) -> None:
    """given c's agent killed (SIGKILL) with its routes in place, and Node b deleted meanwhile:
    the restarted agent removes its routes to b (both families), keeps a's."""
    cp, c = cluster.cp, cluster.c
    cidrs_b, cidrs_a = cidrs(cp, "b"), cidrs(cp, "a")
    os.killpg(cluster.nodes["c"].pid, signal.SIGKILL)
    cluster.nodes["c"].wait(30)
    assert cidrs_b[6] in podns_routes(c, "-6") and cidrs_b[4] in podns_routes(c)  # left behind
    b_proc = cluster.nodes.pop("b")
    assert cluster.b.stop(b_proc) == 0
    assert podns_routes(cluster.b, "-6") == {} and podns_routes(cluster.b) == {}
    assert cp.kubectl("delete", "node", "b", "--wait=false").returncode == 0
    log = cluster.work / "c-node.log"
    log.rename(log.with_suffix(".1.log"))  # the restart's "running" line is looked for anew
    cluster.nodes["c"] = podns_node(c, cp, cluster.work, "--service-cidr", SERVICE_CIDR)
    wait(lambda: cidrs_a[6] in podns_routes(c, "-6"), 30, "c's route to a back")
    assert cidrs_b[6] not in podns_routes(c, "-6") and cidrs_b[4] not in podns_routes(c)


def test_routes_go_with_the_node(cluster: Cluster) -> None:
    """c stopped cleanly leaves no podns route (either family) nor VXLAN device on c; Node c
    deleted, a's routes to it go (both families) and so does a's device (its last peer)."""
    cp, a, c = cluster.cp, cluster.a, cluster.c
    cidrs_c = cidrs(cp, "c")
    assert cidrs_c[6] in podns_routes(a, "-6")
    assert c.stop(cluster.nodes.pop("c")) == 0
    assert podns_routes(c, "-6") == {} and podns_routes(c) == {}
    assert c.run("ip", "link", "show", "podns-vxlan").returncode != 0
    assert cp.kubectl("delete", "node", "c", "--wait=false").returncode == 0
    wait(lambda: cidrs_c[6] not in podns_routes(a, "-6") and cidrs_c[4] not in podns_routes(a), 30,
         "a's routes to c removed")
    wait(lambda: a.run("ip", "link", "show", "podns-vxlan").returncode != 0, 30, "a's VXLAN device gone")
