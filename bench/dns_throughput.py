"""DNS throughput, latency and CPU per query: podns versus nsd, side by side in one run.

Every server serves the same zone (bench/dns_zone.py: 1,000 headless services in 10 namespaces
with 3 pods each, plus 5 services of 100 pods; per-pod names and SRV) on loopback, pinned to
core 1; dnsperf runs on core 0 (`--workers 2`: servers with 2 serving processes / nsd threads,
everything on both cores). The servers (`--targets`):

- `up`: what users run: `podns up --no-node` (its whole process tree pinned), the zone written
  through its API, served by the DNS process it supervises (that process's CPU is measured);
- `dns`: standalone `podns dns --kubeconfig ...` (pinned) against the API of a `podns up
  --no-node --no-dns` (pinned to the same CPUs, idle once the zone is written);
- `zone`: the serving code alone, its index fed in-process (bench/dns_zone.py serve);
- `nsd`: Debian's nsd with the same records as a zone file.

A podns target with `-py` appended (`up-py`, `dns-py`, `zone-py`) runs with PODNS_DNS_COMPILED=0:
the ctypes loop instead of the compiled one (podns/clusterdns/fastudp.py), to compare the two.

For each server, alternating, `--rounds` times:

1. saturation: `dnsperf -c 8 -q 1600` (8 clients, 1,600 outstanding = 8 x 200) -> QPS, lost;
2. latency: `-Q 40000` (fixed 40k QPS) with `-v`, per-query latencies -> p50 / p99 of the run,
   and `p99/s`: each second's p99 (40,000 replies, in the order they came), the median over the
   run's seconds, the first one left out. dnsperf's own start-up leaves a burst of slow replies
   ~40 ms into every run, against every server alike (with 4-second runs ~1% of all queries,
   i.e. the p99 itself), and a stall of the machine (tens of ms, a few times a minute here, on
   either core) spoils the p99 of a whole run; it spoils only the seconds it falls in;
3. CPU: `dnsperf -Q 40000` while sampling the server's CPU time from /proc
   -> microseconds of server CPU per answered query.

Prints medians per server (and the spread of p99 over the rounds: single rounds of every
server, nsd included, range over 2-5x on a quiet 2-core machine, so take at least 5 rounds), the
podns/nsd ratios and the load average as it went. Usage:

    python bench/dns_throughput.py [--seconds 8] [--rounds 5] [--targets up,dns,zone,nsd] [--workers 1]
"""

from __future__ import annotations

import argparse
import asyncio
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
from _common import REPO, dns_child, fill_api, free_port, start_up, stop, wait_ready  # noqa: E402

NSD_CONF = """server:
  ip-address: 127.0.0.1
  port: {port}
  server-count: {count}
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


def dnsperf(port: int, queries: Path, seconds: float, *extra: str, cpus: str = "0") -> str:
    cmd = ["taskset", "-c", cpus, "dnsperf", "-s", "127.0.0.1", "-p", str(port), "-d", str(queries),
           "-l", str(seconds), *extra]
    return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout


def stat(text: str, label: str) -> float:
    match = re.search(rf"{label}:\s+([\d.]+)", text)
    if not match:
        raise RuntimeError(f"no {label!r} in dnsperf output:\n{text}")
    return float(match.group(1))


def measure(port: int, pid: int, queries: Path, seconds: float, cpus: str,
            client: tuple[str, ...] = ()) -> dict[str, float]:
    sat = dnsperf(port, queries, seconds, "-c", "8", "-q", "1600", *client, cpus=cpus)
    verbose = dnsperf(port, queries, seconds, "-c", "8", "-q", "1600", "-Q", "40000", "-v", *client,
                      cpus=cpus)
    in_order = [float(m.group(1)) for m in re.finditer(r"^> NOERROR .* ([\d.]+)$", verbose, re.M)]
    lat = sorted(in_order)
    seconds_p99 = [sorted(in_order[i:i + 40000])[int(40000 * 0.99)]  # whole seconds after the first
                   for i in range(40000, len(in_order) - 39999, 40000)]
    cpu0 = process_tree_cpu(pid)
    fixed = dnsperf(port, queries, seconds, "-c", "8", "-q", "1600", "-Q", "40000", *client, cpus=cpus)
    cpu = process_tree_cpu(pid) - cpu0
    completed = stat(fixed, "Queries completed")
    return {
        "qps": stat(sat, "Queries per second"),
        "lost": stat(sat, "Queries lost"),
        "p50_ms": lat[len(lat) // 2] * 1000 if lat else float("nan"),
        "p99_ms": lat[int(len(lat) * 0.99)] * 1000 if lat else float("nan"),
        "p99s_ms": statistics.median(seconds_p99) * 1000 if seconds_p99 else float("nan"),
        "resp_bytes": float(re.search(r"response (\d+)", sat).group(1)),  # type: ignore[union-attr]
        "cpu_us_per_query": cpu / completed * 1e6 if completed else float("nan"),
    }


def start_target(target: str, work: Path, port: int, cpus: str,
                 workers: int) -> tuple[list[subprocess.Popen[bytes]], int]:
    """Start one server; returns (processes to stop, pid whose process tree's CPU is the server's)."""
    if target == "nsd":
        (work / "nsd.conf").write_text(NSD_CONF.format(port=port, dir=work, count=workers))
        proc = subprocess.Popen(["taskset", "-c", cpus, "nsd", "-d", "-c", str(work / "nsd.conf")])
        return [proc], proc.pid
    kind, _, variant = target.partition("-")
    saved = os.environ.get("PODNS_DNS_COMPILED")
    if variant == "py":  # inherited by every podns process started below
        os.environ["PODNS_DNS_COMPILED"] = "0"
    elif variant:
        raise ValueError(f"unknown target {target!r}")
    try:
        return _start_podns(kind, work / f"{target}-state", port, cpus, workers)
    finally:
        if saved is None:
            os.environ.pop("PODNS_DNS_COMPILED", None)
        else:
            os.environ["PODNS_DNS_COMPILED"] = saved


def _start_podns(kind: str, data: Path, port: int, cpus: str,
                 workers: int) -> tuple[list[subprocess.Popen[bytes]], int]:
    if kind == "zone":  # the serving code alone, fed in-process (no informers, no API)
        proc = subprocess.Popen(["taskset", "-c", cpus, sys.executable, str(HERE / "dns_zone.py"), "serve",
                                 "--port", str(port)], stdout=subprocess.DEVNULL)
        return [proc], proc.pid
    api_port, metrics_port = free_port(), free_port()
    if kind == "up":  # what users run: the DNS process supervised by podns up, fed through the API
        proc = start_up(data, api_port=api_port, dns_port=port, metrics_port=metrics_port, cpus=cpus,
                        extra=("--dns-workers", str(workers)))
        asyncio.run(fill_api(data / "kubeconfig", dns_zone.zone_objects()))
        wait_ready(metrics_port)
        return [proc], dns_child(proc.pid)
    if kind == "dns":  # standalone `podns dns` against an API server's kubeconfig
        api = start_up(data, api_port=api_port, dns_port=free_port(socket.SOCK_DGRAM),
                       metrics_port=free_port(), cpus=cpus, extra=("--no-dns",))
        asyncio.run(fill_api(data / "kubeconfig", dns_zone.zone_objects()))
        cmd = [sys.executable, "-m", "podns", "dns", "--kubeconfig", str(data / "kubeconfig"),
               "--listen", f"127.0.0.1:{port}", "--upstream", "none", "--metrics-addr",
               f"127.0.0.1:{metrics_port}", "--workers", str(workers)]
        dns = subprocess.Popen(["taskset", "-c", cpus, *cmd], cwd=REPO, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
        wait_ready(metrics_port)
        return [dns, api], dns.pid
    raise ValueError(f"unknown target {kind!r}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--targets", default="up,zone,nsd",
                        help="servers to compare, comma-separated: up (podns up's DNS process), dns "
                             "(standalone podns dns), zone (the serving code fed in-process), nsd; -py "
                             "after a podns one: its Python loop (default: up,zone,nsd)")
    parser.add_argument("--workers", type=int, default=1,
                        help="serving processes (podns --dns-workers) / nsd server-count; with 2 the "
                             "servers get both cores and so does dnsperf")
    parser.add_argument("--client-buffer", type=int, default=0, metavar="KB",
                        help="dnsperf's socket buffers (-b, KB; default: the system's, 208 KB here): with "
                             "--workers 2 dnsperf shares the cores with the servers, and a reply burst "
                             "arriving while it is descheduled overflows its receive buffer (counted lost)")
    args = parser.parse_args()
    client = ("-b", str(args.client_buffer)) if args.client_buffer else ()
    targets = args.targets.split(",")
    cpus = "1" if args.workers == 1 else "0,1"
    procs: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory(prefix="podns-dnsbench-") as tmp:
        work = Path(tmp)
        queries = work / "queries.txt"
        count = dns_zone.write_queries(queries)
        dns_zone.write_nsd_zone(work / "cluster.local.zone")
        servers: dict[str, tuple[int, int]] = {}
        try:
            for target in targets:
                port = free_port(socket.SOCK_DGRAM)
                started, pid = start_target(target, work, port, cpus, args.workers)
                procs.extend(started)
                wait_answering(port, timeout=600)
                # warm-up, discarded: the first dnsperf run right after a server started polling
                # with dig lost every query in some runs (podns and nsd alike: seen only then)
                dnsperf(port, queries, 1, "-c", "8", "-q", "1600", cpus="0" if args.workers == 1 else "0,1")
                servers[target] = (port, pid)
            print(f"zone: 1005 services, 3500 endpoints; {count} distinct queries; "
                  f"{args.rounds} rounds of {args.seconds:g} s; workers {args.workers}; "
                  f"dnsperf buffers {args.client_buffer or 'default'} KB; "
                  f"load average {os.getloadavg()[0]:.2f}", flush=True)
            results: dict[str, list[dict[str, float]]] = {t: [] for t in targets}
            cpus_perf = "0" if args.workers == 1 else "0,1"
            for r in range(args.rounds):
                for target, (port, pid) in servers.items():
                    res = measure(port, pid, queries, args.seconds, cpus_perf, client)
                    results[target].append(res)
                    print(f"round {r + 1} {target}: " + ", ".join(f"{k}={v:.4g}" for k, v in res.items())
                          + f" (load {os.getloadavg()[0]:.2f})", flush=True)
        finally:
            stop(*procs)
    med = {name: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for name, rs in results.items()}
    print("\nmedians:")
    print(f"{'':8}{'QPS':>10}{'lost':>8}{'p50 ms':>9}{'p99 ms':>9}{'(rounds)':>14}{'p99/s':>9}"
          f"{'resp B':>8}{'CPU us/q @40k':>15}")
    for name, m in med.items():
        p99s = [r["p99_ms"] for r in results[name]]
        spread = f"{min(p99s):.2f}-{max(p99s):.2f}"
        print(f"{name:8}{m['qps']:>10.0f}{m['lost']:>8.0f}{m['p50_ms']:>9.3f}{m['p99_ms']:>9.3f}{spread:>14}"
              f"{m['p99s_ms']:>9.3f}{m['resp_bytes']:>8.0f}{m['cpu_us_per_query']:>15.2f}")
    if "nsd" in med:
        for name in (t for t in targets if t != "nsd"):
            qps_ratio = med[name]["qps"] / med["nsd"]["qps"]
            cpu_ratio = med["nsd"]["cpu_us_per_query"] / med[name]["cpu_us_per_query"]
            p99_ratio = med["nsd"]["p99_ms"] / med[name]["p99_ms"]
            steady_ratio = med["nsd"]["p99s_ms"] / med[name]["p99s_ms"]
            print(f"{name}/nsd: QPS {qps_ratio:.2f}x; CPU efficiency (nsd us/q / {name} us/q) "
                  f"{cpu_ratio:.2f}x; p99 (nsd / {name}) {p99_ratio:.2f}x, p99/s "
                  f"{steady_ratio:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
