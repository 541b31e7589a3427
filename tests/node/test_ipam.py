"""IPAM: unique addresses, persistence across restarts, exhaustion as a clear error."""

from __future__ import annotations

from pathlib import Path

import pytest

from podns.node import ipam
from podns.node.heartbeat import choose_pod_cidr
from podns.node.ipam import IPAM, CIDRClaim, IPRangeExhausted


def test_allocates_distinct_addresses_and_skips_gateway(tmp_path: Path) -> None:
    """given a /24, when pods allocate, then each gets its own address, never .0/.1/.255."""
    ipam = IPAM("127.9.0.0/24", tmp_path / "ipam.json")
    ips = {ipam.allocate(f"uid-{i}") for i in range(253)}
    assert len(ips) == 253
    assert not ips & {"127.9.0.0", "127.9.0.1", "127.9.0.255"}
    assert ipam.allocate("uid-3") == ipam.get("uid-3")  # idempotent


def test_exhausted_range_raises_clear_error(tmp_path: Path) -> None:
    """given a /30 (one usable address), a second pod gets IPRangeExhausted naming the CIDR."""
    ipam = IPAM("127.9.0.0/30")
    assert ipam.allocate("a") == "127.9.0.2"
    with pytest.raises(IPRangeExhausted, match=r"127\.9\.0\.0/30"):
        ipam.allocate("b")
    ipam.release("a")
    assert ipam.allocate("b") == "127.9.0.2"


def test_persisted_allocations_survive_restart(tmp_path: Path) -> None:
    """given allocations written to the data dir, a new IPAM gives the same pods the same IPs."""
    state = tmp_path / "ipam.json"
    first = IPAM("127.9.0.0/24", state)
    a, b = first.allocate("a"), first.allocate("b")
    first.release("b")
    second = IPAM("127.9.0.0/24", state)
    assert second.get("a") == a
    assert second.get("b") is None
    assert second.allocate("d", preferred=b) == b  # free: preferred honoured
    assert second.allocate("c", preferred=a) not in (a, b)  # taken: preferred ignored


def test_retain_only_releases_stale(tmp_path: Path) -> None:
    ipam = IPAM("127.9.0.0/24")
    ipam.allocate("a")
    ipam.allocate("b")
    ipam.retain_only({"b"})
    assert set(ipam.allocations()) == {"b"}


def test_cidr_claims_are_exclusive_per_machine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """given one agent holding 127.1.0.0/16, another (other cluster, same machine) picks the next
    free /16; a released claim is free again."""
    monkeypatch.setenv("PODNS_LOCK_DIR", str(tmp_path / "locks"))
    monkeypatch.setattr(ipam, "LEGACY_DIR", tmp_path / "legacy")  # agents running here don't count
    first, second = CIDRClaim(), CIDRClaim()
    assert choose_pod_cidr([], "a", first.try_claim) == "127.1.0.0/16"
    assert choose_pod_cidr([], "b", second.try_claim) == "127.2.0.0/16"
    nodes = [{"metadata": {"name": "x"}, "spec": {"podCIDR": "127.3.0.0/16"}}]
    third = CIDRClaim()
    assert choose_pod_cidr(nodes, "c", third.try_claim) == "127.4.0.0/16"  # 127.3 is node x's
    first.release()
    assert CIDRClaim().try_claim("127.1.0.0/16")
    mine = [{"metadata": {"name": "b"}, "spec": {"podCIDR": "127.2.0.0/16"}}]
    assert choose_pod_cidr(mine, "b", lambda c: True) == "127.2.0.0/16"  # a node keeps its CIDR
