# ruff: noqa: E501  (table rows of DNS names read best on one line)
"""The record index: incremental updates, clean removal, PTR choice, externals, metrics."""

from __future__ import annotations

import dns.rcode
import pytest

from podns.clusterdns import testing as t
from podns.clusterdns.config import ConfigError, parse
from podns.clusterdns.handler import Handler
from podns.clusterdns.index import RecordIndex
from podns.clusterdns.metrics import Metrics
from tests.clusterdns.conftest import ask_with, records


@pytest.fixture
def fresh() -> tuple[RecordIndex, Handler]:
    metrics = Metrics()
    idx = RecordIndex(metrics=metrics, clock=lambda: 1000.0)
    idx.mark_synced()
    return idx, Handler(idx, metrics, upstream=False)


def test_delete_everything_leaves_only_static_records(fresh: tuple[RecordIndex, Handler]) -> None:
    """Given services, slices, pods and StatefulSets added then deleted (in any order), the
    indexes are back to the static zone: no answer, name, pending name or PTR leaks."""
    idx, _ = fresh
    baseline = (dict(idx.answers), dict(idx.names), dict(idx.pending))
    svc = t.service("db", "ns1", ports=[("pg", "TCP", 5432)])
    sl = t.endpoint_slice("db-1", "db", "ns1", ports=[("pg", "TCP", 5432)],
                          endpoints=[t.endpoint("10.0.0.1", hostname="db-0"), t.endpoint("10.0.0.2", ready=False)])
    cip = t.service("web", "ns1", cluster_ip="10.96.0.5", ports=[("http", "TCP", 80)])
    ext = t.service("ext", "ns1", external_name="example.test")
    sts = t.statefulset("db", "ns1", service_name="db", replicas=3)
    pod = t.pod("db-2", "ns1", ip="10.0.0.3", hostname="db-2", subdomain="db")
    idx.on_slice_add(sl)
    for obj, kind in ((svc, "service"), (cip, "service"), (ext, "service"), (sts, "statefulset"), (pod, "pod")):
        getattr(idx, f"on_{kind}_add")(obj)
    assert len(idx.answers) > len(baseline[0]) and idx.externals and idx.ptr_cands
    idx.on_service_delete(svc)
    idx.on_pod_delete(pod)
    idx.on_slice_delete(sl)
    idx.on_service_delete(cip)
    idx.on_statefulset_delete(sts)
    idx.on_service_delete(ext)
    assert (idx.answers, idx.names, idx.pending) == baseline
    assert not idx.externals and not idx.ptr_cands and not idx.slices_by_service
    assert idx.record_count == 1  # dns-version TXT


def test_slice_moving_between_services_and_type_changes(fresh: tuple[RecordIndex, Handler]) -> None:
    """A slice relabelled to another service leaves the first; a ClusterIP service turned
    headless answers its endpoints; turned ExternalName it answers a CNAME only."""
    idx, h = fresh
    idx.on_service_add(t.service("a", cluster_ip="10.96.0.1"))
    idx.on_service_add(t.service("b"))
    idx.on_slice_add(t.endpoint_slice("s", "b", endpoints=[t.endpoint("10.1.0.1")]))
    assert records(ask_with(h, "b.default.svc.cluster.local.")) == ["b.default.svc.cluster.local. 5 A 10.1.0.1"]
    idx.on_slice_update(None, t.endpoint_slice("s", "a", endpoints=[t.endpoint("10.1.0.1")]))
    assert ask_with(h, "b.default.svc.cluster.local.").rcode() == dns.rcode.NXDOMAIN
    assert records(ask_with(h, "10-1-0-1.a.default.svc.cluster.local.")) == [
        "10-1-0-1.a.default.svc.cluster.local. 5 A 10.1.0.1"]
    idx.on_service_update(None, t.service("a"))
    assert records(ask_with(h, "a.default.svc.cluster.local.")) == ["a.default.svc.cluster.local. 5 A 10.1.0.1"]
    idx.on_service_update(None, t.service("a", external_name="example.test"))
    msg = ask_with(h, "a.default.svc.cluster.local.")
    assert records(msg) == ["a.default.svc.cluster.local. 5 CNAME example.test."]
    assert ask_with(h, "10-1-0-1.a.default.svc.cluster.local.").rcode() == dns.rcode.NXDOMAIN


def test_one_ptr_per_ip_governing_service_first(fresh: tuple[RecordIndex, Handler]) -> None:
    """An IP in three services gets exactly one PTR: the StatefulSet's governing service (the
    endpoint with a hostname) wins over other services; deleting it hands over deterministically."""
    idx, h = fresh
    for name in ("zz-gov", "aa-other", "mm-other"):
        idx.on_service_add(t.service(name))
    idx.on_slice_add(t.endpoint_slice("g", "zz-gov", endpoints=[t.endpoint("10.2.0.1", hostname="db-0")]))
    idx.on_slice_add(t.endpoint_slice("o1", "aa-other", endpoints=[t.endpoint("10.2.0.1")]))
    idx.on_slice_add(t.endpoint_slice("o2", "mm-other", endpoints=[t.endpoint("10.2.0.1")]))
    for _ in range(3):
        assert records(ask_with(h, "1.0.2.10.in-addr.arpa.", "PTR")) == [
            "1.0.2.10.in-addr.arpa. 5 PTR db-0.zz-gov.default.svc.cluster.local."]
    idx.on_service_delete(t.service("zz-gov"))
    assert records(ask_with(h, "1.0.2.10.in-addr.arpa.", "PTR")) == [
        "1.0.2.10.in-addr.arpa. 5 PTR 10-2-0-1.aa-other.default.svc.cluster.local."]


def test_serial_moves_on_change_only() -> None:
    now = [1000.0]
    idx = RecordIndex(clock=lambda: now[0])
    idx.mark_synced()
    idx.on_service_add(t.service("a", cluster_ip="10.96.0.1"))
    now[0] = 2000.0
    idx.on_service_update(None, t.service("a", cluster_ip="10.96.0.1"))
    assert idx.serial == 1000
    idx.on_service_update(None, t.service("a", cluster_ip="10.96.0.2"))
    assert idx.serial == 2000


def test_programming_latency_and_metrics_text() -> None:
    """A slice carrying last-change-trigger-time is observed once synced; /metrics text has the
    request, response, size, latency and programming families."""
    metrics = Metrics()
    idx = RecordIndex(metrics=metrics, clock=lambda: 1_767_225_601.5)  # 2026-01-01T00:00:01.5Z
    idx.mark_synced()
    h = Handler(idx, metrics, upstream=False)
    idx.on_service_add(t.service("a"))
    idx.on_slice_add(t.endpoint_slice("a-1", "a", endpoints=[t.endpoint("10.3.0.1")],
                                      trigger_time="2026-01-01T00:00:01Z"))
    ask_with(h, "a.default.svc.cluster.local.")
    ask_with(h, "zz.default.svc.cluster.local.")
    text = metrics.render()
    assert 'podns_dns_programming_duration_seconds_count{service_kind="headless_with_selector"} 1' in text
    assert 'podns_dns_programming_duration_seconds_sum{service_kind="headless_with_selector"} 0.5' in text
    assert 'podns_dns_requests_total{proto="udp",type="A"} 2' in text
    assert 'podns_dns_responses_total{proto="udp",rcode="NXDOMAIN"} 1' in text
    assert "podns_dns_response_size_bytes_bucket" in text and "podns_dns_request_duration_seconds" in text


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"ttl": 4000}, "--ttl must be in range"),
    ({"pods": "maybe"}, "--pods must be one of"),
    ({"zone": "bad..zone"}, "--zone"),
    ({"upstreams": ["not-an-ip"]}, "--upstream"),
    ({"listen": "127.0.0.1:99999"}, "--listen"),
])
def test_config_errors_name_the_option(kwargs: dict[str, object], message: str) -> None:
    args: dict[str, object] = {"listen": "127.0.0.1:53", **kwargs}
    with pytest.raises(ConfigError, match=message):
        parse(**args)  # type: ignore[arg-type]


def test_direct_encoders_match_the_generic_writer() -> None:
    """Every precomputed answer of the CoreDNS fixture and a synthetic zone, laid out by the
    direct encoders, parses to the same message as the compressing Writer's encoding."""
    import dns.message

    from podns.clusterdns import wire
    from podns.clusterdns.answers import build_entry
    from tests.clusterdns.conftest import load_coredns_fixture

    idx = RecordIndex()
    load_coredns_fixture(idx)
    t.feed(idx, t.synthetic_zone(namespaces=2, services=4, pods=3, big_services=1, big_pods=20))
    idx.mark_synced()
    checked = 0
    for key in idx.services:
        for (owner, qtype), rrset in idx._records(key).rrsets.items():
            for recursion in (False, True):
                entry = build_entry(owner, qtype, rrset, None, recursion=recursion)
                fast = b"\0\0" + entry.reply
                flags = wire.QR | wire.AA | wire.RD | (wire.RA if recursion else 0)
                slow, _ = wire.encode_response(msg_id=0, flags=flags, rcode=0, qname=owner, qtype=qtype,
                                               answer=rrset.answer, additional=rrset.additional)
                a, b = dns.message.from_wire(fast), dns.message.from_wire(slow)
                assert (a.flags, a.answer, a.additional) == (b.flags, b.answer, b.additional), owner
                assert entry.records == len(rrset.answer)
                if not rrset.additional:  # the answer ends where the message ends
                    assert len(entry.answer_ends) == len(rrset.answer)
                    assert 16 + len(owner) + entry.answer_ends[-1] == len(fast), owner
                checked += 1
    assert checked > 40
