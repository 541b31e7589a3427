"""Machine-wide claims (`podns.node.ipam.CIDRClaim`, `podns.node.servicecidr.ServiceCIDRClaim`)
under concurrency: agents of different clusters released at the same instant, in separate
processes (each its own flocks, as real agents), never end up with the same or overlapping
ranges, and of two clusters asking for one service range exactly one gets it."""

from __future__ import annotations

import ipaddress
import multiprocessing
from collections.abc import Callable
from multiprocessing.synchronize import Barrier, Event
from pathlib import Path
from typing import Any

import pytest

from podns.node import ipam, netns
from podns.node.ipam import CIDRClaim
from podns.node.servicecidr import ServiceCIDRClaim, ServiceCIDRConflict

#: rounds of each race: a window between "is it free?" and "take it" shows within a few
ROUNDS = 5
CTX = multiprocessing.get_context("fork")


@pytest.fixture(autouse=True)
def machine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A machine of its own: claims of this test only (forked children inherit it)."""
    path = tmp_path / "run"
    monkeypatch.setenv("PODNS_LOCK_DIR", str(path))
    monkeypatch.setattr(ipam, "LEGACY_DIR", tmp_path / "legacy")
    return path


def _agent(barrier: Barrier, done: Event, results: Any, claim: Callable[[], str]) -> None:
    """One agent: wait for the others, claim, report, hold the claim until every agent has."""
    barrier.wait(30)
    try:
        results.put(claim())
    except Exception as exc:  # reported to the test, which shows it
        results.put(f"error: {type(exc).__name__}: {exc}")
    done.wait(30)


def _race(claims: list[Callable[[], str]]) -> list[str]:
    """Run each of `claims` in a process of its own, all released together; their results."""
    barrier, done, results = CTX.Barrier(len(claims)), CTX.Event(), CTX.Queue()
    procs = [CTX.Process(target=_agent, args=(barrier, done, results, c)) for c in claims]
    for p in procs:
        p.start()
    try:
        got = [results.get(timeout=60) for _ in procs]
    finally:
        done.set()
        for p in procs:
            p.join(30)
    return got


def _default_cidr(name: str) -> Callable[[], str]:
    """A netns-mode agent without --pod-cidr whose Node got no CIDR: the first free 10.244.n.0/24."""
    def claim() -> str:
        held = CIDRClaim()
        cidr = netns.choose_cidr([], name, held.try_claim, [])
        _keep.append(held)
        return cidr
    return claim


def _explicit_cidr(cidr: str) -> Callable[[], str]:
    """An agent with --pod-cidr: that range or a refusal."""
    def claim() -> str:
        held = CIDRClaim()
        if not held.try_claim(cidr):
            return f"refused: {held.why}"
        _keep.append(held)
        return cidr
    return claim


#: claims a child holds until the race ends (a dropped CIDRClaim would close its flock)
_keep: list[CIDRClaim] = []


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_agents_released_together_get_distinct_cidrs(round_: int) -> None:
    """given six agents of different clusters choosing a default pod CIDR at the same instant,
    each gets its own 10.244.n.0/24: no two share one (so no two share a bridge)."""
    got = _race([_default_cidr(f"n{i}") for i in range(6)])
    assert len(set(got)) == 6, got
    assert all(c.startswith("10.244.") for c in got), got


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_overlapping_cidrs_of_other_sizes_are_never_both_held(round_: int) -> None:
    """given an agent asking for 10.244.0.0/23 while three others pick default /24s at the same
    instant, no two held ranges overlap: the /23 is refused (naming the /24 it overlaps) or the
    defaults skip past it."""
    got = _race([_explicit_cidr("10.244.0.0/23"), *(_default_cidr(f"n{i}") for i in range(3))])
    held = [ipaddress.ip_network(c) for c in got if not c.startswith("refused")]
    assert len(held) >= 3, got
    assert not [(a, b) for i, a in enumerate(held) for b in held[i + 1:] if a.overlaps(b)], got
    for c in got:
        if c.startswith("refused"):
            assert "overlaps pod CIDR 10.244." in c, c


def test_overlap_with_a_held_range_is_refused_with_the_reason() -> None:
    """given a live agent holding 10.244.0.0/23 and another cluster NATting 10.244.8.0/24, a pod
    CIDR inside either is refused with the reason; a range clear of both is granted; once the
    holder is gone its range is free again."""
    wide, svc = CIDRClaim(), ServiceCIDRClaim()
    assert wide.try_claim("10.244.0.0/23")
    svc.claim("cafe", ["10.244.8.0/24"], flag="--service-cidr")
    inner = CIDRClaim()
    assert not inner.try_claim("10.244.1.0/24")
    assert inner.why == ("pod CIDR 10.244.1.0/24 overlaps pod CIDR 10.244.0.0/23, held by a node agent "
                         "(of another cluster) on this machine")
    assert not inner.try_claim("10.244.8.0/24")
    assert "overlaps service CIDR 10.244.8.0/24" in inner.why
    assert netns.choose_cidr([], "x", inner.try_claim, []) == "10.244.2.0/24"
    wide.release()
    again = CIDRClaim()
    assert again.try_claim("10.244.1.0/24")
    for claim in (again, inner, svc):
        claim.release()


def test_service_range_over_a_held_pod_cidr_is_refused() -> None:
    """given an agent whose pods live in 10.244.3.0/24, another cluster's service CIDR over it is
    refused in one line naming the pod CIDR and the flag; an agent's service range may not
    overlap its own pod CIDR either."""
    pods = CIDRClaim()
    assert pods.try_claim("10.244.3.0/24")
    with pytest.raises(ServiceCIDRConflict) as err:
        ServiceCIDRClaim().claim("beef", ["10.244.0.0/16"], flag="--service-cidr")
    message = str(err.value)
    assert "overlaps pod CIDR 10.244.3.0/24" in message and "pass another --service-cidr" in message
    own = ServiceCIDRClaim()
    own.claim("beef", ["10.245.0.0/16"], flag="--service-cidr", pod_cidrs=["10.244.3.0/24"])
    own.release()
    with pytest.raises(ServiceCIDRConflict) as err:  # nor with its own pods
        ServiceCIDRClaim().claim("beef", ["10.244.0.0/16"], flag="--service-cidr",
                                 pod_cidrs=["10.244.3.0/24"])
    assert "overlaps this node's pod CIDR 10.244.3.0/24" in str(err.value)
    pods.release()


def _service(cluster: str) -> Callable[[], str]:
    def claim() -> str:
        held = ServiceCIDRClaim()
        try:
            held.claim(cluster, ["10.96.0.0/16"], flag="--service-cidr")
        except ServiceCIDRConflict:
            return "refused"
        _keep_svc.append(held)
        return "granted"
    return claim


_keep_svc: list[ServiceCIDRClaim] = []


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_two_clusters_asking_one_service_range_at_once_one_gets_it(round_: int) -> None:
    """given two clusters' agents claiming 10.96.0.0/16 at the same instant, exactly one is
    granted it and the other refused (never both refused, never both granted)."""
    assert sorted(_race([_service("aaaa"), _service("bbbb")])) == ["granted", "refused"]
