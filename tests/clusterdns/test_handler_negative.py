# ruff: noqa: E501  (table rows of DNS names read best on one line)
"""Negative answers: NXDOMAIN vs NODATA exactly as the CoreDNS tables, SOA in authority."""

from __future__ import annotations

import dns.rcode
import pytest

from podns.clusterdns import testing as t
from podns.clusterdns.handler import Handler
from podns.clusterdns.index import RecordIndex
from podns.clusterdns.metrics import Metrics
from tests.clusterdns.conftest import Ask, ask_with, records

NX, NOERR = dns.rcode.NXDOMAIN, dns.rcode.NOERROR


@pytest.mark.parametrize(("name", "rdtype", "rcode"), [
    ("cluster.local.", "A", NOERR),
    ("cluster.local.", "SRV", NOERR),
    ("cluster.local.", "HINFO", NOERR),
    ("svc.cluster.local.", "A", NOERR),
    ("pod.cluster.local.", "A", NOERR),
    ("svc.cluster.local.", "NS", NOERR),
    ("testns.svc.cluster.local.", "A", NOERR),
    ("testns.svc.cluster.local.", "NS", NOERR),
    ("missingns.svc.cluster.local.", "A", NX),
    ("foo.cluster.local.", "NS", NX),
    ("foo.svc.cluster.local.", "NS", NX),
    ("nosvc.testns.svc.cluster.local.", "A", NX),
    ("nosvc.testns.svc.cluster.local.", "TXT", NX),
    ("svc1.missingns.svc.cluster.local.", "A", NX),
    ("svc1.testns.svc.cluster.local.", "AAAA", NOERR),
    ("svc1.testns.svc.cluster.local.", "TXT", NOERR),
    ("svc1.testns.svc.cluster.local.", "SOA", NOERR),
    ("svc1.testns.svc.cluster.local.", "MX", NOERR),
    ("svc1.testns.svc.cluster.local.", "PTR", NOERR),
    ("svc6.testns.svc.cluster.local.", "A", NOERR),
    ("bogusendpoint.svc1.testns.svc.cluster.local.", "A", NX),
    ("bogusendpoint.hdls1.testns.svc.cluster.local.", "A", NX),
    ("5678-abcd--1.hdls1.testns.svc.cluster.local.", "A", NOERR),
    ("endpoint.external.testns.svc.cluster.local.", "A", NX),
    ("_http._tcp.external.testns.svc.cluster.local.", "SRV", NX),
    ("a.b.c.svc1.testns.svc.cluster.local.", "A", NX),
    ("_http._udp.svc1.testns.svc.cluster.local.", "SRV", NX),
    ("_nope._tcp.hdls1.testns.svc.cluster.local.", "SRV", NX),
    ("hdlsprtls.testns.svc.cluster.local.", "SRV", NOERR),
    ("*.svc1.testns.svc.cluster.local.", "A", NX),
    ("blah.podns.pod.cluster.local.", "A", NX),
    ("10-240-0-1.nonexistent.pod.cluster.local.", "A", NX),
    ("10-240-0-1.podns.pod.cluster.local.", "AAAA", NOERR),
    ("podns.pod.cluster.local.", "A", NOERR),
    ("dns-version.cluster.local.", "A", NOERR),
])
def test_negative(ask: Ask, name: str, rdtype: str, rcode: int) -> None:
    """Given the CoreDNS fixture, then the rcode matches the digest table, no answer, zone SOA."""
    msg = ask(name, rdtype)
    assert msg.rcode() == rcode
    assert msg.answer == []
    assert records(msg, "authority") == [
        "cluster.local. 5 SOA ns.dns.cluster.local. hostmaster.cluster.local. 1000 7200 1800 86400 5"]


def test_headless_without_ready_endpoints_is_nxdomain_with_short_ttl(index: RecordIndex, ask: Ask) -> None:
    """All endpoints unready: NXDOMAIN (SPEC 2.4.1), SOA minimum 1 s (the name is about to exist)."""
    index.on_service_add(t.service("db", "testns", ports=[("pg", "TCP", 5432)]))
    index.on_slice_add(t.endpoint_slice("db-1", "db", "testns", ports=[("pg", "TCP", 5432)],
                                        endpoints=[t.endpoint("10.1.0.1", ready=False, hostname="db-0")]))
    for name in ("db.testns.svc.cluster.local.", "db-0.db.testns.svc.cluster.local."):
        msg = ask(name, "A")
        assert msg.rcode() == NX
        assert msg.authority[0].ttl <= 1
        assert msg.authority[0][0].minimum <= 1
    index.on_slice_update(None, t.endpoint_slice("db-1", "db", "testns", ports=[("pg", "TCP", 5432)],
                                                 endpoints=[t.endpoint("10.1.0.1", ready=None, hostname="db-0")]))
    assert records(ask("db-0.db.testns.svc.cluster.local.", "A")) == [
        "db-0.db.testns.svc.cluster.local. 5 A 10.1.0.1"]


def test_statefulset_ordinals_and_unready_pods_get_short_negative_ttl(index: RecordIndex, ask: Ask) -> None:
    """Ordinals below replicas and pods with hostname+subdomain: NXDOMAIN with TTL <= 1 s; others 5 s."""
    index.on_service_add(t.service("web", "testns"))
    index.on_statefulset_add(t.statefulset("web", "testns", service_name="web", replicas=3))
    index.on_pod_add(t.pod("solo", "testns", hostname="solo", subdomain="web"))
    for name in ("web-2.web.testns.svc.cluster.local.", "solo.web.testns.svc.cluster.local."):
        assert ask(name).authority[0][0].minimum == 1
    assert ask("web-3.web.testns.svc.cluster.local.").authority[0][0].minimum == 5
    index.on_statefulset_update(None, t.statefulset("web", "testns", service_name="web", replicas=1))
    assert ask("web-2.web.testns.svc.cluster.local.").authority[0][0].minimum == 5


def test_not_synced_is_servfail_never_nxdomain() -> None:
    metrics = Metrics()
    idx = RecordIndex(metrics=metrics)
    idx.on_namespace_add(t.namespace("default"))
    idx.on_service_add(t.service("a", cluster_ip="10.0.0.9"))
    h = Handler(idx, metrics, upstream=False)
    for name in ("a.default.svc.cluster.local.", "missing.default.svc.cluster.local."):
        assert ask_with(h, name).rcode() == dns.rcode.SERVFAIL
    idx.mark_synced()
    assert ask_with(h, "a.default.svc.cluster.local.").rcode() == NOERR
    assert ask_with(h, "missing.default.svc.cluster.local.").rcode() == NX


@pytest.mark.parametrize(("mode", "name", "rcode"), [
    ("disabled", "10-240-0-1.podns.pod.cluster.local.", NX),
    ("verified", "10-240-0-1.podns.pod.cluster.local.", NOERR),
    ("verified", "172-0-0-2.podns.pod.cluster.local.", NX),
    ("verified", "10-240-0-2.podns.pod.cluster.local.", NX),  # terminating pod
    ("insecure", "172-0-0-2.podns.pod.cluster.local.", NOERR),
    ("insecure", "1234-abcd--1.podns.pod.cluster.local.", NOERR),
])
def test_pod_modes(mode: str, name: str, rcode: int) -> None:
    metrics = Metrics()
    idx = RecordIndex(pods=mode, metrics=metrics)
    idx.on_namespace_add(t.namespace("podns"))
    idx.on_pod_add(t.pod("p1", "podns", ip="10.240.0.1"))
    idx.on_pod_add(t.pod("p2", "podns", ip="10.240.0.2", deleting=True))
    idx.mark_synced()
    h = Handler(idx, metrics, upstream=False)
    rdtype = "AAAA" if "--" in name else "A"
    msg = ask_with(h, name, rdtype)
    assert msg.rcode() == rcode
    assert len(msg.answer) == (1 if rcode == NOERR else 0)


def test_edns_version_1_is_badvers(ask: Ask) -> None:
    """RFC 6891 6.1.3: an unknown EDNS version gets BADVERS with our OPT (version 0)."""
    msg = ask("svc1.testns.svc.cluster.local.", "A", edns=1)
    assert msg.rcode() == dns.rcode.BADVERS and msg.edns == 0 and not msg.answer
