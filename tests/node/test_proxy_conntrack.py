"""Stale UDP conntrack entries (`podns.node.proxy.conntrack`): which flows a rules change makes
stale (pure), the `conntrack -D` arguments, and a real delete in a throw-away namespace."""

from __future__ import annotations

import asyncio
import os
import subprocess
import uuid

import pytest

from podns.node.proxy import conntrack
from podns.node.proxy.conntrack import Flow, stale_flows, udp_state
from podns.node.proxy.serviceports import ServicePort


def sp(ip: str, port: int, *eps: str, protocol: str = "UDP") -> ServicePort:
    return ServicePort(namespace="default", name="dns", port_name="", protocol=protocol, cluster_ip=ip,
                       port=port, endpoints=tuple((e, 5353) for e in eps))


@pytest.mark.parametrize(("before", "after", "want"), [
    ({("10.96.0.10", 53): frozenset({"10.244.0.5", "10.244.1.7"})},
     {("10.96.0.10", 53): frozenset({"10.244.1.7"})},
     [Flow("10.96.0.10", 53, "10.244.0.5")]),
    ({("10.96.0.10", 53): frozenset({"10.244.0.5"})}, {}, [Flow("10.96.0.10", 53)]),
    ({("10.96.0.10", 53): frozenset()}, {("10.96.0.10", 53): frozenset({"10.244.0.5"})},
     [Flow("10.96.0.10", 53)]),
    ({("10.96.0.10", 53): frozenset({"10.244.0.5"})},
     {("10.96.0.10", 53): frozenset({"10.244.0.5", "10.244.1.7"})}, []),
    ({}, {("10.96.0.10", 53): frozenset({"10.244.0.5"})}, []),
], ids=["endpoint-removed", "service-gone", "zero-to-some", "endpoint-added", "new-service"])
def test_stale_flows(before: conntrack.UdpState, after: conntrack.UdpState, want: list[Flow]) -> None:
    """given the UDP ports before and after a sync, the flows to delete are those kube-proxy
    deletes: a removed endpoint's, a removed port's, and a port's that just got its first one."""
    assert stale_flows(before, after) == want


def test_udp_state_takes_udp_ports_only() -> None:
    """given TCP and UDP Service ports, only the UDP ones (and their endpoint IPs) are tracked."""
    ports = [sp("10.96.0.10", 53, "10.244.0.5"), sp("10.96.0.11", 80, "10.244.0.6", protocol="TCP")]
    assert udp_state(ports) == {("10.96.0.10", 53): frozenset({"10.244.0.5"})}


def test_flow_arguments() -> None:
    """given flows of both families, the conntrack arguments select exactly them."""
    assert Flow("10.96.0.10", 53, "10.244.0.5").args() == [
        "-D", "-p", "udp", "--orig-dst", "10.96.0.10", "--orig-port-dst", "53", "--reply-src", "10.244.0.5"]
    assert Flow("fd00::a", 53).args() == ["-D", "-f", "ipv6", "-p", "udp", "--orig-dst", "fd00::a",
                                          "--orig-port-dst", "53"]


def test_missing_binary_is_said() -> None:
    """given a conntrack command that cannot run, flush raises ConntrackMissing."""
    with pytest.raises(conntrack.ConntrackMissing):
        asyncio.run(conntrack.flush([Flow("10.96.0.10", 53)], binary=["/nonexistent/conntrack"]))


@pytest.mark.skipif(os.geteuid() != 0 or conntrack.conntrack_path() is None,
                    reason="needs root and conntrack (Debian package conntrack)")
def test_flush_deletes_only_the_stale_entry() -> None:
    """given two UDP entries in a throw-away namespace's conntrack table, DNATed to two endpoints,
    flushing the flow of one endpoint deletes that entry and keeps the other."""
    ns = f"nsvc-ct-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        ct = ["ip", "netns", "exec", ns, str(conntrack.conntrack_path())]
        for ep, sport in (("10.244.0.5", 40001), ("10.244.1.7", 40002)):
            subprocess.run([*ct, "-I", "-p", "udp", "-s", "10.244.0.9", "-d", "10.96.0.10",
                            "--sport", str(sport), "--dport", "53", "-r", ep, "-q", "10.244.0.9",
                            "--reply-port-src", "5353", "--reply-port-dst", str(sport),
                            "-t", "60", "-u", "SEEN_REPLY,DST_NAT"], check=True, capture_output=True)
        asyncio.run(conntrack.flush([Flow("10.96.0.10", 53, "10.244.0.5"), Flow("10.96.0.99", 53)],
                                    binary=ct))
        left = subprocess.run([*ct, "-L", "-p", "udp"], capture_output=True, text=True).stdout
        assert "src=10.244.1.7" in left and "src=10.244.0.5" not in left, left
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)
