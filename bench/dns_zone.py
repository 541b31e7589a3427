"""The benchmark zone, served by podns or written as an nsd zone file, and its query file.

`python bench/dns_zone.py serve --port N` fills a RecordIndex with the synthetic zone of the
issue (no API server: the index is fed the same objects the informers would deliver) and
serves it on 127.0.0.1:N until killed. `write_nsd_zone()` and `write_queries()` produce the
equivalent nsd zone and a dnsperf query file.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from podns.clusterdns import testing
from podns.clusterdns.handler import Handler
from podns.clusterdns.index import RecordIndex
from podns.clusterdns.metrics import Metrics
from podns.clusterdns.server import DNSServer
from podns.clusterdns.trimmed import endpoint_hostname, trim_slice

ZONE = "cluster.local"


def zone_objects() -> list[tuple[str, dict]]:
    return list(testing.synthetic_zone())


def write_nsd_zone(path: Path) -> None:
    """The same records as podns serves, as a zone file (A, per-endpoint A, SRV + their A)."""
    lines = [f"$ORIGIN {ZONE}.", "$TTL 5",
             f"@ IN SOA ns.dns.{ZONE}. hostmaster.{ZONE}. 1 7200 1800 86400 5",
             f"@ IN NS ns.dns.{ZONE}.", "ns.dns IN A 127.0.0.1",
             'dns-version IN TXT "1.1.0"']
    services: dict[str, str] = {}
    for kind, obj in zone_objects():
        if kind == "service":
            services[obj["metadata"]["name"]] = obj["metadata"]["namespace"]
        elif kind == "slice":
            sl = trim_slice(obj)
            base = f"{sl.service}.{sl.namespace}.svc"
            for ep in sl.endpoints:
                for ip in ep.addresses:
                    host = endpoint_hostname(ep, ip)
                    lines.append(f"{base} IN A {ip}")
                    lines.append(f"{host}.{base} IN A {ip}")
                    weight = max(1, 100 // len(sl.endpoints))
                    lines.append(f"_http._tcp.{base} IN SRV 0 {weight} 80 {host}.{base}.{ZONE}.")
    path.write_text("\n".join(lines) + "\n")


def write_queries(path: Path, seed: int = 1) -> int:
    """dnsperf input: service A, per-pod A, SRV of the 3-pod services, per-pod A of the big ones."""
    queries = []
    for kind, obj in zone_objects():
        if kind != "slice":
            continue
        sl = trim_slice(obj)
        base = f"{sl.service}.{sl.namespace}.svc.{ZONE}"
        big = len(sl.endpoints) > 10
        if not big:
            queries.append(f"{base} A")
            queries.append(f"_http._tcp.{base} SRV")
        for ep in sl.endpoints[:5] if big else sl.endpoints:
            queries.append(f"{endpoint_hostname(ep, ep.addresses[0])}.{base} A")
    random.Random(seed).shuffle(queries)
    path.write_text("\n".join(queries) + "\n")
    return len(queries)


async def serve(port: int, *, batch: bool = True) -> None:
    metrics = Metrics()
    index = RecordIndex(zone=ZONE, metrics=metrics)
    started = time.perf_counter()
    testing.feed(index, iter(zone_objects()))
    index.mark_synced()
    gc.collect()
    gc.freeze()  # the zone lives forever: keep it out of every future collection
    print(f"zone loaded in {time.perf_counter() - started:.2f}s: {index.stats()}", file=sys.stderr)
    handler = Handler(index, metrics, upstream=False)
    server = DNSServer(index, handler, metrics, batch=None if batch else False)
    await server.start("127.0.0.1", port)
    print("ready", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["serve"])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--no-batch", action="store_true", help="the recvfrom/sendto loop (no recvmmsg)")
    args = parser.parse_args()
    asyncio.run(serve(args.port, batch=not args.no_batch))
