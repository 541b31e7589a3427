# ruff: noqa: E501  (table rows of DNS names read best on one line)
"""Shared fixtures for cluster DNS unit tests: the CoreDNS handler_test data set, no sockets."""

from __future__ import annotations

from collections.abc import Callable

import dns.flags
import dns.message
import dns.rdatatype
import pytest

from podns.clusterdns import testing as t
from podns.clusterdns.handler import Forward, Handler
from podns.clusterdns.index import RecordIndex
from podns.clusterdns.metrics import Metrics

Ask = Callable[..., dns.message.Message]


def load_coredns_fixture(index: RecordIndex) -> None:
    """The Services and EndpointSlices of CoreDNS's plugin/kubernetes/handler_test.go."""
    index.on_namespace_add(t.namespace("testns"))
    index.on_namespace_add(t.namespace("podns"))
    index.on_service_add(t.service("svc1", "testns", cluster_ip="10.0.0.1", ports=[("http", "TCP", 80)]))
    index.on_service_add(t.service("svcempty", "testns", cluster_ip="10.0.0.2", ports=[("http", "TCP", 80)]))
    index.on_service_add(t.service("svc6", "testns", cluster_ip="1234:abcd::1", ports=[("http", "TCP", 80)]))
    index.on_service_add(t.service("svc-dual-stack", "testns", cluster_ip="10.0.0.3",
                                   cluster_ips=["10.0.0.3", "10::3"], ports=[("http", "TCP", 80)]))
    index.on_service_add(t.service("hdls1", "testns", ports=[("http", "TCP", 80)]))
    index.on_service_add(t.service("hdlsprtls", "testns"))
    index.on_service_add(t.service("external", "testns", external_name="ext.interwebs.test"))
    index.on_service_add(t.service("external-to-service", "testns",
                                   external_name="svc1.testns.svc.cluster.local"))
    index.on_slice_add(t.endpoint_slice("svc1-slice1", "svc1", "testns", ports=[("http", "TCP", 80)],
                                        endpoints=[t.endpoint("172.0.0.1", hostname="ep1a")]))
    index.on_slice_add(t.endpoint_slice("hdls1-slice1", "hdls1", "testns", ports=[("http", "TCP", 80)], endpoints=[
        t.endpoint("172.0.0.2"), t.endpoint("172.0.0.3"),
        t.endpoint("172.0.0.4", hostname="dup-name"), t.endpoint("172.0.0.5", hostname="dup-name")]))
    index.on_slice_add(t.endpoint_slice("hdls1-slice2", "hdls1", "testns", ports=[("http", "TCP", 80)],
                                        address_type="IPv6",
                                        endpoints=[t.endpoint("5678:abcd::1"), t.endpoint("5678:abcd::2")]))
    index.on_slice_add(t.endpoint_slice("hdlsprtls-slice", "hdlsprtls", "testns",
                                        endpoints=[t.endpoint("172.0.0.20")]))


@pytest.fixture
def metrics() -> Metrics:
    return Metrics()


@pytest.fixture
def index(metrics: Metrics) -> RecordIndex:
    idx = RecordIndex(zone="cluster.local", ttl=5, pods="insecure", metrics=metrics, clock=lambda: 1000.0)
    load_coredns_fixture(idx)
    idx.mark_synced()
    return idx


@pytest.fixture
def handler(index: RecordIndex, metrics: Metrics) -> Handler:
    return Handler(index, metrics, upstream=False, ns_addrs=("10.96.0.10",))


def ask_with(handler: Handler, name: str, rdtype: str = "A", *, proto: str = "udp", edns: int = -1,
             payload: int = 1232) -> dns.message.Message:
    query = dns.message.make_query(name, rdtype, use_edns=edns, payload=payload)
    out = handler.handle(query.to_wire(), proto)
    assert isinstance(out, bytes), out
    return dns.message.from_wire(out)


@pytest.fixture
def ask(handler: Handler) -> Ask:
    def _ask(name: str, rdtype: str = "A", **kw: object) -> dns.message.Message:
        return ask_with(handler, name, rdtype, **kw)  # type: ignore[arg-type]
    return _ask


def records(msg: dns.message.Message, section: str = "answer") -> list[str]:
    """Sorted 'name ttl IN TYPE rdata' strings of a section."""
    out = []
    for rrset in getattr(msg, section):
        for rd in rrset:
            out.append(f"{rrset.name} {rrset.ttl} {dns.rdatatype.to_text(rrset.rdtype)} {rd.to_text()}")
    return sorted(out)


__all__ = ["Ask", "Forward", "ask_with", "load_coredns_fixture", "records"]
