"""One DNS query in, one response (or a decision) out: the slow path.

The serving loop answers plain precomputed questions itself (server.py); everything else
comes here: EDNS0, truncation, negative answers, the apex, pod records, ExternalName chains,
bad input, and names outside the zone. `Handler.handle` reads only memory (the index) and
returns response bytes, `None` (drop: garbage or QR=1), or a `Forward` that the event loop
completes with an upstream round trip. The rcode decisions follow the CoreDNS tables in
docs/dns.md; each negative branch carries its one-word label (NXDOMAIN / NODATA).
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass

from podns.clusterdns import answers, wire
from podns.clusterdns.index import RecordIndex
from podns.clusterdns.metrics import Metrics
from podns.clusterdns.wire import RR, Query

#: negative TTL for names about to exist (StatefulSet ordinals, unready pods): peers that look
#: each other up while a cluster forms are not stuck behind a long negative cache entry
PENDING_NEGATIVE_TTL = 1
_REVERSE = (b"\x07in-addr\x04arpa\x00", b"\x03ip6\x04arpa\x00")


@dataclass(slots=True)
class Forward:
    """Ask upstream. `cname` set: an ExternalName answer to prefix to the upstream answer for
    `target` (a name outside the zone); otherwise relay `data` as is."""

    query: Query
    data: bytes
    proto: str
    cname: RR | None = None
    target: bytes = b""


def split_labels(name: bytes) -> list[bytes]:
    out, pos = [], 0
    while name[pos]:
        out.append(name[pos + 1:pos + 1 + name[pos]])
        pos += 1 + name[pos]
    return out


def in_zone(name: bytes, zone: bytes) -> bool:
    """Is `name` the zone or below it (label-wise, not byte-wise)?"""
    pos = 0
    while len(name) - pos > len(zone):
        pos += 1 + name[pos]
    return name[pos:] == zone


def pod_ip(text: str) -> str | None:
    """Decode an `a-b-c-d` / dashed-IPv6 pod label as CoreDNS does; None if not an address."""
    try:
        if text.count("-") == 3 and "--" not in text:
            return str(ipaddress.IPv4Address(text.replace("-", ".")))
        return str(ipaddress.IPv6Address(text.replace("-", ":")))
    except ValueError:
        return None


class Handler:
    def __init__(self, index: RecordIndex, metrics: Metrics, *, upstream: bool,
                 ns_addrs: tuple[str, ...] = ()) -> None:
        self.index = index
        self.metrics = metrics
        self.upstream = upstream
        self.ns_addrs = ns_addrs  # addresses of this server, for the apex NS glue
        #: RA in every reply when the index says this server offers recursion (it forwards):
        #: the precomputed answers carry it too, so both come from `index.recursion`
        self.ra = wire.RA if index.recursion else 0

    def handle(self, data: bytes, proto: str) -> bytes | Forward | None:
        try:
            q = wire.parse_query(data)
        except wire.Drop:
            self.metrics.dropped += 1
            return None
        except wire.FormatError as exc:
            return self._count(0, wire.error_response(None, wire.FORMERR, msg_id=exc.msg_id, flags=exc.flags,
                                                                    ra=self.ra),
                               proto)
        if q.opcode != 0:
            return self._count(q.qtype, wire.error_response(q, wire.NOTIMP, ra=self.ra), proto)
        if q.edns_version > 0:  # RFC 6891 6.1.3: BADVERS (extended rcode 16)
            msg = struct.pack("!HHHHHH", q.msg_id, wire.QR | self.ra | (q.flags & wire.RD), 1, 0, 0, 1)
            return self._count(q.qtype, msg + q.question + wire.opt_rr(ext_rcode=1), proto)
        if q.qclass != wire.CLASS_IN:
            return self._count(q.qtype, wire.error_response(q, wire.REFUSED, ra=self.ra), proto)
        name = q.qname_wire.lower()
        index = self.index
        if not in_zone(name, index.zone):
            if q.qtype == wire.PTR and index.synced and name.endswith(_REVERSE):
                target = index.ptr_target(name)
                if target is not None:
                    answer = [RR(name, wire.PTR, index.ttl, (target,))]
                    return self._reply(q, name, wire.NOERROR, answer, [], [], proto)
            if self.upstream and q.qtype not in (wire.AXFR, wire.IXFR):
                return Forward(q, data, proto)
            return self._count(q.qtype, wire.error_response(q, wire.REFUSED, ra=self.ra), proto)
        if q.qtype in (wire.AXFR, wire.IXFR):
            return self._count(q.qtype, wire.error_response(q, wire.REFUSED, ra=self.ra), proto)
        if not index.synced:  # not synced is not "does not exist"
            return self._reply(q, name, wire.SERVFAIL, [], [index.soa_rr(index.zone)], [], proto)
        entry = index.serving.get(name + struct.pack("!HH", q.qtype, wire.CLASS_IN))
        if entry is None and q.qtype == wire.SRV:
            entry = index.lazy_entry(name, q.qtype)  # built on first ask, then in the table
        if entry is not None:
            return self._entry(q, entry, proto)
        return self._lookup(q, name, data, proto)

    def _lookup(self, q: Query, name: bytes, data: bytes, proto: str) -> bytes | Forward:
        index = self.index
        zone = index.zone
        ttl = index.ttl
        if name == zone and q.qtype == wire.SOA:
            return self._reply(q, name, wire.NOERROR, [index.soa_rr(name)], [], [], proto)
        if name == zone and q.qtype == wire.NS:
            ns = b"\x02ns\x03dns" + zone
            glue = [RR(ns, t, ttl, packed) for t, packed in (wire.ip_rdata(ip) for ip in self.ns_addrs)]
            return self._reply(q, name, wire.NOERROR, [RR(name, wire.NS, ttl, (ns,))], [], glue, proto)
        if name == b"\x02ns\x03dns" + zone and q.qtype in (wire.A, wire.AAAA):
            addrs = (wire.ip_rdata(ip) for ip in self.ns_addrs)
            rrs = [RR(name, t, ttl, p) for t, p in addrs if t == q.qtype]
            if rrs:
                return self._reply(q, name, wire.NOERROR, rrs, [], [], proto)
        target = index.externals.get(name)
        if target is not None:
            return self._external(q, name, target, data, proto)
        labels = split_labels(name)
        nzone = len(split_labels(zone))
        if len(labels) == nzone + 3 and labels[2] == b"pod":
            return self._pod(q, name, labels, proto)
        if name in index.names:  # NODATA
            return self._reply(q, name, wire.NOERROR, [], [index.soa_rr(zone)], [], proto)
        if name in index.pending:  # NXDOMAIN, about to exist: short negative TTL
            soa = index.soa_rr(zone, negative_ttl=min(PENDING_NEGATIVE_TTL, ttl))
            return self._reply(q, name, wire.NXDOMAIN, [], [soa], [], proto)
        return self._reply(q, name, wire.NXDOMAIN, [], [index.soa_rr(zone)], [], proto)  # NXDOMAIN

    def _pod(self, q: Query, name: bytes, labels: list[bytes], proto: str) -> bytes:
        """`a-b-c-d.<ns>.pod.<zone>`: insecure = any address in an existing namespace;
        verified = a live pod of that namespace has the address; disabled = NXDOMAIN."""
        index = self.index
        ns = labels[1].decode("ascii", "replace")
        ip = pod_ip(labels[0].decode("ascii", "replace"))
        soa = index.soa_rr(index.zone)
        if (index.pods_mode == "disabled" or ip is None or not index.namespace_exists(ns)
                or (index.pods_mode == "verified" and not index.pod_ip_exists(ns, ip))):
            return self._reply(q, name, wire.NXDOMAIN, [], [soa], [], proto)  # NXDOMAIN
        rtype, packed = wire.ip_rdata(ip)
        if q.qtype != rtype:
            return self._reply(q, name, wire.NOERROR, [], [soa], [], proto)  # NODATA
        return self._reply(q, name, wire.NOERROR, [RR(name, rtype, index.ttl, packed)], [], [], proto)

    def _external(self, q: Query, name: bytes, target: bytes, data: bytes, proto: str) -> bytes | Forward:
        """ExternalName: CNAME, then the target's records (local when in the zone, else upstream)."""
        index = self.index
        cname = RR(name, wire.CNAME, index.ttl, (target,))
        if q.qtype not in (wire.A, wire.AAAA) or not in_zone(target, index.zone):
            if q.qtype in (wire.A, wire.AAAA) and self.upstream:
                return Forward(q, data, proto, cname=cname, target=target)
            return self._reply(q, name, wire.NOERROR, [cname], [], [], proto)
        chased = index.rrset(target, q.qtype)
        answer = [cname, *(chased.answer if chased else ())]
        return self._reply(q, name, wire.NOERROR, answer, [], [], proto)

    # ------------------------------------------------------------------ building replies

    def _entry(self, q: Query, entry: answers.Entry, proto: str) -> bytes:
        qlen = len(q.question)
        hdr = answers.header(entry, 1 if q.flags & wire.RD else 0, False)
        if q.flags & wire.CD:  # echoed, as by every other reply here (and miekg/dns SetReply)
            hdr = hdr[:1] + bytes((hdr[1] | wire.CD,)) + hdr[2:]
        msg = struct.pack("!H", q.msg_id) + hdr + q.question + answers.tail(entry, qlen)
        qend = 12 + qlen
        return self._finish(q, msg, tuple(qend + e for e in entry.answer_ends), qend, proto, wire.NOERROR)

    def _reply(self, q: Query, name: bytes, rcode: int, answer: list[RR], authority: list[RR],
               additional: list[RR], proto: str) -> bytes:
        flags = wire.QR | wire.AA | self.ra | (q.flags & (wire.RD | wire.CD))
        msg, ends = wire.encode_response(msg_id=q.msg_id, flags=flags, rcode=rcode, qname=name, qtype=q.qtype,
                                         answer=answer, authority=authority, additional=additional)
        qend = 12 + len(q.question)
        msg = msg[:12] + q.question + msg[qend:]  # the question exactly as asked (case kept)
        return self._finish(q, msg, ends, qend, proto, rcode)

    def _finish(self, q: Query, msg: bytes, ends: tuple[int, ...], qend: int, proto: str,
                rcode: int) -> bytes:
        edns = q.edns_size is not None
        if edns:
            msg = wire.add_opt(msg)
        if proto == "udp" and len(msg) > q.udp_limit():
            msg = wire.truncate(msg, ends, q.udp_limit(), qend, edns)
        return self._count(q.qtype, msg, proto, rcode)

    def _count(self, qtype: int, msg: bytes, proto: str, rcode: int | None = None) -> bytes:
        self.metrics.count(qtype, (msg[3] & 0xF) if rcode is None else rcode, len(msg), proto)
        return msg
