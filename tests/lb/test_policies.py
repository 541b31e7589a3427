"""Policies: evenness, power-of-two-choices, and how few keys consistent hashing moves."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from podns.lb.endpoint import Endpoint
from podns.lb.policies import LeastOutstanding, RoundRobin, make_policy, rendezvous


def eps(n: int) -> list[Endpoint]:
    return [Endpoint(address=f"127.0.0.{i + 1}", port=5432, hostname=f"db-{i}") for i in range(n)]


def test_round_robin_visits_every_endpoint_in_turn() -> None:
    """given 3 endpoints, when picking 300 times, then each gets exactly 100."""
    policy = RoundRobin(random.Random(1))
    cands = eps(3)
    counts = Counter(policy.pick(cands, {}).key for _ in range(300))
    assert sorted(counts.values()) == [100, 100, 100]


def test_least_outstanding_never_picks_the_busiest_of_two() -> None:
    """given two endpoints, one with requests in flight, then the idle one is always chosen."""
    policy = LeastOutstanding(random.Random(2))
    a, b = eps(2)
    for _ in range(50):
        assert policy.pick([a, b], {a.key: 5}) == b


def test_least_outstanding_spreads_when_idle() -> None:
    policy = LeastOutstanding(random.Random(3))
    cands = eps(4)
    counts = Counter(policy.pick(cands, {}).key for _ in range(4000))
    assert len(counts) == 4
    assert max(counts.values()) / min(counts.values()) < 1.3


def test_rendezvous_moves_about_one_nth_of_keys_on_join() -> None:
    """given 10 endpoints, when an 11th joins, then only the keys it wins (~1/11) move."""
    before = eps(10)
    after = eps(11)
    keys = [f"customer-{i}" for i in range(5000)]
    moved = [k for k in keys if rendezvous(before, k) != rendezvous(after, k)]
    assert all(rendezvous(after, k).hostname == "db-10" for k in moved)
    assert 0.05 < len(moved) / len(keys) < 0.14


def test_rendezvous_moves_only_the_leavers_keys() -> None:
    before = eps(5)
    after = before[:2] + before[3:]
    keys = [f"k{i}" for i in range(3000)]
    for k in keys:
        old = rendezvous(before, k)
        if old != before[2]:
            assert rendezvous(after, k) == old


def test_rendezvous_is_even() -> None:
    cands = eps(5)
    counts = Counter(rendezvous(cands, f"user{i}").key for i in range(20000))
    assert max(counts.values()) / min(counts.values()) < 1.15


def test_unknown_policy_names_the_choices() -> None:
    with pytest.raises(ValueError, match="round_robin, random, least_outstanding, consistent_hash"):
        make_policy("fastest")
