"""Rolling update of a Deployment behind a headless Service and a ClusterIP Service, with
clients connecting throughout: failed requests and the fewest A records seen.

    .venv/bin/python bench/deploy_rollout.py [--replicas 10] [--rounds 3] [--max-unavailable 0]

Starts `podns up` (loopback pods, loopback service CIDR), applies a Deployment of `--replicas`
pods (an HTTP server that keeps serving 3 s after SIGTERM, as draining servers do; readiness
probe every second; maxSurge 25%, maxUnavailable `--max-unavailable`), a headless Service and a
ClusterIP Service selecting them. Each round changes the image (`kubectl set image`) and, until
`kubectl rollout status` returns and 3 s more, runs side by side:

- `headless`: resolve the headless name in podns DNS on every request (no cache), record how many
  A records came back, pick one at random, HTTP GET it;
- `clusterip`: HTTP GET the ClusterIP (the node's service proxy picks a ready pod).

Each sends one request every 10 ms; a request fails when it cannot connect, times out (1 s) or
gets no 200. Prints per client the requests, the failures and (headless) the minimum and median
number of A records seen, per round and in total.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import subprocess
import sys
import time

import dns.asyncquery
import dns.message
import dns.rdatatype
from _node_cluster import REPO, podns_up

SERVER = (
    "import os,signal,threading,http.server as h\n"
    "class H(h.BaseHTTPRequestHandler):\n"
    "    def do_GET(self):\n"
    "        self.send_response(200); self.send_header('Content-Length','2'); self.end_headers()\n"
    "        self.wfile.write(b'ok')\n"
    "    def log_message(self, *a): pass\n"
    "signal.signal(signal.SIGTERM, lambda *a: threading.Timer(3, os._exit, (0,)).start())\n"
    "h.ThreadingHTTPServer((os.environ['PODNS_POD_IP'], 8080), H).serve_forever()\n"
)

MANIFEST = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: REPLICAS
  selector: {matchLabels: {app: web}}
  strategy: {type: RollingUpdate, rollingUpdate: {maxSurge: 25%, maxUnavailable: UNAVAILABLE}}
  template:
    metadata: {labels: {app: web}}
    spec:
      terminationGracePeriodSeconds: 5
      containers:
      - name: web
        image: web:0
        command: [PYTHON, -c, SERVER]
        ports: [{name: http, containerPort: 8080}]
        readinessProbe: {tcpSocket: {port: http}, periodSeconds: 1}
---
apiVersion: v1
kind: Service
metadata: {name: web-headless}
spec:
  clusterIP: None
  selector: {app: web}
  ports: [{name: http, port: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: 8080}]
"""
NAME = "web-headless.default.svc.cluster.local"


def kubectl(kubeconfig: str, *args: str, input: str | None = None) -> str:
    r = subprocess.run(["kubectl", f"--kubeconfig={kubeconfig}", *args], input=input,
                       capture_output=True, text=True)
    if r.returncode:
        raise SystemExit(f"kubectl {' '.join(args)}: {r.stderr}")
    return r.stdout


async def http_get(address: str, port: int) -> bool:
    """One HTTP/1.0 GET; True for a 200 within 1 s."""
    try:
        async with asyncio.timeout(1.0):
            reader, writer = await asyncio.open_connection(address, port)
            writer.write(b"GET / HTTP/1.0\r\nHost: web\r\n\r\n")
            await writer.drain()
            line = await reader.readline()
            writer.close()
            return line.startswith(b"HTTP/1.0 200") or line.startswith(b"HTTP/1.1 200")
    except (OSError, TimeoutError):
        return False


class Client:
    def __init__(self) -> None:
        self.requests = 0
        self.failed = 0
        self.records: list[int] = []


async def run_headless(c: Client, server: tuple[str, int], stop: asyncio.Event) -> None:
    rng = random.Random(1)
    while not stop.is_set():
        q = dns.message.make_query(NAME, dns.rdatatype.A)
        try:
            resp = await dns.asyncquery.udp(q, server[0], port=server[1], timeout=1)
            addrs = [rr.address for rrset in resp.answer for rr in rrset]
        except Exception:
            addrs = []
        c.records.append(len(addrs))
        c.requests += 1
        if not addrs or not await http_get(rng.choice(addrs), 8080):
            c.failed += 1
        await asyncio.sleep(0.01)


async def run_clusterip(c: Client, ip: str, stop: asyncio.Event) -> None:
    while not stop.is_set():
        c.requests += 1
        if not await http_get(ip, 80):
            c.failed += 1
        await asyncio.sleep(0.01)


async def rollout(kc: str, image: str) -> float:
    start = time.monotonic()
    await asyncio.to_thread(kubectl, kc, "set", "image", "deployment/web", f"web={image}")
    await asyncio.to_thread(kubectl, kc, "rollout", "status", "deployment/web", "--timeout=300s")
    return time.monotonic() - start


def line(name: str, c: Client, seconds: float | None) -> str:
    extra = ""
    if c.records:
        extra = f"{min(c.records):>8}{statistics.median(c.records):>9.0f}"
    took = f"{seconds:>10.1f}" if seconds is not None else f"{'-':>10}"
    return f"  {name:<10}{c.requests:>9}{c.failed:>8}{took}{extra}"


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--replicas", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--max-unavailable", default="0")
    args = ap.parse_args()
    manifest = (MANIFEST.replace("REPLICAS", str(args.replicas))
                .replace("UNAVAILABLE", args.max_unavailable)
                .replace("PYTHON", json.dumps(sys.executable)).replace("SERVER", json.dumps(SERVER)))
    with podns_up() as cluster:
        kc = str(cluster.kubeconfig)
        kubectl(kc, "apply", "-f", "-", input=manifest)
        kubectl(kc, "rollout", "status", "deployment/web", "--timeout=300s")
        ip = kubectl(kc, "get", "svc", "web", "-o", "jsonpath={.spec.clusterIP}")
        await asyncio.sleep(2.0)
        totals = {"headless": Client(), "clusterip": Client()}
        print(f"{args.replicas} replicas, maxSurge 25%, maxUnavailable {args.max_unavailable}; "
              "one request per 10 ms per client")
        print(f"  {'client':<10}{'requests':>9}{'failed':>8}{'seconds':>10}{'min A':>8}{'median A':>9}")
        for rnd in range(args.rounds):
            clients = {"headless": Client(), "clusterip": Client()}
            stop = asyncio.Event()
            tasks = [asyncio.create_task(run_headless(clients["headless"], cluster.dns_addr, stop)),
                     asyncio.create_task(run_clusterip(clients["clusterip"], ip, stop))]
            await asyncio.sleep(1.0)
            took = await rollout(kc, f"web:{rnd + 1}")
            await asyncio.sleep(3.0)  # the last replaced pods drain and exit
            stop.set()
            await asyncio.gather(*tasks)
            print(f"round {rnd + 1}: rollout {took:.1f} s")
            for name, c in clients.items():
                print(line(name, c, took))
                t = totals[name]
                t.requests += c.requests
                t.failed += c.failed
                t.records += c.records
        print("total:")
        for name, c in totals.items():
            print(line(name, c, None))


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    asyncio.run(main())
