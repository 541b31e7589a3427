"""The kernel NAT proxier against the real `nft`, as root, inside a network namespace this test
creates (its tables and rules never touch the machine's): a refused script leaves the table
exactly as it was, a resync removes what is gone, and the proxier follows Services and
EndpointSlices from an API (the fake client), reports bad input as events, and deletes its table
when it stops."""

from __future__ import annotations

import asyncio
import os
import uuid
from typing import Any

import pytest

from podns.kube.resources import ENDPOINTSLICES, EVENTS, SERVICES
from podns.kube.testing import FakeClient
from podns.node.proxy import conntrack, nft
from podns.node.proxy.kernel import NftProxier
from podns.node.proxy.nftables import render
from podns.node.proxy.serviceports import ServicePort

SKIP = ("needs root" if os.geteuid() != 0 else "needs nft (Debian package nftables)"
        if nft.nft_path() is None else None)
pytestmark = [pytest.mark.netns, pytest.mark.timeout(60),
              pytest.mark.skipif(SKIP is not None, reason=SKIP or "")]

Obj = dict[str, Any]
TABLE = "podns-test"


def ct(netns: list[str]) -> list[str]:
    """The command that runs conntrack in the namespace `netns` runs nft in (stale UDP flows
    are deleted there, never in this machine's own table)."""
    return [*netns[:-1], conntrack.conntrack_path() or "conntrack"]


@pytest.fixture
def netns(netns_exec: list[str]) -> list[str]:
    """The command that runs nft inside a throw-away network namespace."""
    return [*netns_exec, str(nft.nft_path())]


def listing(binary: list[str]) -> str:
    return asyncio.run(nft.run("list", "table", "ip", TABLE, binary=binary))


def port(name: str, *endpoints: str, ip: str = "10.96.0.10") -> ServicePort:
    return ServicePort("default", name, "http", "TCP", ip, 80, tuple((e, 8080) for e in endpoints))


def test_refused_script_changes_nothing_and_resync_deletes_stale(netns: list[str]) -> None:
    """given a table serving two Services, a script nft refuses (an endpoint that is no address)
    raises NftError naming the line and leaves the table byte for byte as it was; a resync
    without one Service removes its chains in the same transaction."""
    asyncio.run(nft.apply(render([port("a", "10.244.0.2"), port("b", "10.244.0.3", ip="10.96.0.11")],
                                 table=TABLE, pod_ifname="br0"), binary=netns))
    before = listing(netns)
    assert "10.96.0.11 . tcp . 80" in before
    state = asyncio.run(nft.table_state(TABLE, binary=netns))
    bad = render([port("a", "10.244.0.999")], table=TABLE, pod_ifname="br0", existing=state)
    with pytest.raises(nft.NftError, match=r"10\.244\.0\.999"):
        asyncio.run(nft.apply(bad, binary=netns))
    assert listing(netns) == before
    asyncio.run(nft.apply(render([port("a", "10.244.0.2")], table=TABLE, pod_ifname="br0",
                                 existing=state), binary=netns))
    after = listing(netns)
    assert "default/b/" not in after and "default/a/tcp/80__10.244.0.2/8080" in after
    assert asyncio.run(nft.delete_table(TABLE, binary=netns)) is True
    assert asyncio.run(nft.table_state(TABLE, binary=netns)) is None


def svc(name: str, ip: str) -> Obj:
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": "default", "uid": f"uid-{name}"},
            "spec": {"clusterIP": ip, "clusterIPs": [ip], "ports": [{"name": "http", "port": 80}]}}


def eps(name: str, *endpoints: tuple[str, bool], suffix: str = "abc", family: str = "IPv4") -> Obj:
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": family,
            "metadata": {"name": f"{name}-{suffix}", "namespace": "default",
                         "labels": {"kubernetes.io/service-name": name}},
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
            "endpoints": [{"addresses": [ip], "conditions": {"ready": ready, "serving": True,
                                                              "terminating": not ready}}
                          for ip, ready in endpoints]}


async def _until(cond: Any, what: str, timeout: float = 10.0) -> None:
    """Poll the async `cond` (nft's listing has no change notification to wait on)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not await cond():
        assert asyncio.get_running_loop().time() < deadline, f"{what}: not within {timeout} s"
        await asyncio.sleep(0.02)


def test_proxier_follows_slices_reports_bad_input_and_cleans_up(netns: list[str]) -> None:
    """given a Service inside the service CIDR and one outside it, the proxier writes rules for
    the first only (a Warning Event ClusterIPNotInServiceCIDR for the other), follows its slice
    as a pod turns terminating, reports a missing nft as NftMissing while the table keeps
    serving, and deletes the table when it stops."""

    async def scenario() -> None:
        client = FakeClient((SERVICES, svc("web", "10.96.0.10")), (SERVICES, svc("odd", "192.0.2.50")),
                            (ENDPOINTSLICES, eps("web", ("10.244.0.2", True), ("10.244.0.3", True))))
        proxier = NftProxier(client, node="n1", table=TABLE, pod_ifname=f"nx{uuid.uuid4().hex[:8]}",
                             service_cidrs=["10.96.0.0/16"], binary=netns,
                             conntrack_binary=ct(netns))
        await proxier.start()
        try:
            text = await nft.run("list", "table", "ip", TABLE, binary=netns)
            assert "numgen random mod 2" in text and "192.0.2.50" not in text
            await client.update(ENDPOINTSLICES, eps("web", ("10.244.0.2", True), ("10.244.0.3", False)))

            async def one_left() -> bool:
                out = await nft.run("list", "table", "ip", TABLE, binary=netns)
                return "10.244.0.3" not in out and "10.244.0.2:8080" in out
            await _until(one_left, "terminating endpoint out of the rules")
            await proxier.events.flush()
            reasons = {e.get("reason") for e in client.objects(EVENTS, "default")}
            assert "ClusterIPNotInServiceCIDR" in reasons
            proxier.binary = ["/nonexistent/nft"]
            await client.update(ENDPOINTSLICES, eps("web", ("10.244.0.2", True)))

            async def failed() -> bool:
                return proxier.last_error is not None
            await _until(failed, "missing nft reported")
            assert "cannot run /nonexistent/nft" in str(proxier.last_error)
            assert "10.244.0.2:8080" in await nft.run("list", "table", "ip", TABLE, binary=netns)
            await proxier.events.flush()
            assert "NftMissing" in {e.get("reason") for e in client.objects(EVENTS, "default")}
            proxier.binary = netns
        finally:
            await proxier.stop()
        assert await nft.table_state(TABLE, binary=netns) is None

    asyncio.run(scenario())


def test_proxier_writes_both_families_in_one_transaction(netns: list[str]) -> None:
    """given a dual-stack Service and families 4 and 6, one sync writes the ip and the ip6 table
    (each with its family's cluster IP and endpoint) and stop removes both."""

    async def scenario() -> None:
        dual = svc("web", "10.96.0.10")
        dual["spec"]["clusterIPs"] = ["10.96.0.10", "fd00:96::10"]
        v6 = eps("web", ("fd00:244::2", True))
        v6["metadata"]["name"], v6["addressType"] = "web-v6", "IPv6"
        client = FakeClient((SERVICES, dual), (ENDPOINTSLICES, eps("web", ("10.244.0.2", True))),
                            (ENDPOINTSLICES, v6))
        proxier = NftProxier(client, node="n1", table=TABLE, pod_ifname=f"nx{uuid.uuid4().hex[:8]}",
                             service_cidrs=["10.96.0.0/16", "fd00:96::/112"], families=(4, 6),
                             binary=netns, conntrack_binary=ct(netns))
        await proxier.start()
        try:
            assert proxier.last_error is None
            v4_text = await nft.run("list", "table", "ip", TABLE, binary=netns)
            v6_text = await nft.run("list", "table", "ip6", TABLE, binary=netns)
            assert "10.96.0.10 . tcp . 80" in v4_text and "dnat to 10.244.0.2:8080" in v4_text
            assert "fd00:96::10 . tcp . 80" in v6_text and "dnat to [fd00:244::2]:8080" in v6_text
        finally:
            await proxier.stop()
        assert await nft.table_state(TABLE, 6, binary=netns) is None

    asyncio.run(scenario())


def test_traffic_policies_render_and_apply(netns: list[str]) -> None:
    """given the ports of `test_proxy_iptables.policy_ports`, the table (applied by the real nft)
    masquerades the Cluster node port only, sends the Local one to its ext chain (pods and the
    node itself short-circuited to every endpoint, masqueraded; others to the local endpoint,
    source kept), drops the Local one without a local endpoint in filter-input (never on
    loopback: nftables mode serves no localhost node ports, as kube-proxy), and drops the
    ClusterIP with internalTrafficPolicy Local but no local endpoint."""
    from podns.node.proxy import nftables
    from tests.node.test_proxy_iptables import policy_ports
    ports = policy_ports()
    asyncio.run(nft.apply(render(ports, table=TABLE, pod_ifname="br0"), binary=netns))
    table = listing(netns)
    cl, lo, none, _itp = ports
    ext, lcl = nftables.external_chain(lo), nftables.local_chain(lo)
    assert "tcp . 30010 : goto " + nftables.service_chain(cl) in table
    assert f"tcp . 30011 : goto {ext}" in table
    assert f"tcp . 30012 : goto {nftables.external_chain(none)}" in table
    node_ports = table[table.index("set node-ports"):]
    node_ports = node_ports[:node_ports.index("}")]
    assert "tcp . 30010" in node_ports and "30011" not in node_ports
    chain = table[table.index(f"chain {ext}"):]
    chain = chain[:chain.index("}")]
    masq = f"meta mark set meta mark | 0x00004000 goto {nftables.service_chain(lo)}"
    assert f'iifname "br0" {masq}' in chain and f"fib saddr type local {masq}" in chain
    assert f"goto {lcl}" in chain
    unserved = table[table.index("map no-endpoint-nodeports"):]
    assert "tcp . 30012 : drop" in unserved[:unserved.index("}")]
    assert "10.96.0.13 . udp . 53 : drop" in table
    assert "ip daddr != 127.0.0.0/8 meta l4proto . th dport vmap @no-endpoint-nodeports" in table
