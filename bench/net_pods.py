"""Pod to pod on the same node vs across simulated machines (host-gw and VXLAN): connection set-up
rate and throughput, side by side.

For each backend, a lab of simulated machines (`tests/netsim.py`, root only): host-gw = machines a
and b on one bridge LAN; vxlan = a and b on two subnets behind a router netns. `podns up
--pod-network netns` runs on a, `podns node` on b; pods (process runtime): a sink server on a, one
on b, a client on a. The client (via `kubectl exec`, python3 inside the pod) measures, per round:

- connection set-up: `--conns` sequential connect + close to each server (connections per
  second, and the median connect() time);
- throughput: `--mb` MiB sent in 256 KiB writes, until the server has read everything (MiB/s).

Rounds alternate same-node and across; medians are printed with the ratio across/same.

    sudo PATH=$PWD/.venv/bin:$PATH .venv/bin/python bench/net_pods.py --rounds 5
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

import _common  # noqa: F401  (puts the repository on sys.path)

from tests.e2e._machines import apply, ready_ip, wait
from tests.netsim import ControlPlane, Lab, podns_node, podns_up

SINK = ("import socketserver\n"
        "class H(socketserver.BaseRequestHandler):\n"
        "    def handle(self):\n"
        "        while self.request.recv(1 << 18): pass\n"
        "socketserver.ThreadingTCPServer.allow_reuse_address = True\n"
        "socketserver.ThreadingTCPServer.daemon_threads = True\n"
        "socketserver.ThreadingTCPServer.request_queue_size = 1024\n"
        "socketserver.ThreadingTCPServer(('0.0.0.0', 5432), H).serve_forever()\n")
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


def measure(cp: ControlPlane, host: str, conns: int, mb: int) -> dict[str, float]:
    r = cp.kubectl("exec", "cli-a", "--", "python3", "-c", MEASURE, host, str(conns), str(mb), timeout=300)
    if r.returncode != 0:
        raise RuntimeError(f"measuring to {host}: {r.stderr}")
    return dict(json.loads(r.stdout.strip().splitlines()[-1]))


def run_backend(backend: str, work: Path, args: argparse.Namespace) -> dict[str, list[dict[str, float]]]:
    with Lab() as lab:
        if backend == "host-gw":
            lan = lab.lan("lan", "192.168.77.0/24")
            a, b = lab.machine("a", lan), lab.machine("b", lan)
        else:
            lan1, lan2 = lab.lan("lan1", "192.168.81.0/24"), lab.lan("lan2", "192.168.82.0/24")
            lab.router("r", lan1, lan2)
            a, b = lab.machine("a", lan1), lab.machine("b", lan2)
        cp = podns_up(a, work)
        podns_node(b, cp, work)
        sink = ["python3", "-c", SINK]
        apply(cp, pod("srv-a", "a", sink), pod("srv-b", "b", sink), pod("cli-a", "a", ["sleep", "100000"]))
        ips = {n: wait(lambda n=n: ready_ip(cp, n), 120, f"{n} Ready") for n in ("srv-a", "srv-b", "cli-a")}
        measure(cp, ips["srv-b"], 20, 1)  # warm-up (ARP, VXLAN FDB learning, first exec)
        out: dict[str, list[dict[str, float]]] = {"same node": [], "across": []}
        for _ in range(args.rounds):
            out["same node"].append(measure(cp, ips["srv-a"], args.conns, args.mb))
            out["across"].append(measure(cp, ips["srv-b"], args.conns, args.mb))
        return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--conns", type=int, default=500, help="connections per round and path")
    parser.add_argument("--mb", type=int, default=200, help="MiB sent per round and path")
    parser.add_argument("--backends", default="host-gw,vxlan")
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
    print(f"{'backend':<8} {'path':<10} {'conn/s':>8} {'connect ms':>11} {'MiB/s':>8}")
    for backend, med in rows:
        for path in ("same node", "across"):
            m = med[path]
            print(f"{backend:<8} {path:<10} {m['conn_per_s']:>8.0f} {m['connect_ms']:>11.3f} "
                  f"{m['mib_per_s']:>8.0f}")
        same, across = med["same node"], med["across"]
        print(f"{backend:<8} {'ratio':<10} {across['conn_per_s'] / same['conn_per_s']:>8.2f} "
              f"{across['connect_ms'] / same['connect_ms']:>11.2f} "
              f"{across['mib_per_s'] / same['mib_per_s']:>8.2f}   (across / same node)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
