"""Endpoints from DNS: A/AAAA for a numbered port, SRV for a named one.

Works against podns's cluster DNS or any resolver. It honours TTLs: the answer is re-resolved
when its TTL runs out (never more often than `min_refresh`, never less often than
`max_refresh`), and at once after the balancer reports connection failures. A failing resolver
keeps the last good answer in use and is retried with growing back-off.

With a named port the SRV answer carries each pod's own name (`db-0.db-service...`) and port,
and the per-pod A records in the additional section. With a numbered port the addresses come
from A/AAAA and each new address's pod name from its PTR record (cached per address). Either
way `pool.endpoint("db-0")` works over DNS.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging

import dns.asyncquery
import dns.exception
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import dns.reversename

from podns.lb.endpoint import Endpoint
from podns.lb.errors import ResolutionError
from podns.lb.sources.base import Target, Update

log = logging.getLogger(__name__)

#: failures back off from this many seconds, doubling up to MAX_BACKOFF
MIN_BACKOFF = 0.25
MAX_BACKOFF = 10.0


def parse_server(server: str) -> tuple[str, int]:
    """`host`, `host:port`, `[v6]:port` or a bare IPv6 address -> (host, port); port 53 default."""
    s = server.strip()
    if s.startswith("["):
        host, _, rest = s[1:].partition("]")
        return host, int(rest.lstrip(":") or 53)
    if s.count(":") == 1:
        host, port = s.split(":")
        return host, int(port)
    return s, 53


class DNS:
    """A DNS source. `server` is `host[:port]` (several may be given; tried in order)."""

    def __init__(
        self,
        server: str | list[str] = "127.0.0.1:53",
        *,
        timeout: float = 2.0,
        min_refresh: float = 0.5,
        max_refresh: float = 30.0,
        ptr_names: bool = True,
    ) -> None:
        servers = [server] if isinstance(server, str) else list(server)
        if not servers:
            raise ValueError("DNS source needs at least one server")
        self.servers = [parse_server(s) for s in servers]
        self.timeout = timeout
        self.min_refresh = min_refresh
        self.max_refresh = max_refresh
        #: with a numbered port, learn pod names from PTR records (SRV carries them otherwise)
        self.ptr_names = ptr_names
        self._ptr_cache: dict[str, str | None] = {}
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self.last_error: BaseException | None = None

    async def start(self, target: Target, update: Update) -> None:
        endpoints, reason, ttl = await self.resolve(target)  # raises ResolutionError
        update(endpoints, reason)
        self._task = asyncio.create_task(self._loop(target, update, endpoints, ttl))

    async def refresh(self) -> None:
        self._wake.set()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _loop(self, target: Target, update: Update, current: list[Endpoint], ttl: float) -> None:
        delay = ttl
        backoff = MIN_BACKOFF
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=delay)
            self._wake.clear()
            try:
                endpoints, reason, ttl = await self.resolve(target)
            except ResolutionError as exc:
                self.last_error = exc.__cause__ or exc
                log.debug("re-resolving %s failed: %s", target.fqdn, exc)
                delay = backoff
                backoff = min(backoff * 2, MAX_BACKOFF)
                continue
            self.last_error = None
            backoff = MIN_BACKOFF
            delay = ttl
            if endpoints != current:
                current = endpoints
                update(endpoints, reason)

    async def resolve(self, target: Target) -> tuple[list[Endpoint], str | None, float]:
        """One resolution: (endpoints, why-empty, seconds until re-resolution)."""
        fqdn = target.fqdn
        if isinstance(target.port, str) and not target.port.isdigit():
            qname = f"_{target.port}._tcp.{fqdn}"
            resp = await self._query(qname, dns.rdatatype.SRV)
            return await self._from_srv(resp, fqdn)
        port = int(target.port or 0)
        a = await self._query(fqdn, dns.rdatatype.A)
        aaaa = await self._query(fqdn, dns.rdatatype.AAAA)
        addresses: list[str] = []
        ttls: list[int] = []
        for resp in (a, aaaa):
            for rrset in resp.answer:
                if rrset.rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
                    ttls.append(rrset.ttl)
                    addresses.extend(rr.address for rr in rrset)
        names = await self._pod_names(addresses, dns.name.from_text(fqdn)) if self.ptr_names else {}
        endpoints = [Endpoint(address=ip, port=port, hostname=names.get(ip)) for ip in addresses]
        reason = None if endpoints else self._why_empty(a)
        ttls = ttls or [self._negative_ttl(a)]
        return sorted(set(endpoints), key=_order), reason, self._clamp(min(ttls))

    async def _from_srv(
        self, resp: dns.message.Message, fqdn: str
    ) -> tuple[list[Endpoint], str | None, float]:
        addresses: dict[dns.name.Name, list[str]] = {}
        for rrset in resp.additional:
            if rrset.rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
                addresses.setdefault(rrset.name, []).extend(rr.address for rr in rrset)
        endpoints: list[Endpoint] = []
        ttls: list[int] = []
        service = dns.name.from_text(fqdn)
        for rrset in resp.answer:
            if rrset.rdtype != dns.rdatatype.SRV:
                continue
            ttls.append(rrset.ttl)
            for rr in rrset:
                addrs = addresses.get(rr.target)
                if addrs is None:
                    addrs = await self._addresses(rr.target)
                hostname = _hostname(rr.target, service)
                endpoints.extend(Endpoint(address=a, port=rr.port, hostname=hostname) for a in addrs)
        reason = None if endpoints else self._why_empty(resp)
        ttls = ttls or [self._negative_ttl(resp)]
        return sorted(set(endpoints), key=_order), reason, self._clamp(min(ttls))

    async def _pod_names(self, addresses: list[str], service: dns.name.Name) -> dict[str, str]:
        """Each address's stable pod name from its PTR record (cluster DNS answers exactly one
        per IP, `db-0.db-service.<ns>.svc.<zone>` for a StatefulSet pod). Names are cached per
        address, so a refresh only asks about addresses it has not seen; a failed look-up just
        leaves that endpoint without a name."""
        missing = [ip for ip in set(addresses) if ip not in self._ptr_cache]

        async def lookup(ip: str) -> tuple[str, str | None]:
            try:
                resp = await self._query(dns.reversename.from_address(ip).to_text(), dns.rdatatype.PTR)
            except ResolutionError:
                return ip, None
            for rrset in resp.answer:
                if rrset.rdtype == dns.rdatatype.PTR:
                    return ip, _hostname(rrset[0].target, service)
            return ip, None

        for ip, name in await asyncio.gather(*(lookup(ip) for ip in missing)):
            self._ptr_cache[ip] = name
        keep = set(addresses)
        for ip in [ip for ip in self._ptr_cache if ip not in keep]:
            del self._ptr_cache[ip]
        return {ip: n for ip, n in self._ptr_cache.items() if n is not None}

    async def _addresses(self, name: dns.name.Name) -> list[str]:
        out: list[str] = []
        for rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
            resp = await self._query(name.to_text(), rdtype)
            for rrset in resp.answer:
                if rrset.rdtype == rdtype:
                    out.extend(rr.address for rr in rrset)
        return out

    async def _query(self, qname: str, rdtype: dns.rdatatype.RdataType) -> dns.message.Message:
        """Ask each server in turn; a server that times out or fails moves on to the next."""
        errors: list[str] = []
        q = dns.message.make_query(qname, rdtype)
        for host, port in self.servers:
            try:
                resp, _ = await dns.asyncquery.udp_with_fallback(q, host, port=port, timeout=self.timeout)
            except (dns.exception.DNSException, OSError) as exc:
                errors.append(f"{host}:{port}: {exc or type(exc).__name__}")
                last: BaseException = exc
                continue
            rcode = resp.rcode()
            if rcode in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
                return resp
            errors.append(f"{host}:{port}: {dns.rcode.to_text(rcode)}")
            last = RuntimeError(f"{qname} {dns.rdatatype.to_text(rdtype)}: {dns.rcode.to_text(rcode)}")
        raise ResolutionError(f"resolving {qname} failed: {'; '.join(errors)}") from last

    @staticmethod
    def _why_empty(resp: dns.message.Message) -> str:
        name = resp.question[0].name.to_text() if resp.question else "?"
        if resp.rcode() == dns.rcode.NXDOMAIN:
            return f"{name} does not exist (NXDOMAIN): unknown service or port name"
        return f"{name} has no records: the service has no ready endpoints"

    @staticmethod
    def _negative_ttl(resp: dns.message.Message) -> int:
        for rrset in resp.authority:
            if rrset.rdtype == dns.rdatatype.SOA:
                return int(min(rrset.ttl, rrset[0].minimum))
        return 1

    def _clamp(self, ttl: float) -> float:
        return min(max(float(ttl), self.min_refresh), self.max_refresh)


def _hostname(target: dns.name.Name, service: dns.name.Name) -> str | None:
    """`db-0` for `db-0.db-service.ns.svc.zone.`; None for names that are not per-pod names
    or are generated from the address (CoreDNS's dashed-IP labels)."""
    if not target.is_subdomain(service) or target == service:
        return None
    label = target.labels[0].decode()
    try:
        ipaddress.ip_address(label.replace("-", "."))
        return None
    except ValueError:
        return label


def _order(ep: Endpoint) -> tuple[str, str]:
    return (ep.hostname or "", ep.key)
