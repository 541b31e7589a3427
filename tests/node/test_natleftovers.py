"""ClusterIP NAT rules that dead agents left (`podns.node.natleftovers`), against the real `nft`
and `iptables-restore`, as root, inside a network namespace this test creates (with a lock dir
of its own): rules whose owner is provably gone are removed, those of a live owner (process
running, or its pod CIDR claim held) and those of no known owner are never touched, and the
latter are reported when they NAT a range the agent is about to serve."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from podns.node import ipam, natleftovers
from podns.node.ipam import CIDRClaim, write_record
from podns.node.proxy import iptables, nftables
from podns.node.proxy.ipt import iptables_path
from podns.node.proxy.nft import nft_path
from podns.node.proxy.serviceports import ServicePort

SKIP = ("needs root" if os.geteuid() != 0 else "needs nft and iptables-restore"
        if nft_path() is None or iptables_path() is None else None)
pytestmark = [pytest.mark.netns, pytest.mark.timeout(60),
              pytest.mark.skipif(SKIP is not None, reason=SKIP or "")]


@pytest.fixture
def lock_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PODNS_LOCK_DIR", str(tmp_path / "run"))
    return ipam.lock_dir()  # made private (0700), as an agent makes it


def in_netns(prefix: list[str], code: str) -> Any:
    """Run `code` (Python printing JSON) inside the test's namespace, with the test's lock dir."""
    out = subprocess.run([*prefix, sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, env=dict(os.environ))
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def nft_load(prefix: list[str], table: str, cluster_ip: str, service_cidr: str) -> None:
    port = ServicePort("default", "web", "http", "TCP", cluster_ip, 80, (("10.244.50.5", 8080),))
    script = nftables.render([port], table=table, pod_ifname=table, service_cidrs=[service_cidr])
    subprocess.run([*prefix, str(nft_path()), "-f", "-"], input=script, text=True, check=True)


def ipt_load(prefix: list[str], table: str, cluster_ip: str, service_cidr: str) -> None:
    port = ServicePort("default", "web", "http", "TCP", cluster_ip, 80, (("10.244.50.5", 8080),))
    script = iptables.render([port], prefix=iptables.prefix_of(table), pod_ifname=table,
                             service_cidrs=[service_cidr])
    subprocess.run([*prefix, "iptables-restore", "-w", "--noflush"], input=script, text=True, check=True)


def owned_by(lock_dir: Path, table: str, cidr: str, pid: int, start: int | None) -> None:
    write_record(lock_dir / "nat", table, json.dumps({"pid": pid, "start": start, "cidr": cidr}))


def test_rules_of_dead_owners_go_and_the_rest_stay(netns_exec: list[str], lock_dir: Path) -> None:
    """given, in one namespace, NAT rules of five owners: a dead agent's nft table and a dead
    agent's iptables chains (their processes gone, their CIDR claims free), a table whose pid now
    belongs to another process (reused: gone too), a live agent's table (its process running)
    and a table whose process is gone but whose CIDR claim a live agent holds, plus a table no
    record names: reap removes the first three with their records and touches nothing else;
    conflicts names only the unknown table, and only for a range it NATs."""
    gone = subprocess.Popen(["true"])
    gone.wait()
    live = subprocess.Popen(["sleep", "60"])
    holder = CIDRClaim()
    try:
        live_start = natleftovers.process_start(live.pid)
        assert live_start is not None
        dead_nft, dead_ipt, reused, running, claimed, unknown = (
            f"podns-0af4{n:02x}00" for n in range(60, 66))
        for table, n in ((dead_nft, 0), (reused, 2), (running, 3), (claimed, 4), (unknown, 5)):
            nft_load(netns_exec, table, f"10.7{n}.0.10", f"10.7{n}.0.0/24")
        ipt_load(netns_exec, dead_ipt, "10.71.0.10", "10.71.0.0/24")
        owned_by(lock_dir, dead_nft, "10.244.60.0/24", gone.pid, 1)
        owned_by(lock_dir, dead_ipt, "10.244.61.0/24", gone.pid, 1)
        owned_by(lock_dir, reused, "10.244.62.0/24", live.pid, live_start + 1)
        owned_by(lock_dir, running, "10.244.63.0/24", live.pid, live_start)
        owned_by(lock_dir, claimed, "10.244.64.0/24", gone.pid, 1)
        assert holder.try_claim("10.244.64.0/24")  # a live agent (this process) holds it

        removed = in_netns(netns_exec, "import json; from podns.node import natleftovers as n; "
                                       "print(json.dumps(n.reap('podns-0af4ff00')))")
        assert sorted(r.split()[0] for r in removed) == sorted([dead_nft, dead_ipt, reused]), removed
        assert f"{dead_nft} (pod CIDR 10.244.60.0/24, pid {gone.pid} gone)" in removed
        left = in_netns(netns_exec, "import json; from podns.node import natleftovers as n; "
                                    "print(json.dumps(sorted(n.names())))")
        assert left == sorted([running, claimed, unknown])
        assert sorted(p.name for p in (lock_dir / "nat").iterdir()) == sorted([running, claimed])

        said = in_netns(netns_exec, "import json; from podns.node import natleftovers as n; "
                                    "print(json.dumps([n.conflicts(['10.75.0.0/16'], 'x'), "
                                    "n.conflicts(['10.73.0.0/16', '10.74.0.0/16', '10.99.0.0/16'], 'x')]))")
        assert said[1] == [], said  # the live owners' ranges are the service CIDR claims' business
        assert len(said[0]) == 1 and "\n" not in said[0][0], said
        assert said[0][0].startswith(f"NAT rules {unknown} on this machine match 10.75.0.10/32, "
                                     "which overlaps service CIDR 10.75.0.0/16, and no podns agent "
                                     "here is known to own them"), said
        assert f"nft delete table ip {unknown}" in said[0][0], said
    finally:
        holder.release()
        live.kill()
        live.wait()


def test_an_older_podns_table_counts_by_its_bridge_record(netns_exec: list[str], lock_dir: Path) -> None:
    """given a table with no owner record but a bridge record (what an older podns wrote), it is
    removed when no agent holds that CIDR, and kept while one does."""
    table = "podns-0af44600"
    nft_load(netns_exec, table, "10.80.0.10", "10.80.0.0/24")
    write_record(lock_dir / "netns", table, "10.244.70.0/24")
    holder = CIDRClaim()
    assert holder.try_claim("10.244.70.0/24")
    code = "import json; from podns.node import natleftovers as n; print(json.dumps(n.reap('x')))"
    assert in_netns(netns_exec, code) == []
    holder.release()
    assert in_netns(netns_exec, code) == [f"{table} (pod CIDR 10.244.70.0/24)"]
