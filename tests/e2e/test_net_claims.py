"""Clusters sharing one machine in namespace mode, end to end (real `podns up --pod-network netns`
processes in the machine's own network namespace, as parallel test suites run them): two clusters
started at the same instant each get their own pod CIDR and bridge and run pods; the ClusterIP NAT
rules a SIGKILLed cluster left are removed by the next cluster while a live cluster's are kept;
NAT rules of no known owner over the requested service range stop `podns up` with one line."""

from __future__ import annotations

import ipaddress
import json
import random
import re
import secrets
import shutil
import socket
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from podns.node import natleftovers, netns
from podns.node.proxy.nft import nft_path
from tests._support import free_service_cidr, wait_until
from tests.e2e.conftest import Podns

NETNS_SKIP = netns.unavailable_reason() or (None if nft_path() else "needs nft (Debian package nftables)")
pytestmark = [pytest.mark.e2e, pytest.mark.netns, pytest.mark.timeout(240),
              pytest.mark.skipif(NETNS_SKIP is not None, reason=NETNS_SKIP or "")]


def cluster(workdir: Path, *extra: str) -> Podns:
    """A netns-mode `podns up` (process runtime) with a service range of its own."""
    workdir.mkdir()
    return Podns(workdir, "--pod-network", "netns", "--container-runtime", "process",
                 "--service-cidr", free_service_cidr(), *extra)


def pod_cidr(p: Podns) -> str:
    nodes = json.loads(p.kubectl("get", "nodes", "-o", "json", check=True).stdout)["items"]
    return str(nodes[0]["spec"]["podCIDR"])


def spare_pod_cidr() -> str:
    """A 10.244.<200..254>.0/24 no agent here holds and no network of this machine overlaps (the
    defaults take the lowest free blocks, so nothing else starting now picks it)."""
    used = netns.host_networks() + netns.bridge_networks()
    while True:
        cidr = f"10.244.{random.randint(200, 254)}.0/24"
        if not netns.cidr_is_held(cidr) and not any(ipaddress.ip_network(cidr).overlaps(u) for u in used):
            return cidr


def nats(table: str, service_range: str) -> bool:
    """True when the nft table `table` (ip family) exists and matches a destination in
    `service_range` (a ClusterIP or the range itself)."""
    if table not in nft_tables():
        return False
    net = ipaddress.ip_network(service_range)
    return any(n.version == net.version and n.overlaps(net) for n in natleftovers.nat_ranges(table))


def links() -> set[str]:
    return {str(link.get("ifname")) for link in netns.ip_json("link")}


def nft_tables() -> set[str]:
    out = subprocess.run([str(nft_path()), "list", "tables"], capture_output=True, text=True, check=True)
    return {line.split()[-1] for line in out.stdout.splitlines() if line.startswith("table ip ")}


WEB = json.dumps({
    "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "labels": {"app": "web"}},
    "spec": {"terminationGracePeriodSeconds": 1,
             "containers": [{"name": "web", "image": "python",
                             "command": ["python3", "-m", "http.server", "8080"],
                             "readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1}}]}})


def serving_pod(p: Podns) -> str:
    """Run the web pod and return its IP once it is Ready."""
    p.kubectl("apply", "-f", "-", input=WEB, check=True)

    def ready() -> str | None:
        out = p.kubectl("get", "pod", "web", "-o", "json")
        if out.returncode != 0:
            return None
        st = json.loads(out.stdout).get("status") or {}
        ok = any(c["type"] == "Ready" and c["status"] == "True" for c in st.get("conditions") or [])
        return str(st["podIP"]) if ok else None
    return str(wait_until(ready, 90, "web pod Ready", step=0.2))


def answers(ip: str, port: int = 8080) -> bool:
    """An HTTP answer from `ip:port` (from this machine's namespace, over the pod's bridge)."""
    try:
        with socket.create_connection((ip, port), timeout=3) as s:
            s.sendall(b"GET / HTTP/1.0\r\n\r\n")
            return s.recv(12).startswith(b"HTTP/1.0 200")
    except OSError:
        return False


def start_together(clusters: list[Podns]) -> None:
    """Start every cluster at the same instant (threads released by one barrier)."""
    barrier = threading.Barrier(len(clusters))
    failed: list[BaseException] = []

    def go(p: Podns) -> None:
        barrier.wait(30)
        try:
            p.start()
        except BaseException as exc:  # the test raises it below, with the log
            failed.append(exc)
    threads = [threading.Thread(target=go, args=(p,)) for p in clusters]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    if failed:
        raise failed[0]


@pytest.fixture
def stopped_after(tmp_path: Path) -> Any:
    """Clusters registered here are stopped (SIGTERM, then SIGKILL) when the test ends."""
    started: list[Podns] = []
    yield started.append
    for p in started:
        if p.stop() is None and p.proc is not None and p.proc.returncode is None:
            p.kill()


def test_clusters_started_together_get_their_own_pod_cidr_and_bridge(
        tmp_path: Path, stopped_after: Callable[[Podns], None]) -> None:
    """given two `podns up --pod-network netns` with other data dirs started at the same instant,
    each node holds its own pod CIDR and bridge (named after it, holding its gateway), each runs a
    pod that answers from its own CIDR, and stopping both leaves neither bridge."""
    a, b = cluster(tmp_path / "a"), cluster(tmp_path / "b")
    for p in (a, b):
        stopped_after(p)
    start_together([a, b])
    cidrs = [pod_cidr(a), pod_cidr(b)]
    assert cidrs[0] != cidrs[1], cidrs
    assert not ipaddress.ip_network(cidrs[0]).overlaps(ipaddress.ip_network(cidrs[1])), cidrs
    bridges = [netns.bridge_name(c) for c in cidrs]
    for bridge, cidr in zip(bridges, cidrs, strict=True):
        gateway = str(ipaddress.ip_network(cidr).network_address + 1)
        addrs = netns.ip_json("addr", "show", "dev", bridge)
        assert addrs and any(a_.get("local") == gateway for a_ in addrs[0].get("addr_info") or []), addrs
    ips = [serving_pod(a), serving_pod(b)]
    for ip, cidr in zip(ips, cidrs, strict=True):
        assert ipaddress.ip_address(ip) in ipaddress.ip_network(cidr), (ip, cidr)
        assert wait_until(lambda ip=ip: answers(ip), 30, f"pod {ip} answering")
    assert a.stop() == 0 and b.stop() == 0
    # gone (a bridge of that name now is another cluster's, which claimed the CIDR since)
    present = links()
    assert [b_ for b_, c in zip(bridges, cidrs, strict=True)
            if b_ in present and not netns.cidr_is_held(c)] == []


def test_dead_clusters_nat_rules_go_and_live_ones_stay(tmp_path: Path,
                                                       stopped_after: Callable[[Podns], None]) -> None:
    """given a live cluster L and a cluster D killed with SIGKILL whose data dir is then deleted
    (its nft table NATting its service range and its bridge stay behind), a new cluster N with
    another data dir and D's service range starts, D's table is removed (and N says so when it
    did) and L's table, bridge and pod are left alone; NAT rules named like podns's that no
    agent here owns, over the range a cluster asks for, stop its `podns up` with one line naming
    them and how to remove them, and are left as they were."""
    live, dead = cluster(tmp_path / "live"), cluster(tmp_path / "dead")
    for p in (live, dead):
        stopped_after(p)
    start_together([live, dead])
    live_table, dead_table = netns.bridge_name(pod_cidr(live)), netns.bridge_name(pod_cidr(dead))
    live_ip = serving_pod(live)
    live_range = live.args()[live.args().index("--service-cidr") + 1]
    dead_range = dead.args()[dead.args().index("--service-cidr") + 1]
    assert {live_table, dead_table} <= nft_tables()
    assert nats(dead_table, dead_range) and nats(live_table, live_range)
    dead.kill()
    shutil.rmtree(dead.data_dir)
    assert nats(dead_table, dead_range), "SIGKILL should leave the NAT rules behind"

    # a pod CIDR of its own (not D's, which is free again and which it would otherwise take,
    # adopting D's table as its own): D's table is then a dead agent's to remove
    new = Podns(tmp_path / "new", "--pod-network", "netns", "--container-runtime", "process",
                "--service-cidr", dead_range, "--pod-cidr", spare_pod_cidr())
    (tmp_path / "new").mkdir()
    stopped_after(new)
    new.start()
    new_table = netns.bridge_name(pod_cidr(new))
    # nothing but N's own table NATs D's range any more: N removed D's (its log names it), or an
    # agent of another cluster starting on this machine meanwhile did (other suites run here
    # too), or a cluster that took D's free pod CIDR since owns a table of that name, with its
    # own range
    assert nats(new_table, dead_range)
    assert [t for t in nft_tables() - {new_table} if nats(t, dead_range)] == []
    said = re.search(r"removed the ClusterIP NAT rules of dead node agents: (.*)", new.log())
    assert said is None or live_table not in said.group(1), new.log()[-3000:]
    # the live cluster's table, bridge and pod are as they were
    assert nats(live_table, live_range) and live_table in links()
    assert answers(live_ip), "the live cluster's pod stopped answering"
    assert new.stop() == 0

    # rules of nobody known over the range asked for: refused, untouched
    stray = f"podns-{secrets.token_hex(4)}"
    stray_range = free_service_cidr()
    nft = str(nft_path())
    subprocess.run([nft, "-f", "-"], check=True, text=True, input=(
        f"add table ip {stray}\nadd chain ip {stray} check\n"  # no hook: inert on this machine
        f"add rule ip {stray} check ip daddr {stray_range} reject\n"))
    try:
        refused = Podns(tmp_path / "refused", "--pod-network", "netns", "--container-runtime", "process",
                        "--service-cidr", stray_range)
        (tmp_path / "refused").mkdir()
        stopped_after(refused)
        with pytest.raises(RuntimeError):
            refused.start()
        lines = [line for line in refused.log().splitlines() if stray in line]
        assert len(lines) == 1, refused.log()[-3000:]
        assert f"nft delete table ip {stray}" in lines[0] and "pass another --service-cidr" in lines[0]
        assert stray in nft_tables()
    finally:
        subprocess.run([nft, "delete", "table", "ip", stray], check=False)
