"""The ClusterIP proxies' pure parts: which endpoints take traffic (`serviceports`) and the nft
script rendered from Service ports (`nftables.render`). No kernel, no API."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from podns.node.proxy.nftables import TableState, affinity_set, endpoint_chain, render, service_chain
from podns.node.proxy.serviceports import DEFAULT_AFFINITY_TIMEOUT, ServicePort, ready_backends, service_ports
from podns.objects.endpointslices import endpoint_takes_traffic

Obj = dict[str, Any]


def ep(ip: str, **conditions: Any) -> Obj:
    return {"addresses": [ip], "conditions": conditions}


def slice_(*endpoints: Obj, port: int = 8080, name: str = "http", protocol: str = "TCP") -> Obj:
    return {"metadata": {"name": "s", "namespace": "default"},
            "ports": [{"name": name, "port": port, "protocol": protocol}], "endpoints": list(endpoints)}


# -- which endpoints take traffic -----------------------------------------------------------------


@pytest.mark.parametrize(("conditions", "takes"), [
    ({"ready": True, "serving": True, "terminating": False}, True),
    ({}, True),  # nil ready = unknown = ready (the API's rule)
    ({"ready": False}, False),
    ({"ready": False, "serving": True, "terminating": True}, False),  # draining during a rollout
    ({"ready": True, "terminating": True}, False),  # a slice written by someone else
    ({"ready": True, "serving": False}, False),
], ids=["ready", "nil", "not-ready", "terminating-serving", "ready-but-terminating", "not-serving"])
def test_endpoint_takes_traffic(conditions: Obj, takes: bool) -> None:
    """given an endpoint's conditions, it takes new connections only when ready, serving and not
    terminating, with the API's defaults for missing conditions."""
    assert endpoint_takes_traffic({"conditions": conditions}) is takes


def test_ready_backends_drop_terminating_and_stale_duplicates() -> None:
    """given a rollout's slices: a ready pod, a terminating one still serving, and a pod listed
    ready in a stale slice but terminating in a fresh one, only the ready pod takes traffic."""
    draining = {"ready": False, "serving": True, "terminating": True}
    fresh = slice_(ep("10.244.0.2", ready=True), ep("10.244.0.3", **draining), ep("10.244.0.4", **draining))
    stale = slice_(ep("10.244.0.4", ready=True))
    assert ready_backends([stale, fresh], "http", "TCP") == [("10.244.0.2", 8080)]


def test_ready_backends_match_port_name_protocol_and_family() -> None:
    """given slices with other port names, protocols and address families, only the asked port's
    addresses of the asked family come back."""
    slices = [slice_(ep("10.244.0.2")), slice_(ep("10.244.0.3"), name="other"),
              slice_(ep("10.244.0.4"), protocol="UDP", port=53), slice_(ep("fd00::5"))]
    assert ready_backends(slices, "http", "TCP", family=4) == [("10.244.0.2", 8080)]
    assert ready_backends(slices, "http", "TCP", family=6) == [("fd00::5", 8080)]
    assert ready_backends(slices, "", "UDP") == []
    assert ready_backends(slices, "http", "UDP") == [("10.244.0.4", 53)]


def service(**spec: Any) -> Obj:
    base: Obj = {"clusterIP": "10.96.0.10", "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}
    return {"metadata": {"name": "web", "namespace": "shop"}, "spec": {**base, **spec}}


def test_service_ports() -> None:
    """given Services: a normal one (TCP and SCTP ports), a headless one, a dual-stack one with
    ClientIP affinity, then each family gets its TCP/UDP ports with endpoints and affinity."""
    slices = [slice_(ep("10.244.0.2"))]
    sctp = service(ports=[{"name": "http", "port": 80}, {"name": "x", "port": 9, "protocol": "SCTP"}])
    [sp] = service_ports(sctp, slices, family=4)
    assert sp == ServicePort("shop", "web", "http", "TCP", "10.96.0.10", 80, (("10.244.0.2", 8080),))
    assert sp.key == "shop/web/tcp/80"
    assert service_ports(service(clusterIP="None"), slices, family=4) == []
    dual = service(clusterIPs=["10.96.0.10", "fd00::10"], sessionAffinity="ClientIP")
    assert [p.cluster_ip for p in service_ports(dual, slices, family=6)] == ["fd00::10"]
    assert service_ports(dual, slices, family=4)[0].affinity_timeout == DEFAULT_AFFINITY_TIMEOUT
    timed = service(sessionAffinity="ClientIP",
                    sessionAffinityConfig={"clientIP": {"timeoutSeconds": 30}})
    assert service_ports(timed, slices, family=4)[0].affinity_timeout == 30


# -- the nft script -------------------------------------------------------------------------------

WEB = ServicePort("shop", "web", "http", "TCP", "10.96.0.10", 80,
                  (("10.244.0.2", 8080), ("10.244.0.3", 8080)))
DNS = ServicePort("shop", "dns", "dns", "UDP", "10.96.0.11", 53, (("10.244.0.4", 5353),))
EMPTY = ServicePort("shop", "empty", "", "TCP", "10.96.0.12", 443, ())
T = "ip podns-0af40000"


def lines(script: str) -> list[str]:
    return script.splitlines()


def test_render_dnat_random_choice_and_rejects() -> None:
    """given a port with two endpoints, one with one and one with none, the script maps each
    clusterIP.proto.port to its chain, picks among two endpoints with numgen, goes straight to
    a lone endpoint, DNATs to pod:targetPort, and rejects the endpoint-less port."""
    out = lines(render([EMPTY, DNS, WEB], table="podns-0af40000", pod_ifname="podns-0af40000",
                       service_cidrs=["10.96.0.0/16"]))
    web = service_chain(WEB)
    a, b = endpoint_chain(WEB, "10.244.0.2", 8080), endpoint_chain(WEB, "10.244.0.3", 8080)
    [elements] = [line for line in out if line.startswith(f"add element {T} service-ips {{")]
    assert f"10.96.0.10 . tcp . 80 : goto {web}" in elements
    assert f"10.96.0.11 . udp . 53 : goto {service_chain(DNS)}" in elements
    assert f"add rule {T} {web} numgen random mod 2 vmap {{ 0 : goto {a}, 1 : goto {b} }}" in out
    assert f"add rule {T} {a} meta l4proto tcp dnat to 10.244.0.2:8080" in out
    dns_ep = endpoint_chain(DNS, "10.244.0.4", 5353)
    assert f"add rule {T} {service_chain(DNS)} goto {dns_ep}" in out
    assert f"add rule {T} {dns_ep} meta l4proto udp dnat to 10.244.0.4:5353" in out
    assert f"add element {T} no-endpoint-services {{ 10.96.0.12 . tcp . 443 : goto reject-chain }}" in out
    assert f"add element {T} cluster-ips {{ 10.96.0.10, 10.96.0.11, 10.96.0.12 }}" in out
    assert not any(service_chain(EMPTY) in line for line in out)


def test_render_scopes_to_the_pod_bridge_and_masquerades_hairpin_and_host() -> None:
    """given the node's bridge, only its packets are DNATed in prerouting (other clusters' pods
    on the machine are not), connections leaving through it and the host's own are
    masqueraded, and unknown ports and unallocated service addresses are rejected."""
    out = lines(render([WEB], table="podns-0af40000", pod_ifname="br0",
                       service_cidrs=["10.96.0.0/16", "fd00::/112"]))
    assert f'add rule {T} nat-prerouting iifname "br0" jump services' in out
    assert f"add rule {T} nat-output jump services" in out
    dnated = f"add rule {T} nat-postrouting ct status dnat ct original ip daddr @cluster-ips"
    assert f'{dnated} oifname "br0" masquerade' in out
    assert f"{dnated} fib saddr type local masquerade" in out
    assert f'add rule {T} filter-forward iifname "br0" ct state new jump cluster-ips-check' in out
    assert f"add rule {T} cluster-ips-check ip daddr @cluster-ips reject" in out
    assert f"add rule {T} cluster-ips-check ip daddr {{ 10.96.0.0/16 }} reject" in out  # IPv6 range: not here


def test_render_session_affinity() -> None:
    """given ClientIP affinity, each endpoint has a timed set that its chain updates with the
    client address, and the service chain sends a known client to its endpoint before numgen."""
    sticky = dataclasses.replace(WEB, affinity_timeout=60)
    out = lines(render([sticky], table="podns-0af40000", pod_ifname="br0"))
    a = endpoint_chain(sticky, "10.244.0.2", 8080)
    aff = affinity_set(sticky, "10.244.0.2", 8080)
    assert f"add set {T} {aff} {{ type ipv4_addr; flags dynamic,timeout; timeout 60s; }}" in out
    assert f"add rule {T} {a} update @{aff} {{ ip saddr }}" in out
    svc_rules = [line for line in out if line.startswith(f"add rule {T} {service_chain(sticky)} ")]
    assert svc_rules[0] == f"add rule {T} {service_chain(sticky)} ip saddr @{aff} goto {a}"
    assert "numgen" in svc_rules[-1]


def test_render_resync_deletes_what_is_gone_and_keeps_affinity() -> None:
    """given a table holding a chain and an affinity set of a Service since deleted, the resync
    flushes and deletes them after the rules are rewritten, and never flushes affinity sets."""
    old_chain, old_set = "svc-AAAAAAAA-shop/old/tcp/80", "aff-BBBBBBBB-60"
    existing = TableState(chains=frozenset({"nat-prerouting", "services", old_chain}),
                          sets=frozenset({"cluster-ips", "service-ips", old_set}))
    out = lines(render([WEB], table="podns-0af40000", pod_ifname="br0", existing=existing))
    assert out.index(f"flush chain {T} {old_chain}") < out.index(f"delete chain {T} {old_chain}")
    assert out[-2:] == [f"delete chain {T} {old_chain}", f"delete set {T} {old_set}"]
    assert not any(line.startswith(f"flush set {T} aff-") for line in out)
    assert not any(line.startswith("delete") for line in lines(render([WEB], table="podns-0af40000",
                                                                      pod_ifname="br0")))


def test_render_is_deterministic_and_family_checked() -> None:
    """given the same ports in another order the script is the same; a port of the other
    family is refused; IPv6 renders with ip6 matches and bracketed DNAT targets."""
    one = render([WEB, DNS, EMPTY], table="t", pod_ifname="br0")
    assert one == render([EMPTY, WEB, DNS], table="t", pod_ifname="br0")
    v6 = ServicePort("shop", "web", "http", "TCP", "fd00::10", 80, (("fd00:1::2", 8080),))
    with pytest.raises(ValueError, match="not IPv4"):
        render([v6], table="t", pod_ifname="br0")
    out = render([v6], table="t", family=6, pod_ifname="br0")
    assert "add table ip6 t" in out and "dnat to [fd00:1::2]:8080" in out
    assert "ip6 daddr . meta l4proto . th dport vmap @service-ips" in out
    assert endpoint_chain(v6, "fd00:1::2", 8080).endswith("__fd00.1..2/8080")


def test_userspace_backends_follow_traffic_policies() -> None:
    """given endpoints a (this node) and b (elsewhere): a ClusterIP listener with
    internalTrafficPolicy Local offers every client a only; a node port listener with
    externalTrafficPolicy Local offers a only to clients off the node, and both to clients on
    it (loopback or a node address: kube-proxy's short-circuit); none local: nothing for them."""
    from podns.node.proxy.userspace import Backends

    def from_node(ip: str | None) -> bool:
        return ip in ("127.0.0.1", "192.0.2.10")

    a, b = ("10.244.0.2", 80), ("10.244.1.2", 80)
    internal = Backends([a, b], [a], local_only=True, from_node=from_node)
    assert internal.order("127.0.0.1") == [a] and internal.order("198.51.100.7") == [a]
    external = Backends([a, b], [a], local_only=True, external=True, from_node=from_node)
    assert sorted(external.order("127.0.0.1")) == [a, b] and sorted(external.order("192.0.2.10")) == [a, b]
    assert external.order("198.51.100.7") == [a]
    external.local = []
    assert external.order("198.51.100.7") == [] and sorted(external.order("127.0.0.1")) == [a, b]
    cluster = Backends([a, b], [a], external=True, from_node=from_node)
    assert sorted(cluster.order("198.51.100.7")) == [a, b]
