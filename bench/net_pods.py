"""Pod to pod on the same node vs across simulated machines (host-gw and VXLAN): connection set-up
rate and throughput, side by side.

For each backend, a lab of simulated machines (`tests/netsim.py`, root only): host-gw = machines a
and b on one bridge LAN; vxlan = a and b on two subnets behind a router netns. `podns up
--pod-network netns` runs on a, `podns node` on b; pods (process runtime): a sink server on a, one
on b, a client on a. The client (via `kubectl exec`, python3 inside the pod) measures, per round:

- connection set-up: `--conns` sequential connect + close to each server (connections per
  second, and the median connect() time);
- throughput: `--mb` MiB sent in 256 KiB writes, until the server has read everything (MiB/s).

Rounds alternate same-node and across; medians are printed with the ratio across/same. With
`--families 4,6` (default) the cluster is dual-stack (service and cluster CIDR of both families;
on the host-gw LAN the machines also have IPv6 addresses, `--node-ip <IPv4>,<IPv6>`, so IPv6 pods
are routed host-gw; across the router IPv6 rides the IPv4 VXLAN tunnel) and every path is measured
to the server's IPv4 and its IPv6 address, in the same rounds.

    sudo PATH=$PWD/.venv/bin:$PATH .venv/bin/python bench/net_pods.py --rounds 5
"""

from __future__ import annotations

import argparse
import functools
import ipaddress
import json
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

import _common  # noqa: F401  (puts the repository on sys.path)

from tests.e2e._machines import apply, wait
from tests.netsim import ControlPlane, Lab, podns_node, podns_up

#: a sink on both families ("::" with IPV6_V6ONLY off takes IPv4 too)
SINK = ("import socket, socketserver\n"
        "class H(socketserver.BaseRequestHandler):\n"
        "    def handle(self):\n"
        "        while self.request.recv(1 << 18): pass\n"
        "class S(socketserver.ThreadingTCPServer):\n"
        "    address_family = socket.AF_INET6\n"
        "    allow_reuse_address = daemon_threads = True\n"
        "    request_queue_size = 1024\n"
        "    def server_bind(self):\n"
        "        self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)\n"
        "        super().server_bind()\n"
        "S(('::', 5432), H).serve_forever()\n")
#: the dual-stack ranges (inside the lab's namespaces only)
SERVICE_CIDR = "10.96.0.0/16,fd00:10:96::/112"
CLUSTER_CIDR = "10.244.0.0/16,fd00:10:244::/56"
MEASURE = ("import json, socket, statistics, sys, time\n"
           "host, conns, mb = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])\n"
           "times = []\n"
           "t0 = time.perf_counter()\n"
           "for _ in range(conns):\n"
           "    t = time.perf_counter(); s = socket.create_connection((host, 5432))\n"
           "    times.append(time.perf_counter() - t)\n"
           "    s.close()\n"
           "total = time.perf_counter() - t0\n"
           "s = socket.create_connection((host, 5432)); chunk = b'x' * (1 << 18)\n"
           "t = time.perf_counter()\n"
           "for _ in range(mb * 4): s.sendall(chunk)\n"
           "s.shutdown(socket.SHUT_WR); s.recv(1); took = time.perf_counter() - t; s.close()\n"
           "print(json.dumps({'conn_per_s': conns / total, 'connect_ms': statistics.median(times) * 1e3,\n"
           "                  'mib_per_s': mb / took}))\n")


def pod(name: str, node: str, command: list[str]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"nodeName": node, "terminationGracePeriodSeconds": 1,
                     "containers": [{"name": name, "image": "python", "command": command}]}}


def pod_ips(cp: ControlPlane, name: str) -> dict[int, str] | None:
    """The pod's IPs by IP version once it runs (None before)."""
    r = cp.kubectl("get", "pod", name, "-o", "json")
    if r.returncode != 0:
        return None
    st = json.loads(r.stdout).get("status") or {}
    if st.get("phase") != "Running":
        return None
    ips: dict[int, str] = {ipaddress.ip_address(x["ip"]).version: str(x["ip"])
                           for x in st.get("podIPs") or []}
    return ips or None


def measure(cp: ControlPlane, host: str, conns: int, mb: int) -> dict[str, float]:
    r = cp.kubectl("exec", "cli-a", "--", "python3", "-c", MEASURE, host, str(conns), str(mb), timeout=300)
    if r.returncode != 0:
        raise RuntimeError(f"measuring to {host}: {r.stderr}")
    return dict(json.loads(r.stdout.strip().splitlines()[-1]))


def run_backend(backend: str, work: Path, args: argparse.Namespace) -> dict[str, list[dict[str, float]]]:
    families = [int(f) for f in args.families.split(",")]
    dual = 6 in families
    extra = ["--service-cidr", SERVICE_CIDR] if dual else []
    with Lab() as lab:
        if backend == "host-gw":
            lan = lab.lan("lan", "192.168.77.0/24", subnet6="fd77::/64" if dual else None)
            a, b = lab.machine("a", lan), lab.machine("b", lan)
        else:
            lan1, lan2 = lab.lan("lan1", "192.168.81.0/24"), lab.lan("lan2", "192.168.82.0/24")
            lab.router("r", lan1, lan2)
            a, b = lab.machine("a", lan1), lab.machine("b", lan2)
        cp = podns_up(a, work, *extra, *(["--cluster-cidr", CLUSTER_CIDR] if dual else []))
        podns_node(b, cp, work, *extra)
        sink = ["python3", "-c", SINK]
        apply(cp, pod("srv-a", "a", sink), pod("srv-b", "b", sink), pod("cli-a", "a", ["sleep", "100000"]))
        ips: dict[str, dict[int, str]] = {}
        for n in ("srv-a", "srv-b", "cli-a"):
            ips[n] = wait(functools.partial(pod_ips, cp, n), 120, f"{n} running")
        out: dict[str, list[dict[str, float]]] = {}
        for f in families:  # warm-up (ARP/NDP, VXLAN FDB learning, first exec)
            wait(functools.partial(_try, cp, ips["srv-b"][f]), 60, f"srv-b over IPv{f}")
        for _ in range(args.rounds):
            for f in families:
                suffix = "" if f == 4 else " v6"
                for path, server in (("same node", "srv-a"), ("across", "srv-b")):
                    got = measure(cp, ips[server][f], args.conns, args.mb)
                    out.setdefault(path + suffix, []).append(got)
        return out


def _try(cp: ControlPlane, host: str) -> bool:
    try:
        measure(cp, host, 20, 1)
    except RuntimeError:
        return False
    return True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--conns", type=int, default=500, help="connections per round and path")
    parser.add_argument("--mb", type=int, default=200, help="MiB sent per round and path")
    parser.add_argument("--backends", default="host-gw,vxlan")
    parser.add_argument("--families", default="4,6", help="IP versions measured: 4, 6 or 4,6 (dual-stack)")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="podns-bench-net-") as tmp:
        for backend in args.backends.split(","):
            work = Path(tmp) / backend
            work.mkdir()
            got = run_backend(backend, work, args)
            med = {path: {k: statistics.median(r[k] for r in runs) for k in runs[0]}
                   for path, runs in got.items()}
            rows.append((backend, med))
    print(f"pod -> pod, medians of {args.rounds} rounds ({args.conns} connections, {args.mb} MiB per round)")
    print(f"{'backend':<8} {'path':<13} {'conn/s':>8} {'connect ms':>11} {'MiB/s':>8}")
    for backend, med in rows:
        for suffix in ("", " v6"):
            if "same node" + suffix not in med:
                continue
            same, across = med["same node" + suffix], med["across" + suffix]
            for path, m in (("same node" + suffix, same), ("across" + suffix, across)):
                print(f"{backend:<8} {path:<13} {m['conn_per_s']:>8.0f} {m['connect_ms']:>11.3f} "
                      f"{m['mib_per_s']:>8.0f}")
            print(f"{backend:<8} {'ratio' + suffix:<13} {across['conn_per_s'] / same['conn_per_s']:>8.2f} "
                  f"{across['connect_ms'] / same['connect_ms']:>11.2f} "
                  f"{across['mib_per_s'] / same['mib_per_s']:>8.2f}   (across / same node)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
