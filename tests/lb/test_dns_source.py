"""The DNS source against a real (small) DNS server on loopback."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from podns import lb

from .dnsserver import ZoneServer

SVC = "db-service.default.svc.cluster.local"


@pytest.fixture
def zone() -> Iterator[ZoneServer]:
    z = ZoneServer()
    yield z
    z.close()


def srv_zone(z: ZoneServer, pods: list[tuple[str, str]], ttl: int = 1) -> None:
    z.set(
        f"_postgres._tcp.{SVC}",
        "SRV",
        ttl,
        *[f"0 {100 // len(pods)} 5432 {name}.{SVC}." for name, _ in pods],
        additional=[f"{name}.{SVC}. {ttl} A {ip}" for name, ip in pods],
    )
    z.set(SVC, "A", ttl, *[ip for _, ip in pods])


async def test_srv_gives_pods_with_their_stable_names(zone: ZoneServer) -> None:
    srv_zone(zone, [("db-0", "127.0.1.1"), ("db-1", "127.0.1.2")])
    async with lb.Balancer(SVC, port="postgres", source=lb.DNS(server=zone.addr)) as pool:
        assert pool.endpoint("db-0").address == "127.0.1.1"
        assert pool.endpoint("db-1").port == 5432
        assert {e.hostname for e in pool.endpoints} == {"db-0", "db-1"}


async def test_short_names_get_the_cluster_suffix(zone: ZoneServer) -> None:
    srv_zone(zone, [("db-0", "127.0.1.1")])
    async with lb.Balancer("db-service", port=5432, source=lb.DNS(server=zone.addr)) as pool:
        assert pool.pick().address == "127.0.1.1"
        assert pool.pick().port == 5432


async def test_ttl_expiry_picks_up_a_new_pod(zone: ZoneServer) -> None:
    """given a 1 s TTL, when a pod is added, then the pool sees it after about a second."""
    srv_zone(zone, [("db-0", "127.0.1.1")], ttl=1)
    async with lb.Balancer(SVC, port="postgres", source=lb.DNS(server=zone.addr)) as pool:
        srv_zone(zone, [("db-0", "127.0.1.1"), ("db-1", "127.0.1.2")], ttl=1)
        await pool.wait_for(lambda eps: len(eps) == 2, timeout=3)


async def test_unknown_service_explains_nxdomain(zone: ZoneServer) -> None:
    async with lb.Balancer("nope", port=80, source=lb.DNS(server=zone.addr)) as pool:
        with pytest.raises(lb.NoEndpoints, match="NXDOMAIN"):
            pool.pick()


async def test_silent_server_fails_resolution_with_cause(zone: ZoneServer) -> None:
    zone.silent = True
    with pytest.raises(lb.ResolutionError, match="resolving"):
        await lb.Balancer(SVC, port=80, source=lb.DNS(server=zone.addr, timeout=0.3)).start()


async def test_second_server_answers_when_first_is_silent(zone: ZoneServer) -> None:
    silent = ZoneServer()
    silent.silent = True
    try:
        srv_zone(zone, [("db-0", "127.0.1.1")])
        src = lb.DNS(server=[silent.addr, zone.addr], timeout=0.3)
        async with lb.Balancer(SVC, port="postgres", source=src) as pool:
            assert pool.pick().hostname == "db-0"
    finally:
        silent.close()


async def test_stale_answer_kept_while_server_fails(zone: ZoneServer) -> None:
    srv_zone(zone, [("db-0", "127.0.1.1")], ttl=1)
    async with lb.Balancer(SVC, port="postgres", source=lb.DNS(server=zone.addr, timeout=0.2)) as pool:
        zone.silent = True
        await asyncio.sleep(1.5)
        assert pool.pick().hostname == "db-0"


async def test_numbered_port_learns_pod_names_from_ptr(zone: ZoneServer) -> None:
    """given A records and one PTR per pod IP, a numbered-port pool still knows db-0 by name;
    an address without a PTR simply has no name."""
    zone.set(SVC, "A", 5, "127.0.1.1", "127.0.1.2", "127.0.1.3")
    zone.set("1.1.0.127.in-addr.arpa", "PTR", 5, f"db-0.{SVC}.")
    zone.set("2.1.0.127.in-addr.arpa", "PTR", 5, f"db-1.{SVC}.")
    async with lb.Balancer(SVC, port=5432, source=lb.DNS(server=zone.addr)) as pool:
        assert pool.endpoint("db-0").address == "127.0.1.1"
        assert pool.endpoint("db-1").port == 5432
        assert {e.hostname for e in pool.endpoints} == {"db-0", "db-1", None}
        asked = zone.queries
        await pool.source.refresh()
        await asyncio.sleep(0.3)
        assert zone.queries - asked == 2  # A and AAAA again; PTR answers are cached per address
