"""Upstream forwarding for names outside the cluster zone.

`Forwarder.exchange(data, proto)` relays a client's query to the upstream resolvers, in order,
with a fresh random ID (restored on the way back), over UDP and, when the upstream truncates
and the client came over TCP, again over TCP. It returns the upstream's response bytes, or
None when every upstream failed (the caller answers SERVFAIL). `resolve(name, qtype)` is the
ExternalName helper: the upstream's answer RRs for a target name.

`upstreams_from_resolv_conf()` reads the default upstreams like CoreDNS's
`forward . /etc/resolv.conf`. Upstreams that are this server itself would loop; the caller
filters them out.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import secrets
import socket
import struct
from pathlib import Path

from podns.clusterdns import wire
from podns.clusterdns.wire import RR

#: seconds to wait for one upstream before trying the next
UPSTREAM_TIMEOUT = 2.0

Upstream = tuple[str, int]


def parse_upstream(text: str) -> Upstream:
    """`1.2.3.4`, `1.2.3.4:5353`, `[::1]:53` or `::1` -> (host, port); ValueError when invalid."""
    text = text.strip()
    if text.startswith("["):
        host, _, port = text[1:].partition("]")
        port = port.lstrip(":")
    elif text.count(":") == 1:
        host, port = text.split(":")
    else:
        host, port = text, ""
    ipaddress.ip_address(host)
    number = int(port) if port else 53
    if not 0 < number < 65536:
        raise ValueError(f"invalid upstream port in {text!r}")
    return host, number


def upstreams_from_resolv_conf(path: str = "/etc/resolv.conf") -> list[Upstream]:
    """The `nameserver` lines of a resolv.conf, as (host, 53); empty when unreadable."""
    out: list[Upstream] = []
    try:
        text = Path(path).read_text()
    except OSError:
        return out
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] == "nameserver":
            with contextlib.suppress(ValueError):
                out.append(parse_upstream(parts[1].split("%")[0]))
    return out


class Forwarder:
    def __init__(self, upstreams: list[Upstream], timeout: float = UPSTREAM_TIMEOUT) -> None:
        self.upstreams = upstreams
        self.timeout = timeout

    async def exchange(self, data: bytes, proto: str) -> bytes | None:
        """Relay `data` (a client query); the upstream response with the client's ID, or None.

        A reply is accepted only when it is a response (QR) with our fresh ID and the query's
        question (name case-insensitively, type and class): anything else arriving on the
        socket (a late answer to another query, a spoofing attempt) is ignored while we wait."""
        try:
            question = question_key(data)
        except ValueError:
            return None
        new_id = secrets.randbits(16)
        query = struct.pack("!H", new_id) + data[2:]
        for host, port in self.upstreams:
            try:
                reply = await asyncio.wait_for(self._udp(host, port, query, new_id, question), self.timeout)
                if reply[2] & 0x02 and proto == "tcp":  # truncated: the client can take it all
                    reply = await asyncio.wait_for(self._tcp(host, port, query), self.timeout)
                    if not matches(reply, new_id, question):
                        continue
            except (OSError, TimeoutError, asyncio.IncompleteReadError, ValueError):
                continue
            return data[:2] + reply[2:]
        return None

    async def resolve(self, name: bytes, qtype: int) -> tuple[list[RR], bool] | None:
        """Upstream answer RRs for (name, qtype) and whether it was truncated; None on failure."""
        msg_id = secrets.randbits(16)
        query = struct.pack("!HHHHHH", msg_id, wire.RD, 1, 0, 0, 0) + name + struct.pack("!HH", qtype, 1)
        reply = await self.exchange(query, "tcp")
        if reply is None:
            return None
        try:
            return _answer_rrs(reply), bool(reply[2] & 0x02)
        except ValueError:
            return None

    async def _udp(self, host: str, port: int, query: bytes, msg_id: int, question: bytes) -> bytes:
        loop = asyncio.get_running_loop()
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        sock.setblocking(False)
        try:
            await loop.sock_connect(sock, (host, port))
            await loop.sock_sendall(sock, query)
            while True:
                reply = await loop.sock_recv(sock, 65535)
                if matches(reply, msg_id, question):
                    return reply
        finally:
            sock.close()

    async def _tcp(self, host: str, port: int, query: bytes) -> bytes:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            writer.write(struct.pack("!H", len(query)) + query)
            await writer.drain()
            size = struct.unpack("!H", await reader.readexactly(2))[0]
            return await reader.readexactly(size)
        finally:
            writer.close()


def question_key(message: bytes) -> bytes:
    """The single question of a message as lower-case name wire bytes + type + class; raises
    ValueError when the message has not exactly one readable question."""
    if len(message) < 12 or message[4:6] != b"\x00\x01":
        raise ValueError("not exactly one question")
    name, pos = wire.read_name(message, 12)
    if pos + 4 > len(message):
        raise ValueError("truncated question")
    return name + message[pos:pos + 4]


def matches(reply: bytes, msg_id: int, question: bytes) -> bool:
    """Is `reply` the upstream's response to our query `msg_id` about `question` (question_key)?"""
    if len(reply) < 12 or not reply[2] & 0x80 or struct.unpack_from("!H", reply)[0] != msg_id:
        return False
    try:
        return question_key(reply) == question
    except ValueError:
        return False


def _answer_rrs(reply: bytes) -> list[RR]:
    """The answer section of a response as RRs (names decompressed; A/AAAA/CNAME kept)."""
    _id, _flags, qd, an, _ns, _ar = struct.unpack_from("!HHHHHH", reply)
    pos = 12
    for _ in range(qd):
        _name, pos = wire.read_name(reply, pos)
        pos += 4
    out = []
    for _ in range(an):
        owner, pos = wire.read_name(reply, pos)
        if pos + 10 > len(reply):
            raise ValueError("truncated answer")
        rtype, _cls, ttl, rdlen = struct.unpack_from("!HHIH", reply, pos)
        pos += 10
        if rtype in (wire.A, wire.AAAA):
            out.append(RR(owner, rtype, ttl, reply[pos:pos + rdlen]))
        elif rtype == wire.CNAME:
            out.append(RR(owner, rtype, ttl, (wire.read_name(reply, pos)[0],)))
        pos += rdlen
    return out


def is_self(upstream: Upstream, listen: tuple[str, int]) -> bool:
    """Would forwarding to `upstream` send the query back to this server?"""
    host, port = listen
    if upstream[1] != port:
        return False
    if upstream[0] == host:
        return True
    return host in ("0.0.0.0", "::", "") and ipaddress.ip_address(upstream[0]).is_loopback


__all__ = ["Forwarder", "is_self", "parse_upstream", "upstreams_from_resolv_conf"]
