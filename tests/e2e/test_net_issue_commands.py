"""Issue 15's command block, as a user types it, on simulated machines (`tests/netsim.py`):

    # machine A
    sudo podns up --pod-network netns
    # machine B
    sudo podns node --kubeconfig a.kubeconfig --name b --pod-network netns
    kubectl apply -f examples/db-headless.yaml   # pods spread over a and b
    kubectl exec db-0 -- nc -z <IP of db-1 on the other node> 5432
    kubectl exec db-0 -- nc -z <ClusterIP of a normal Service> 80
    podns up --service-cidr 10.96.0.0/16,fd00:10:96::/112 --pod-network netns
    dig AAAA db-0.db-service.default.svc.cluster.local

Only the flags two real machines need are added (docs/pod-network.md): A's API and DNS on its LAN
address and its InternalIP (`--api-addr`, `--dns-addr`, `--node-ip`), B's InternalIP and A's DNS
(`--node-ip`, `--cluster-dns`). `a.kubeconfig` is B's own identity, written on A by `podns
kubeconfig node b` and copied to B with the CA beside it. No `--service-cidr` on A or B: A's
default in namespace mode is 10.96.0.0/16 and B learns it from the cluster. On top: a second
cluster started on machine B with the same default range is refused with one line naming the flag.
The dual-stack cluster runs on a machine c of its own."""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from podns.node.proxy import nft
from tests.e2e._machines import network_condition, wait
from tests.netsim import (
    API_PORT,
    DNS_PORT,
    ControlPlane,
    Lab,
    Machine,
    machine_env,
    needs_root,
    podns_node,
    podns_up,
)

pytestmark = [pytest.mark.e2e, pytest.mark.netns, pytest.mark.timeout(300), needs_root,
              pytest.mark.skipif(nft.nft_path() is None, reason="needs nft (Debian package nftables)"),
              pytest.mark.skipif(shutil.which("nc") is None,
                                 reason="needs nc (Debian package netcat-openbsd)")]

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "db-headless.yaml"


class Machines:
    def __init__(self, lab: Lab, work: Path, cp: ControlPlane, a: Machine, b: Machine) -> None:
        self.lab, self.work, self.cp, self.a, self.b = lab, work, cp, a, b


@pytest.fixture(scope="module")
def machines(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Machines]:
    work = tmp_path_factory.mktemp("issue15")
    with Lab() as lab:
        lan = lab.lan("lan", "192.168.79.0/24")
        a, b = lab.machine("a", lan), lab.machine("b", lan)
        cp = podns_up(a, work)  # podns up --pod-network netns (+ addresses), default service CIDR
        # on A: B's identity; "copied" to B with the CA (its serving certificate is signed there)
        to_b = work / "b-home"
        to_b.mkdir()
        made = a.run(sys.executable, "-m", "podns", "kubeconfig", "node", "b", "--data-dir",
                     str(cp.data_dir), "--output", str(to_b / "a.kubeconfig"))
        assert made.returncode == 0, made.stderr
        for name in ("ca.crt", "ca.key"):
            shutil.copy(cp.data_dir / name, to_b / name)
        podns_node(b, cp, work, kubeconfig=to_b / "a.kubeconfig")
        # both nodes routed to each other (until then the scheduler keeps pods off a node whose
        # NetworkUnavailable is not False, and the example's pods would all land on one machine)
        wait(lambda: all((network_condition(cp, n) or {}).get("status") == "False" for n in "ab"), 60,
             "nodes a and b NetworkUnavailable=False")
        yield Machines(lab, work, cp, a, b)
    assert lab.leftovers() == []


def pods(cp: ControlPlane) -> dict[str, dict[str, Any]]:
    r = cp.kubectl("get", "pods", "-l", "app=db", "-o", "json")
    return {p["metadata"]["name"]: p for p in json.loads(r.stdout)["items"]} if r.returncode == 0 else {}


def ready(pod: dict[str, Any]) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True"
               for c in (pod.get("status") or {}).get("conditions") or [])


def nc(cp: ControlPlane, pod: str, host: str, port: int) -> bool:
    """`kubectl exec <pod> -- nc -z -w 3 <host> <port>` succeeded."""
    return cp.kubectl("exec", pod, "--", "nc", "-z", "-w", "3", host, str(port), timeout=60).returncode == 0


def test_issue_commands_across_two_machines(machines: Machines) -> None:
    """given A (`podns up --pod-network netns`) and B (`podns node --kubeconfig a.kubeconfig
    --name b --pod-network netns`), the example's pods spread over a and b; db-0 reaches the db
    pod on the other machine by pod IP and a normal Service's ClusterIP (10.96.0.0/16, NATed by
    its node, B's range learned from the cluster) whose one endpoint is that other pod, which
    reaches it too (hairpin); a port the Service lacks is refused."""
    cp = machines.cp
    kubernetes = json.loads(cp.kubectl("get", "svc", "kubernetes", "-o", "json").stdout)
    assert kubernetes["spec"]["clusterIP"] == "10.96.0.1"  # the namespace-mode default range
    r = cp.kubectl("apply", "-f", str(EXAMPLE))
    assert r.returncode == 0, r.stderr
    names = ("db-0", "db-1", "db-2")

    def all_ready() -> dict[str, dict[str, Any]] | None:
        found = pods(cp)
        return found if all(n in found and ready(found[n]) for n in names) else None
    found = wait(all_ready, 120, "db-0..2 Ready")
    where = {n: found[n]["spec"]["nodeName"] for n in names}
    assert set(where.values()) == {"a", "b"}, where  # spread over both machines
    other = next(n for n in names if where[n] != where["db-0"])
    assert wait(lambda: nc(cp, "db-0", found[other]["status"]["podIP"], 5432), 60,
                f"db-0 ({where['db-0']}) -> {other} ({where[other]}) by pod IP")
    # a normal Service (as docs/pod-network.md: kubectl expose) whose one endpoint is on the
    # other machine: db-0's node NATs its ClusterIP to a pod across the LAN
    r = cp.kubectl("expose", "pod", other, "--name", "db-web", "--port", "80", "--target-port", "5432")
    assert r.returncode == 0, r.stderr
    web = json.loads(cp.kubectl("get", "svc", "db-web", "-o", "json").stdout)["spec"]["clusterIP"]
    assert web.startswith("10.96.")
    assert wait(lambda: nc(cp, "db-0", web, 80), 60, "db-0 -> ClusterIP:80")
    assert wait(lambda: nc(cp, other, web, 80), 60, f"{other} -> ClusterIP:80 (hairpin)")
    assert not nc(cp, "db-0", web, 81)  # a port the Service lacks: refused on the node
    log = (machines.work / "b-node.log").read_text()
    assert "service CIDR 10.96.0.0/16 (the API server's)" in log


def test_second_cluster_on_a_machine_refuses_the_same_range(machines: Machines) -> None:
    """given machine b running a node of cluster A (NATing 10.96.0.0/16), a second `podns up
    --pod-network netns` on b (its own cluster, default range) stops with one line naming the
    flag to change, and leaves b's NAT table and A's node alone."""
    b, work = machines.b, machines.work
    before = b.run("nft", "list", "tables").stdout
    out = b.run(sys.executable, "-m", "podns", "up", "--data-dir", str(work / "b-second"),
                "--api-addr", f"{b.addr}:{API_PORT}", "--dns-addr", f"{b.addr}:{DNS_PORT}",
                "--dns-upstream", "none", "--pod-network", "netns", "--container-runtime", "process",
                "--node-name", "b2", "--node-ip", b.addr, timeout=120, env=machine_env(b, work))
    assert out.returncode != 0
    last = out.stderr.strip().splitlines()[-1]
    assert ("service CIDR 10.96.0.0/16 overlaps 10.96.0.0/16" in last
            and "pass another --service-cidr, e.g. 10.97.0.0/16" in last), out.stderr[-3000:]
    assert b.run("nft", "list", "tables").stdout == before
    assert nc(machines.cp, "db-0", json.loads(machines.cp.kubectl(
        "get", "svc", "db-web", "-o", "json").stdout)["spec"]["clusterIP"], 80)


def test_dual_stack_dig_aaaa(machines: Machines) -> None:
    """given `podns up --service-cidr 10.96.0.0/16,fd00:10:96::/112 --pod-network netns` on a
    machine c and the example applied, `dig AAAA db-0.db-service.default.svc.cluster.local`
    answers db-0's IPv6 address."""
    lan = machines.lab.lans[0]
    c = machines.lab.machine("c", lan)
    cp = podns_up(c, machines.work, "--service-cidr", "10.96.0.0/16,fd00:10:96::/112")
    r = cp.kubectl("apply", "-f", str(EXAMPLE))
    assert r.returncode == 0, r.stderr
    pod = wait(lambda: next((p for p in pods(cp).values() if p["metadata"]["name"] == "db-0" and ready(p)),
                            None), 90, "db-0 Ready on c")
    v6 = [a["ip"] for a in pod["status"]["podIPs"] if ":" in a["ip"]]
    assert len(v6) == 1, pod["status"]

    def aaaa() -> list[str]:
        out = c.run("dig", "+short", "@" + c.addr, "-p", str(DNS_PORT), "AAAA",
                    "db-0.db-service.default.svc.cluster.local", timeout=20)
        return out.stdout.split()
    wait(lambda: aaaa() == v6, 30, "AAAA of db-0 = its IPv6 address")
