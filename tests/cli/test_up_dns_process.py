"""`podns up` runs the cluster DNS as a supervised process of its own: restarted when it dies,
dying with `podns up` even when that is SIGKILLed, `--dns-workers N` sharing the port.

One real `podns up` (the e2e harness's `Podns`), real DNS queries over loopback (dnspython),
the DNS metrics through the dashboard's /ui/dns-metrics.
"""

from __future__ import annotations

import functools
import os
import signal
import ssl
from pathlib import Path

import dns.exception
import dns.message
import dns.query
import dns.rcode
import httpx
import pytest

from tests._support import wait_until
from tests.cli.test_up_lifecycle import pids_with
from tests.e2e.conftest import Podns

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

wait_for = functools.partial(wait_until, step=0.1)


def dns_children(p: Podns) -> list[int]:
    """Pids of `podns dns` processes of this cluster (main and workers), by its kubeconfig path."""
    found = []
    for pid in pids_with(str(p.dns_kubeconfig)):
        try:
            if b"\x00dns\x00" in Path(f"/proc/{pid}/cmdline").read_bytes():
                found.append(pid)
        except OSError:
            continue
    return found


def parent_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def answers(p: Podns) -> bool:
    """Does the cluster DNS answer the zone's SOA with NOERROR (it is SERVFAIL until synced)?"""
    query = dns.message.make_query("cluster.local", "SOA")
    try:
        reply = dns.query.udp(query, p.dns_addr[0], port=p.dns_addr[1], timeout=1)
    except (OSError, dns.exception.Timeout):
        return False
    return reply.rcode() == dns.rcode.NOERROR


def dns_metrics(p: Podns) -> dict[str, float]:
    ctx = ssl.create_default_context(cafile=str(p.ca_path))
    r = httpx.get(p.api_url + "/ui/dns-metrics", headers={"Authorization": f"Bearer {p.readonly_token}"},
                  verify=ctx, timeout=5)
    r.raise_for_status()
    return {s["name"]: s["value"] for s in r.json()["samples"] if not s.get("labels")}


def test_dns_process_restarted_and_dies_with_podns_up(tmp_path: Path) -> None:
    """Given `podns up --dns-workers 2`, the DNS runs in a child process (plus one worker) that
    answers and reports through the dashboard; SIGKILLed, it is restarted on the same port and
    answers again; when `podns up` itself is SIGKILLed, every DNS process exits."""
    p = Podns(tmp_path, "--no-node", "--dns-workers", "2")
    try:
        p.start()
        assert p.proc is not None
        wait_for(lambda: len(dns_children(p)) == 2, 30, "the DNS process and its worker")
        main = [pid for pid in dns_children(p) if parent_of(pid) == p.proc.pid]
        assert len(main) == 1, dns_children(p)
        assert f"pid {main[0]}" in p.log()
        wait_for(lambda: answers(p), 30, "a DNS answer")
        wait_for(lambda: dns_metrics(p).get("podns_dns_synced") == 1, 30, "podns_dns_synced in the dashboard")

        os.kill(main[0], signal.SIGKILL)
        wait_for(lambda: "cluster DNS restarted" in p.log(), 30, "the restart")
        wait_for(lambda: answers(p), 30, "a DNS answer after the restart")
        wait_for(lambda: dns_metrics(p).get("podns_dns_synced") == 1, 30, "metrics after the restart")
        wait_for(lambda: len(dns_children(p)) == 2, 30, "a new DNS process and worker")
        assert main[0] not in dns_children(p)

        survivors = dns_children(p)
        p.kill()  # SIGKILL podns up's process group; the DNS processes are in their own
        wait_for(lambda: not [pid for pid in survivors if pid in dns_children(p)], 15,
                 "no DNS process left after podns up was killed")
    finally:
        p.kill()
        for pid in dns_children(p):
            os.kill(pid, signal.SIGKILL)
