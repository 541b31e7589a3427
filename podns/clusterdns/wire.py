"""DNS wire format: query parsing and response encoding, sans-I/O.

This module owns the bytes. It parses exactly what a server needs from a query (header,
the single question, the EDNS0 OPT record) and encodes responses with name compression.
It never touches sockets, and it knows nothing about Kubernetes.

Error contract: `parse_query` raises `Drop` when the packet must be ignored (shorter than a
header, or QR=1: answering a response invites loops), and `FormatError` when the header is
readable but the rest is not (the caller answers FORMERR with the query's ID). No other
exception escapes for any input; the fuzz tests hold it to that.

Names are handled as lower-case `str` without the trailing dot (`"a.b.cluster.local"`, the
root is `""`), and as wire bytes (`name_to_wire`). Matching is case-insensitive by lowering
the wire bytes: label length bytes are < 64 and so never change under `bytes.lower()`.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass
from typing import Any, NamedTuple

# Record types and classes used by the server (RFC 1035, 3596, 2782, 6891, 1995, 5936).
A, NS, CNAME, SOA, PTR, MX, TXT, AAAA, SRV, OPT, IXFR, AXFR, ANY = (
    1, 2, 5, 6, 12, 15, 16, 28, 33, 41, 251, 252, 255,
)
CLASS_IN = 1
TYPE_NAMES = {A: "A", NS: "NS", CNAME: "CNAME", SOA: "SOA", PTR: "PTR", MX: "MX", TXT: "TXT",
              AAAA: "AAAA", SRV: "SRV", OPT: "OPT", IXFR: "IXFR", AXFR: "AXFR", ANY: "ANY"}

# Response codes (RFC 1035 4.1.1).
NOERROR, FORMERR, SERVFAIL, NXDOMAIN, NOTIMP, REFUSED = 0, 1, 2, 3, 4, 5
RCODE_NAMES = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED"}

# Header flag bits (first 16-bit flags word).
QR, AA, TC, RD, RA, CD = 0x8000, 0x0400, 0x0200, 0x0100, 0x0080, 0x0010

#: payload size assumed for clients without EDNS0 (RFC 1035 4.2.1)
CLASSIC_UDP_SIZE = 512
#: payload size we advertise and cap at: the DNS Flag Day 2020 value that avoids IP fragmentation
SERVER_UDP_SIZE = 1232

_HDR = struct.Struct("!HHHHHH")
_RR_FIXED = struct.Struct("!HHIH")


class Drop(Exception):
    """The packet must be silently ignored (not a query we may answer)."""


class FormatError(Exception):
    """The header is readable but the message is malformed: answer FORMERR.

    `msg_id` and `flags` are those of the query so the error response can echo them.
    """

    def __init__(self, msg_id: int, flags: int, reason: str) -> None:
        super().__init__(reason)
        self.msg_id = msg_id
        self.flags = flags


@dataclass(slots=True)
class Query:
    """The parts of a query a server acts on.

    `qname_wire` is the question name exactly as received (original case); `question` is the
    whole question section as received (name, type, class); `edns_size` is None without an OPT
    record, else the client's advertised UDP payload size (at least 512).
    """

    msg_id: int
    flags: int
    opcode: int
    qdcount: int
    qname_wire: bytes
    qname: str
    qtype: int
    qclass: int
    question: bytes
    edns_size: int | None
    edns_version: int
    edns_do: bool

    @property
    def rd(self) -> bool:
        return bool(self.flags & RD)

    def udp_limit(self) -> int:
        """Largest UDP response we send this client: its advertised size, never below 512
        (RFC 6891 6.2.5) and never above SERVER_UDP_SIZE, whatever it advertises (a bigger UDP
        answer fragments, and is an amplification tool for spoofed sources); bigger answers are
        truncated with TC and the client retries over TCP."""
        if self.edns_size is None:
            return CLASSIC_UDP_SIZE
        return max(CLASSIC_UDP_SIZE, min(self.edns_size, SERVER_UDP_SIZE))


def read_name(data: bytes, offset: int) -> tuple[bytes, int]:
    """Read an uncompressed-or-compressed name; return (lower wire bytes, offset after it).

    Raises ValueError on truncation, pointer loops, bad label types or names over 255 bytes.
    """
    labels: list[bytes] = []
    total = 0
    end = -1
    jumps = 0
    pos = offset
    while True:
        if pos >= len(data):
            raise ValueError("name runs past the end of the message")
        length = data[pos]
        if length == 0:
            pos += 1
            break
        kind = length & 0xC0
        if kind == 0xC0:
            if pos + 1 >= len(data):
                raise ValueError("truncated compression pointer")
            target = ((length & 0x3F) << 8) | data[pos + 1]
            if end < 0:
                end = pos + 2
            jumps += 1
            if jumps > 64 or target >= pos:
                raise ValueError("compression pointer loop")
            pos = target
            continue
        if kind:
            raise ValueError("unsupported label type")
        label = data[pos + 1:pos + 1 + length]
        if len(label) != length:
            raise ValueError("label runs past the end of the message")
        total += length + 1
        if total > 254:
            raise ValueError("name longer than 255 bytes")
        labels.append(bytes((length,)) + label)
        pos += 1 + length
    wire = b"".join(labels) + b"\x00"
    return wire.lower(), (end if end >= 0 else pos)


def wire_to_name(wire: bytes) -> str:
    """Lower-case dotted text form of wire name bytes, without the trailing dot.

    Non-printable or dot characters inside labels are escaped as `\\DDD` so the text form
    never aliases another name.
    """
    out: list[str] = []
    pos = 0
    while wire[pos]:
        length = wire[pos]
        raw = wire[pos + 1:pos + 1 + length]
        if all(33 <= c < 127 and c not in (46, 92) for c in raw):
            out.append(raw.decode("ascii").lower())
        else:
            out.append("".join(chr(c).lower() if 33 <= c < 127 and c not in (46, 92) else f"\\{c:03d}"
                               for c in raw))
        pos += 1 + length
    return ".".join(out)


def name_to_wire(name: str) -> bytes:
    """Wire bytes of a dotted name (no escapes; labels of 1..63 bytes; lower-cased)."""
    name = name.rstrip(".").lower()
    if not name:
        return b"\x00"
    parts = []
    for label in name.split("."):
        raw = label.encode("ascii")
        if not 0 < len(raw) < 64:
            raise ValueError(f"invalid label {label!r} in {name!r}")
        parts.append(bytes((len(raw),)) + raw)
    out = b"".join(parts) + b"\x00"
    if len(out) > 255:
        raise ValueError(f"name too long: {name!r}")
    return out


def parse_query(data: bytes) -> Query:
    """Parse a query. Raises `Drop` or `FormatError` (see the module docstring)."""
    if len(data) < 12:
        raise Drop("shorter than a DNS header")
    msg_id, flags, qdcount, ancount, nscount, arcount = _HDR.unpack_from(data)
    if flags & QR:
        raise Drop("QR set: a response, not a query")
    opcode = (flags >> 11) & 0xF
    if qdcount != 1:
        if qdcount == 0 and opcode != 0:
            # e.g. a NOTIFY/UPDATE without question: let the caller answer NOTIMP.
            return Query(msg_id, flags, opcode, 0, b"\x00", "", 0, 0, b"", None, 0, False)
        raise FormatError(msg_id, flags, f"QDCOUNT is {qdcount}, expected 1")
    try:
        qname_lower, pos = read_name(data, 12)
        if pos + 4 > len(data):
            raise ValueError("truncated question")
        qtype, qclass = struct.unpack_from("!HH", data, pos)
        question = data[12:pos + 4]
        qname_wire = data[12:pos]
        if qname_wire.lower() != qname_lower:
            # compressed question name: rebuild it uncompressed (same case is lost: accept)
            qname_wire = qname_lower
            question = qname_lower + data[pos:pos + 4]
        pos += 4
        edns_size, edns_version, edns_do = _parse_additional(data, pos, ancount, nscount, arcount)
    except ValueError as exc:
        raise FormatError(msg_id, flags, str(exc)) from exc
    return Query(msg_id, flags, opcode, qdcount, qname_wire, wire_to_name(qname_lower), qtype, qclass,
                 question, edns_size, edns_version, edns_do)


def _parse_additional(data: bytes, pos: int, ancount: int, nscount: int,
                      arcount: int) -> tuple[int | None, int, bool]:
    """Skip answer/authority RRs and find the OPT record; return (size, version, DO)."""
    edns: tuple[int | None, int, bool] = (None, 0, False)
    seen_opt = False
    for index in range(ancount + nscount + arcount):
        owner, pos = read_name(data, pos)
        if pos + 10 > len(data):
            raise ValueError("truncated resource record")
        rtype, rclass, ttl, rdlen = _RR_FIXED.unpack_from(data, pos)
        pos += 10 + rdlen
        if pos > len(data):
            raise ValueError("truncated rdata")
        if rtype == OPT:
            if index < ancount + nscount or owner != b"\x00" or seen_opt:
                raise ValueError("misplaced or repeated OPT record")
            seen_opt = True
            edns = (max(rclass, CLASSIC_UDP_SIZE), (ttl >> 16) & 0xFF, bool(ttl & 0x8000))
    return edns


# ----------------------------------------------------------------------------- encoding


class Writer:
    """Append-only message builder with RFC 1035 4.1.4 name compression."""

    __slots__ = ("buf", "names")

    def __init__(self) -> None:
        self.buf = bytearray()
        self.names: dict[bytes, int] = {}

    def name(self, wire: bytes) -> None:
        """Append a (lower-case) wire name, compressing against names already written."""
        pos = 0
        while wire[pos]:
            suffix = wire[pos:]
            ptr = self.names.get(suffix)
            if ptr is not None:
                self.buf += struct.pack("!H", 0xC000 | ptr)
                return
            here = len(self.buf)
            if here < 0x3FFF:
                self.names[suffix] = here
            length = wire[pos]
            self.buf += wire[pos:pos + 1 + length]
            pos += 1 + length
        self.buf += b"\x00"

    def question(self, wire: bytes, qtype: int, qclass: int = CLASS_IN) -> None:
        self.name(wire)
        self.buf += struct.pack("!HH", qtype, qclass)

    def rr(self, owner: bytes, rtype: int, ttl: int, rdata: RData) -> None:
        """Append one resource record; `rdata` is raw bytes or a typed tuple (see RData)."""
        self.name(owner)
        self.buf += struct.pack("!HHI", rtype, CLASS_IN, ttl)
        len_at = len(self.buf)
        self.buf += b"\x00\x00"
        if isinstance(rdata, bytes):
            self.buf += rdata
        elif rtype == SRV:
            prio, weight, port, target = rdata
            self.buf += struct.pack("!HHH", prio, weight, port)
            self.name(target)
        elif rtype == SOA:
            mname, rname, serial, refresh, retry, expire, minimum = rdata
            self.name(mname)
            self.name(rname)
            self.buf += struct.pack("!IIIII", serial, refresh, retry, expire, minimum)
        else:  # a single domain name: CNAME, PTR, NS
            self.name(rdata[0])
        struct.pack_into("!H", self.buf, len_at, len(self.buf) - len_at - 2)


#: rdata: raw bytes (A, AAAA, TXT), (target,) for CNAME/PTR/NS, (prio, weight, port, target) for
#: SRV, (mname, rname, serial, refresh, retry, expire, minimum) for SOA; names as wire bytes.
RData = bytes | tuple[Any, ...]


class RR(NamedTuple):
    """One resource record with its owner as lower-case wire bytes (a tuple: cheap to build,
    hash and compare by the hundred thousand)."""

    owner: bytes
    rtype: int
    ttl: int
    rdata: RData


def ip_rdata(ip: str) -> tuple[int, bytes]:
    """(A or AAAA, packed address) for an IP literal; raises ValueError if not an address."""
    try:
        if ":" in ip:
            return AAAA, socket.inet_pton(socket.AF_INET6, ip)
        return A, socket.inet_pton(socket.AF_INET, ip)
    except OSError as exc:
        raise ValueError(f"not an IP address: {ip!r}") from exc


def txt_rdata(*strings: str) -> bytes:
    out = b""
    for s in strings:
        raw = s.encode()
        out += bytes((len(raw),)) + raw
    return out


def opt_rr(udp_size: int = SERVER_UDP_SIZE, ext_rcode: int = 0) -> bytes:
    """Our OPT pseudo-record: root owner, our payload size, version 0, no options."""
    return b"\x00" + struct.pack("!HHIH", OPT, udp_size, (ext_rcode & 0xFF) << 24, 0)


def encode_response(*, msg_id: int, flags: int, rcode: int, qname: bytes, qtype: int,
                    qclass: int = CLASS_IN, answer: list[RR] | tuple[RR, ...] = (),
                    authority: list[RR] | tuple[RR, ...] = (),
                    additional: list[RR] | tuple[RR, ...] = (),
                    with_question: bool = True) -> tuple[bytes, tuple[int, ...]]:
    """Encode a full response without OPT; return (message, end offsets of each answer RR).

    `flags` carries QR/AA/RD/...; the rcode is OR-ed in. The answer end offsets let callers
    truncate to whole records without re-parsing.
    """
    w = Writer()
    w.buf += _HDR.pack(msg_id, flags | rcode, 1 if with_question else 0, len(answer), len(authority),
                       len(additional))
    if with_question:
        w.question(qname, qtype, qclass)
    ends = []
    for rr in answer:
        w.rr(rr.owner, rr.rtype, rr.ttl, rr.rdata)
        ends.append(len(w.buf))
    for rr in authority:
        w.rr(rr.owner, rr.rtype, rr.ttl, rr.rdata)
    for rr in additional:
        w.rr(rr.owner, rr.rtype, rr.ttl, rr.rdata)
    return bytes(w.buf), tuple(ends)


def add_opt(message: bytes) -> bytes:
    """Append our OPT record to an encoded message (ARCOUNT + 1)."""
    arcount = (message[10] << 8 | message[11]) + 1
    return message[:10] + arcount.to_bytes(2, "big") + message[12:] + opt_rr()


def truncate(message: bytes, answer_ends: tuple[int, ...], limit: int, question_end: int,
             edns: bool) -> bytes:
    """Cut `message` to `limit` bytes: TC set, as many whole answer RRs as fit, no more sections.

    `answer_ends` are absolute offsets in `message`; `question_end` is where the answer starts.
    """
    room = limit - (11 if edns else 0)
    keep = question_end
    count = 0
    for end in answer_ends:
        if end > room:
            break
        keep = end
        count += 1
    flags = (message[2] << 8 | message[3]) | TC
    header = message[:2] + flags.to_bytes(2, "big") + message[4:6] + count.to_bytes(2, "big") + \
        b"\x00\x00" + (b"\x00\x01" if edns else b"\x00\x00")
    return header + message[12:keep] + (opt_rr() if edns else b"")


def error_response(query: Query | None, rcode: int, *, msg_id: int = 0, flags: int = 0, ra: int = 0) -> bytes:
    """A bare error response echoing the question when there is one (FORMERR, NOTIMP, ...);
    `ra` (RA or 0) is OR-ed into the flags."""
    if query is not None and not query.question:
        msg_id, flags = query.msg_id, query.flags
    if query is None or not query.question:
        f = QR | ra | (flags & (RD | CD)) | (flags & 0x7800) | rcode
        return _HDR.pack(msg_id, f, 0, 0, 0, 0)
    f = QR | ra | (query.flags & (RD | CD)) | (query.flags & 0x7800) | rcode
    msg = _HDR.pack(query.msg_id, f, 1, 0, 0, 0) + query.question
    return add_opt(msg) if query.edns_size is not None else msg
