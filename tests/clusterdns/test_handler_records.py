# ruff: noqa: E501  (table rows of DNS names read best on one line)
"""Positive answers: the CoreDNS handler_test cases (records, SRV, PTR, TXT, case)."""

from __future__ import annotations

import dns.flags
import dns.rcode
import pytest

from tests.clusterdns.conftest import Ask, records

Z = "cluster.local."


@pytest.mark.parametrize(("name", "rdtype", "expected"), [
    ("svc1.testns.svc.cluster.local.", "A", ["svc1.testns.svc.cluster.local. 5 A 10.0.0.1"]),
    ("svcempty.testns.svc.cluster.local.", "A", ["svcempty.testns.svc.cluster.local. 5 A 10.0.0.2"]),
    ("svc6.testns.svc.cluster.local.", "AAAA", ["svc6.testns.svc.cluster.local. 5 AAAA 1234:abcd::1"]),
    ("svc-dual-stack.testns.svc.cluster.local.", "A", ["svc-dual-stack.testns.svc.cluster.local. 5 A 10.0.0.3"]),
    ("svc-dual-stack.testns.svc.cluster.local.", "AAAA",
     ["svc-dual-stack.testns.svc.cluster.local. 5 AAAA 10::3"]),
    ("hdls1.testns.svc.cluster.local.", "A", [f"hdls1.testns.svc.{Z} 5 A 172.0.0.{i}" for i in (2, 3, 4, 5)]),
    ("hdls1.testns.svc.cluster.local.", "AAAA",
     [f"hdls1.testns.svc.{Z} 5 AAAA 5678:abcd::1", f"hdls1.testns.svc.{Z} 5 AAAA 5678:abcd::2"]),
    ("dup-name.hdls1.testns.svc.cluster.local.", "A",
     [f"dup-name.hdls1.testns.svc.{Z} 5 A 172.0.0.4", f"dup-name.hdls1.testns.svc.{Z} 5 A 172.0.0.5"]),
    ("172-0-0-2.hdls1.testns.svc.cluster.local.", "A", [f"172-0-0-2.hdls1.testns.svc.{Z} 5 A 172.0.0.2"]),
    ("5678-abcd--1.hdls1.testns.svc.cluster.local.", "AAAA",
     [f"5678-abcd--1.hdls1.testns.svc.{Z} 5 AAAA 5678:abcd::1"]),
    ("hdlsprtls.testns.svc.cluster.local.", "A", [f"hdlsprtls.testns.svc.{Z} 5 A 172.0.0.20"]),
    ("172-0-0-20.hdlsprtls.testns.svc.cluster.local.", "A", [f"172-0-0-20.hdlsprtls.testns.svc.{Z} 5 A 172.0.0.20"]),
    ("ep1a.svc1.testns.svc.cluster.local.", "A", [f"ep1a.svc1.testns.svc.{Z} 5 A 172.0.0.1"]),
    ("external.testns.svc.cluster.local.", "CNAME",
     ["external.testns.svc.cluster.local. 5 CNAME ext.interwebs.test."]),
    ("external-to-service.testns.svc.cluster.local.", "A",
     [f"external-to-service.testns.svc.{Z} 5 CNAME svc1.testns.svc.cluster.local.",
      f"svc1.testns.svc.{Z} 5 A 10.0.0.1"]),
    ("dns-version.cluster.local.", "TXT", ['dns-version.cluster.local. 28800 TXT "1.1.0"']),
    ("10-240-0-1.podns.pod.cluster.local.", "A", [f"10-240-0-1.podns.pod.{Z} 5 A 10.240.0.1"]),
], ids=lambda v: v if isinstance(v, str) else None)
def test_positive_answers(ask: Ask, name: str, rdtype: str, expected: list[str]) -> None:
    """Given the CoreDNS fixture, when asked, then NOERROR with exactly the CoreDNS records, AA set."""
    msg = ask(name, rdtype)
    assert msg.rcode() == dns.rcode.NOERROR
    assert msg.flags & dns.flags.AA
    assert records(msg) == sorted(expected)


def test_cluster_ip_srv_targets_service_with_glue(ask: Ask) -> None:
    """_http._tcp on a ClusterIP service: one SRV 0 100 80 to the service, its A in additional."""
    msg = ask("_http._tcp.svc1.testns.svc.cluster.local.", "SRV")
    assert records(msg) == [f"_http._tcp.svc1.testns.svc.{Z} 5 SRV 0 100 80 svc1.testns.svc.cluster.local."]
    assert records(msg, "additional") == [f"svc1.testns.svc.{Z} 5 A 10.0.0.1"]


def test_dual_stack_srv_has_one_target_and_both_addresses(ask: Ask) -> None:
    msg = ask("_http._tcp.svc-dual-stack.testns.svc.cluster.local.", "SRV")
    assert records(msg) == [f"_http._tcp.svc-dual-stack.testns.svc.{Z} 5 SRV 0 50 80 "
                            "svc-dual-stack.testns.svc.cluster.local."]
    assert records(msg, "additional") == [f"svc-dual-stack.testns.svc.{Z} 5 A 10.0.0.3",
                                          f"svc-dual-stack.testns.svc.{Z} 5 AAAA 10::3"]


def test_headless_srv_per_endpoint_with_dedup_and_glue(ask: Ask) -> None:
    """Headless SRV: one per (ready endpoint, port), weight 100//6, dup-name once, glue for all."""
    msg = ask("_http._tcp.hdls1.testns.svc.cluster.local.", "SRV")
    owner = f"_http._tcp.hdls1.testns.svc.{Z}"
    targets = ["172-0-0-2", "172-0-0-3", "5678-abcd--1", "5678-abcd--2", "dup-name"]
    assert records(msg) == sorted(f"{owner} 5 SRV 0 16 80 {h}.hdls1.testns.svc.cluster.local." for h in targets)
    assert records(msg, "additional") == sorted([
        f"172-0-0-2.hdls1.testns.svc.{Z} 5 A 172.0.0.2", f"172-0-0-3.hdls1.testns.svc.{Z} 5 A 172.0.0.3",
        f"5678-abcd--1.hdls1.testns.svc.{Z} 5 AAAA 5678:abcd::1",
        f"5678-abcd--2.hdls1.testns.svc.{Z} 5 AAAA 5678:abcd::2",
        f"dup-name.hdls1.testns.svc.{Z} 5 A 172.0.0.4", f"dup-name.hdls1.testns.svc.{Z} 5 A 172.0.0.5"])


def test_bare_name_srv(ask: Ask) -> None:
    msg = ask("svc1.testns.svc.cluster.local.", "SRV")
    assert records(msg) == [f"svc1.testns.svc.{Z} 5 SRV 0 100 80 svc1.testns.svc.cluster.local."]


@pytest.mark.parametrize(("name", "target"), [
    ("1.0.0.10.in-addr.arpa.", "svc1.testns.svc.cluster.local."),
    ("1.0.0.172.in-addr.arpa.", "ep1a.svc1.testns.svc.cluster.local."),
    ("2.0.0.172.in-addr.arpa.", "172-0-0-2.hdls1.testns.svc.cluster.local."),
    ("4.0.0.172.in-addr.arpa.", "dup-name.hdls1.testns.svc.cluster.local."),
    ("1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.c.b.a.4.3.2.1.ip6.arpa.", "svc6.testns.svc.cluster.local."),
])
def test_ptr_one_record_per_ip(ask: Ask, name: str, target: str) -> None:
    msg = ask(name, "PTR")
    assert msg.rcode() == dns.rcode.NOERROR
    assert records(msg) == [f"{name} 5 PTR {target}"]


def test_case_insensitive_and_question_case_kept(ask: Ask) -> None:
    """SvC1.TeStNs... -> NOERROR; the owner name comes back in the question's case."""
    msg = ask("SvC1.TeStNs.SvC.cLuStEr.LoCaL.", "A")
    assert msg.rcode() == dns.rcode.NOERROR
    assert [str(r.name) for r in msg.answer] == ["SvC1.TeStNs.SvC.cLuStEr.LoCaL."]
    assert str(msg.question[0].name) == "SvC1.TeStNs.SvC.cLuStEr.LoCaL."
    neg = ask("NoPe.TeStNs.SvC.cLuStEr.LoCaL.", "A")
    assert neg.rcode() == dns.rcode.NXDOMAIN
    assert str(neg.question[0].name) == "NoPe.TeStNs.SvC.cLuStEr.LoCaL."


def test_apex_soa_and_ns(ask: Ask) -> None:
    soa = ask("cluster.local.", "SOA")
    assert records(soa) == ["cluster.local. 5 SOA ns.dns.cluster.local. hostmaster.cluster.local. 1000 7200 1800 86400 5"]
    ns = ask("cluster.local.", "NS")
    assert records(ns) == ["cluster.local. 5 NS ns.dns.cluster.local."]
    assert records(ns, "additional") == ["ns.dns.cluster.local. 5 A 10.96.0.10"]
