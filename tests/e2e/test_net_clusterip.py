"""ClusterIPs across machines: two simulated machines (`tests/netsim.py`) on one LAN (host-gw),
`podns up --pod-network netns --service-cidr 10.96.0.0/16` on machine a, `podns node` on machine
b; each node NATs ClusterIPs in its own nftables table or, with `--proxy-mode iptables`, its own
iptables chains (both backends run; inside each machine's namespace, so the real machine's rules
never see them). Machine a runs without br_netfilter, b with it, so both
ways the kernel can carry a same-bridge reply are exercised.

Proves the ClusterIP half of the network model across machines: a pod on b connects to a
ClusterIP whose only endpoint runs on a; a pod on a connects to a ClusterIP backed by a pod on
each machine and reaches both (random choice per connection, local and remote endpoints)."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from podns.node.proxy import ipt, nft
from tests.e2e._machines import apply, pod, ready_ip, wait
from tests.netsim import ControlPlane, Lab, Machine, needs_root, podns_node, podns_up

pytestmark = [pytest.mark.e2e, pytest.mark.netns, pytest.mark.timeout(240), needs_root,
              pytest.mark.skipif(nft.nft_path() is None, reason="needs nft (Debian package nftables)"),
              pytest.mark.skipif(ipt.iptables_path() is None,
                                 reason="needs iptables (Debian package iptables)")]

SERVICE_CIDR = "10.96.0.0/16"  # inside the lab's namespaces: no other cluster can meet it
#: `count` connections to argv[1]:argv[2]; prints {answer or error name: times}
CLIENT = ("import collections, json, socket, sys\n"
          "seen = collections.Counter()\n"
          "for _ in range(int(sys.argv[3])):\n"
          "    try:\n"
          "        with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3) as c:\n"
          "            seen[c.recv(100).decode()] += 1\n"
          "    except OSError as exc:\n"
          "        seen[type(exc).__name__] += 1\n"
          "print(json.dumps(seen))\n")


class Cluster:
    def __init__(self, cp: ControlPlane, a: Machine, b: Machine, mode: str) -> None:
        self.cp, self.a, self.b, self.mode = cp, a, b, mode


@pytest.fixture(scope="module", params=["nftables", "iptables"])
def cluster(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    mode = str(request.param)
    work = tmp_path_factory.mktemp(f"clusterip-{mode}")
    with Lab() as lab:
        lan = lab.lan("lan", "192.168.78.0/24")
        a, b = lab.machine("a", lan), lab.machine("b", lan)
        # machine a without br_netfilter (a per-namespace switch; b keeps the kernel's default,
        # on): bridged pod-to-pod replies then bypass conntrack, which the masquerade must cover
        for f in ("iptables", "ip6tables"):
            a.run("sh", "-c", f"echo 0 > /proc/sys/net/bridge/bridge-nf-call-{f}", check=True)
        cp = podns_up(a, work, "--service-cidr", SERVICE_CIDR, "--proxy-mode", mode)
        node_b = podns_node(b, cp, work, "--service-cidr", SERVICE_CIDR, "--proxy-mode", mode)
        yield Cluster(cp, a, b, mode)
        b.stop(node_b)
        assert "table ip podns-" not in b.run("nft", "list", "tables").stdout  # b's table gone
        assert "PODNS-" not in b.run("iptables-save").stdout  # b's chains gone
    assert lab.leftovers() == []


def labelled(name: str, node: str, app: str, *, serve: bool = True) -> dict[str, Any]:
    p = pod(name, node, serve=serve)
    p["metadata"]["labels"] = {"app": app}
    return p


def service(name: str, app: str) -> dict[str, Any]:
    """A ClusterIP Service on port 80 over the pods labelled app=`app` (their port 5432)."""
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"selector": {"app": app}, "ports": [{"port": 80, "targetPort": 5432}]}}


def connect(cp: ControlPlane, client: str, host: str, count: int) -> Counter[str]:
    r = cp.kubectl("exec", client, "--", "python3", "-c", CLIENT, host, "80", str(count), timeout=90)
    return Counter(json.loads(r.stdout)) if r.returncode == 0 else Counter({"exec failed": 1})


def cluster_ip(cp: ControlPlane, name: str) -> str:
    return str(json.loads(cp.kubectl("get", "svc", name, "-o", "json").stdout)["spec"]["clusterIP"])


def test_cluster_ips_across_machines(cluster: Cluster) -> None:
    """given srv-a on machine a behind Service `only-a`, and srv-a plus srv-b (machine b) behind
    `both`: a pod on b reaches only-a's ClusterIP (DNAT on b, routed to a); a pod on a reaching
    both's ClusterIP lands on both pods, its own machine's and the other's; srv-a reaches itself
    through only-a (hairpin), on a machine without br_netfilter."""
    cp = cluster.cp
    apply(cp, labelled("srv-a", "a", "a"), labelled("srv-b", "b", "b"),
          labelled("cli-a", "a", "none", serve=False), labelled("cli-b", "b", "none", serve=False),
          service("only-a", "a"),
          {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "both"},
           "spec": {"ports": [{"port": 80, "targetPort": 5432}]}})
    for name in ("srv-a", "srv-b", "cli-a", "cli-b"):
        wait(lambda name=name: ready_ip(cp, name), 90, f"{name} Ready")
    only_a = cluster_ip(cp, "only-a")
    assert only_a.startswith("10.96.")
    wait(lambda: connect(cp, "cli-b", only_a, 5) == Counter({"srv-a": 5}), 60,
         "pod on b -> ClusterIP -> pod on a")
    # `both`: a selector-less Service with a hand-written slice naming one pod on each machine
    ips = {n: ready_ip(cp, n) for n in ("srv-a", "srv-b")}
    apply(cp, {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": "IPv4",
               "metadata": {"name": "both-1", "labels": {"kubernetes.io/service-name": "both"}},
               "ports": [{"name": "", "port": 5432, "protocol": "TCP"}],
               "endpoints": [{"addresses": [ips["srv-a"]], "conditions": {"ready": True}},
                             {"addresses": [ips["srv-b"]], "conditions": {"ready": True}}]})
    both = cluster_ip(cp, "both")
    wait(lambda: set(connect(cp, "cli-a", both, 30)) == {"srv-a", "srv-b"}, 60,
         "pod on a -> ClusterIP -> pods on a and b")
    # hairpin on a machine without br_netfilter: srv-a reaches itself through only-a's ClusterIP
    assert connect(cp, "srv-a", only_a, 5) == Counter({"srv-a": 5})
    if cluster.mode == "nftables":
        listing = cluster.b.run("nft", "list", "map", "ip", _table(cluster.b), "service-ips").stdout
        assert f"{only_a} . tcp . 80" in listing and f"{both} . tcp . 80" in listing
    else:
        listing = cluster.b.run("iptables-save", "-t", "nat").stdout
        assert f"-d {only_a}/32 -p tcp -m tcp --dport 80 -j PODNS-" in listing
        assert f"-d {both}/32 -p tcp -m tcp --dport 80 -j PODNS-" in listing
        assert "table ip podns-" not in cluster.b.run("nft", "list", "tables").stdout


def _table(m: Machine) -> str:
    tables = [line.split()[-1] for line in m.run("nft", "list", "tables").stdout.splitlines()
              if line.startswith("table ip podns-")]
    assert len(tables) == 1, tables
    return tables[0]

