"""ClusterIPs in netns mode end to end: `podns up --pod-network netns --service-cidr <range off
loopback>` serves them with kernel NAT, once per backend: `--proxy-mode nftables` (the node's
nftables tables) and `--proxy-mode auto` on a PATH without `nft` (which must then choose the
node's iptables chains, through iptables-restore). For each: a pod in its own namespace and the
host connect to a ClusterIP backed by three pods (connections spread over all three, including
the client pod itself: hairpin), the rules follow the pods going away (only Ready endpoints),
TCP and UDP (a UDP client's flow moves to the remaining endpoint when its own goes: the node
deletes the stale conntrack entry), ClientIP affinity, an IPv6 ClusterIP, a NodePort reached
from a namespace beside the host (and on 127.0.0.1 in iptables mode only, as kube-proxy), the
traffic policies Local (client address kept, drop without a local endpoint, the short-circuits
of host and pods), an IPv6 NodePort of a dual-stack Service, connection refused without
endpoints, stale rules of a crashed agent replaced on restart, and no rule left after the agent
stops.

The service range is a random 10.2xx.y.0/24 plus an IPv6 ULA /112 (dual-stack: pods get IPv6
addresses too, and an IPv6 ClusterIP is NATed by the node's ip6 table), so that host-side
connections cannot meet the ClusterIPs of another podns on this machine; the pods' own
connections could not anyway (each node's rules match only packets from its own bridge)."""

from __future__ import annotations

import functools
import ipaddress
import json
import os
import random
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from podns.node import netns
from podns.node.proxy import ipt, iptables, nft
from podns.node.proxy.serviceports import chain_hash
from tests._support import free_service_cidr, wait_until
from tests.e2e.conftest import Podns
from tests.e2e.test_node_pods import pod_manifest, ready_ip
from tests.e2e.test_node_proxy_nodeport import endpoint_slice, node_name

SKIP = netns.unavailable_reason() or (None if nft.nft_path() else "needs nft (Debian package nftables)")
SKIP = SKIP or (None if ipt.iptables_path() else "needs iptables (Debian package iptables)")
SERVICE_CIDR = free_service_cidr(ipv6=True) if SKIP is None else "10.200.0.0/24,fd00:1::/112"
pytestmark = [pytest.mark.e2e, pytest.mark.netns, pytest.mark.timeout(150),
              pytest.mark.skipif(SKIP is not None, reason=SKIP or "")]

wait = functools.partial(wait_until, timeout=30.0, step=0.1)

#: connects `count` times to host:port from wherever it runs; prints {answer or error: times}
CLIENT = """
import collections, json, socket, sys
host, port, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
seen = collections.Counter()
for _ in range(count):
    try:
        with socket.create_connection((host, port), timeout=2) as s:
            seen[s.recv(100).decode()] += 1
    except OSError as exc:
        seen[type(exc).__name__] += 1
print(json.dumps(seen))
"""
UDP_ECHO = """
import os, socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind((os.environ['POD_IP'], 5353))
while True:
    data, addr = s.recvfrom(2048); s.sendto(os.environ['POD_NAME'].encode() + b':' + data, addr)
"""


def service(name: str, **spec: object) -> str:
    return json.dumps({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
                       "spec": {"selector": {"app": "db"}, **spec}})


def apply(p: Podns, manifest: str) -> None:
    r = p.kubectl("apply", "--validate=false", "-f", "-", input=manifest)
    assert r.returncode == 0, r.stderr


def cluster_ip(p: Podns, name: str) -> str:
    return str(json.loads(p.kubectl("get", "svc", name, "-o", "json").stdout)["spec"]["clusterIP"])


def echo_pod(name: str, app: str) -> str:
    """A pod labelled app=`app` echoing UDP datagrams on 5353, prefixed with its name."""
    env = [{"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
           {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]
    return json.dumps({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": app}},
                       "spec": {"terminationGracePeriodSeconds": 1, "containers": [{
                           "name": "echo", "image": "python", "command": [sys.executable, "-c", UDP_ECHO],
                           "env": env}]}})


def pod_netns(p: Podns, name: str) -> str:
    uid = json.loads(p.kubectl("get", "pod", name, "-o", "json").stdout)["metadata"]["uid"]
    return netns.netns_name(uid)


def connect(host: str, port: int, count: int, inside: str | None = None) -> Counter[str]:
    """Answers of `count` connections to host:port, from the pod namespace `inside` or the host."""
    cmd = [sys.executable, "-c", CLIENT, host, str(port), str(count)]
    if inside:
        cmd = ["ip", "netns", "exec", inside, *cmd]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return Counter(json.loads(out.stdout))


def table_of(p: Podns) -> str:
    """The node's nft table: named after its bridge (podns-<hex of the pod CIDR>)."""
    node = json.loads(p.kubectl("get", "nodes", "-o", "json").stdout)["items"][0]
    return netns.bridge_name(node["spec"]["podCIDR"])


class NatPodns(Podns):
    """A `podns up` whose ClusterIPs one kernel backend serves (`mode`: nftables or iptables)."""

    mode = "nftables"

    def rules(self, family: int = 4, table: str | None = None) -> str:
        """What the node's rules of `family` say now: its nft table, or the lines of its
        iptables chains (and the jumps to them) in iptables-save's nat and filter tables.
        `table`: the node's bridge (None: asked of the API)."""
        table = table or table_of(self)
        if self.mode == "nftables":
            return subprocess.run(["nft", "list", "table", "ip" if family == 4 else "ip6", table],
                                  capture_output=True, text=True, check=True).stdout
        tool = "iptables-save" if family == 4 else "ip6tables-save"
        prefix = iptables.prefix_of(table)
        return "".join(line + "\n" for t in ("nat", "filter") for line in subprocess.run(
            [tool, "-t", t], capture_output=True, text=True, check=True).stdout.splitlines()
            if prefix in line)


def path_without_nft(work: Path) -> str:
    """A PATH whose admin directory (`<work>/sbin`: links to everything of /usr/sbin and /sbin
    but nft) lacks nft, as on a machine without the nftables package; `tools.find_tool` then
    does not look in /usr/sbin either."""
    sbin = work / "sbin"
    sbin.mkdir()
    for src in (Path("/usr/sbin"), Path("/sbin")):
        for tool in src.iterdir() if src.is_dir() else ():
            if tool.name != "nft" and not (sbin / tool.name).exists():
                (sbin / tool.name).symlink_to(tool)
    venv = str(Path(sys.executable).parent)
    return os.pathsep.join([venv, str(sbin), "/usr/local/bin", "/usr/bin", "/bin"])


@pytest.fixture(scope="module", params=["nftables", "iptables"])
def cluster(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatPodns]:
    """One `podns up` per backend (nftables: `--proxy-mode nftables`; iptables: `--proxy-mode
    auto` without nft on PATH) with three pods behind the Service `db` (port 80 -> 5432), all
    Ready. Node ports come from a random 100-port window, so that two clusters of this module
    running at once on one machine seldom share one (they would take each other's: the first
    rules the kernel consults win, for 127.0.0.1 too in iptables mode)."""
    work = tmp_path_factory.mktemp(f"nat-{request.param}")
    mode = "nftables" if request.param == "nftables" else "auto"
    base = random.randrange(31000, 31900)  # apart from the loopback NodePort tests' window
    p = NatPodns(work, "--pod-network", "netns", "--container-runtime", "process",
                 "--service-cidr", SERVICE_CIDR, "--proxy-mode", mode,
                 "--service-node-port-range", f"{base}-{base + 99}")
    p.mode = request.param
    if request.param == "iptables":
        p.env["PATH"] = path_without_nft(work)
    p.start()
    try:
        for name in ("db-0", "db-1", "db-2"):
            apply(p, pod_manifest(name))
        apply(p, service("db", ports=[{"name": "pg", "port": 80, "targetPort": 5432}]))
        wait(lambda: all(ready_ip(p, n) for n in ("db-0", "db-1", "db-2")), what="pods Ready")
        if request.param == "iptables":
            assert "ClusterIP proxy mode iptables (nft is not installed" in p.log()
            gone = subprocess.run(["nft", "list", "table", "ip", table_of(p)], capture_output=True)
            assert gone.returncode != 0, "auto without nft on PATH made an nft table"
        yield p
    finally:
        p.stop()


def test_pod_and_host_reach_cluster_ip_spread_over_endpoints(cluster: NatPodns) -> None:
    """given three Ready pods behind a ClusterIP, connections from inside db-0's namespace reach
    all three, db-0 itself included (hairpin), and so do connections from the host; a port the
    Service does not have is refused at once rather than sent off the node."""
    ip = cluster_ip(cluster, "db")
    assert ipaddress.ip_address(ip) in ipaddress.ip_network(SERVICE_CIDR.split(",")[0])
    ns = pod_netns(cluster, "db-0")
    wait(lambda: set(connect(ip, 80, 40, inside=ns)) == {"db-0", "db-1", "db-2"},
         what="connections from db-0 spread over db-0, db-1, db-2")
    wait(lambda: set(connect(ip, 80, 40)) == {"db-0", "db-1", "db-2"}, what="host connections spread")
    assert connect(ip, 81, 3, inside=ns) == Counter({"ConnectionRefusedError": 3})
    assert connect(ip, 81, 3) == Counter({"ConnectionRefusedError": 3})
    if cluster.mode == "nftables":
        assert "numgen random mod 3" in cluster.rules()
    else:  # rule i of n jumps with probability 1/(n-i): 1/3, 1/2, then the last one always
        svc = f"{iptables.prefix_of(table_of(cluster))}-SVC-{chain_hash('default/db/tcp/80')}"
        picks = [line for line in cluster.rules().splitlines() if line.startswith(f"-A {svc} ")]
        assert len(picks) == 3 and sum("--mode random" in line for line in picks) == 2, picks


def test_udp_and_client_ip_affinity(cluster: NatPodns) -> None:
    """given a UDP Service over an echo pod and a TCP Service with sessionAffinity ClientIP over
    the three pods, datagrams come back from the pod, and every connection of one client goes
    to the same pod."""
    apply(cluster, echo_pod("echo", "echo"))
    apply(cluster, json.dumps({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "echo"},
                               "spec": {"selector": {"app": "echo"},
                                        "ports": [{"port": 53, "targetPort": 5353, "protocol": "UDP"}]}}))
    apply(cluster, service("sticky", sessionAffinity="ClientIP",
                           ports=[{"name": "pg", "port": 80, "targetPort": 5432}]))
    echo_ip, sticky_ip = cluster_ip(cluster, "echo"), cluster_ip(cluster, "sticky")
    ns = pod_netns(cluster, "db-1")
    probe = ("import socket,sys; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
             "s.settimeout(0.5); s.sendto(b'hi', (sys.argv[1], 53))\n"
             "try: print(s.recv(100).decode())\nexcept OSError: print('')")

    def udp_answer() -> bool:
        out = subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", probe, echo_ip],
                             capture_output=True, text=True, timeout=20)
        return out.stdout.strip() == "echo:hi"
    wait(udp_answer, what="UDP echo through the ClusterIP from db-1")
    wait(lambda: set(connect(sticky_ip, 80, 1, inside=ns)) <= {"db-0", "db-1", "db-2"},
         what="sticky Service served")
    answers = connect(sticky_ip, 80, 30, inside=ns)
    assert len(answers) == 1 and sum(answers.values()) == 30, answers
    if cluster.mode == "iptables":
        assert "-m recent --rcheck --seconds 10800 --reap" in cluster.rules()


V6_SERVER = """
import os, socket
s = socket.socket(socket.AF_INET6); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('::', 5432)); s.listen(64)
while True:
    c, _ = s.accept(); c.sendall(os.environ['POD_NAME'].encode()); c.close()
"""


def test_ipv6_cluster_ip(cluster: NatPodns) -> None:
    """given an IPv6-only Service (ipFamilies [IPv6]) over a pod listening on ::, connections
    from inside db-0's namespace to [ClusterIP]:80 reach it through the node's ip6 table."""
    v6 = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "v6srv", "labels": {"app": "v6"}},
          "spec": {"containers": [{
              "name": "srv", "image": "python", "command": [sys.executable, "-c", V6_SERVER],
              "env": [{"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
              "readinessProbe": {"tcpSocket": {"port": 5432}, "periodSeconds": 1}}]}}
    apply(cluster, json.dumps(v6))
    apply(cluster, json.dumps({
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "v6"},
        "spec": {"selector": {"app": "v6"}, "ipFamilyPolicy": "SingleStack", "ipFamilies": ["IPv6"],
                 "ports": [{"port": 80, "targetPort": 5432}]}}))
    ip = cluster_ip(cluster, "v6")
    assert ipaddress.ip_address(ip).version == 6
    ns = pod_netns(cluster, "db-0")
    wait(lambda: connect(ip, 80, 5, inside=ns) == Counter({"v6srv": 5}), what="IPv6 ClusterIP from db-0")
    wanted = f"{ip} . tcp . 80" if cluster.mode == "nftables" else f"-d {ip}/128 -p tcp -m tcp --dport 80"
    assert wanted in cluster.rules(6)


@dataclass(frozen=True)
class Outside:
    """A network namespace beside the host (`outside`): its name, the host end's addresses (the
    node addresses a client there connects to) and its own."""

    ns: str
    host_ip: str
    peer_ip: str
    host_ip6: str
    peer_ip6: str


@pytest.fixture
def outside() -> Iterator[Outside]:
    """A network namespace of the test's own, joined to the host by a veth pair with addresses in
    a random 10.2xx.y.0/30 nothing of this machine overlaps and in a random ULA /64.
    Forwarding is switched on for the host end alone (packets arriving there are forwarded; for
    IPv6 through `force_forwarding`, Linux 6.17+, unless the machine forwards IPv6 already)."""
    tag = os.urandom(3).hex()
    ns, host_if, peer_if = f"podns-np-{tag}", f"pnh{tag}", f"pnc{tag}"
    used = netns.host_networks()
    while True:
        net = ipaddress.ip_network(f"10.{random.randint(200, 254)}.{random.randint(0, 255)}."
                                   f"{random.randrange(0, 256, 4)}/30")
        if not any(net.overlaps(u) for u in used):
            break
    host_ip, peer_ip = str(net.network_address + 1), str(net.network_address + 2)
    prefix6 = f"fd{os.urandom(1).hex()}:{os.urandom(2).hex()}:{os.urandom(2).hex()}:{os.urandom(2).hex()}"
    host_ip6, peer_ip6 = f"{prefix6}::1", f"{prefix6}::2"

    def run(*cmd: str) -> None:
        subprocess.run(cmd, check=True, capture_output=True, timeout=30)
    run("ip", "netns", "add", ns)
    try:
        run("ip", "link", "add", host_if, "type", "veth", "peer", "name", peer_if, "netns", ns)
        run("ip", "addr", "add", f"{host_ip}/30", "dev", host_if)
        run("ip", "addr", "add", f"{host_ip6}/64", "dev", host_if, "nodad")
        run("ip", "link", "set", host_if, "up")
        Path(f"/proc/sys/net/ipv4/conf/{host_if}/forwarding").write_text("1\n")
        forwarding6 = Path(f"/proc/sys/net/ipv6/conf/{host_if}/force_forwarding")
        if forwarding6.exists():
            forwarding6.write_text("1\n")
        run("ip", "-n", ns, "addr", "add", f"{peer_ip}/30", "dev", peer_if)
        run("ip", "-n", ns, "addr", "add", f"{peer_ip6}/64", "dev", peer_if, "nodad")
        run("ip", "-n", ns, "link", "set", peer_if, "up")
        run("ip", "-n", ns, "link", "set", "lo", "up")
        run("ip", "-n", ns, "route", "add", "default", "via", host_ip)
        run("ip", "-n", ns, "-6", "route", "add", "default", "via", host_ip6)
        yield Outside(ns, host_ip, peer_ip, host_ip6, peer_ip6)
    finally:
        subprocess.run(["ip", "link", "del", host_if], capture_output=True, check=False)
        subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)


def test_node_port_from_outside_and_host(cluster: NatPodns, outside: Outside) -> None:
    """given a NodePort Service over the three pods, the API server allocates a node port in
    30000-32767; a client in a namespace of its own, beside the host, connecting to the host's
    address at that port reaches all three pods (DNAT on the node, masqueraded so the replies
    come back), and so does the host itself; the ClusterIP port stays served. Another Service
    asking for the same node port is refused (422 at its field path); once the Service's type
    is ClusterIP its node port is gone from the object and from the rules."""
    ns, host_ip = outside.ns, outside.host_ip
    apply(cluster, service("db-np", type="NodePort", ports=[{"name": "pg", "port": 80, "targetPort": 5432}]))
    svc = json.loads(cluster.kubectl("get", "svc", "db-np", "-o", "json").stdout)
    node_port = int(svc["spec"]["ports"][0]["nodePort"])
    assert 30000 <= node_port <= 32767
    wait(lambda: set(connect(host_ip, node_port, 40, inside=ns)) == {"db-0", "db-1", "db-2"},
         what="NodePort from outside spread over db-0, db-1, db-2")
    wait(lambda: set(connect(host_ip, node_port, 40)) == {"db-0", "db-1", "db-2"},
         what="NodePort from the host")
    pods = {"db-0", "db-1", "db-2"}
    if cluster.mode == "iptables":  # kube-proxy's iptables mode: localhost NodePorts (IPv4)
        wait(lambda: set(connect("127.0.0.1", node_port, 40)) == pods, what="127.0.0.1:<nodePort>")
    else:  # its nftables mode serves none (whatever else may listen there, no pod answers)
        assert not set(connect("127.0.0.1", node_port, 5)) & pods
    assert not set(connect("::1", node_port, 5)) & pods  # IPv6 never: no route_localnet
    assert set(connect(cluster_ip(cluster, "db-np"), 80, 10)) <= {"db-0", "db-1", "db-2"}
    if cluster.mode == "nftables":
        assert f"tcp . {node_port} : goto svc-" in cluster.rules()
    else:
        assert f"--dport {node_port} -j {iptables.prefix_of(table_of(cluster))}-SVC-" in cluster.rules()
    taken = [{"name": "pg", "port": 80, "targetPort": 5432, "nodePort": node_port}]
    bad = cluster.kubectl("apply", "-f", "-", input=service("db-np2", type="NodePort", ports=taken))
    message = f"spec.ports[0].nodePort: Invalid value: {node_port}: provided port is already allocated"
    assert bad.returncode != 0 and message in bad.stderr, bad.stderr
    patched = cluster.kubectl("patch", "svc", "db-np", "-p", '{"spec": {"type": "ClusterIP"}}')
    assert patched.returncode == 0, patched.stderr
    svc = json.loads(cluster.kubectl("get", "svc", "db-np", "-o", "json").stdout)
    assert "nodePort" not in svc["spec"]["ports"][0]
    wait(lambda: connect(host_ip, node_port, 3, inside=ns) == Counter({"ConnectionRefusedError": 3}),
         what="the node port closed once the Service is ClusterIP")


WHOAMI = """
import os, socket
s = socket.socket(socket.AF_INET6); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('::', 5432)); s.listen(64)
while True:
    c, peer = s.accept()
    c.sendall(f"{os.environ['POD_NAME']}|{peer[0].removeprefix('::ffff:')}".encode()); c.close()
"""


def whoami(p: NatPodns) -> str:
    """The pod `whoami` (app=whoami), Ready: it answers `whoami|<the client address it sees>` on
    5432, IPv4 and IPv6. Its IPv4 address."""
    apply(p, json.dumps({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "whoami", "labels": {"app": "whoami"}},
        "spec": {"terminationGracePeriodSeconds": 1, "containers": [{
            "name": "srv", "image": "python", "command": [sys.executable, "-c", WHOAMI],
            "env": [{"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
            "readinessProbe": {"tcpSocket": {"port": 5432}, "periodSeconds": 1}}]}}))
    return str(wait(lambda: ready_ip(p, "whoami"), what="whoami Ready"))


def served(host: str, port: int, inside: str | None = None) -> set[str]:
    """The answers of three connections to host:port, or an empty set unless all were answered."""
    answers = connect(host, port, 3, inside=inside)
    return set(answers) if all(a.startswith("whoami|") for a in answers) else set()


def node_port_of(p: NatPodns, name: str) -> int:
    return int(json.loads(p.kubectl("get", "svc", name, "-o", "json").stdout)["spec"]["ports"][0]["nodePort"])


def test_external_and_internal_traffic_policy_local(cluster: NatPodns, outside: Outside) -> None:
    """given the pod whoami (it answers with the client address it sees): through a NodePort
    with externalTrafficPolicy Local a client outside the node is seen with its own address,
    through one with Cluster it is masqueraded. A selector-less NodePort Service with both
    policies Local, whose hand-written EndpointSlice puts whoami on another node, drops what
    comes from outside (a timeout, not a refusal) and its ClusterIP from a pod, while the host
    and pods still reach it through the node port (kube-proxy's short-circuits); once the slice
    says this node, the outside client gets through with its address kept, and so does the
    ClusterIP."""
    who_ip = whoami(cluster)
    selector = {"selector": {"app": "whoami"}, "ports": [{"port": 80, "targetPort": 5432}]}
    apply(cluster, json.dumps({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "who-local"},
                               "spec": {"type": "NodePort", "externalTrafficPolicy": "Local", **selector}}))
    apply(cluster, json.dumps({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "who-cluster"},
                               "spec": {"type": "NodePort", **selector}}))
    kept = Counter({f"whoami|{outside.peer_ip}": 3})
    local, masq = node_port_of(cluster, "who-local"), node_port_of(cluster, "who-cluster")
    wait(lambda: connect(outside.host_ip, local, 3, inside=outside.ns) == kept,
         what="externalTrafficPolicy Local: the client's own address")
    seen = wait(lambda: served(outside.host_ip, masq, outside.ns),
                what="externalTrafficPolicy Cluster answers")
    assert seen and all(a.startswith("whoami|") and a != f"whoami|{outside.peer_ip}" for a in seen), seen

    apply(cluster, endpoint_slice("far", who_ip, 5432, "elsewhere"))
    apply(cluster, json.dumps({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "far"}, "spec": {
        "type": "NodePort", "externalTrafficPolicy": "Local", "internalTrafficPolicy": "Local",
        "ports": [{"port": 80, "targetPort": 5432}]}}))
    far, far_ip = node_port_of(cluster, "far"), cluster_ip(cluster, "far")
    db0 = pod_netns(cluster, "db-0")
    wait(lambda: all(a.startswith("whoami|") for a in connect(outside.host_ip, far, 3)),
         what="the host short-circuited to the endpoint elsewhere")
    assert all(a.startswith("whoami|") for a in connect(outside.host_ip, far, 3, inside=db0))
    assert connect(outside.host_ip, far, 2, inside=outside.ns) == Counter({"TimeoutError": 2})
    assert connect(far_ip, 80, 2, inside=db0) == Counter({"TimeoutError": 2})
    apply(cluster, endpoint_slice("far", who_ip, 5432, node_name(cluster)))
    wait(lambda: connect(outside.host_ip, far, 3, inside=outside.ns) == kept,
         what="an endpoint on this node: the outside client served, its address kept")
    wait(lambda: all(a.startswith("whoami|") for a in connect(far_ip, 80, 3, inside=db0)),
         what="internalTrafficPolicy Local served by the endpoint of this node")
    if cluster.mode == "nftables":
        assert f"tcp . {far} : drop" not in cluster.rules()
    else:
        assert f"--dport {far} -j DROP" not in cluster.rules()


@pytest.mark.skipif(not Path("/proc/sys/net/ipv6/conf/all/force_forwarding").exists()
                    and Path("/proc/sys/net/ipv6/conf/all/forwarding").read_text().strip() != "1",
                    reason="IPv6 forwarding on one interface needs force_forwarding (Linux 6.17+)")
def test_ipv6_node_port(cluster: NatPodns, outside: Outside) -> None:
    """given a dual-stack NodePort Service (RequireDualStack) over whoami, a client outside the
    node reaches it at [the node's IPv6 address]:<nodePort> through the node's ip6 rules, and at
    its IPv4 address; the host does too; [::1]:<nodePort> never answers (no IPv6 localhost node
    ports in either kube-proxy mode)."""
    whoami(cluster)
    apply(cluster, json.dumps({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "who6"}, "spec": {
        "type": "NodePort", "ipFamilyPolicy": "RequireDualStack", "selector": {"app": "whoami"},
        "ports": [{"port": 80, "targetPort": 5432}]}}))
    svc = json.loads(cluster.kubectl("get", "svc", "who6", "-o", "json").stdout)
    assert len(svc["spec"]["clusterIPs"]) == 2, svc["spec"]
    port = node_port_of(cluster, "who6")

    def whoami_answers(host: str, inside: str | None = None) -> bool:
        answers = connect(host, port, 3, inside=inside)
        return sum(answers.values()) == 3 and all(a.startswith("whoami|") for a in answers)
    wait(lambda: whoami_answers(outside.host_ip6, outside.ns), what="IPv6 NodePort from outside")
    wait(lambda: whoami_answers(outside.host_ip, outside.ns), what="IPv4 NodePort from outside")
    wait(lambda: whoami_answers(outside.host_ip6), what="IPv6 NodePort from the host")
    assert not any(a.startswith("whoami|") for a in connect("::1", port, 3))
    wanted = f"tcp . {port} : goto svc-" if cluster.mode == "nftables" else f"--dport {port} -j "
    assert wanted in cluster.rules(6)


#: one UDP socket (one source port, so one conntrack entry) sending every 0.2 s for argv[3] s;
#: prints each answer, or "-" when none came
UDP_CLIENT = """
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(0.2)
end = time.monotonic() + float(sys.argv[3])
while time.monotonic() < end:
    s.sendto(b'x', (sys.argv[1], int(sys.argv[2])))
    try:
        print(s.recv(100).decode(), flush=True)
    except OSError:
        print('-', flush=True)
"""


def test_udp_flow_moves_when_its_endpoint_goes(cluster: NatPodns) -> None:
    """given a UDP Service over two echo pods and a client in db-0's namespace that keeps sending
    from one socket (one conntrack entry, never idle): once the pod answering it is deleted, the
    node deletes that entry (conntrack -D, as kube-proxy) and the same socket's datagrams are
    answered by the other pod; without the delete they would go to the gone pod until 30 s of
    silence that never comes."""
    apply(cluster, echo_pod("udp-a", "udp2"))
    apply(cluster, echo_pod("udp-b", "udp2"))
    apply(cluster, json.dumps({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "udp2"},
                               "spec": {"selector": {"app": "udp2"},
                                        "ports": [{"port": 53, "targetPort": 5353, "protocol": "UDP"}]}}))
    wait(lambda: ready_ip(cluster, "udp-a") and ready_ip(cluster, "udp-b"), what="echo pods Ready")
    ip = cluster_ip(cluster, "udp2")
    ns = pod_netns(cluster, "db-0")
    answers: list[str] = []
    client = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-c", UDP_CLIENT, ip, "53", "90"],
                              stdout=subprocess.PIPE, text=True)
    reader = threading.Thread(target=lambda: answers.extend(line.strip() for line in client.stdout or []),
                              daemon=True)
    reader.start()
    try:
        first = wait(lambda: next((a for a in answers if a.startswith("udp-")), None), what="a first answer")
        victim = first.split(":")[0]
        survivor = {"udp-a": "udp-b", "udp-b": "udp-a"}[victim]
        seen = len(answers)
        assert cluster.kubectl("delete", "pod", victim, "--wait=false").returncode == 0
        wait(lambda: any(a.startswith(survivor) for a in answers[seen:]), timeout=30,
             what=f"the flow moved from {victim} to {survivor}")
    finally:
        client.kill()
        client.wait()
        reader.join(5)


def test_rules_follow_endpoints(cluster: NatPodns) -> None:
    """given the three pods, deleting db-2 takes it out of the rules (every connection from a
    pod reaches db-0 or db-1), and with no pod left the ClusterIP refuses at once."""
    ip = cluster_ip(cluster, "db")
    ns = pod_netns(cluster, "db-0")
    assert cluster.kubectl("delete", "pod", "db-2", "--wait=true", timeout=60).returncode == 0
    wait(lambda: set(connect(ip, 80, 30, inside=ns)) == {"db-0", "db-1"}, what="db-2 out of the rules")
    assert cluster.kubectl("delete", "pod", "db-1", "--wait=true", timeout=60).returncode == 0
    wait(lambda: set(connect(ip, 80, 10, inside=ns)) == {"db-0"}, what="only db-0 left")
    assert cluster.kubectl("delete", "pod", "db-0", "--wait=true", timeout=60).returncode == 0
    wait(lambda: connect(ip, 80, 3) == Counter({"ConnectionRefusedError": 3}), what="no endpoint: refused")


def test_stale_rules_of_a_crash_replaced_on_restart(cluster: NatPodns) -> None:
    """given the running cluster, a SIGKILLed agent leaves its rules behind (no clean stop ran);
    a chain added meanwhile (as if for a Service deleted while the agent was down) is gone once
    the restarted agent (same data dir) has synced, and the rules answer again."""
    table = table_of(cluster)
    before = cluster.rules(4, table)
    cluster.kill()
    assert cluster.rules(4, table) == before  # a crash removes nothing
    if cluster.mode == "nftables":
        stale = "svc-STALE000-default/gone/tcp/80"
        subprocess.run(["nft", "add", "chain", "ip", table, stale], check=True)
    else:
        stale = f"{iptables.prefix_of(table)}-SVC-STALE000"
        subprocess.run(["iptables", "-t", "nat", "-N", stale], check=True)
    assert stale in cluster.rules(4, table)
    cluster.start()
    wait(lambda: stale not in cluster.rules(4, table), what="the stale chain removed after the restart")
    ip = cluster_ip(cluster, "db")  # no endpoint left: refused at once by the rules
    wait(lambda: connect(ip, 80, 2) == Counter({"ConnectionRefusedError": 2}), what="rules serve again")


def test_rules_removed_when_the_agent_stops(cluster: NatPodns) -> None:
    """given the running cluster, its node's rules of both families exist (nft tables ip and
    ip6, or iptables and ip6tables chains with their jumps); after a clean stop they are gone."""
    table = table_of(cluster)
    assert cluster.rules(4) and cluster.rules(6)
    assert cluster.stop() == 0
    if cluster.mode == "nftables":
        for family in ("ip", "ip6"):
            gone = subprocess.run(["nft", "list", "table", family, table], capture_output=True, text=True)
            assert gone.returncode != 0 and "No such file" in gone.stderr
    else:
        assert cluster.rules(4, table) == "" and cluster.rules(6, table) == ""
