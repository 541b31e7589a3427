"""Chaos on a whole distributed podns: every kind of process SIGKILLed in turn, under load.

3 etcd members, 2 API servers, 2 controller-managers, 2 DNS servers and 2 node agents on
loopback (see tests/e2e/_chaos.py). A writer and a two-server DNS client run throughout while
the etcd leader, an API server, the leading controller-manager, a DNS server and a node agent
are killed and restarted in turn, then 2 of the 3 etcd members. bench/distributed_chaos.py
runs the same scenario longer.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e import _chaos
from tests.etcd_cluster import etcd_available

pytestmark = [pytest.mark.e2e, pytest.mark.etcd]

#: the controller-managers' Lease duration in the scenario (tests/e2e/_distributed.FAST_LEASE)
LEASE_DURATION = 3.0


@pytest.mark.timeout(150)
async def test_chaos_loses_no_acknowledged_write_and_converges(tmp_path: Path) -> None:
    """given a distributed cluster under a write and a DNS load, when each kind of process is
    SIGKILLed and restarted in turn, and then etcd loses quorum for a while, then no
    acknowledged write is lost, no DNS query fails with both servers configured, a new
    controller leader takes over within the Lease timing, writes fail fast without quorum and
    work again after it, and a new replica then reaches both DNS servers (controllers, node
    agents and DNS all recovered)."""
    if not etcd_available():
        pytest.skip("etcd binary not installed (Debian package etcd-server)")
    result = await _chaos.run(tmp_path, down=2.0, settle=1.0)
    report = "\n".join(result.lines())
    print(report)

    assert result.acked > 100, report
    assert result.lost == [], report
    assert [f.name.split(" (")[0] for f in result.faults] == [
        "etcd leader", "API server 1", "leading controller-manager", "DNS server 1",
        "node agent n1", "etcd quorum"], report
    # writes continued through every fault but the quorum loss (the client fails over)
    assert all(f.max_write_gap_s < 8 for f in result.faults[:-1]), report
    # without quorum a write fails quickly with 503/504; writes work again once it is back
    assert result.unavailable_code in (503, 504), report
    assert result.unavailable_answer_s < 9, report
    assert result.faults[-1].recovered_s < 30, report
    assert result.dns_failed == 0, report
    dns_fault = result.faults[3]
    assert dns_fault.dns_fallbacks > 0, report  # the second server answered while the first was down
    # the faults were real: the single-server peers failed where failover did not
    assert dns_fault.single_dns_failed > 0, report
    assert result.faults[1].single_write_errors > 0, report
    assert result.single_lost == [], report
    # the standby acquires once the dead leader's Lease expires (+ a retry period, + a busy CPU)
    assert 0 < result.leader_takeover_s < LEASE_DURATION + 4, report
    assert result.converged_s < 60, report
