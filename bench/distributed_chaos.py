"""Chaos figures of distributed podns: lost writes, failed DNS queries, leader takeover, recovery.

Runs the scenario of tests/e2e/test_distributed_chaos.py (tests/e2e/_chaos.py) for longer:
3 etcd members, 2 API servers, 2 controller-managers (Lease 3s / renew 2s / retry 0.5s),
2 DNS servers and 2 node agents on loopback; a writer (client listing both API servers) and a
resolver (both DNS servers configured) run throughout, each beside its single-server peer (a
writer that knows only API server 1, a resolver that knows only DNS server 1); `--rounds`
times, the etcd leader, API server 1, the leading controller-manager, DNS server 1, node
agent n1 and then 2 of the 3 etcd members are SIGKILLed in turn, each restarted after `--down`
seconds. Finally one more replica must reach both DNS servers.

Prints the per-fault report, then medians over the rounds. Write throughput and watch latency
of etcd versus SQLite are measured by bench/store_throughput.py (docs/benchmarks.md, Store).

    .venv/bin/python bench/distributed_chaos.py --rounds 3 --down 5
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.e2e import _chaos  # noqa: E402
from tests.etcd_cluster import etcd_available  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="fault rounds (default 3)")
    parser.add_argument("--down", type=float, default=5.0,
                        help="seconds each killed process stays down (default 5)")
    parser.add_argument("--settle", type=float, default=2.0,
                        help="seconds between a restart and the next fault (default 2)")
    args = parser.parse_args()
    if not etcd_available():
        print("etcd is not installed (Debian package etcd-server)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="podns-chaos-") as tmp:
        result = asyncio.run(_chaos.run(Path(tmp), down=args.down, settle=args.settle,
                                        rounds=args.rounds))
    for line in result.lines():
        print(line)
    recovered: dict[str, list[float]] = defaultdict(list)
    gaps: dict[str, list[float]] = defaultdict(list)
    for f in result.faults:
        kind = f.name.split(" (")[0]
        recovered[kind].append(f.recovered_s)
        gaps[kind].append(f.max_write_gap_s)
    print(f"\nmedians over {args.rounds} rounds (down {args.down:g} s each):")
    print(f"  {'fault':<28}{'recovered after restart':>26}{'longest write gap':>20}")
    print(f"  {'':<28}{'(quorum: first write)':>26}")
    for kind in recovered:
        print(f"  {kind:<28}{statistics.median(recovered[kind]):>24.2f} s"
              f"{statistics.median(gaps[kind]):>18.2f} s")
    print(f"  time to a new controller leader: median "
          f"{statistics.median(result.leader_takeovers):.2f} s, max "
          f"{max(result.leader_takeovers):.2f} s (Lease 3 s)")
    print(f"  acknowledged writes lost: {len(result.lost)} of {result.acked} "
          f"(one-API-server peer: {len(result.single_lost)} of {result.single_acked}, "
          f"{result.single_write_errors} failed vs {result.write_errors})")
    print(f"  DNS queries failed, two servers configured: {result.dns_failed} of "
          f"{result.dns_queries} (one-server peer: {result.single_dns_failed} of "
          f"{result.single_dns_queries})")
    return 1 if result.lost else 0


if __name__ == "__main__":
    sys.exit(main())
