"""The kernel NAT proxier's iptables backend against the real `iptables-restore`/`iptables-save`,
as root, inside a network namespace this test creates (its rules never touch the machine's): the
rendered chains (kube-proxy's iptables structure), a refused input that changes nothing, a resync
that removes what is gone without doubling the jumps, the proxier following Services and
EndpointSlices (both families) and removing its chains when it stops, the crash clean-up, and
`--proxy-mode auto` falling back to iptables without nft."""

from __future__ import annotations

import asyncio
import os
import ssl
import subprocess
import uuid
from typing import Any

import pytest

from podns.kube.resources import ENDPOINTSLICES, EVENTS, SERVICES
from podns.kube.testing import FakeClient
from podns.node.agent import Agent
from podns.node.proxy import ipt, iptables, kernel, nft
from podns.node.proxy.kernel import IptablesRules, KernelProxier
from podns.node.proxy.serviceports import ServicePort
from tests.node.test_proxy_nft import eps

pytestmark = [pytest.mark.netns, pytest.mark.timeout(60),
              pytest.mark.skipif(os.geteuid() != 0, reason="needs root"),
              pytest.mark.skipif(ipt.iptables_path() is None,
                                 reason="needs iptables (Debian package iptables)")]

Obj = dict[str, Any]
PREFIX = "PODNS-0AFF0000"
OTHER = "PODNS-0AFE0000"  # another node's chains in the same namespace


def save(wrapper: list[str], family: int = 4) -> str:
    tool = "iptables-save" if family == 4 else "ip6tables-save"
    return "".join(subprocess.run([*wrapper, tool, "-t", t], capture_output=True, text=True,
                                  check=True).stdout for t in ("nat", "filter"))


def rules_only(text: str) -> list[str]:
    return sorted(line for line in text.splitlines() if line.startswith(("-A", ":PODNS")))


def port(name: str, *endpoints: str, ip: str = "10.96.0.10", affinity: int = 0) -> ServicePort:
    return ServicePort("default", name, "http", "TCP", ip, 80, tuple((e, 8080) for e in endpoints),
                       affinity_timeout=affinity)


def apply(ports: list[ServicePort], wrapper: list[str], prefix: str = PREFIX, family: int = 4) -> None:
    existing = asyncio.run(ipt.saved(prefix, family, wrapper=wrapper))
    script = iptables.render(ports, prefix=prefix, family=family, pod_ifname="br0",
                             service_cidrs=["10.96.0.0/16", "fd00:96::/112"], existing=existing)
    asyncio.run(ipt.apply(script, family, wrapper=wrapper))


def test_render_follows_kube_proxy_structure() -> None:
    """given a Service port with three endpoints and ClientIP affinity, one without endpoints,
    the nat table sends the first to a SVC chain that checks the recent lists, then picks with
    probabilities 1/3, 1/2 and the rest, each SEP chain marking, recording and DNATing; the
    filter table rejects the endpoint-less port, other ports of the cluster IPs and the rest of
    the service CIDR; every chain name fits iptables' 28 characters."""
    script = iptables.render([port("a", "10.244.0.2", "10.244.0.3", "10.244.0.4", affinity=60),
                              port("b", ip="10.96.0.11")], prefix=PREFIX, pod_ifname="br0",
                             service_cidrs=["10.96.0.0/16", "fd00::/112"])
    lines = script.splitlines()
    svc = iptables.service_chain(PREFIX, port("a"))
    seps = [iptables.endpoint_chain(PREFIX, port("a"), ip, 8080)
            for ip in ("10.244.0.2", "10.244.0.3", "10.244.0.4")]
    assert f"-A {PREFIX}-SERVICES -d 10.96.0.10/32 -p tcp -m tcp --dport 80 -j {svc}" in lines
    assert [line for line in lines if line.startswith(f"-A {svc} ")] == [
        *(f"-A {svc} -m recent --name {s} --rcheck --seconds 60 --reap -j {s}" for s in seps),
        f"-A {svc} -m statistic --mode random --probability 0.3333333333 -j {seps[0]}",
        f"-A {svc} -m statistic --mode random --probability 0.5000000000 -j {seps[1]}",
        f"-A {svc} -j {seps[2]}"]
    assert [line for line in lines if line.startswith(f"-A {seps[0]} ")] == [
        f"-A {seps[0]} -s 10.244.0.2/32 -j {PREFIX}-MARK-MASQ",
        f"-A {seps[0]} -m recent --name {seps[0]} --set",
        f"-A {seps[0]} -p tcp -m tcp -j DNAT --to-destination 10.244.0.2:8080"]
    filter_block = script[script.index("*filter"):]
    assert "-d 10.96.0.11/32 -p tcp -m tcp --dport 80 -j REJECT" in filter_block
    assert "-d 10.96.0.10/32 -j REJECT" in filter_block and "-d 10.96.0.0/16 -j REJECT" in filter_block
    assert "fd00::/112" not in script
    assert "-I PREROUTING 1 -i br0 -j PODNS-0AFF0000-SERVICES" in lines
    assert all(len(line[1:].split()[0]) <= 28 for line in lines if line.startswith(":"))


def test_refused_input_changes_nothing_and_resync_deletes_stale(netns_exec: list[str]) -> None:
    """given chains serving two Services next to another node's chains, an input iptables
    refuses (an endpoint that is no address) raises IptablesError naming it and leaves every
    rule as it was; a resync without one Service removes its chains, keeps one jump per
    built-in chain and leaves the other node's chains alone; delete removes all of ours only."""
    apply([port("x", "10.245.0.2")], netns_exec, prefix=OTHER)
    apply([port("a", "10.244.0.2"), port("b", "10.244.0.3", ip="10.96.0.11")], netns_exec)
    before = save(netns_exec)
    assert "--to-destination 10.244.0.3:8080" in before
    with pytest.raises(ipt.IptablesError, match=r"10\.244\.0\.999"):
        apply([port("a", "10.244.0.999")], netns_exec)
    assert rules_only(save(netns_exec)) == rules_only(before)
    apply([port("a", "10.244.0.2")], netns_exec)
    after = save(netns_exec)
    assert "10.244.0.3" not in after and "--to-destination 10.244.0.2:8080" in after
    assert after.count(f"-A PREROUTING -i br0 -j {PREFIX}-SERVICES") == 1
    assert asyncio.run(ipt.delete(PREFIX, wrapper=netns_exec)) is True
    left = save(netns_exec)
    assert PREFIX not in left and f"{OTHER}-SERVICES" in left and "10.245.0.2:8080" in left
    assert asyncio.run(ipt.delete(PREFIX, wrapper=netns_exec)) is False
    ipt.delete_now(OTHER, 10.0, wrapper=netns_exec)  # the crash clean-up
    assert "PODNS" not in save(netns_exec)


def svc(name: str, *ips: str) -> Obj:
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": "default", "uid": f"uid-{name}"},
            "spec": {"clusterIP": ips[0], "clusterIPs": list(ips), "ports": [{"name": "http", "port": 80}]}}


async def _until(cond: Any, what: str, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await asyncio.to_thread(cond):
        assert asyncio.get_running_loop().time() < deadline, f"{what}: not within {timeout} s"
        await asyncio.sleep(0.02)


def test_proxier_follows_slices_in_both_families_and_cleans_up(netns_exec: list[str]) -> None:
    """given a dual-stack Service with two IPv4 endpoints and one IPv6 one, the iptables proxier
    writes both families' chains, follows the slice as a pod turns terminating, reports a
    missing tool as IptablesMissing while the rules keep serving, and removes every chain and
    jump of both families when it stops."""

    async def scenario() -> None:
        client = FakeClient((SERVICES, svc("web", "10.96.0.10", "fd00:96::10")),
                            (ENDPOINTSLICES, eps("web", ("10.244.0.2", True), ("10.244.0.3", True))),
                            (ENDPOINTSLICES, eps("web", ("fd00:244::2", True), suffix="v6", family="IPv6")))
        rules = IptablesRules(PREFIX, wrapper=netns_exec)
        proxier = KernelProxier(client, node="n1", rules=rules, pod_ifname=f"nx{uuid.uuid4().hex[:8]}",
                                service_cidrs=["10.96.0.0/16", "fd00:96::/112"], families=(4, 6))
        await proxier.start()
        try:
            assert proxier.last_error is None
            assert "--probability 0.5" in save(netns_exec)
            assert "--to-destination [fd00:244::2]:8080" in save(netns_exec, 6)
            await client.update(ENDPOINTSLICES, eps("web", ("10.244.0.2", True), ("10.244.0.3", False)))
            await _until(lambda: "10.244.0.3" not in (now := save(netns_exec)) and "10.244.0.2:8080" in now,
                         "terminating endpoint out of the rules")
            rules.wrapper = ("/nonexistent/ip",)
            await client.update(ENDPOINTSLICES, eps("web", ("10.244.0.2", True)))
            await _until(lambda: proxier.last_error is not None, "missing tool reported")
            assert "10.244.0.2:8080" in save(netns_exec)
            await proxier.events.flush()
            assert "IptablesMissing" in {e.get("reason") for e in client.objects(EVENTS, "default")}
            rules.wrapper = tuple(netns_exec)
        finally:
            await proxier.stop()
        assert "PODNS" not in save(netns_exec) and "PODNS" not in save(netns_exec, 6)

    asyncio.run(scenario())


def test_auto_mode_falls_back_to_iptables(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    """given no nft, `--proxy-mode auto` chooses iptables (and says why), `nftables` chooses
    nothing; an agent asked for nftables records NftMissing on its Node and serves no range with
    kernel NAT; with neither tool, auto reports NftMissing naming both."""
    monkeypatch.setattr(nft, "nft_path", lambda: None)
    mode, why = kernel.choose_mode("auto")
    assert mode == "iptables" and "nft is not installed" in why
    assert kernel.choose_mode("nftables")[0] is None
    assert kernel.choose_mode("userspace")[0] == "userspace"

    async def scenario(proxy_mode: str) -> list[tuple[str, str]]:
        client = FakeClient()
        agent = Agent(client, name="n1", data_dir=tmp_path, proxy=True, pod_network="netns",
                      service_cidr="10.96.0.0/16", proxy_mode=proxy_mode,
                      serving_tls=ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER))
        assert agent._kernel_nat_ranges() == []
        assert agent.proxy_mode is None
        await agent.events.flush()
        await agent.events.stop()
        return [(e["reason"], e["message"]) for e in client.objects(EVENTS, "default")]

    assert [r for r, _ in asyncio.run(scenario("nftables"))] == ["NftMissing"]
    monkeypatch.setattr(ipt, "iptables_path", lambda family=4: None)
    [(reason, message)] = asyncio.run(scenario("auto"))
    assert reason == "NftMissing" and "iptables-restore is not installed" in message


def policy_ports() -> list[ServicePort]:
    """Three node ports over endpoints .2 (this node) and .3 (elsewhere): externalTrafficPolicy
    Cluster, Local with the local endpoint, Local without one; and a ClusterIP with
    internalTrafficPolicy Local but no endpoint here."""
    both = (("10.244.0.2", 8080), ("10.244.0.3", 8080))
    return [ServicePort("default", "cl", "", "TCP", "10.96.0.10", 80, both, node_port=30010),
            ServicePort("default", "lo", "", "TCP", "10.96.0.11", 80, both, node_port=30011,
                        local_endpoints=both[:1], external_local=True),
            ServicePort("default", "none", "", "TCP", "10.96.0.12", 80, both[1:], node_port=30012,
                        external_local=True),
            ServicePort("default", "itp", "", "UDP", "10.96.0.13", 53, both[1:], internal_local=True)]


def test_render_traffic_policies_and_localhost_node_ports(netns_exec: list[str]) -> None:
    """given the ports of `policy_ports`, IPv4 node ports are served on 127.0.0.1 too (no `! -d
    127.0.0.0/8`: route_localnet) while a pod's martian packets to 127/8 are dropped; the
    Cluster node port is masqueraded; the Local one goes through its EXT chain (pods and the node
    itself short-circuited to every endpoint, masqueraded; others to the SVL chain of the local
    endpoint only, source kept); the one without a local endpoint has no SVL jump and is dropped
    in filter INPUT; the ClusterIP with internalTrafficPolicy Local but no local endpoint is
    dropped; IPv6 node ports never take ::1. The real iptables-restore takes both families."""
    ports = policy_ports()
    script = iptables.render(ports, prefix=PREFIX, pod_ifname="br0", service_cidrs=["10.96.0.0/16"])
    lines = script.splitlines()
    mark, nodeports = f"{PREFIX}-MARK-MASQ", f"{PREFIX}-NODEPORTS"
    cl, lo, none, _itp = ports
    assert f"-A {nodeports} -p tcp -m tcp --dport 30010 -j {mark}" in lines
    assert f"-A {nodeports} -p tcp -m tcp --dport 30010 -j {iptables.service_chain(PREFIX, cl)}" in lines
    ext, svl = iptables.external_chain(PREFIX, lo), iptables.local_chain(PREFIX, lo)
    assert f"-A {nodeports} -p tcp -m tcp --dport 30011 -j {ext}" in lines
    assert [line for line in lines if line.startswith(f"-A {ext} ")] == [
        f"-A {ext} -i br0 -j {mark}", f"-A {ext} -i br0 -j {iptables.service_chain(PREFIX, lo)}",
        f"-A {ext} -m addrtype --src-type LOCAL -j {mark}",
        f"-A {ext} -m addrtype --src-type LOCAL -j {iptables.service_chain(PREFIX, lo)}",
        f"-A {ext} -j {svl}"]
    assert [line for line in lines if line.startswith(f"-A {svl} ")] == [
        f"-A {svl} -j {iptables.endpoint_chain(PREFIX, lo, '10.244.0.2', 8080)}"]
    assert f"-A {iptables.external_chain(PREFIX, none)} -j" not in script
    assert (f"-A {PREFIX}-EXTERNAL -m addrtype --dst-type LOCAL -p tcp -m tcp --dport 30012 -j DROP"
            in lines)
    martian = "-i br0 ! -s 127.0.0.0/8 -d 127.0.0.0/8 -m conntrack ! --ctstate DNAT -j DROP"
    assert f"-A {PREFIX}-EXTERNAL {martian}" in lines
    assert f"-A {PREFIX}-SERVICES -d 10.96.0.13/32 -p udp -m udp --dport 53 -j DROP" in lines
    assert "-I INPUT 1 -m conntrack --ctstate NEW -j PODNS-0AFF0000-EXTERNAL" in lines
    v6 = [ServicePort("default", "v6", "", "TCP", "fd00:96::10", 80, (("fd00:244::2", 8080),),
                      node_port=30013)]
    script6 = iptables.render(v6, prefix=PREFIX, family=6, pod_ifname="br0", service_cidrs=["fd00:96::/112"])
    assert f"-A {nodeports} ! -d ::1/128 -p tcp -m tcp --dport 30013 -j {mark}" in script6.splitlines()
    assert "127.0.0.0/8" not in script6
    apply(ports, netns_exec)
    apply(v6, netns_exec, family=6)
    saved = save(netns_exec)
    assert f"-A {ext} -j {svl}" in saved and "--dport 30012 -j DROP" in saved
    assert asyncio.run(ipt.delete(PREFIX, wrapper=netns_exec)) is True
    assert PREFIX not in save(netns_exec)
