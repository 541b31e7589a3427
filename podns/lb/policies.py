"""Load-balancing policies: which of the eligible endpoints takes the next request.

A policy is a small object with one method, `pick(candidates, outstanding)`; the balancer hands
it only endpoints that may take work (ready, not draining, not ejected) in a stable order, so a
policy never has to know about health. Keyed picks always use rendezvous hashing, whatever the
policy, so `pick(key=...)` is consistent hashing on any pool.

Policies are not thread-safe by themselves; the balancer serialises calls.
"""

from __future__ import annotations

import functools
import hashlib
import random
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

from podns.lb.endpoint import Endpoint


class Policy(Protocol):
    """Chooses one endpoint among non-empty `candidates`."""

    def pick(self, candidates: Sequence[Endpoint], outstanding: Mapping[str, int]) -> Endpoint: ...


class RoundRobin:
    """Each endpoint in turn. The cursor survives membership changes (it is an index modulo the
    current size), so a refresh does not send a burst to the first endpoint."""

    def __init__(self, rng: random.Random | None = None) -> None:
        # Start at a random offset so many clients do not all begin on the same pod.
        self._next = (rng or random.Random()).randrange(1 << 30)

    def pick(self, candidates: Sequence[Endpoint], outstanding: Mapping[str, int]) -> Endpoint:
        ep = candidates[self._next % len(candidates)]
        self._next += 1
        return ep


class Random:
    """Uniformly random choice."""

    def __init__(self, rng: random.Random | None = None) -> None:
        self._rng = rng or random.Random()

    def pick(self, candidates: Sequence[Endpoint], outstanding: Mapping[str, int]) -> Endpoint:
        return candidates[self._rng.randrange(len(candidates))]


class LeastOutstanding:
    """Power of two choices: sample two endpoints, take the one with fewer requests in flight.

    Nearly as good as scanning for the global minimum, without herding every client onto the
    one endpoint that just became least loaded (Mitzenmacher's result, as Envoy and Finagle use).
    """

    def __init__(self, rng: random.Random | None = None) -> None:
        self._rng = rng or random.Random()

    def pick(self, candidates: Sequence[Endpoint], outstanding: Mapping[str, int]) -> Endpoint:
        n = len(candidates)
        if n == 1:
            return candidates[0]
        i = self._rng.randrange(n)
        j = self._rng.randrange(n - 1)
        if j >= i:
            j += 1
        a, b = candidates[i], candidates[j]
        return a if outstanding.get(a.key, 0) <= outstanding.get(b.key, 0) else b


_MASK = (1 << 64) - 1


@functools.lru_cache(maxsize=65536)
def _hash64(text: str) -> int:
    """A stable 64-bit hash (Python's own `hash` is salted per process, so clients would
    disagree about where a key goes)."""
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


def key_hash(text: str) -> int:
    """Stable 64-bit hash of a pick key (uncached: keys are often unique)."""
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


def rendezvous(candidates: Sequence[Endpoint], key: str, hashes: Sequence[int] | None = None) -> Endpoint:
    """Highest-random-weight hashing: the endpoint with the highest score(key, endpoint) wins.

    When an endpoint joins or leaves, only the keys it wins (about 1/n of them) move; every
    other key keeps its endpoint. Cost: one hash of the key, then an integer mix per candidate.
    `hashes` are the candidates' `_hash64(ep.key)` when the caller keeps them precomputed.
    """
    kh = key_hash(key)
    hs = hashes if hashes is not None else [_hash64(ep.key) for ep in candidates]
    best = -1
    best_i = 0
    for i, h in enumerate(hs):
        x = kh ^ h
        x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
        x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK
        x ^= x >> 31
        if x > best:
            best, best_i = x, i
    return candidates[best_i]


class ConsistentHash:
    """Rendezvous hashing on the pick's key; unkeyed picks fall back to round robin."""

    def __init__(self, rng: random.Random | None = None) -> None:
        self._fallback = RoundRobin(rng)

    def pick(self, candidates: Sequence[Endpoint], outstanding: Mapping[str, int]) -> Endpoint:
        return self._fallback.pick(candidates, outstanding)


POLICIES: dict[str, Callable[..., Policy]] = {
    "round_robin": RoundRobin,
    "random": Random,
    "least_outstanding": LeastOutstanding,
    "consistent_hash": ConsistentHash,
}


def make_policy(policy: str | Policy, rng: random.Random | None = None) -> Policy:
    """A policy from its name (`round_robin`, `random`, `least_outstanding`, `consistent_hash`)
    or a ready object. Raises ValueError naming the accepted names for an unknown one."""
    if not isinstance(policy, str):
        return policy
    try:
        factory = POLICIES[policy]
    except KeyError:
        raise ValueError(
            f"unknown load-balancing policy {policy!r}; choose one of {', '.join(POLICIES)}"
        ) from None
    return factory(rng)
