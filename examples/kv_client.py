"""Write to the primary, read from every ready pod: the client half of examples/kv-store.yaml.

    python examples/kv_client.py --dns 127.0.0.1:1053            # discover through cluster DNS
    python examples/kv_client.py --kubeconfig state/kubeconfig   # or watch EndpointSlices
"""

from __future__ import annotations

import argparse
import asyncio
from collections import Counter

from podns import lb


async def command(pool: lb.Balancer, line: str, endpoint: str | None = None) -> tuple[str, str]:
    async with pool.connection(endpoint=endpoint) as (reader, writer):
        writer.write(line.encode() + b"\n")
        await writer.drain()
        reply = (await reader.readline()).decode().strip()
        writer.write(b"ROLE\n")
        await writer.drain()
        role = (await reader.readline()).decode().split()[1]
        return reply, role


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dns", default="127.0.0.1:1053", help="cluster DNS address (host:port)")
    ap.add_argument("--kubeconfig", help="watch EndpointSlices through this kubeconfig instead of DNS")
    ap.add_argument("--service", default="kv.default.svc.cluster.local")
    args = ap.parse_args()
    source = lb.Watch(args.kubeconfig) if args.kubeconfig else lb.DNS(server=args.dns)
    async with lb.Balancer(args.service, port="kv", policy="least_outstanding", source=source) as pool:
        print("pods:", ", ".join(str(e) for e in pool.endpoints))
        reply, role = await command(pool, "SET greeting hello", endpoint="kv-0")
        print(f"write to the primary: {reply} (answered by {role})")
        await asyncio.sleep(0.5)  # let the replicas follow
        served = Counter()
        for _ in range(9):
            reply, role = await command(pool, "GET greeting")
            served[role] += 1
        print(f"reads spread over: {dict(served)}; last answer: {reply}")
        print("libpq-style multi-host string:", lb.conninfo(pool))


if __name__ == "__main__":
    asyncio.run(main())
