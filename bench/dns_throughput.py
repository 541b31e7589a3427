"""DNS throughput, latency and CPU per query: podns versus nsd, side by side in one run.

Both servers serve the same zone (bench/dns_zone.py: 1,000 headless services in 10 namespaces
with 3 pods each, plus 5 services of 100 pods; per-pod names and SRV) on loopback, each pinned
to core 1; dnsperf runs on core 0. For each server, alternating, `--rounds` times:

1. saturation: `dnsperf -c 8 -q 1600` (8 clients, 1,600 outstanding = 8 x 200) -> QPS, lost;
2. latency: the same load with `-v`, per-query latencies -> p50 / p99;
3. CPU: `dnsperf -Q 40000` (fixed 40k QPS) while sampling the server's CPU time from /proc
   -> microseconds of server CPU per answered query.

Prints medians per server and the podns/nsd ratios. Usage:

    python bench/dns_throughput.py [--seconds 8] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import dns_zone  # noqa: E402
from _common import free_port, stop  # noqa: E402

NSD_CONF = """server:
  ip-address: 127.0.0.1
  port: {port}
  server-count: 1
  username: ""
  chroot: ""
  zonesdir: "{dir}"
  database: ""
  pidfile: "{dir}/nsd.pid"
  xfrdfile: "{dir}/xfrd.state"
  zonelistfile: "{dir}/zone.list"
  logfile: "{dir}/nsd.log"
  verbosity: 0
  do-ip6: no
  rrl-ratelimit: 0
  rrl-whitelist-ratelimit: 0
remote-control:
  control-enable: no
zone:
  name: "cluster.local"
  zonefile: "cluster.local.zone"
"""


def wait_answering(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = subprocess.run(["dig", "@127.0.0.1", "-p", str(port), "+short", "+tries=1", "+time=1",
                              "svc1.ns1.svc.cluster.local"], capture_output=True, text=True).stdout
        if out.strip():
            return
        time.sleep(0.2)
    raise RuntimeError(f"server on port {port} did not answer")


def process_tree_cpu(pid: int) -> float:
    """CPU seconds (user + system) of `pid` and all its descendants (nsd forks its server
    processes from a child of the first one)."""
    tick = os.sysconf("SC_CLK_TCK")
    procs: dict[int, tuple[int, float]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        procs[int(entry.name)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / tick)
    tree, grew = {pid}, True
    while grew:
        grew = False
        for p, (ppid, _cpu) in procs.items():
            if ppid in tree and p not in tree:
                tree.add(p)
                grew = True
    return sum(procs[p][1] for p in tree if p in procs)


def dnsperf(port: int, queries: Path, seconds: float, *extra: str) -> str:
    cmd = ["taskset", "-c", "0", "dnsperf", "-s", "127.0.0.1", "-p", str(port), "-d", str(queries),
           "-l", str(seconds), *extra]
    return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout


def stat(text: str, label: str) -> float:
    match = re.search(rf"{label}:\s+([\d.]+)", text)
    if not match:
        raise RuntimeError(f"no {label!r} in dnsperf output:\n{text}")
    return float(match.group(1))


def measure(port: int, pid: int, queries: Path, seconds: float) -> dict[str, float]:
    sat = dnsperf(port, queries, seconds, "-c", "8", "-q", "1600")
    verbose = dnsperf(port, queries, min(seconds, 4), "-c", "8", "-q", "1600", "-v")
    lat = sorted(float(m.group(1)) for m in re.finditer(r"^> NOERROR .* ([\d.]+)$", verbose, re.M))
    cpu0 = process_tree_cpu(pid)
    fixed = dnsperf(port, queries, seconds, "-c", "8", "-q", "1600", "-Q", "40000")
    cpu = process_tree_cpu(pid) - cpu0
    completed = stat(fixed, "Queries completed")
    return {
        "qps": stat(sat, "Queries per second"),
        "lost": stat(sat, "Queries lost"),
        "p50_ms": lat[len(lat) // 2] * 1000 if lat else float("nan"),
        "p99_ms": lat[int(len(lat) * 0.99)] * 1000 if lat else float("nan"),
        "resp_bytes": float(re.search(r"response (\d+)", sat).group(1)),  # type: ignore[union-attr]
        "cpu_us_per_query": cpu / completed * 1e6 if completed else float("nan"),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="podns-dnsbench-") as tmp:
        work = Path(tmp)
        queries = work / "queries.txt"
        count = dns_zone.write_queries(queries)
        dns_zone.write_nsd_zone(work / "cluster.local.zone")
        podns_port, nsd_port = free_port(socket.SOCK_DGRAM), free_port(socket.SOCK_DGRAM)
        (work / "nsd.conf").write_text(NSD_CONF.format(port=nsd_port, dir=work))
        podns = subprocess.Popen(["taskset", "-c", "1", sys.executable, str(HERE / "dns_zone.py"), "serve",
                                  "--port", str(podns_port)], stdout=subprocess.DEVNULL)
        nsd = subprocess.Popen(["taskset", "-c", "1", "nsd", "-d", "-c", str(work / "nsd.conf")])
        try:
            wait_answering(podns_port)
            wait_answering(nsd_port)
            print(f"zone: 1005 services, 3500 endpoints; {count} distinct queries; "
                  f"{args.rounds} rounds of {args.seconds:g} s", flush=True)
            results: dict[str, list[dict[str, float]]] = {"podns": [], "nsd": []}
            for r in range(args.rounds):
                for name, port, proc in (("podns", podns_port, podns), ("nsd", nsd_port, nsd)):
                    res = measure(port, proc.pid, queries, args.seconds)
                    results[name].append(res)
                    print(f"round {r + 1} {name}: " + ", ".join(f"{k}={v:.4g}" for k, v in res.items()),
                          flush=True)
        finally:
            stop(podns, nsd)
    med = {name: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for name, rs in results.items()}
    print("\nmedians:")
    print(f"{'':8}{'QPS':>10}{'lost':>8}{'p50 ms':>9}{'p99 ms':>9}{'resp B':>8}{'CPU us/q @40k':>15}")
    for name, m in med.items():
        print(f"{name:8}{m['qps']:>10.0f}{m['lost']:>8.0f}{m['p50_ms']:>9.3f}{m['p99_ms']:>9.3f}"
              f"{m['resp_bytes']:>8.0f}{m['cpu_us_per_query']:>15.2f}")
    qps_ratio = med["podns"]["qps"] / med["nsd"]["qps"]
    cpu_ratio = med["nsd"]["cpu_us_per_query"] / med["podns"]["cpu_us_per_query"]
    print(f"\npodns/nsd: QPS {qps_ratio:.2f}x; CPU efficiency (nsd us/q / podns us/q) {cpu_ratio:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
