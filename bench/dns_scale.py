"""Cluster DNS at scale: RSS and full-sync time for 10,000 Services and 100,000 endpoints.

Feeds a RecordIndex the way the informers do (objects already trimmed by the informer's
transform, then `mark_synced`), with no API server in the way, and reports:
- full sync: wall and CPU seconds from the first event to a served table;
- RSS of the process before the objects exist, with the informer-side trimmed objects, and
  with the index built (the DNS server's footprint is the last figure);
- incremental update cost: one endpoint flipping in a 10-endpoint Service, median of 1,000.

    python bench/dns_scale.py [--services 10000] [--endpoints-per-service 10]

With `--api`, the same objects are first written to a `podns apiserver` (memory store), then
`podns dns` is started against it: reported are the seconds from process start to `/ready`
(list of every resource through the informers + index build) and the process's RSS.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import linecache
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import cpu_seconds, fill_api, free_port, rss_mb, stop, wait_ready

from podns.clusterdns import testing, trimmed
from podns.clusterdns.index import RecordIndex
from podns.clusterdns.metrics import Metrics

#: issue 16's figures: full sync under this many seconds, RSS within CoreDNS's published formula
GOAL_SYNC_S = 3.0


def coredns_mb(services: int, pods: int) -> float:
    """CoreDNS's published memory estimate: (pods + services) / 1000 + 54 MB."""
    return (pods + services) / 1000 + 54


def verdict(ok: bool) -> str:
    return "met" if ok else "missed"


TRIM = {"service": trimmed.trim_service, "slice": trimmed.trim_slice, "namespace": trimmed.trim_namespace}


def own_rss_mb() -> float:
    return rss_mb(os.getpid())


def api_mode(args: argparse.Namespace) -> int:
    items = list(testing.synthetic_zone(namespaces=args.namespaces, services=args.services,
                                        pods=args.endpoints_per_service, big_services=0))
    repo = Path(__file__).resolve().parent.parent
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    with tempfile.TemporaryDirectory(prefix="podns-dnsscale-") as tmp:
        data = Path(tmp) / "state"
        api_port, dns_port, metrics_port = free_port(), free_port(socket.SOCK_DGRAM), free_port()
        api = subprocess.Popen([sys.executable, "-m", "podns", "apiserver", "--data-dir", str(data),
                                "--api-addr", f"127.0.0.1:{api_port}", "--store", "memory://"], cwd=repo,
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        dns = None
        try:
            while not (data / "kubeconfig-readonly").exists():
                time.sleep(0.1)
            time.sleep(1)
            took = asyncio.run(fill_api(data / "kubeconfig", items))
            print(f"wrote {len(items)} objects to the API in {took:.1f} s")
            start = time.perf_counter()
            log = open(Path(tmp) / "dns.log", "wb")
            dns = subprocess.Popen([sys.executable, "-m", "podns", "dns", "--kubeconfig",
                                    str(data / "kubeconfig-readonly"), "--listen", f"127.0.0.1:{dns_port}",
                                    "--upstream", "none", "--metrics-addr", f"127.0.0.1:{metrics_port}"],
                                   cwd=repo, env=env, stdout=log, stderr=subprocess.STDOUT)
            wait_ready(metrics_port)
            ready = time.perf_counter() - start
            cpu, rss = cpu_seconds(dns.pid), rss_mb(dns.pid)
            print(f"podns dns: ready (full sync) {ready:.2f} s after process start, "
                  f"{cpu:.2f} s of its CPU; RSS {rss:.0f} MB (load average {os.getloadavg()[0]:.2f})")
            for line in (Path(tmp) / "dns.log").read_text().splitlines():
                if "synced in" in line:
                    print("  log:", line.split(": ", 1)[-1][:80])
            log.close()
            peer = coredns_mb(args.services, args.services * args.endpoints_per_service)
            print(f"goal (issue 16): RSS <= CoreDNS's formula {peer:.0f} MB: {rss:.0f} MB, "
                  f"{verdict(rss <= peer)} ({rss / peer:.2f}x); full sync < {GOAL_SYNC_S:g} s: "
                  f"{ready:.2f} s wall, {verdict(ready < GOAL_SYNC_S)} ({cpu:.2f} s of CPU)")
        finally:
            stop(dns, api)
    return 0


def where_mode(args: argparse.Namespace) -> int:
    """The trimmed objects and the index built from them, traced: bytes per allocation site
    (the informer's trimmed objects are allocated in trimmed.py, the index everywhere else)."""
    import tracemalloc

    tracemalloc.start()
    raw = testing.synthetic_zone(namespaces=args.namespaces, services=args.services,
                                 pods=args.endpoints_per_service, big_services=0)
    objs = [(kind, TRIM[kind](obj)) for kind, obj in raw]
    index = RecordIndex(metrics=Metrics())
    for kind, obj in objs:
        getattr(index, f"on_{kind}_add")(obj)
    index.mark_synced()
    del objs
    gc.collect()
    snapshot = tracemalloc.take_snapshot().filter_traces([tracemalloc.Filter(False, tracemalloc.__file__)])
    stats = snapshot.statistics("lineno")
    total = sum(s.size for s in stats)
    print(f"traced: {total / 1e6:.1f} MB live after the build ({index.stats()})")
    for stat in stats[:15]:
        frame = stat.traceback[0]
        where = f"{Path(frame.filename).name}:{frame.lineno}"
        print(f"  {stat.size / 1e6:6.1f} MB {stat.count:>8} blocks  {where:<18} "
              f"{linecache.getline(frame.filename, frame.lineno).strip()[:70]}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", type=int, default=10000)
    parser.add_argument("--endpoints-per-service", type=int, default=10)
    parser.add_argument("--namespaces", type=int, default=100)
    parser.add_argument("--api", action="store_true", help="through podns apiserver + podns dns")
    parser.add_argument("--where", action="store_true",
                        help="where the bytes go: tracemalloc's biggest allocation sites of the build")
    args = parser.parse_args()
    if args.api:
        return api_mode(args)
    if args.where:
        return where_mode(args)
    gc.collect()
    base = own_rss_mb()
    raw = testing.synthetic_zone(namespaces=args.namespaces, services=args.services,
                                 pods=args.endpoints_per_service, big_services=0)
    objs = [(kind, TRIM[kind](obj)) for kind, obj in raw]
    gc.collect()
    with_objects = own_rss_mb()
    index = RecordIndex(metrics=Metrics())
    wall, cpu = time.perf_counter(), time.process_time()
    for kind, obj in objs:
        getattr(index, f"on_{kind}_add")(obj)
    gc.disable()  # as ClusterDNS does around the first build
    index.mark_synced()
    gc.enable()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    gc.collect()
    gc.freeze()
    built = own_rss_mb()
    stats = index.stats()
    endpoints = args.services * args.endpoints_per_service
    print(f"{args.services} services, {endpoints} endpoints -> {stats['answers']} answers, "
          f"{stats['records']} records")
    print(f"full sync: {wall:.2f} s wall, {cpu:.2f} s CPU")
    print(f"RSS: {base:.0f} MB empty, {with_objects:.0f} MB with trimmed objects, {built:.0f} MB with the "
          f"index (index alone {built - with_objects:.0f} MB; load average {os.getloadavg()[0]:.2f})")
    peer = coredns_mb(args.services, endpoints)
    print(f"goal (issue 16): CoreDNS's formula {peer:.0f} MB (this process: {built:.0f} MB, "
          f"{verdict(built <= peer)}); index build < {GOAL_SYNC_S:g} s: {wall:.2f} s wall, "
          f"{cpu:.2f} s CPU, {verdict(wall < GOAL_SYNC_S)}")
    # Incremental: flip one endpoint of one service back and forth.
    slices = [obj for kind, obj in objs if kind == "slice"]
    times = []
    for i in range(1000):
        sl = slices[i % len(slices)]
        eps = list(sl.endpoints)
        eps[0] = trimmed.Endpoint(eps[0].addresses, not eps[0].ready, eps[0].hostname)
        flipped = trimmed.Slice(sl.namespace, sl.name, sl.service, tuple(eps), sl.ports, None)
        start = time.perf_counter()
        index.on_slice_update(sl, flipped)
        times.append(time.perf_counter() - start)
        index.on_slice_update(flipped, sl)
    print(f"one endpoint flips in a {args.endpoints_per_service}-endpoint service: "
          f"median {statistics.median(times) * 1e3:.3f} ms, p99 {sorted(times)[989] * 1e3:.3f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
