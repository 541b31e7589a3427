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

import socket
from dataclasses import dataclass, field

from podns.clusterdns import wire
from podns.clusterdns.trimmed import (
    CLUSTER_IP,
    EXTERNAL_NAME,
    HEADLESS,
    Endpoint,
    Service,
    Slice,
    endpoint_hostname,
)
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
    #: (reverse name of the IP, PTR target name); the target says its priority (`ptr_order`)
    ptrs: list[tuple[bytes, bytes]] = field(default_factory=list)
    external: bytes | None = None
    #: False: SRV RRsets are not built, their owners are listed in `lazy` instead with what the
    #: RRset is made of, (port, target, address RR) candidates, to tell whether it changed (the
    #: index builds an SRV answer when it is first asked: see RecordIndex.lazy_entry)
    srv: bool = True
    lazy: list[tuple[bytes, tuple[tuple[int, bytes, RR], ...]]] = field(default_factory=list)


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
#: wire label of each IPv4 octet value ("\x0210", ...): reverse names without formatting
_OCTET = [bytes((len(str(i)),)) + str(i).encode() for i in range(256)]
_NIBBLE_LABELS = b"\x01\x00" * 32  # 32 one-character labels, characters filled in


def reverse_name(ip: str) -> bytes:
    """`d.c.b.a.in-addr.arpa` / nibble `ip6.arpa` owner name for an address, as wire bytes."""
    return reverse_packed(wire.ip_rdata(ip)[1])


def reverse_packed(packed: bytes) -> bytes:
    """`reverse_name` of a packed address (4 bytes: IPv4, 16: IPv6)."""
    if len(packed) == 4:
        octet = _OCTET
        return octet[packed[3]] + octet[packed[2]] + octet[packed[1]] + octet[packed[0]] + _IN_ADDR
    out = bytearray(_NIBBLE_LABELS)
    out[1::2] = packed.hex()[::-1].encode()
    return bytes(out) + _IP6


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


def ptr_order(reverse: bytes, target: bytes, zone_labels: int) -> tuple[int, bytes, bytes, bytes]:
    """The priority of PTR target `target` for the IP of reverse name `reverse`, lowest first:
    (class, namespace, service, target). The class is read off the target: a Service's own
    name (`<svc>.<ns>.svc.<zone>`) is its cluster IP's; an endpoint's name is its explicit
    hostname's unless its first label is the address, dashed. Only IPs with several candidates
    are ever ordered, so one target per candidate is all the index keeps."""
    labels = []
    pos = 0
    while target[pos]:
        labels.append(target[pos + 1:pos + 1 + target[pos]])
        pos += 1 + target[pos]
    depth = zone_labels + 1  # the zone's labels and "svc"
    ns, svc = labels[-depth - 1], labels[-depth - 2]
    if len(labels) == depth + 2:
        return PTR_CLUSTER_IP, ns, svc, target
    dashed = _dashed_ip(reverse)
    return (PTR_ENDPOINT if labels[0] == dashed else PTR_HOSTNAME), ns, svc, target


def _dashed_ip(reverse: bytes) -> bytes:
    """The endpoint label of the address whose reverse name is `reverse` (`endpoint_hostname`)."""
    if reverse.endswith(_IN_ADDR):
        octets = []
        pos = 0
        while reverse[pos:] != _IN_ADDR:
            octets.append(reverse[pos + 1:pos + 1 + reverse[pos]])
            pos += 1 + reverse[pos]
        return b"-".join(reversed(octets))
    nibbles = reverse[1:64:2][::-1].decode("ascii")
    text = socket.inet_ntop(socket.AF_INET6, bytes.fromhex(nibbles))
    return label(endpoint_hostname(Endpoint((text,), True, ""), text))[1:]


def _srv(out: ServiceRecords, owner: bytes, candidates: list[tuple[int, bytes, RR]], ttl: int) -> None:
    """Add an SRV RRset from (port, target, target's address RR) candidates; weight = 100 // N
    as CoreDNS."""
    if not candidates:
        return
    out.names.add(owner)
    if not out.srv:
        out.lazy.append((owner, tuple(candidates)))
        return
    weight = max(1, 100 // len(candidates))
    answer = list(dict.fromkeys([RR(owner, wire.SRV, ttl, (0, weight, port, target))
                                 for port, target, _rr in candidates]))
    additional = list(dict.fromkeys([rr for _port, _target, rr in candidates]))
    out.rrsets[(owner, wire.SRV)] = RRSet(answer, additional)


#: `_port_name` results: a handful of distinct (name, protocol) pairs serve every Service
_PORT_NAMES: dict[tuple[str, str], bytes | None] = {}


def _port_name(port_name: str, protocol: str) -> bytes | None:
    """`_<name>._<protocol>` as wire labels; None when not valid labels."""
    key = (port_name, protocol)
    if key in _PORT_NAMES:
        return _PORT_NAMES[key]
    found: bytes | None
    try:
        found = label("_" + port_name) + label("_" + protocol)
    except ValueError:
        found = None
    if len(_PORT_NAMES) < 10000:  # bounded: hostile variety computes, never grows memory
        _PORT_NAMES[key] = found
    return found


def service_records(svc: Service | None, slices: list[Slice], zone: bytes, ttl: int, *,
                    srv: bool = True) -> ServiceRecords:
    """Everything one Service contributes to the zone (empty when `svc` is None); with `srv`
    False, SRV RRsets are only named (`ServiceRecords.lazy`), not built."""
    out = ServiceRecords(srv=srv)
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
    # Each ready address is parsed once: its A/AAAA RR serves the endpoint name and the SRV
    # additional sections alike, its packed form the headless A set and the reverse name.
    ready: list[tuple[Slice, RR]] = []  # (slice, A/AAAA RR at the endpoint's name)
    seen: set[RR] = set()
    rrsets, names = out.rrsets, out.names
    for sl in slices:
        for ep in sl.endpoints:
            hostname = ep.hostname
            for ip in ep.addresses:
                try:
                    owner = label(hostname or endpoint_hostname(ep, ip)) + base
                    rtype, packed = wire.ip_rdata(ip)
                except ValueError:
                    continue
                if ep.ready:
                    rr = RR(owner, rtype, ttl, packed)
                    ready.append((sl, rr))
                    if rr not in seen:  # _add, inlined: once per endpoint address
                        seen.add(rr)
                        rrset = rrsets.get((owner, rtype))
                        if rrset is None:
                            rrsets[(owner, rtype)] = RRSet([rr])
                        else:
                            rrset.answer.append(rr)
                        names.add(owner)
                    out.ptrs.append((reverse_packed(packed), owner))
                else:
                    out.pending.add(owner)

    out.names.add(base)
    if svc.kind == HEADLESS:
        for _sl, rr in ready:
            _add(out, base, RR(base, rr.rtype, ttl, rr.rdata), seen)
        if not ready:
            out.names.discard(base)  # SPEC 2.4.1: no ready endpoints -> NXDOMAIN
            out.pending.add(base)
        _headless_srv(out, base, slices, ready, ttl)
    elif svc.kind == CLUSTER_IP:
        addr_rrs = []
        for ip in svc.cluster_ips:
            try:
                rtype, packed = wire.ip_rdata(ip)
            except ValueError:
                continue
            rr = RR(base, rtype, ttl, packed)
            addr_rrs.append(rr)
            _add(out, base, rr, seen)
            out.ptrs.append((reverse_packed(packed), base))
        _cluster_ip_srv(out, base, svc, addr_rrs, ttl)
        out.names.add(base)
    out.pending -= out.names
    return out


def _headless_srv(out: ServiceRecords, base: bytes, slices: list[Slice], ready: list[tuple[Slice, RR]],
                  ttl: int) -> None:
    """SRV per (ready endpoint x named port of its slice), and the bare-name SRV (all ports)."""
    by_port: dict[bytes, list[tuple[int, bytes, RR]]] = {}
    bare: list[tuple[int, bytes, RR]] = []
    prefixes: dict[int, list[tuple[int, bytes | None]]] = {}  # id(slice) -> (port, SRV owner or None)
    for sl in slices:
        ports = prefixes[id(sl)] = []
        for p in sl.ports:
            prefix = _port_name(p.name, p.protocol) if p.name else None
            if prefix is not None:
                out.pending.add(prefix + base)  # about to exist (named ports of not-ready endpoints)
            ports.append((p.port, None if prefix is None else prefix + base))
    for sl, rr in ready:
        for port, srv_owner in prefixes[id(sl)]:
            cand = (port, rr.owner, rr)
            bare.append(cand)
            if srv_owner is not None:
                by_port.setdefault(srv_owner, []).append(cand)
    for owner, candidates in by_port.items():
        _srv(out, owner, candidates, ttl)
    _srv(out, base, bare, ttl)


def _cluster_ip_srv(out: ServiceRecords, base: bytes, svc: Service, addr_rrs: list[RR], ttl: int) -> None:
    """SRV per named service port targeting the service, and the bare-name SRV (all ports)."""
    bare: list[tuple[int, bytes, RR]] = []
    for p in svc.ports:
        candidates = [(p.port, base, rr) for rr in addr_rrs]
        bare.extend(candidates)
        if p.name:
            prefix = _port_name(p.name, p.protocol)
            if prefix is not None:
                _srv(out, prefix + base, candidates, ttl)
    _srv(out, base, bare, ttl)
