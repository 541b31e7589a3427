"""Dual-stack answers as a dual-stack StatefulSet produces them: an IPv4 and an IPv6 EndpointSlice
naming the same pods (`hostname` on both), a PreferDualStack ClusterIP Service; `ip6.arpa` names
(nibble format) checked against the standard library for any address."""

from __future__ import annotations

import ipaddress

import dns.message
import dns.rcode
import dns.reversename
import pytest
from hypothesis import given
from hypothesis import strategies as st

from podns.clusterdns import testing as t
from podns.clusterdns.diagnose import explain
from podns.clusterdns.handler import Handler
from podns.clusterdns.index import RecordIndex
from podns.clusterdns.metrics import Metrics
from podns.clusterdns.records import (
    PTR_CLUSTER_IP,
    PTR_ENDPOINT,
    PTR_HOSTNAME,
    label,
    ptr_order,
    reverse_name,
    service_name,
)
from podns.clusterdns.trimmed import Endpoint, endpoint_hostname, trim_slice
from podns.clusterdns.wire import name_to_wire
from podns.kube.resources import NAMESPACES, PODS
from podns.kube.testing import FakeClient
from tests.clusterdns.conftest import ask_with, records

Z = "cluster.local."
DB0 = ("10.244.1.5", "fd00:10:244:1::5")
DB1 = ("10.244.1.6", "fd00:10:244:1::6")


@pytest.fixture
def handler() -> Handler:
    metrics = Metrics()
    idx = RecordIndex(zone="cluster.local", ttl=5, pods="insecure", metrics=metrics, clock=lambda: 1000.0)
    idx.on_namespace_add(t.namespace("default"))
    idx.on_service_add(t.service("db-service", ports=[("postgres", "TCP", 5432)]))
    idx.on_service_add(t.service("web", cluster_ip="10.96.0.10", cluster_ips=["10.96.0.10", "fd00:10:96::a"],
                                 ports=[("http", "TCP", 80)]))
    for family, i in (("IPv4", 0), ("IPv6", 1)):
        idx.on_slice_add(t.endpoint_slice(
            f"db-service-{family.lower()}", "db-service", ports=[("postgres", "TCP", 5432)],
            address_type=family,
            endpoints=[t.endpoint(DB0[i], hostname="db-0"), t.endpoint(DB1[i], hostname="db-1")]))
    idx.mark_synced()
    return Handler(idx, metrics, upstream=False, ns_addrs=("10.96.0.10",))


def ask(handler: Handler, name: str, rdtype: str) -> dns.message.Message:
    return ask_with(handler, name, rdtype)


@pytest.mark.parametrize(("name", "rdtype", "expected"), [
    ("db-0.db-service.default.svc.cluster.local.", "A", [f"db-0.db-service.default.svc.{Z} 5 A {DB0[0]}"]),
    ("db-0.db-service.default.svc.cluster.local.", "AAAA",
     [f"db-0.db-service.default.svc.{Z} 5 AAAA {DB0[1]}"]),
    ("db-service.default.svc.cluster.local.", "AAAA",
     [f"db-service.default.svc.{Z} 5 AAAA {DB0[1]}", f"db-service.default.svc.{Z} 5 AAAA {DB1[1]}"]),
    ("web.default.svc.cluster.local.", "AAAA", [f"web.default.svc.{Z} 5 AAAA fd00:10:96::a"]),
    ("web.default.svc.cluster.local.", "A", [f"web.default.svc.{Z} 5 A 10.96.0.10"]),
    ("fd00-10-244-1--5.default.pod.cluster.local.", "AAAA",
     [f"fd00-10-244-1--5.default.pod.{Z} 5 AAAA fd00:10:244:1::5"]),
], ids=lambda v: v if isinstance(v, str) else None)
def test_aaaa_answers(handler: Handler, name: str, rdtype: str, expected: list[str]) -> None:
    """given the dual-stack StatefulSet's slices, the pod and service names answer A and AAAA."""
    msg = ask(handler, name, rdtype)
    assert msg.rcode() == dns.rcode.NOERROR
    assert records(msg) == sorted(expected)


@pytest.mark.parametrize(("ip", "target"), [
    (DB0[1], "db-0.db-service.default.svc.cluster.local."),
    (DB1[0], "db-1.db-service.default.svc.cluster.local."),
    ("fd00:10:96::a", "web.default.svc.cluster.local."),
])
def test_ptr_under_ip6_arpa(handler: Handler, ip: str, target: str) -> None:
    """given an address of a pod or a ClusterIP, its reverse name (in-addr.arpa or the 32-nibble
    ip6.arpa) answers PTR to the pod's hostname or the service."""
    msg = ask(handler, dns.reversename.from_address(ip).to_text(), "PTR")
    assert msg.rcode() == dns.rcode.NOERROR
    assert [r.split()[-1] for r in records(msg)] == [target]


def test_srv_glue_has_both_families(handler: Handler) -> None:
    """the headless SRV names each pod once; the additional section holds its A and AAAA."""
    msg = ask(handler, "_postgres._tcp.db-service.default.svc.cluster.local.", "SRV")
    assert [r.split()[-1] for r in records(msg)] == [f"db-{i}.db-service.default.svc.{Z}" for i in (0, 1)]
    glue = records(msg, "additional")
    assert sorted(r.split()[-1] for r in glue) == sorted([*DB0, *DB1])


@given(st.integers(0, 2**128 - 1))
def test_reverse_name_is_nibble_format(n: int) -> None:
    """for any IPv6 address, the PTR owner is the standard 32-nibble ip6.arpa name."""
    addr = ipaddress.IPv6Address(n)
    assert reverse_name(str(addr)) == name_to_wire(addr.reverse_pointer)


@given(st.integers(0, 2**32 - 1))
def test_reverse_name_ipv4(n: int) -> None:
    addr = ipaddress.IPv4Address(n)
    assert reverse_name(str(addr)) == name_to_wire(addr.reverse_pointer)


@given(st.one_of(st.integers(0, 2**32 - 1).map(ipaddress.IPv4Address),
                 st.integers(0, 2**128 - 1).map(ipaddress.IPv6Address)))
def test_ptr_order_reads_the_class_off_the_target(addr: ipaddress.IPv4Address | ipaddress.IPv6Address,
                                                  ) -> None:
    """for any address, a PTR candidate's priority read back from its target name: the
    Service's own name (cluster IP) first, then an endpoint with a hostname, then one named by
    its dashed address; then by namespace, Service and target."""
    # the address's text as the trimmed slices hold it (inet_ntop: `::0.1.0.0`, not `::1:0`)
    ip = trim_slice(t.endpoint_slice("s", "svc", endpoints=[t.endpoint(str(addr))])).endpoints[0].addresses[0]
    rev = reverse_name(ip)
    dashed = label(endpoint_hostname(Endpoint((ip,), True, ""), ip))
    zone = name_to_wire("cluster.local")
    base = service_name("ns", "svc", zone)
    assert ptr_order(rev, base, 2) == (PTR_CLUSTER_IP, b"ns", b"svc", base)
    assert ptr_order(rev, label("db-0") + base, 2)[0] == PTR_HOSTNAME
    assert ptr_order(rev, dashed + base, 2) == (PTR_ENDPOINT, b"ns", b"svc", dashed + base)


async def test_diagnose_finds_a_pod_by_its_ipv6_address() -> None:
    """`podns dig`'s explanation of a pod name finds the pod by any of its addresses (the dashed
    IPv6 form too), not only status.podIP."""
    pod = t.pod("db-0", ip=DB0[0])
    pod["status"]["podIPs"].append({"ip": DB0[1]})
    client = FakeClient((NAMESPACES, t.namespace("default")), (PODS, pod))
    lines = await explain(client, ["fd00-10-244-1--5.default.pod.cluster.local."])
    assert lines == ["pod db-0 has IP fd00:10:244:1::5; the DNS server may run with --pods disabled"]
