"""podns.lb: pick() cost, evenness over 1,000,000 picks, keys moved on membership change.

    .venv/bin/python bench/lb_pick.py [--picks 1000000]

Prints, per policy, the cost of one pick (median of 5 runs, in microseconds) beside the cost of
`random.choice` over the same list (the floor any pure-Python picker is compared to), the
max/min share over the endpoints, and for consistent hashing the fraction of keys that move
when a pod joins or leaves (ideal: 1/n).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time
from collections import Counter

from podns import lb
from podns.lb.endpoint import Endpoint
from podns.lb.policies import rendezvous


def endpoints(n: int) -> list[Endpoint]:
    return [Endpoint(f"127.1.0.{i + 1}", 5432, hostname=f"db-{i}") for i in range(n)]


def timed(fn, count: int) -> float:  # type: ignore[no-untyped-def]
    runs = []
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(count):
            fn()
        runs.append((time.perf_counter() - t0) / count * 1e6)
    return statistics.median(runs)


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--picks", type=int, default=1_000_000)
    ap.add_argument("--endpoints", type=int, default=10)
    args = ap.parse_args()
    eps = endpoints(args.endpoints)
    rng = random.Random(1)
    floor = timed(lambda: rng.choice(eps), 100_000)
    print(f"endpoints: {args.endpoints}; peer floor random.choice: {floor:.3f} us/pick")
    print(f"{'policy':<20}{'us/pick':>10}{'x floor':>9}{'max/min share':>15}")
    for policy in ("round_robin", "random", "least_outstanding"):
        async with lb.Balancer("db", source=lb.Static(eps), policy=policy) as pool:
            cost = timed(pool.pick, 100_000)
            counts = Counter(pool.pick().key for _ in range(args.picks))
            share = max(counts.values()) / min(counts.values())
            print(f"{policy:<20}{cost:>10.3f}{cost / floor:>9.1f}{share:>15.4f}")
    async with lb.Balancer("db", source=lb.Static(eps)) as pool:
        keys = [f"customer-{i}" for i in range(args.picks // 10)]
        it = iter(range(10**9))
        cost = timed(lambda: pool.pick(key=keys[next(it) % len(keys)]), 20_000)
        counts = Counter(pool.pick(key=k).key for k in keys)
        share = max(counts.values()) / min(counts.values())
        print(f"{'consistent (key)':<20}{cost:>10.3f}{cost / floor:>9.1f}{share:>15.4f}  ({len(keys)} keys)")
    bigger = endpoints(args.endpoints + 1)
    moved = sum(rendezvous(eps, k) != rendezvous(bigger, k) for k in keys) / len(keys)
    smaller = eps[:-1]
    moved_leave = sum(rendezvous(eps, k) != rendezvous(smaller, k) for k in keys) / len(keys)
    n = args.endpoints
    print(f"keys moved when a pod joins: {moved:.4f} (ideal 1/{n + 1} = {1 / (n + 1):.4f}); "
          f"when one leaves: {moved_leave:.4f} (ideal 1/{n} = {1 / n:.4f})")


if __name__ == "__main__":
    asyncio.run(main())
