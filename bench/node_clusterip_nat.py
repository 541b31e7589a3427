"""ClusterIP through kernel NAT (netns mode, nftables and iptables) vs the userspace proxy vs the
pod IP directly: connection set-up rate and latency, and one stream's throughput, side by side.

    sudo .venv/bin/python bench/node_clusterip_nat.py [--connects 2000] [--seconds 2]

Root only. Starts three `podns up --pod-network netns --container-runtime process` side by
side: `nft` and `ipt` with service CIDRs off loopback (ClusterIPs DNATed by the node's nftables
table, `--proxy-mode nftables`, or by its iptables chains, `--proxy-mode iptables`) and
`userspace` with a loopback service CIDR (ClusterIPs served by the asyncio proxy, which listens
in the root namespace only). Each runs the same server pod (a 1-byte greeting on 7100, an
endless stream on 7200) behind a ClusterIP Service. A client process measures, in rounds that
interleave the paths so machine noise hits them alike:

- from the host: the pod IP directly, the ClusterIP through each kernel backend, the ClusterIP
  through the userspace proxy;
- from inside a second pod of `nft` and of `ipt` (their own network namespaces): the pod IP
  directly and the ClusterIP through that kernel backend (the userspace proxy is not reachable
  from pods).

Set-up = connect + read the greeting, one connection after the other; the rate is connections
per second of that loop. Throughput = MB/s of one stream after a 0.3 s warm-up (median of 3).
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import os
import random
import statistics
import subprocess
import sys
from typing import Any

from _node_cluster import podns_up
from node_proxy import APP

from podns.kube.client import Client
from podns.kube.resources import PODS, SERVICES
from podns.node import netns

CLIENT = r"""
import json, socket, sys, time
mode, ip, port, arg = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
if mode == "setup":
    out = []
    for _ in range(int(arg)):
        t0 = time.perf_counter()
        s = socket.create_connection((ip, port)); s.recv(1); s.close()
        out.append(time.perf_counter() - t0)
    print(json.dumps(out))
else:
    s = socket.create_connection((ip, port)); s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
    end = time.perf_counter() + 0.3
    while time.perf_counter() < end:
        s.recv(1 << 20)
    total, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < arg:
        total += len(s.recv(1 << 20))
    print(json.dumps(total / (time.perf_counter() - t0) / 1e6)); s.close()
"""


def client(mode: str, ip: str, port: int, arg: float, inside: str | None = None) -> Any:
    cmd = [sys.executable, "-c", CLIENT, mode, ip, str(port), str(arg)]
    if inside:
        cmd = ["ip", "netns", "exec", inside, *cmd]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if out.returncode:
        raise SystemExit(f"client {mode} {ip}:{port}: {out.stderr}")
    return json.loads(out.stdout)


def pod(name: str, command: list[str]) -> dict[str, Any]:
    """No readiness probe: a probe timing out on a loaded machine would take the endpoint out of
    the rules mid-run (connections refused), which is not what is measured here."""
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": name}},
            "spec": {"containers": [{
                "name": name, "image": "python", "command": command,
                "env": [{"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}]}]}}


async def deploy(kubeconfig: Any, *, with_client: bool) -> dict[str, str]:
    """The server pod (and a client pod) Ready behind the ClusterIP Service `srv`."""
    api = Client.from_kubeconfig(kubeconfig)
    try:
        await api.create(PODS, pod("srv", [sys.executable, "-c", APP]), "default")
        if with_client:
            await api.create(PODS, pod("cli", ["sleep", "infinity"]), "default")
        svc = await api.create(SERVICES, {
            "apiVersion": "v1", "kind": "Service", "metadata": {"name": "srv"},
            "spec": {"selector": {"app": "srv"}, "ports": [{"name": "greet", "port": 7100},
                                                           {"name": "stream", "port": 7200}]}}, "default")
        out = {"cluster_ip": svc["spec"]["clusterIP"]}
        for _ in range(600):
            pods = {p["metadata"]["name"]: p for p in (await api.list(PODS, "default"))["items"]}
            ready = {n: p for n, p in pods.items()
                     if any(c.get("type") == "Ready" and c.get("status") == "True"
                            for c in (p.get("status") or {}).get("conditions") or [])}
            if len(ready) == (2 if with_client else 1):
                out["pod_ip"] = ready["srv"]["status"]["podIP"]
                if with_client:
                    out["client_ns"] = netns.netns_name(ready["cli"]["metadata"]["uid"])
                return out
            await asyncio.sleep(0.1)
        raise SystemExit("pods not Ready within 60 s")
    finally:
        await api.close()


def wait_serving(ip: str, inside: str | None = None) -> None:
    for _ in range(100):
        try:
            client("setup", ip, 7100, 1, inside)
            return
        except SystemExit:
            continue
    raise SystemExit(f"{ip}:7100 never answered")


def service_cidr(taken: tuple[str, ...] = ()) -> str:
    used = [*netns.host_networks(), *(ipaddress.ip_network(t) for t in taken)]
    while True:
        cidr = ipaddress.ip_network(f"10.{random.randint(200, 254)}.{random.randint(0, 255)}.0/24")
        if not any(cidr.overlaps(u) for u in used):
            return str(cidr)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connects", type=int, default=2000, help="connections per path")
    parser.add_argument("--seconds", type=float, default=2.0, help="seconds per throughput run")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("root only: netns mode and nftables")
    flags = ("--pod-network", "netns", "--container-runtime", "process")
    nft_cidr = service_cidr()
    ipt_cidr = service_cidr((nft_cidr,))
    with podns_up(*flags, "--proxy-mode", "nftables", service_cidr=nft_cidr) as nft_cluster, \
            podns_up(*flags, "--proxy-mode", "iptables", service_cidr=ipt_cidr) as ipt_cluster, \
            podns_up(*flags, service_cidr=f"127.{random.randint(150, 250)}.0.0/16") as user_cluster:
        nat = asyncio.run(deploy(nft_cluster.kubeconfig, with_client=True))
        ipt = asyncio.run(deploy(ipt_cluster.kubeconfig, with_client=True))
        user = asyncio.run(deploy(user_cluster.kubeconfig, with_client=False))
        inside, inside_ipt = nat["client_ns"], ipt["client_ns"]
        paths = {  # name -> (ip, namespace the client runs in)
            "host -> pod IP (direct)": (nat["pod_ip"], None),
            "host -> ClusterIP, nftables NAT": (nat["cluster_ip"], None),
            "host -> ClusterIP, iptables NAT": (ipt["cluster_ip"], None),
            "host -> ClusterIP, userspace proxy": (user["cluster_ip"], None),
            "pod -> pod IP (direct)": (nat["pod_ip"], inside),
            "pod -> ClusterIP, nftables NAT": (nat["cluster_ip"], inside),
            "pod -> ClusterIP, iptables NAT": (ipt["cluster_ip"], inside_ipt),
        }
        for ip, ns in paths.values():
            wait_serving(ip, ns)
        load = os.getloadavg()[0]
        print(f"nft: pod {nat['pod_ip']} ClusterIP {nat['cluster_ip']}; iptables: pod {ipt['pod_ip']} "
              f"ClusterIP {ipt['cluster_ip']}; userspace: pod {user['pod_ip']} ClusterIP "
              f"{user['cluster_ip']}; load average {load:.1f}")
        setup: dict[str, list[float]] = {name: [] for name in paths}
        rounds = 10
        for _ in range(rounds):
            for name, (ip, ns) in paths.items():
                setup[name] += client("setup", ip, 7100, args.connects // rounds, ns)
        tput: dict[str, list[float]] = {name: [] for name in paths}
        for _ in range(3):
            for name, (ip, ns) in paths.items():
                tput[name].append(client("stream", ip, 7200, args.seconds, ns))
        print(f"{args.connects} connections per path ({rounds} interleaved rounds); throughput "
              f"{args.seconds:g} s x 3 (median); load average {load:.1f} -> {os.getloadavg()[0]:.1f}")
        print(f"{'path':<40} {'set-up p50':>11} {'p99':>9} {'conn/s':>8} {'MB/s':>8}")
        for name in paths:
            lat = sorted(setup[name])
            p99 = lat[min(len(lat) - 1, int(0.99 * len(lat)))]
            print(f"{name:<40} {statistics.median(lat) * 1e3:8.3f} ms {p99 * 1e3:6.3f} ms "
                  f"{len(lat) / sum(lat):8.0f} {statistics.median(tput[name]):8.0f}")

        def ratio(a: str, b: str) -> str:
            la, lb = statistics.median(setup[a]), statistics.median(setup[b])
            ta, tb = statistics.median(tput[a]), statistics.median(tput[b])
            return f"set-up p50 {la / lb:.2f}x, throughput {ta / tb:.2f}x"
        print("ratios")
        print(f"  host: nftables / direct         "
              f"{ratio('host -> ClusterIP, nftables NAT', 'host -> pod IP (direct)')}")
        print(f"  host: userspace / direct        "
              f"{ratio('host -> ClusterIP, userspace proxy', 'host -> pod IP (direct)')}")
        print(f"  host: userspace / nftables      "
              f"{ratio('host -> ClusterIP, userspace proxy', 'host -> ClusterIP, nftables NAT')}")
        print(f"  host: iptables / nftables NAT   "
              f"{ratio('host -> ClusterIP, iptables NAT', 'host -> ClusterIP, nftables NAT')}")
        print(f"  pod:  nftables / direct         "
              f"{ratio('pod -> ClusterIP, nftables NAT', 'pod -> pod IP (direct)')}")
        print(f"  pod:  iptables / nftables NAT   "
              f"{ratio('pod -> ClusterIP, iptables NAT', 'pod -> ClusterIP, nftables NAT')}")


if __name__ == "__main__":
    main()
