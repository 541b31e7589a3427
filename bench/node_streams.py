"""Streams into pods: port-forward against a direct connection, and `kubectl exec -- true`.

One `podns up` (loopback pod network); one pod serving an echo port (7000) and a bulk port
(7001, which sends `--mib` MiB per connection). Port-forward runs through real kubectl: 1.33
(SPDY tunnelled in a WebSocket) and 1.27 (SPDY), each path client -> kubectl -> API server ->
node agent -> pod. Measured side by side, interleaved in rounds:

- round trip: 1-byte ping-pong on one open connection;
- connect: a new TCP connection until the first echoed byte;
- throughput: one connection reading the bulk port to its end;
- `kubectl exec pod -- true` wall time (1.33 and 1.27), beside `kubectl get pod` (the same
  kubectl start-up and API round trip without a stream).

    .venv/bin/python bench/node_streams.py [--rounds 5] [--pings 200] [--mib 64] [--execs 15]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

from _common import pct
from _node_cluster import podns_up

SERVER = ("import os, socket, threading\n"
          "ip = os.environ['POD_IP']; size = int(os.environ['BULK'])\n"
          "def echo(c):\n"
          "    while (d := c.recv(65536)):\n"
          "        c.sendall(d)\n"
          "    c.close()\n"
          "def bulk(c):\n"
          "    block = b'x' * 65536\n"
          "    for _ in range(size // 65536):\n"
          "        c.sendall(block)\n"
          "    c.close()\n"
          "def serve(port, fn):\n"
          "    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
          "    s.bind((ip, port)); s.listen(64)\n"
          "    while True:\n"
          "        threading.Thread(target=fn, args=(s.accept()[0],), daemon=True).start()\n"
          "threading.Thread(target=serve, args=(7001, bulk), daemon=True).start()\n"
          "serve(7000, echo)\n")


def kubectl(version: str) -> str:
    name = f"kubectl.{version}"
    found = shutil.which(name)
    if not found:
        plain = shutil.which("kubectl")
        cand = os.path.join(os.path.dirname(os.path.realpath(plain or "")), name)
        found = cand if os.access(cand, os.X_OK) else None
    if not found:
        raise SystemExit(f"{name} not found")
    return found


def round_trips(addr: tuple[str, int], n: int) -> list[float]:
    with socket.create_connection(addr, timeout=10) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.sendall(b"w")
        s.recv(1)
        out = []
        for _ in range(n):
            t0 = time.perf_counter()
            s.sendall(b"p")
            s.recv(1)
            out.append(time.perf_counter() - t0)
        return out


def connect_once(addr: tuple[str, int]) -> float:
    t0 = time.perf_counter()
    with socket.create_connection(addr, timeout=10) as s:
        s.sendall(b"c")
        s.recv(1)
    return time.perf_counter() - t0


def throughput(addr: tuple[str, int], size: int) -> float:
    """MB/s reading `size` bytes from the bulk port."""
    t0 = time.perf_counter()
    got = 0
    with socket.create_connection(addr, timeout=30) as s:
        while chunk := s.recv(1 << 20):
            got += len(chunk)
    assert got == size, (got, size)
    return size / (time.perf_counter() - t0) / 1e6


def forward(version: str, env: dict[str, str]) -> tuple[subprocess.Popen[str], dict[int, int]]:
    """kubectl port-forward pod/bench-streams :7000 :7001 -> {pod port: local port}."""
    proc = subprocess.Popen([kubectl(version), "port-forward", "--address", "127.0.0.1", "pod/bench-streams",
                             ":7000", ":7001"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            env=env)
    assert proc.stdout is not None
    ports: dict[int, int] = {}
    while len(ports) < 2:
        line = proc.stdout.readline()
        m = re.search(r"127\.0\.0\.1:(\d+) -> (\d+)", line)
        if not m:
            raise SystemExit(f"kubectl {version} port-forward: {line!r}")
        ports[int(m.group(2))] = int(m.group(1))
    return proc, ports


def timed(cmd: list[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


def ms(values: list[float]) -> str:
    return f"{1000 * statistics.median(values):.2f} ms (p99 {1000 * pct(values, 0.99):.2f})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--pings", type=int, default=200)
    ap.add_argument("--mib", type=int, default=64)
    ap.add_argument("--execs", type=int, default=15)
    args = ap.parse_args()
    size = args.mib * (1 << 20)
    with podns_up("--no-dns") as cluster:
        env = dict(os.environ, KUBECONFIG=str(cluster.kubeconfig))
        container = {"name": "main", "image": "python", "command": [sys.executable, "-c", SERVER],
                     "env": [{"name": "BULK", "value": str(size)},
                             {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}]}
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "bench-streams"},
               "spec": {"containers": [container]}}
        subprocess.run([kubectl("1.33"), "apply", "-f", "-"], input=json.dumps(pod), text=True, env=env,
                       check=True, stdout=subprocess.DEVNULL)
        ip = ""
        for _ in range(300):
            got = subprocess.run([kubectl("1.33"), "get", "pod", "bench-streams", "-o",
                                  "jsonpath={.status.podIP} {.status.phase}"], env=env, capture_output=True,
                                 text=True).stdout.split()
            if len(got) == 2 and got[1] == "Running":
                try:
                    socket.create_connection((got[0], 7000), timeout=1).close()
                    ip = got[0]
                    break
                except OSError:
                    pass
            time.sleep(0.1)
        if not ip:
            raise SystemExit("pod bench-streams never served")
        paths: dict[str, dict[int, tuple[str, int]]] = {"direct": {7000: (ip, 7000), 7001: (ip, 7001)}}
        procs = []
        for version in ("1.33", "1.27"):
            proc, ports = forward(version, env)
            procs.append(proc)
            paths[f"port-forward {version}"] = {p: ("127.0.0.1", local) for p, local in ports.items()}
        rtt: dict[str, list[float]] = {k: [] for k in paths}
        conn: dict[str, list[float]] = {k: [] for k in paths}
        tput: dict[str, list[float]] = {k: [] for k in paths}
        try:
            for _ in range(args.rounds):
                for name, addrs in paths.items():
                    rtt[name] += round_trips(addrs[7000], args.pings)
                    conn[name] += [connect_once(addrs[7000]) for _ in range(20)]
                    tput[name].append(throughput(addrs[7001], size))
        finally:
            for proc in procs:
                proc.kill()
                proc.wait()
        execs: dict[str, list[float]] = {"kubectl get pod (1.33)": [], "kubectl exec -- true (1.33)": [],
                                         "kubectl exec -- true (1.27)": []}
        for _ in range(args.execs):
            get = [kubectl("1.33"), "get", "pod", "bench-streams"]
            execs["kubectl get pod (1.33)"].append(timed(get, env))
            for v in ("1.33", "1.27"):
                execs[f"kubectl exec -- true ({v})"].append(
                    timed([kubectl(v), "exec", "bench-streams", "--", "true"], env))
    load = Path("/proc/loadavg").read_text().split()[:3]
    print(f"# load average before the report: {' '.join(load)}")
    print("| path | round trip p50 (p99) | new connection p50 (p99) | throughput (median) |")
    print("| --- | --- | --- | --- |")
    for name in paths:
        print(f"| {name} | {ms(rtt[name])} | {ms(conn[name])} | {statistics.median(tput[name]):.0f} MB/s |")
    print()
    print("| command | median | p90 |")
    print("| --- | --- | --- |")
    for name, values in execs.items():
        print(f"| {name} | {1000 * statistics.median(values):.0f} ms | {1000 * pct(values, 0.9):.0f} ms |")


if __name__ == "__main__":
    main()
