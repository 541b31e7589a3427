"""podns.lb against a real `podns up`: the kv-store example found by DNS and by watch.

The example's pods run `python3 -m podns.demo.kv`; here `python3` is replaced by this test's
interpreter (which has podns installed) and the cluster DNS address by the fixture's.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from podns import lb

from .conftest import REPO, Podns

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

SVC = "kv.default.svc.cluster.local"


def manifest(name: str, podns: Podns) -> str:
    text = (REPO / "examples" / name).read_text()
    dns = f"{podns.dns_addr[0]}:{podns.dns_addr[1]}"
    return text.replace('"127.0.0.1:1053"', f'"{dns}"').replace('"python3"', f'"{sys.executable}"')


def wait_ready(podns: Podns, selector: str, count: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = podns.kubectl("get", "pods", "-l", selector, "-o",
                            "jsonpath={range .items[*]}{.status.conditions[?(@.type=='Ready')].status} {end}")
        if out.stdout.split().count("True") >= count:
            return
        time.sleep(0.3)
    raise AssertionError(podns.kubectl("get", "pods", "-o", "wide").stdout + podns.log()[-3000:])


@pytest.fixture(scope="module")
def kv(podns_module: Podns) -> Iterator[Podns]:
    r = podns_module.kubectl("apply", "-f", "-", input=manifest("kv-store.yaml", podns_module))
    assert r.returncode == 0, r.stderr
    wait_ready(podns_module, "app=kv", 3)
    yield podns_module


async def kv_command(pool: lb.Balancer, line: str, endpoint: str | None = None) -> str:
    async with pool.connection(endpoint=endpoint) as (reader, writer):
        writer.write(line.encode() + b"\n")
        await writer.drain()
        return (await reader.readline()).decode().strip()


async def test_dns_source_finds_pods_by_stable_name_and_replicas_follow(kv: Podns) -> None:
    """given the kv StatefulSet, the DNS source sees kv-0..2 by name; a write to the primary
    is readable from every replica (which found kv-0 by its stable name)."""
    server = f"{kv.dns_addr[0]}:{kv.dns_addr[1]}"
    async with lb.Balancer(SVC, port="kv", source=lb.DNS(server=server)) as pool:
        assert sorted(e.hostname or "" for e in pool.endpoints) == ["kv-0", "kv-1", "kv-2"]
        assert await kv_command(pool, "SET colour blue", endpoint="kv-0") == "OK"
        assert (await kv_command(pool, "SET colour red", endpoint="kv-1")).startswith("READONLY")
        for name in ("kv-1", "kv-2"):
            for _ in range(50):
                if await kv_command(pool, "GET colour", endpoint=name) == "VALUE blue":
                    break
                await asyncio.sleep(0.1)
            else:
                pytest.fail(f"{name} never saw the primary's write")
        conninfo = lb.conninfo(pool)
        assert conninfo.startswith("host=kv-0.kv.default.svc.cluster.local,kv-1.kv.default")
    # A numbered port: addresses from A records, each pod's name from its (single) PTR record.
    async with lb.Balancer(SVC, port=7379, source=lb.DNS(server=server)) as pool:
        assert sorted(e.hostname or "" for e in pool.endpoints) == ["kv-0", "kv-1", "kv-2"]
        assert await kv_command(pool, "GET colour", endpoint="kv-0") == "VALUE blue"


async def test_watch_source_sees_a_deleted_pod_leave_and_return(kv: Podns) -> None:
    """given a watch pool, when kv-2 is deleted, then it stops being picked within seconds and
    the StatefulSet's replacement (same name) rejoins."""
    async with lb.Balancer(SVC, port="kv", source=lb.Watch(str(kv.kubeconfig))) as pool:
        assert len([e for e in pool.endpoints if e.usable]) == 3
        t0 = time.monotonic()
        r = await asyncio.to_thread(kv.kubectl, "delete", "pod", "kv-2", "--wait=false")
        assert r.returncode == 0, r.stderr
        await pool.wait_for(lambda eps: not any(e.hostname == "kv-2" and e.usable for e in eps), 10)
        assert time.monotonic() - t0 < 10
        assert all(pool.pick().hostname != "kv-2" for _ in range(30))
        await pool.wait_for(lambda eps: any(e.hostname == "kv-2" and e.usable for e in eps), 60)
        assert pool.endpoint("kv-2").port == 7379


async def test_unknown_service_is_a_clear_error(kv: Podns) -> None:
    async with lb.Balancer("nope", port="kv", source=lb.Watch(str(kv.kubeconfig))) as pool:
        with pytest.raises(lb.NoEndpoints, match="service default/nope not found"):
            pool.pick()
    server = f"{kv.dns_addr[0]}:{kv.dns_addr[1]}"
    async with lb.Balancer("nope", port="kv", source=lb.DNS(server=server)) as pool:
        with pytest.raises(lb.NoEndpoints, match="NXDOMAIN"):
            pool.pick()


def test_peer_discovery_forms_a_cluster_through_not_ready_addresses(kv: Podns, tmp_path: Path) -> None:
    """given publishNotReadyAddresses, each peer sees all three before any is Ready, so all
    three turn Ready (each waits for the full member list)."""
    r = kv.kubectl("apply", "-f", "-", input=manifest("peers.yaml", kv))
    assert r.returncode == 0, r.stderr
    wait_ready(kv, "app=peers", 3, timeout=90)
    logs = kv.kubectl("logs", "peers-0").stdout
    assert "cluster formed with peers-0, peers-1, peers-2" in logs
