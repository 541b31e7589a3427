"""Precomputed answers: one positive response per (name, type), encoded once.

An `Entry` holds the whole response but its ID, as the usual query asks it (RD set, the
question in lower case): serving such a query is `id + entry.reply`. Other forms (RD clear, a
question in mixed case, EDNS0) are one concatenation away: `id + header(rd, edns) +
question-as-asked + tail`, with the header variants shared between entries (`header`) and the
records cut from the reply (`tail`). `build_entry` encodes an RRSet; plain RRsets at the question
name (A/AAAA/PTR/TXT/CNAME) and Kubernetes-shaped SRV answers are laid out directly with
pointers into the question (the compressing `wire.Writer` is the fallback and the reference the
tests compare against). Header variants, record prefixes and metric cells are shared between
entries: at 100k+ answers that is most of an entry's size.
"""

from __future__ import annotations

import struct
from typing import Any, NamedTuple, cast

from podns.clusterdns import wire
from podns.clusterdns.metrics import Metrics
from podns.clusterdns.records import RRSet


class Entry(NamedTuple):
    """A precomputed positive answer.

    `reply` is the response from byte 2 on (header with RD set, the lower-case question, the
    records) for a query asked exactly as the table key; answer RRs point at the question
    (offset 12) by compression, so they carry the question's case whatever it is.
    `answer_ends` are offsets after each answer RR counted from the end of the question (for
    truncation). A plain tuple: the serving loop indexes it natively.
    """

    reply: bytes
    stat: int
    answer_ends: tuple[int, ...]
    records: int


#: shared copies of the few distinct header and offset values (most answers have the same
#: counts): saves ~200 bytes per answer at 100k+ answers
_INTERN: dict[Any, Any] = {}
_FAST_TYPES = frozenset((wire.A, wire.AAAA, wire.PTR, wire.CNAME, wire.TXT))
_RR_HEAD = struct.Struct("!HHHIH")
_HDR_AN = struct.Struct("!HHHHH")
_SRV_HEAD = struct.Struct("!HHHIHHHH")
_CLASS_IN = struct.pack("!H", wire.CLASS_IN)
_QTYPE_IN = {t: struct.pack("!HH", t, wire.CLASS_IN) for t in _FAST_TYPES}


def _intern(value: Any) -> Any:
    return _INTERN.setdefault(value, value)


_HEADERS: dict[bytes, tuple[bytes, bytes, bytes, bytes]] = {}
_RR_PREFIX: dict[tuple[int, int, int], bytes] = {}
_CELLS: dict[tuple[int, int], int] = {}


def _headers(hdr0: bytes) -> tuple[bytes, bytes, bytes, bytes]:
    """(RD clear, RD set, RD clear + OPT, RD set + OPT) header variants (bytes 2..11), shared;
    found again from any of the RD-set headers (what an entry's reply starts with)."""
    found = _HEADERS.get(hdr0)
    if found is None:
        hdr0 = bytes((hdr0[0] & 0xFE,)) + hdr0[1:]
        hdr1 = bytes((hdr0[0] | 0x01,)) + hdr0[1:]
        arcount = ((hdr0[8] << 8 | hdr0[9]) + 1).to_bytes(2, "big")
        found = (hdr0, hdr1, hdr0[:8] + arcount, hdr1[:8] + arcount)
        _HEADERS[hdr0] = _HEADERS[hdr1] = found
    return found


def header(entry: Entry, rd: int, edns: bool) -> bytes:
    """Header bytes 2..11 of `entry`'s response with RD = `rd` (0 or 1), with ARCOUNT + 1 when
    our OPT record follows the records."""
    return _headers(entry[0][:10])[rd + (2 if edns else 0)]


def tail(entry: Entry, question_len: int) -> bytes:
    """The records of `entry`'s response: what follows a question of `question_len` bytes."""
    return entry[0][10 + question_len:]


def _encode_srv(owner: bytes, rrset: RRSet) -> tuple[bytes, bytes, tuple[int, ...]] | None:
    """SRV answers whose targets are `<label>.<base>` or `<base>`, with `base` a suffix of the
    question (every Kubernetes SRV): laid out directly with pointers into the question.
    Returns (header bytes 2..11, tail, answer end offsets in tail), or None to use the Writer."""
    first = cast(tuple[int, int, int, bytes], rrset.answer[0][3])[3]
    base = first if owner.endswith(first) else first[1 + first[0]:]
    if not owner.endswith(base) or len(owner) > 0x3FF0:
        return None
    base_ptr = struct.pack("!H", 0xC000 | (12 + len(owner) - len(base)))
    qend = 12 + len(owner) + 4
    parts: list[bytes] = []
    ends: list[int] = []
    targets: dict[bytes, bytes] = {}  # target name -> pointer to where it was written
    pos = 0
    for rr_owner, _rtype, ttl, rdata in rrset.answer:
        prio, weight, port, target = cast(tuple[int, int, int, bytes], rdata)
        if rr_owner != owner:
            return None
        if target == base:
            tname = base_ptr
        elif target.endswith(base) and len(target) == len(base) + 1 + target[0]:
            tname = target[:1 + target[0]] + base_ptr
        else:
            return None
        if target not in targets and tname is not base_ptr:
            targets[target] = struct.pack("!H", 0xC000 | (qend + pos + 18))
        elif target == base:
            targets.setdefault(target, base_ptr)
        head = _SRV_HEAD.pack(0xC00C, wire.SRV, wire.CLASS_IN, ttl, 6 + len(tname), prio, weight, port)
        part = head + tname
        pos += len(part)
        ends.append(pos)
        parts.append(part)
    for rr_owner, rtype, ttl, rdata in rrset.additional:
        ptr = targets.get(rr_owner)
        if ptr is None or not isinstance(rdata, bytes):
            return None
        parts.append(ptr + struct.pack("!HHIH", rtype, wire.CLASS_IN, ttl, len(rdata)) + rdata)
    if qend + sum(map(len, parts)) > 0x3FFF:
        return None
    hdr0 = _HDR_AN.pack(wire.QR | wire.AA, 1, len(rrset.answer), 0, len(rrset.additional))
    return hdr0, b"".join(parts), tuple(ends)


#: (type, TTL, RDATA length, recursion) -> (header bytes 2..11, record prefix, answer ends) of a
#: one-record answer at the question name: most answers (every endpoint's A/AAAA) are that
_SINGLE: dict[tuple[int, int, int, bool], tuple[bytes, bytes, tuple[int, ...]]] = {}


def _single(owner: bytes, qtype: int, rr: tuple[bytes, int, int, Any], metrics: Metrics | None,
            recursion: bool) -> Entry:
    """`build_entry` of one plain record at the question name, its fixed parts shared."""
    _owner, rtype, ttl, rdata = rr
    rd = rdata if rdata.__class__ is bytes else rdata[0]
    skey = (rtype, ttl, len(rd), recursion)
    found = _SINGLE.get(skey)
    if found is None:
        hdr0 = _HDR_AN.pack(wire.QR | wire.AA | (wire.RA if recursion else 0), 1, 1, 0, 0)
        found = _SINGLE[skey] = (_headers(hdr0)[1], _RR_HEAD.pack(0xC00C, rtype, wire.CLASS_IN, ttl, len(rd)),
                                 _intern((12 + len(rd),)))
    hdr1, prefix, ends = found
    stat = 0
    if metrics is not None:
        ckey = (qtype, 28 + len(owner) + len(rd))
        stat = _CELLS.get(ckey, -1)
        if stat < 0:
            stat = _CELLS[ckey] = metrics.cell(qtype, wire.NOERROR, ckey[1], "udp")
    return Entry(hdr1 + owner + _QTYPE_IN[qtype] + prefix + rd, stat, ends, 1)


def build_entry(owner: bytes, qtype: int, rrset: RRSet, metrics: Metrics | None, *,
                recursion: bool = False) -> Entry:
    """Encode one positive answer. RRsets of plain records at the question name (the bulk:
    A/AAAA/PTR/TXT) are laid out directly (owner = pointer to the question); the rest go
    through the compressing Writer. `recursion`: the header carries RA (the server forwards
    names outside its zones, so it offers recursion)."""
    answer = rrset.answer
    if len(answer) == 1 and qtype in _FAST_TYPES and not rrset.additional and answer[0][0] == owner:
        return _single(owner, qtype, answer[0], metrics, recursion)
    if qtype in _FAST_TYPES and not rrset.additional and all(rr[0] == owner for rr in answer):
        parts = []
        ends = []
        pos = 0
        for _owner, rtype, ttl, rdata in answer:
            rd = rdata if isinstance(rdata, bytes) else rdata[0]
            pkey = (rtype, ttl, len(rd))
            prefix = _RR_PREFIX.get(pkey)
            if prefix is None:
                prefix = _RR_PREFIX[pkey] = _RR_HEAD.pack(0xC00C, rtype, wire.CLASS_IN, ttl, len(rd))
            part = prefix + rd
            pos += len(part)
            ends.append(pos)
            parts.append(part)
        body = parts[0] if len(parts) == 1 else b"".join(parts)
        hdr0 = _HDR_AN.pack(wire.QR | wire.AA, 1, len(answer), 0, 0)
        rel_ends = tuple(ends)
        size = 16 + len(owner) + len(body)
    elif qtype == wire.SRV and (srv := _encode_srv(owner, rrset)) is not None:
        hdr0, body, rel_ends = srv
        size = 16 + len(owner) + len(body)
    else:
        msg, abs_ends = wire.encode_response(msg_id=0, flags=wire.QR | wire.AA, rcode=wire.NOERROR,
                                             qname=owner, qtype=qtype, answer=answer,
                                             additional=rrset.additional)
        qend = 12 + len(owner) + 4
        hdr0, body, size = msg[2:12], msg[qend:], len(msg)
        rel_ends = tuple(e - qend for e in abs_ends)
    if recursion:
        hdr0 = hdr0[:1] + bytes((hdr0[1] | wire.RA,)) + hdr0[2:]
    hdr1 = _headers(hdr0)[1]
    stat = 0
    if metrics is not None:
        ckey = (qtype, size)
        stat = _CELLS.get(ckey, -1)
        if stat < 0:
            stat = _CELLS[ckey] = metrics.cell(qtype, wire.NOERROR, size, "udp")
    reply = hdr1 + owner + qtype.to_bytes(2, "big") + _CLASS_IN + body
    return Entry(reply, stat, _intern(rel_ends), len(answer))
