"""IPAM: unique addresses, persistence across restarts, exhaustion as a clear error."""

from __future__ import annotations

from pathlib import Path

import pytest

from podns.node.ipam import IPAM, IPRangeExhausted


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
