"""Records of one Service: pure function from trimmed objects to DNS data.

`service_records(svc, slices, zone, ttl)` computes everything one Service contributes to
the zone (the Kubernetes DNS spec 1.1.0 plus CoreDNS's extensions, as digested in
docs/dns.md): positive RRsets keyed by (owner, type), the set of names that exist (for
NXDOMAIN vs NODATA), names that are about to exist (short negative TTL), PTR candidates,
and an ExternalName target. No I/O, no state: the index calls it again for a Service
whenever the Service or one of its EndpointSlices changes, and diffs the result.

Names are lower-case wire bytes (see wire.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from podns.clusterdns import wire
from podns.clusterdns.trimmed import CLUSTER_IP, EXTERNAL_NAME, HEADLESS, Service, Slice, endpoint_hostname
from podns.clusterdns.wire import RR

#: PTR priority classes, lowest wins (one PTR per IP, deterministic: coredns/coredns#4181)
PTR_CLUSTER_IP, PTR_HOSTNAME, PTR_ENDPOINT = 0, 1, 2


@dataclass(slots=True)
class RRSet:
    """The answer to one (name, type) question: answer and additional sections."""

    answer: list[RR]
    additional: list[RR] = field(default_factory=list)


@dataclass(slots=True)
class ServiceRecords:
    rrsets: dict[tuple[bytes, int], RRSet] = field(default_factory=dict)
    names: set[bytes] = field(default_factory=set)
    pending: set[bytes] = field(default_factory=set)
    #: (ip, priority key, PTR target name)
    ptrs: list[tuple[str, tuple[Any, ...], bytes]] = field(default_factory=list)
    external: bytes | None = None


def label(text: str) -> bytes:
    """One wire label; raises ValueError for an empty or over-long label."""
    raw = text.lower().encode("ascii", "replace")
    if not 0 < len(raw) < 64:
        raise ValueError(f"invalid DNS label {text!r}")
    return bytes((len(raw),)) + raw


def service_name(namespace: str, name: str, zone: bytes) -> bytes:
    return label(name) + label(namespace) + b"\x03svc" + zone


_IN_ADDR = b"\x07in-addr\x04arpa\x00"
_IP6 = b"\x03ip6\x04arpa\x00"


def reverse_name(ip: str) -> bytes:
    """`d.c.b.a.in-addr.arpa` / nibble `ip6.arpa` owner name for an address, as wire bytes."""
    rtype, packed = wire.ip_rdata(ip)
    if rtype == wire.A:
        return b"".join(bytes((len(o),)) + o for o in (str(b).encode() for b in reversed(packed))) + _IN_ADDR
    nibbles = packed.hex()[::-1]
    return b"".join(b"\x01" + c.encode() for c in nibbles) + _IP6


def _addr_rr(owner: bytes, ip: str, ttl: int) -> RR:
    rtype, packed = wire.ip_rdata(ip)
    return RR(owner, rtype, ttl, packed)


def _add(out: ServiceRecords, owner: bytes, rr: RR, seen: set[RR]) -> None:
    """Append `rr` to the (owner, type) RRSet unless already there (`seen`: RRs added so far)."""
    if rr in seen:
        return
    seen.add(rr)
    rrset = out.rrsets.get((owner, rr.rtype))
    if rrset is None:
        out.rrsets[(owner, rr.rtype)] = RRSet([rr])
    else:
        rrset.answer.append(rr)
    out.names.add(owner)


def _srv(out: ServiceRecords, owner: bytes, candidates: list[tuple[int, bytes, str]], ttl: int) -> None:
    """Add an SRV RRset from (port, target, ip) candidates; weight = 100 // N as CoreDNS."""
    if not candidates:
        return
    weight = max(1, 100 // len(candidates))
    answer = list(dict.fromkeys(RR(owner, wire.SRV, ttl, (0, weight, port, target))
                                for port, target, _ip in candidates))
    additional = list(dict.fromkeys(_addr_rr(target, ip, ttl) for _port, target, ip in candidates))
    out.rrsets[(owner, wire.SRV)] = RRSet(answer, additional)
    out.names.add(owner)


def _port_name(port_name: str, protocol: str) -> bytes | None:
    try:
        return label("_" + port_name) + label("_" + protocol)
    except ValueError:
        return None


def service_records(svc: Service | None, slices: list[Slice], zone: bytes, ttl: int) -> ServiceRecords:
    """Everything one Service contributes to the zone (empty when `svc` is None)."""
    out = ServiceRecords()
    if svc is None:
        return out
    try:
        base = service_name(svc.namespace, svc.name, zone)
    except ValueError:
        return out  # not a valid DNS name: nothing to serve
    if svc.kind == EXTERNAL_NAME:
        try:
            target = wire.name_to_wire(svc.external_name)
        except (ValueError, UnicodeEncodeError):
            return out
        out.names.add(base)
        out.external = target
        out.rrsets[(base, wire.CNAME)] = RRSet([RR(base, wire.CNAME, ttl, (target,))])
        return out

    # Endpoints: ready ones give names, A/AAAA and PTRs; not-ready ones are "about to exist".
    ready: list[tuple[Slice, bytes, str, bool]] = []  # (slice, endpoint name, ip, explicit hostname)
    for sl in slices:
        for ep in sl.endpoints:
            for ip in ep.addresses:
                try:
                    owner = label(endpoint_hostname(ep, ip)) + base
                except ValueError:
                    continue
                if ep.ready:
                    ready.append((sl, owner, ip, bool(ep.hostname)))
                else:
                    out.pending.add(owner)
    seen: set[RR] = set()
    for _sl, owner, ip, explicit in ready:
        _add(out, owner, _addr_rr(owner, ip, ttl), seen)
        prio = (PTR_HOSTNAME if explicit else PTR_ENDPOINT, svc.namespace, svc.name, owner)
        out.ptrs.append((ip, prio, owner))

    out.names.add(base)
    if svc.kind == HEADLESS:
        for _sl, _owner, ip, _explicit in ready:
            _add(out, base, _addr_rr(base, ip, ttl), seen)
        if not ready:
            out.names.discard(base)  # SPEC 2.4.1: no ready endpoints -> NXDOMAIN
            out.pending.add(base)
        _headless_srv(out, base, slices, ready, ttl)
    elif svc.kind == CLUSTER_IP:
        for ip in svc.cluster_ips:
            _add(out, base, _addr_rr(base, ip, ttl), seen)
            out.ptrs.append((ip, (PTR_CLUSTER_IP, svc.namespace, svc.name, base), base))
        _cluster_ip_srv(out, base, svc, ttl)
        out.names.add(base)
    out.pending -= out.names
    return out


def _headless_srv(out: ServiceRecords, base: bytes, slices: list[Slice],
                  ready: list[tuple[Slice, bytes, str, bool]], ttl: int) -> None:
    """SRV per (ready endpoint x named port of its slice), and the bare-name SRV (all ports)."""
    by_port: dict[bytes, list[tuple[int, bytes, str]]] = {}
    bare: list[tuple[int, bytes, str]] = []
    for sl, owner, ip, _explicit in ready:
        for p in sl.ports:
            bare.append((p.port, owner, ip))
            if p.name:
                prefix = _port_name(p.name, p.protocol)
                if prefix is not None:
                    by_port.setdefault(prefix + base, []).append((p.port, owner, ip))
    for owner, candidates in by_port.items():
        _srv(out, owner, candidates, ttl)
    _srv(out, base, bare, ttl)
    # Named ports of not-yet-ready endpoints: their SRV names are about to exist.
    for sl in slices:
        for p in sl.ports:
            prefix = _port_name(p.name, p.protocol) if p.name else None
            if prefix is not None:
                out.pending.add(prefix + base)


def _cluster_ip_srv(out: ServiceRecords, base: bytes, svc: Service, ttl: int) -> None:
    """SRV per named service port targeting the service, and the bare-name SRV (all ports)."""
    bare: list[tuple[int, bytes, str]] = []
    for p in svc.ports:
        candidates = [(p.port, base, ip) for ip in svc.cluster_ips]
        bare.extend(candidates)
        if p.name:
            prefix = _port_name(p.name, p.protocol)
            if prefix is not None:
                _srv(out, prefix + base, candidates, ttl)
    _srv(out, base, bare, ttl)
