"""Namespace mode (`--pod-network netns`): resolv.conf, CIDR choice, the DNS relay (no root), and
real namespaces, bridge, sandboxed processes and clean-up (root; skipped with the reason when
namespaces are unavailable)."""

from __future__ import annotations

import asyncio
import ipaddress
import os
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import dns.asyncquery
import dns.message
import dns.rcode
import pytest

from podns.cli import main as cli_main
from podns.node import dnsrelay, netns, runtime
from podns.node.dnsrelay import DNSRelay
from podns.node.ipam import IPAM, CIDRClaim
from podns.node.podnetwork import PodNetwork
from podns.node.sandbox import Mount, Sandbox
from tests.node.conftest import FakeAgent, cond, links, make_pod

pytestmark = pytest.mark.timeout(30)
REPO = Path(__file__).resolve().parents[2]
NETNS_SKIP = netns.unavailable_reason()
needs_netns = pytest.mark.skipif(NETNS_SKIP is not None, reason=NETNS_SKIP or "")


def pod(ns: str = "team-a", **spec: object) -> dict[str, object]:
    return {"metadata": {"name": "web-0", "namespace": ns, "uid": "0a1b2c3d-0000-4000-8000-000000000001"},
            "spec": spec}


# -- resolv.conf ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("spec", "expected"), [
    ({}, "search team-a.svc.cluster.local svc.cluster.local cluster.local\nnameserver 10.244.3.1\n"
         "options ndots:5\n"),
    ({"dnsConfig": {"searches": ["corp.example"], "options": [{"name": "ndots", "value": "2"},
                                                              {"name": "edns0"}]}},
     "search team-a.svc.cluster.local svc.cluster.local cluster.local corp.example\n"
     "nameserver 10.244.3.1\noptions ndots:2 edns0\n"),
    ({"dnsPolicy": "None", "dnsConfig": {"nameservers": ["10.244.3.9"], "searches": ["x.y"]}},
     "search x.y\nnameserver 10.244.3.9\n"),
], ids=["cluster-first", "dns-config-appended", "policy-none"])
def test_resolv_conf_follows_dns_policy(spec: dict[str, object], expected: str) -> None:
    """given a pod's dnsPolicy/dnsConfig, its resolv.conf is the kubelet's: the cluster DNS (the
    node's relay), the namespace's search path, ndots:5, dnsConfig merged in."""
    assert netns.resolv_conf(pod(**spec), nameserver="10.244.3.1", zone="cluster.local") == expected


def test_resolv_conf_default_policy_copies_the_host_file(tmp_path: Path) -> None:
    """dnsPolicy Default: the node's own resolv.conf."""
    host = tmp_path / "resolv.conf"
    host.write_text("nameserver 192.0.2.53\n")
    got = netns.resolv_conf(pod(dnsPolicy="Default"), nameserver="10.244.3.1", zone="cluster.local",
                            host_resolv=host)
    assert got == "nameserver 192.0.2.53\n"


# -- names and the pod CIDR ----------------------------------------------------------------------


def test_names_fit_interface_limits() -> None:
    """namespace/veth/bridge names are derived from the UID and CIDR and fit IFNAMSIZ (15)."""
    uid = "0A1B2C3D-0000-4000-8000-000000000001"
    assert netns.netns_name(uid) == "podns-0a1b2c3d"
    assert netns.veth_name(uid) == "pv-0a1b2c3d"
    assert netns.bridge_name("10.244.7.0/24") == "podns-0af40700"
    assert len(netns.bridge_name("255.255.255.0/24")) <= 15


def test_choose_cidr_skips_other_nodes_host_routes_and_claimed_ranges() -> None:
    """given another Node on 10.244.0.0/24, a host route over 10.244.1.0/24 and 10.244.2.0/24
    claimed by another agent, the node gets 10.244.3.0/24; its own earlier loopback podCIDR is
    not reused (127/8 is local in every namespace)."""
    nodes = [{"metadata": {"name": "other"}, "spec": {"podCIDR": "10.244.0.0/24"}},
             {"metadata": {"name": "me"}, "spec": {"podCIDR": "127.1.0.0/16"}}]
    in_use = [ipaddress.IPv4Network("10.244.1.0/24"), ipaddress.IPv4Network("192.0.2.0/24")]
    got = netns.choose_cidr(nodes, "me", lambda c: c != "10.244.2.0/24", in_use)
    assert got == "10.244.3.0/24"
    # the node's own usable podCIDR is kept (same addresses after a restart)
    nodes[1]["spec"] = {"podCIDR": "10.244.9.0/24"}
    assert netns.choose_cidr(nodes, "me", lambda c: True, in_use) == "10.244.9.0/24"


@pytest.mark.skipif(NETNS_SKIP is not None, reason=NETNS_SKIP or "")
def test_check_cidr_refuses_a_range_the_machine_routes_both_families(tmp_path: Path) -> None:
    """given a machine (a throw-away namespace) routing 10.77.0.0/16 and fd77:1::/48: a --pod-cidr
    inside either is refused naming the route; a free one of each family is accepted."""
    import subprocess
    ns = f"nsimcidr{os.getpid()}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        subprocess.run(["ip", "-n", ns, "link", "set", "lo", "up"], check=True)
        subprocess.run(["ip", "-n", ns, "route", "add", "10.77.0.0/16", "dev", "lo"], check=True)
        subprocess.run(["ip", "-n", ns, "-6", "route", "add", "fd77:1::/48", "dev", "lo"], check=True)
        code = ("import sys; from podns.node import netns\n"
                "for c in sys.argv[1:]: print(netns.check_cidr(c))\n")
        out = subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", code, "10.77.1.0/24",
                              "fd77:1:0:5::/64", "10.78.1.0/24", "fd78:1::/64"], capture_output=True,
                             text=True, timeout=30, cwd=REPO, check=True).stdout.splitlines()
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)
    assert out == ["--pod-cidr 10.77.1.0/24 overlaps a network of this machine (10.77.0.0/16)",
                   "--pod-cidr fd77:1:0:5::/64 overlaps a network of this machine (fd77:1::/48)",
                   "None", "None"], out


def test_check_cidr_refuses_loopback_and_odd_ipv6() -> None:
    """IPv6 pod CIDRs are fine in netns mode (dual-stack) unless loopback, link-local or tiny."""
    assert "loopback" in (netns.check_cidr("127.5.0.0/16") or "")
    assert "loopback" in (netns.check_cidr("::1/128") or "")
    assert "link-local" in (netns.check_cidr("fe80::/64") or "")
    assert "too small" in (netns.check_cidr("fd00:1::/124") or "")
    assert "not" in (netns.check_cidr("10.244.300.0/24") or "")


@pytest.mark.parametrize(("v4", "v6"), [
    ("10.244.3.0/24", "fd00:10:244:3::/64"),
    ("10.244.0.0/16", "fd00:10:244:0::/64"),
    ("192.168.7.0/24", "fd00:192:168:7::/64"),
    ("10.244.3.128/25", "fd00:10:244:3:128::/80"),
])
def test_ipv6_companion(v4: str, v6: str) -> None:
    """the automatic IPv6 pod CIDR of a dual-stack node follows its IPv4 one, one per IPv4 CIDR."""
    assert ipaddress.ip_network(netns.ipv6_companion(v4)) == ipaddress.ip_network(v6)


def test_cli_refuses_netns_mode_without_root(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    """`podns node --pod-network netns` as an ordinary user: one clear line, nothing started."""
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(SystemExit) as exc:
        cli_main(["node", "--kubeconfig", str(tmp_path / "kc"), "--pod-network", "netns"])
    assert str(exc.value) == ("podns node: --pod-network netns needs root "
                              "(network namespaces, a bridge, the DNS relay on port 53)")


@pytest.mark.parametrize(("requested", "cidr", "mode", "why"), [
    ("loopback", None, "loopback", "as requested"),
    ("netns", None, "netns", "as requested"),
    ("auto", "127.40.0.0/16", "loopback", "auto: --pod-cidr 127.40.0.0/16 is a loopback range"),
], ids=["explicit-loopback", "explicit-netns", "auto-loopback-cidr"])
def test_choose_mode_keeps_explicit_modes(requested: str, cidr: str | None, mode: str, why: str) -> None:
    """given an explicit --pod-network, or auto with a loopback --pod-cidr: no probing, that mode."""
    assert netns.choose_mode(requested, cidr) == (mode, why)


def test_choose_mode_auto_without_root_is_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    """given auto as an ordinary user: loopback, and the reason says it is for want of root."""
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    want = ("loopback", "auto: not running as root (netns mode needs root)")
    assert netns.choose_mode("auto", None) == want


@needs_netns
def test_choose_mode_auto_as_root_is_netns() -> None:
    """given auto as root where namespaces work (a child really unshares one): netns."""
    assert netns.choose_mode("auto", None) == ("netns", "auto: running as root and network namespaces work")


def test_choose_mode_auto_names_a_failing_check(monkeypatch: pytest.MonkeyPatch) -> None:
    """given auto as root where `ip netns` fails: loopback, with the failing check as the reason."""
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setattr(netns.shutil, "which", lambda name: None)
    mode, why = netns.choose_mode("auto", None)
    assert (mode, why) == ("loopback", "auto: needs `ip` (iproute2), which is not installed")


# -- DNS relay (loopback only, no root) -----------------------------------------------------------


class _Upstream(asyncio.DatagramProtocol):
    """A cluster DNS stand-in: answers every query NXDOMAIN with the query's name."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        q = dns.message.from_wire(data)
        r = dns.message.make_response(q)
        r.set_rcode(dns.rcode.NXDOMAIN)
        self.transport.sendto(r.to_wire(), addr)  # type: ignore[attr-defined]


async def _tcp_upstream(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while True:
        try:
            size = int.from_bytes(await reader.readexactly(2), "big")
            q = dns.message.from_wire(await reader.readexactly(size))
        except (asyncio.IncompleteReadError, OSError):
            break
        wire = dns.message.make_response(q).to_wire()
        writer.write(len(wire).to_bytes(2, "big") + wire)
        await writer.drain()
    writer.close()


@pytest.fixture
async def relay() -> AsyncIterator[DNSRelay]:
    loop = asyncio.get_running_loop()
    # one port for UDP and TCP, retried when another process holds the TCP side of the UDP port
    usock, tsock = dnsrelay._bind_pair(("127.0.0.1", 0))
    port = usock.getsockname()[1]
    udp, _ = await loop.create_datagram_endpoint(_Upstream, sock=usock)
    tcp = await asyncio.start_server(_tcp_upstream, sock=tsock)
    r = DNSRelay(("127.0.0.1", 0), ("127.0.0.1", port))
    await r.start()
    yield r
    await r.stop()
    udp.close()
    tcp.close()


async def test_relay_forwards_udp_and_tcp_unchanged(relay: DNSRelay) -> None:
    """given the relay in front of a DNS server, UDP and TCP queries get that server's answers
    (rcode and question intact), one upstream exchange each."""
    host, port = relay.listen
    q = dns.message.make_query("db-0.db-service.default.svc.cluster.local", "A")
    answers = await asyncio.gather(*(dns.asyncquery.udp(q, host, port=port, timeout=2) for _ in range(20)))
    assert all(a.rcode() == dns.rcode.NXDOMAIN and a.question == q.question for a in answers)
    t = await dns.asyncquery.tcp(q, host, port=port, timeout=2)
    assert t.rcode() == dns.rcode.NOERROR and t.id == q.id
    assert relay.relayed >= 20


async def test_relay_drops_garbage_and_unanswered_queries(monkeypatch: pytest.MonkeyPatch) -> None:
    """a datagram shorter than a DNS header is dropped; an upstream that never answers makes the
    query time out (counted as dropped), and the relay keeps serving."""
    monkeypatch.setattr(dnsrelay, "UPSTREAM_TIMEOUT", 0.3)
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.1", 0))
    r = DNSRelay(("127.0.0.1", 0), silent.getsockname())
    await r.start()
    try:
        loop = asyncio.get_running_loop()
        tr, _ = await loop.create_datagram_endpoint(asyncio.DatagramProtocol, remote_addr=r.listen)
        tr.sendto(b"\x00\x01")
        tr.close()
        q = dns.message.make_query("x.cluster.local", "A")
        with pytest.raises(dns.exception.Timeout):
            await dns.asyncquery.udp(q, r.listen[0], port=r.listen[1], timeout=0.3)
        for _ in range(200):
            if r.dropped >= 2 and r.inflight == 0:
                break
            await asyncio.sleep(0.05)
        assert r.dropped >= 2 and r.inflight == 0
    finally:
        await r.stop()
        silent.close()


async def test_relay_port_zero_retries_when_tcp_twin_is_taken(monkeypatch: pytest.MonkeyPatch) -> None:
    """given port 0, when the TCP port with the number the kernel gave UDP is taken by another
    process, the relay picks another pair instead of failing with `address already in use`."""
    refused: list[int] = []

    class TakenOnce(socket.socket):
        def bind(self, address: object) -> None:
            if self.type == socket.SOCK_STREAM and not refused:
                refused.append(1)
                raise OSError(98, "Address already in use")
            super().bind(address)  # type: ignore[arg-type]

    monkeypatch.setattr(socket, "socket", TakenOnce)
    r = DNSRelay(("127.0.0.1", 0), ("127.0.0.1", 9))
    await r.start()
    try:
        assert refused and r.listen[1] != 0
    finally:
        await r.stop()


# -- real namespaces (root) ------------------------------------------------------------------------


def exists(path: str) -> bool:
    return os.path.exists(path)


@needs_netns
async def test_pod_namespace_runs_sandboxed_process_reachable_from_root(network: PodNetwork,
                                                                         tmp_path: Path) -> None:
    """given a pod namespace, a process started in its sandbox binds the pod IP, answers a client
    in the root namespace through the bridge, sees its volume at mountPath, the pod's host name
    and resolv.conf; removing the pod leaves no namespace, veth, /etc/netns dir or mount point."""
    uid = "feedf00d-1111-4222-8333-444455556666"
    p = {"metadata": {"name": "web-0", "namespace": "team-a", "uid": uid}, "spec": {}}
    ip = str(ipaddress.ip_network(network.cidr).network_address + 2)
    path = await network.add_pod(p, ip)
    ns = netns.netns_name(uid)
    assert exists(path) and netns.veth_name(uid) in links()
    assert "team-a.svc.cluster.local" in (netns.ETC_NETNS / ns / "resolv.conf").read_text()
    vol = tmp_path / "vol"
    vol.mkdir()
    (vol / "hello").write_text("from the host")
    target = f"/podns-test-{uid[:8]}/data"
    mounts = (Mount(str(vol), target, read_only=True),)
    network.ensure_mount_points(uid, mounts)
    script = ("import os, socket, sys\n"
              f"body = (socket.gethostname() + ' ' + open('{target}/hello').read() + ' '"
              " + open('/etc/resolv.conf').read().split()[1]).encode()\n"
              f"try:\n    open('{target}/x', 'w')\nexcept OSError:\n    body += b' ro'\n"
              f"s = socket.socket(); s.bind(('{ip}', 8080)); s.listen()\n"
              "c, _ = s.accept(); c.sendall(body); c.close()\n")
    box = Sandbox(netns_path=path, hostname="web-0", resolv_conf=network.resolv_path(uid), mounts=mounts,
                  cwd=str(tmp_path))
    proc = runtime.start([sys.executable, "-c", script], env=dict(os.environ), sandbox=box)
    try:
        body = b""
        for _ in range(100):
            try:
                with socket.create_connection((ip, 8080), timeout=1) as c:
                    body = c.recv(1000)
                break
            except OSError:
                await asyncio.sleep(0.05)
        assert body.decode() == "web-0 from the host team-a.svc.cluster.local ro"
        assert await asyncio.wait_for(proc.wait(), 5) == 0
        assert not exists(f"{target}/x")
    finally:
        await proc.stop(0)
    await network.remove_pod(uid)
    assert not exists(path) and ns not in os.listdir(netns.NETNS_RUN)
    assert netns.veth_name(uid) not in links()
    assert not (netns.ETC_NETNS / ns).exists()
    assert not exists(f"/podns-test-{uid[:8]}")


@needs_netns
async def test_sandbox_failure_is_a_start_error() -> None:
    """a sandbox that cannot be entered (its namespace is gone) fails the start with the reason."""
    box = Sandbox(netns_path=str(netns.NETNS_RUN / "podns-nosuchns"))
    with pytest.raises(runtime.StartError, match=r"sandbox: .*No such file"):
        runtime.start(["true"], env=dict(os.environ), sandbox=box)


@needs_netns
def test_cleanup_removes_abandoned_namespaces_only() -> None:
    """given two leftover namespaces, one recorded for a CIDR no agent holds and one for a CIDR a
    live agent holds, clean-up removes the first and keeps the second."""
    claim = CIDRClaim()
    held = netns.choose_cidr([], "t", claim.try_claim, netns.host_networks())
    free = "10.244.254.0/24" if held != "10.244.254.0/24" else "10.244.253.0/24"
    dead, alive = "podns-dead0001", "podns-a11ve001"
    try:
        for name, cidr in ((dead, free), (alive, held)):
            netns._record(name, cidr)
            netns.ip("netns", "add", name)
        removed = netns.cleanup_leftovers(own_cidr="10.244.252.0/24")
        assert dead in removed and alive not in removed
        assert not (netns.NETNS_RUN / dead).exists() and (netns.NETNS_RUN / alive).exists()
    finally:
        netns.remove_netns(dead)
        netns.remove_netns(alive)
        claim.release()


# -- pod workers in namespace mode (root) --------------------------------------------------------


@needs_netns
async def test_pod_in_its_namespace_ready_then_released(agent: FakeAgent, network: PodNetwork) -> None:
    """given a pod worker on a namespace-mode network, the pod gets an address of the node's CIDR,
    its tcp probe passes from the root namespace, its process runs in the pod's namespace; when
    the pod is deleted its namespace and veth are gone."""
    agent.network = network
    agent.ipam = IPAM(network.cidr)
    c = {"name": "web", "image": "x", "command": [sys.executable, "-m", "http.server", "8080"],
         "readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1}}
    pod = make_pod("web-0", [c])
    w = agent.start(pod)
    st = await agent.wait_for(lambda s: cond(s, "Ready") == "True")
    assert ipaddress.ip_address(st["podIP"]) in ipaddress.ip_network(network.cidr)
    ns = netns.netns_name(pod["metadata"]["uid"])
    assert w.runners[0].proc is not None
    assert os.stat(f"/proc/{w.runners[0].proc.pid}/ns/net").st_ino == os.stat(netns.NETNS_RUN / ns).st_ino
    w.request_termination(grace=1)
    await asyncio.wait_for(w.finished.wait(), 10)
    for _ in range(100):
        if agent.done:
            break
        await asyncio.sleep(0.05)
    assert not exists(str(netns.NETNS_RUN / ns)) and netns.veth_name(pod["metadata"]["uid"]) not in links()


@needs_netns
async def test_pod_sandbox_failure_is_reported(agent: FakeAgent, tmp_path: Path) -> None:
    """given a network whose bridge does not exist, the pod stays Pending with reason
    FailedCreatePodSandBox and the `ip` error, and no namespace is left behind."""
    broken = PodNetwork("10.243.251.0/24", cluster_dns=("127.0.0.1", 9), zone="cluster.local",
                        state_dir=tmp_path)
    agent.network = broken
    agent.ipam = IPAM(broken.cidr)
    pod = make_pod("web-1", [{"name": "c", "command": ["sleep", "60"]}])
    agent.start(pod)
    st = await agent.wait_for(lambda s: s.get("reason") == "FailedCreatePodSandBox")
    assert st["phase"] == "Pending" and "network namespace" in st["message"]
    assert any(e[1] == "FailedCreatePodSandBox" for e in agent.events)
    assert not exists(str(netns.NETNS_RUN / netns.netns_name(pod["metadata"]["uid"])))
