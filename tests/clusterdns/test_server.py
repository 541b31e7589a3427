"""The real UDP/TCP server on loopback: fast path, EDNS0, truncation, TCP, bad input, forwarding."""

from __future__ import annotations

import asyncio
import os
import socket
import struct
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import dns.asyncquery
import dns.flags
import dns.message
import dns.rcode
import dns.rrset
import pytest

from podns.clusterdns import fastudp, mmsg
from podns.clusterdns import testing as t
from podns.clusterdns.forward import Forwarder
from podns.clusterdns.handler import Handler
from podns.clusterdns.index import RecordIndex
from podns.clusterdns.metrics import Metrics
from podns.clusterdns.server import DNSServer
from tests.clusterdns.conftest import load_coredns_fixture, records

pytestmark = pytest.mark.timeout(30)


class FakeUpstream(asyncio.DatagramProtocol):
    """A loopback resolver answering every A question with 192.0.2.1 (and counting)."""

    def __init__(self) -> None:
        self.queries: list[str] = []
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        q = dns.message.from_wire(data)
        self.queries.append(str(q.question[0].name))
        r = dns.message.make_response(q)
        if q.question[0].rdtype == 1:
            r.answer.append(dns.rrset.from_text(q.question[0].name, 60, "IN", "A", "192.0.2.1"))
        assert self.transport is not None
        self.transport.sendto(r.to_wire(), addr)


async def make_server(*, upstream: tuple[str, int] | None = None, synced: bool = True,
                      **kw: object) -> tuple[DNSServer, RecordIndex]:
    metrics = Metrics()
    index = RecordIndex(metrics=metrics, recursion=upstream is not None)
    load_coredns_fixture(index)
    big = [t.endpoint(f"10.9.{i // 250}.{i % 250 + 1}") for i in range(120)]
    index.on_service_add(t.service("big", "testns", ports=[("http", "TCP", 80)]))
    index.on_slice_add(t.endpoint_slice("big-1", "big", "testns", endpoints=big, ports=[("http", "TCP", 80)]))
    if synced:
        index.mark_synced()
    handler = Handler(index, metrics, upstream=upstream is not None)
    server = DNSServer(index, handler, metrics, forwarder=Forwarder([upstream]) if upstream else None, **kw)
    await server.start("127.0.0.1", 0)
    return server, index


#: the UDP loops: keyword arguments of DNSServer selecting each
LOOPS = {"compiled": {}, "batched": {"compiled": False}, "plain": {"batch": False}}


def require_loop(loop: str) -> dict[str, object]:
    """DNSServer's arguments for `loop`; skips where the platform has no recvmmsg. The compiled
    loop must build here (setup.sh installs the compiler): a failed build fails the test."""
    if loop != "plain" and not mmsg.available():
        pytest.skip("recvmmsg/sendmmsg are not available on this platform")
    if loop == "compiled":
        assert fastudp.load() is not None, fastudp.reason()
    return LOOPS[loop]


async def started(srv: DNSServer, loop: str) -> DNSServer:
    """`srv` once its UDP thread runs the loop asked for."""
    for _ in range(3000):  # 30 s at least
        if srv.udp_loop:
            break
        await asyncio.sleep(0.01)
    assert srv.udp_loop == loop
    return srv


async def make_loop_server(loop: str, **kw: object) -> tuple[DNSServer, RecordIndex]:
    """make_server with UDP served by `loop` (compiled, batched or plain)."""
    srv, index = await make_server(**require_loop(loop), **kw)
    return await started(srv, loop), index


@pytest.fixture(params=list(LOOPS))
async def server(request: pytest.FixtureRequest) -> AsyncIterator[DNSServer]:
    """The server with each UDP loop: compiled, batched (ctypes recvmmsg/sendmmsg), plain."""
    srv, _ = await make_loop_server(request.param)
    yield srv
    await srv.close()


async def udp(server: DNSServer, name: str, rdtype: str = "A", **kw: object) -> dns.message.Message:
    q = dns.message.make_query(name, rdtype, **kw)  # type: ignore[arg-type]
    return await dns.asyncquery.udp(q, server.address[0], port=server.address[1], timeout=2,
                                    ignore_trailing=True, raise_on_truncation=False)


async def tcp(server: DNSServer, name: str, rdtype: str = "A") -> dns.message.Message:
    q = dns.message.make_query(name, rdtype)
    return await dns.asyncquery.tcp(q, server.address[0], port=server.address[1], timeout=2)


def raw_udp(server: DNSServer, payload: bytes, timeout: float = 0.5) -> bytes | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.sendto(payload, server.address)
        try:
            return s.recv(65535)
        except TimeoutError:
            return None


async def test_fast_path_udp_and_tcp_agree(server: DNSServer) -> None:
    """Plain queries come back over UDP (fast path) and TCP with identical records, RD echoed."""
    u = await udp(server, "hdls1.testns.svc.cluster.local.")
    t_ = await tcp(server, "hdls1.testns.svc.cluster.local.")
    assert records(u) == records(t_) and len(u.answer[0]) == 4
    assert u.flags & dns.flags.RD and u.flags & dns.flags.AA


@pytest.mark.parametrize(("name", "flags", "edns"), [
    ("hdls1.testns.svc.cluster.local.", dns.flags.RD, -1),
    ("hdls1.testns.svc.cluster.local.", 0, -1),
    ("HDLS1.TestNS.svc.cluster.local.", dns.flags.RD, -1),
    ("hdls1.testns.svc.cluster.local.", dns.flags.RD | dns.flags.CD, -1),
    ("hdls1.testns.svc.cluster.local.", dns.flags.RD | dns.flags.AD, -1),
    ("Hdls1.testns.svc.cluster.local.", 0, 0),
], ids=["rd-lower", "no-rd", "mixed-case", "cd", "ad", "edns-no-rd-mixed"])
async def test_every_form_of_a_plain_query_gets_the_same_answer(server: DNSServer, name: str, flags: int,
                                                              edns: int) -> None:
    """Given a plain question in any form (RD set or clear, any case, CD, AD, a bare OPT), the
    reply has the asker's ID, its question as asked, RD and CD echoed, and the same records as
    over TCP (the batch loop's inline path and the one-call path agree with the handler)."""
    q = dns.message.make_query(name, "A", use_edns=edns, flags=flags)
    got = dns.message.from_wire(raw_udp(server, q.to_wire()) or b"")
    want = await tcp(server, "hdls1.testns.svc.cluster.local.")
    assert got.id == q.id and got.question[0].name.to_text() == name
    assert got.flags & (dns.flags.RD | dns.flags.CD) == flags & (dns.flags.RD | dns.flags.CD)
    assert got.flags & dns.flags.AA and not got.flags & (dns.flags.TC | dns.flags.AD)
    assert [r.lower() for r in records(got)] == [r.lower() for r in records(want)]
    assert (got.edns == 0) == (edns == 0)


async def test_edns_echo_and_truncation(server: DNSServer) -> None:
    """120 endpoints: without EDNS the UDP answer is cut at 512 bytes with TC and whole records;
    with EDNS 1232 it is cut there, OPT echoed; over TCP it is complete."""
    name = "big.testns.svc.cluster.local."
    small = await udp(server, name)
    assert small.flags & dns.flags.TC and 0 < len(small.answer[0]) < 120
    assert len(small.to_wire()) <= 512
    mid = await udp(server, name, use_edns=0, payload=1232)
    assert mid.flags & dns.flags.TC and len(mid.to_wire()) <= 1232 and mid.edns == 0
    full = await tcp(server, name)
    assert len(full.answer[0]) == 120


@pytest.mark.parametrize("ednsflags", [0, dns.flags.DO], ids=["fast-path", "handler"])
async def test_udp_answers_capped_at_1232_whatever_the_client_advertises(server: DNSServer,
                                                                        ednsflags: int) -> None:
    """A client advertising 65535 (or 4096) still gets at most 1232 bytes over UDP, truncated
    with TC to whole records (no 2 KB amplified answer); a 1232-byte fit is not truncated."""
    name = "big.testns.svc.cluster.local."
    for payload in (4096, 65535):
        q = dns.message.make_query(name, "A", use_edns=0, payload=payload, ednsflags=ednsflags)
        reply = raw_udp(server, q.to_wire(), timeout=2)
        assert reply is not None and len(reply) <= 1232, (payload, len(reply or b""))
        msg = dns.message.from_wire(reply)
        assert msg.flags & dns.flags.TC and 0 < len(msg.answer[0]) < 120 and msg.edns == 0
    ok = await udp(server, "hdls1.testns.svc.cluster.local.", use_edns=0, payload=65535,
                   ednsflags=ednsflags)
    assert not ok.flags & dns.flags.TC and len(ok.answer[0]) == 4


async def test_dig_srv_with_additional(server: DNSServer) -> None:
    """Real dig, UDP and TCP: SRV with targets and glue."""
    for mode in ("+notcp", "+tcp"):
        proc = await asyncio.create_subprocess_exec(
            "dig", "@127.0.0.1", "-p", str(server.address[1]), mode, "+norec", "SRV",
            "_http._tcp.hdls1.testns.svc.cluster.local.", stdout=subprocess.PIPE)
        out = (await asyncio.wait_for(proc.communicate(), 10))[0].decode()
        assert "status: NOERROR" in out and "ANSWER: 5" in out and "ADDITIONAL: 7" in out, out


@pytest.mark.parametrize(("payload", "expect"), [
    (b"", None), (b"\x00" * 5, None), (b"\xff" * 11, None),
    (b"\x12\x34\x81\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\x00\x01\x00\x01", None),  # QR=1: drop
    (b"\x12\x34\x28\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\x00\x06\x00\x01", 4),  # UPDATE: NOTIMP
    (b"\x12\x34\x01\x00\x00\x02\x00\x00\x00\x00\x00\x00\x00\x00\x01\x00\x01\x00\x00\x01\x00\x01", 1),
    (b"\x12\x34\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00", 1),  # no question: FORMERR
    (b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x05abc", 1),  # truncated name
    (b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\xc0\x0c\x00\x01\x00\x01", 1),  # pointer loop
    (b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\x00\x01\x00\x03", 5),  # class CH: REFUSED
], ids=["empty", "short", "garbage", "qr", "opcode", "qdcount2", "qdcount0", "truncated", "loop", "chaos"])
def test_bad_input(server: DNSServer, payload: bytes, expect: int | None,
                   caplog: pytest.LogCaptureFixture) -> None:
    """Bad packets are dropped or answered with the RFC rcode, without an error logged; the
    server keeps answering."""
    reply = raw_udp(server, payload, timeout=0.3 if expect is None else 2)
    if expect is None:
        assert reply is None
    else:
        assert reply is not None and reply[:2] == b"\x12\x34" and reply[2] & 0x80 and reply[3] & 0xF == expect
    good = dns.message.make_query("svc1.testns.svc.cluster.local.", "A")
    assert raw_udp(server, good.to_wire(), timeout=2) is not None
    assert not [r for r in caplog.records if r.levelname == "ERROR"]


async def test_tcp_pipelining_idle_zero_and_limits() -> None:
    """Several queries per TCP connection; silent/zero-length clients are closed without
    stalling others; connections beyond the limit are closed at once."""
    srv, _ = await make_server(tcp_idle_timeout=1.5, tcp_max_connections=3)
    try:
        host, port = srv.address
        idle_r, idle_w = await asyncio.open_connection(host, port)  # says nothing
        huge_r, huge_w = await asyncio.open_connection(host, port)
        huge_w.write(b"\xff\xffabc")  # announces 65535 bytes, sends 3
        zr, zw = await asyncio.open_connection(host, port)
        zw.write(b"\x00\x00")
        assert await asyncio.wait_for(zr.read(), 2) == b""  # zero length prefix: closed
        r, w = await asyncio.open_connection(host, port)
        for i in range(3):
            q = dns.message.make_query("svc1.testns.svc.cluster.local.", "A", id=i + 1).to_wire()
            w.write(struct.pack("!H", len(q)) + q)
        for i in range(3):
            size = struct.unpack("!H", await r.readexactly(2))[0]
            msg = dns.message.from_wire(await r.readexactly(size))
            assert msg.id == i + 1 and records(msg) == ["svc1.testns.svc.cluster.local. 5 A 10.0.0.1"]
        extra_r, extra_w = await asyncio.open_connection(host, port)  # 3 open: idle, huge, pipelined
        assert await asyncio.wait_for(extra_r.read(), 0.5) == b""  # over the limit: closed at once
        assert await asyncio.wait_for(idle_r.read(), 3) == b""  # idle timeout
        assert await asyncio.wait_for(huge_r.read(), 3) == b""
        for writer in (w, idle_w, zw, extra_w, huge_w):
            writer.close()
    finally:
        await srv.close()


async def test_servfail_until_synced_then_served() -> None:
    srv, index = await make_server(synced=False)
    try:
        assert (await udp(srv, "svc1.testns.svc.cluster.local.")).rcode() == dns.rcode.SERVFAIL
        index.mark_synced()
        assert records(await udp(srv, "svc1.testns.svc.cluster.local.")) == [
            "svc1.testns.svc.cluster.local. 5 A 10.0.0.1"]
    finally:
        await srv.close()


async def test_forwarding_and_refused() -> None:
    """Out-of-zone names go to the (loopback) upstream; without one they are REFUSED. An
    ExternalName outside the zone gets CNAME + the upstream's A."""
    loop = asyncio.get_running_loop()
    proto = FakeUpstream()
    transport, _ = await loop.create_datagram_endpoint(lambda: proto, local_addr=("127.0.0.1", 0))
    up = transport.get_extra_info("sockname")
    srv, _ = await make_server(upstream=up)
    bare, _ = await make_server()
    try:
        fwd = await udp(srv, "example.test.")
        assert fwd.rcode() == dns.rcode.NOERROR and records(fwd) == ["example.test. 60 A 192.0.2.1"]
        assert records(await tcp(srv, "example.test.")) == ["example.test. 60 A 192.0.2.1"]
        ext = await udp(srv, "external.testns.svc.cluster.local.")
        assert records(ext) == ["ext.interwebs.test. 60 A 192.0.2.1",
                                "external.testns.svc.cluster.local. 5 CNAME ext.interwebs.test."]
        assert (await udp(bare, "example.test.")).rcode() == dns.rcode.REFUSED
        assert "svc1.testns.svc.cluster.local." not in proto.queries
    finally:
        await srv.close()
        await bare.close()
        transport.close()


@pytest.mark.parametrize("forwards", [True, False], ids=["with-upstream", "no-upstream"])
async def test_recursion_available_when_it_forwards(forwards: bool) -> None:
    """Given an upstream, every reply says recursion is available (RA), so `nslookup` takes the
    answer without "Got recursion not available"; without one (nothing forwarded), no reply
    claims it: fast path, EDNS, CD, TCP, NXDOMAIN, an ExternalName, REFUSED."""
    loop = asyncio.get_running_loop()
    proto = FakeUpstream()
    transport, _ = await loop.create_datagram_endpoint(lambda: proto, local_addr=("127.0.0.1", 0))
    srv, _ = await make_server(upstream=transport.get_extra_info("sockname") if forwards else None)
    name = "hdls1.testns.svc.cluster.local."
    try:
        replies = [await udp(srv, name), await udp(srv, name, use_edns=0),
                   await udp(srv, name, flags=dns.flags.RD | dns.flags.CD), await tcp(srv, name),
                   await udp(srv, "nope.testns.svc.cluster.local."),
                   await udp(srv, "external.testns.svc.cluster.local.")]
        if not forwards:
            replies.append(await udp(srv, "example.test."))
        assert [bool(r.flags & dns.flags.RA) for r in replies] == [forwards] * len(replies)
        assert [r.rcode() for r in replies[4:]] == [dns.rcode.NXDOMAIN, dns.rcode.NOERROR] + (
            [] if forwards else [dns.rcode.REFUSED])
        cmd = ["nslookup", f"-port={srv.address[1]}", name, "127.0.0.1"]
        out = await asyncio.to_thread(subprocess.run, cmd, capture_output=True, text=True, timeout=20)
        assert "172.0.0.2" in out.stdout
        assert "recursion not available" not in out.stdout + out.stderr
    finally:
        await srv.close()
        transport.close()


class ScriptedUpstream(asyncio.DatagramProtocol):
    """A loopback resolver that first sends a forged reply (same ID, another question), then,
    when `honest`, the real one; when `silent` it never answers (a dead upstream)."""

    def __init__(self, *, honest: bool = True, silent: bool = False) -> None:
        self.honest = honest
        self.silent = silent
        self.received = 0
        self.arrivals: asyncio.Queue[None] = asyncio.Queue()
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.received += 1
        self.arrivals.put_nowait(None)
        if self.silent:
            return
        assert self.transport is not None
        q = dns.message.from_wire(data)
        forged = dns.message.make_response(dns.message.make_query("evil.test.", "A", id=q.id))
        forged.answer.append(dns.rrset.from_text("evil.test.", 60, "IN", "A", "203.0.113.66"))
        self.transport.sendto(forged.to_wire(), addr)
        if self.honest:
            r = dns.message.make_response(q)
            r.answer.append(dns.rrset.from_text(q.question[0].name, 60, "IN", "A", "192.0.2.1"))
            self.transport.sendto(r.to_wire(), addr)


async def _upstream(proto: ScriptedUpstream) -> tuple[asyncio.DatagramTransport, tuple[str, int]]:
    transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(
        lambda: proto, local_addr=("127.0.0.1", 0))
    return transport, transport.get_extra_info("sockname")


@pytest.mark.parametrize("honest", [True, False], ids=["then-genuine", "forged-only"])
async def test_forwarded_reply_must_match_the_question(honest: bool) -> None:
    """A reply with the right ID but another question is ignored: the genuine reply that follows
    is relayed; with none, the client gets SERVFAIL after the upstream timeout, never the forgery."""
    proto = ScriptedUpstream(honest=honest)
    transport, up = await _upstream(proto)
    srv, _ = await make_server(upstream=up)
    assert srv.forwarder is not None
    srv.forwarder.timeout = 0.5
    try:
        for ask in (udp, tcp):
            reply = await ask(srv, "example.test.")
            if honest:
                assert records(reply) == ["example.test. 60 A 192.0.2.1"]
            else:
                assert reply.rcode() == dns.rcode.SERVFAIL and not reply.answer
    finally:
        await srv.close()
        transport.close()


async def test_forwards_in_flight_are_bounded() -> None:
    """With 2 forwards stuck on a dead upstream, a third query gets SERVFAIL at once, counted in
    podns_dns_forward_max_concurrent_rejections_total; in-zone answers are unaffected."""
    proto = ScriptedUpstream(silent=True)
    transport, up = await _upstream(proto)
    srv, _ = await make_server(upstream=up, max_forwards=2)
    assert srv.forwarder is not None
    srv.forwarder.timeout = 20
    socks = []
    try:
        for i in range(2):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.sendto(dns.message.make_query(f"slow{i}.test.", "A").to_wire(), srv.address)
            socks.append(s)
        for _ in range(2):
            await asyncio.wait_for(proto.arrivals.get(), 5)
        assert proto.received == 2 and srv.forwards == 2
        started = asyncio.get_running_loop().time()
        third = await udp(srv, "third.test.")
        assert third.rcode() == dns.rcode.SERVFAIL
        assert asyncio.get_running_loop().time() - started < 2
        assert srv.metrics.forward_rejections == 1 and proto.received == 2
        assert "podns_dns_forward_max_concurrent_rejections_total 1" in srv.metrics.render()
        assert records(await udp(srv, "svc1.testns.svc.cluster.local.")) == [
            "svc1.testns.svc.cluster.local. 5 A 10.0.0.1"]
    finally:
        for s in socks:
            s.close()
        await srv.close()
        transport.close()


@pytest.mark.parametrize("loop", ["compiled", "batched"])
async def test_batched_burst_with_malformed_datagrams_loses_nothing(loop: str) -> None:
    """A burst mixing good queries with garbage, QR=1 packets and bad names is taken in batches
    (recvmmsg returns more than one datagram); every good query is answered with its own ID and
    records, each malformed one gets FORMERR with its ID or nothing, and none is lost."""
    srv, _ = await make_loop_server(loop)
    bad = [b"\x00" * 5, b"\x12\x34\x81\x00" + b"\x00" * 8,
           b"\x43\x21\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\xc0\x0c\x00\x01\x00\x01"]
    good = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    bads = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        for i in range(200):
            query = dns.message.make_query("svc1.testns.svc.cluster.local.", "A", id=i)
            good.sendto(query.to_wire(), srv.address)
            bads.sendto(bad[i % 3], srv.address)
        good.settimeout(5)
        ids = set()
        for _ in range(200):
            msg = dns.message.from_wire(good.recv(2048))
            assert records(msg) == ["svc1.testns.svc.cluster.local. 5 A 10.0.0.1"]
            ids.add(msg.id)
        assert ids == set(range(200))
        bads.settimeout(2)
        for _ in range(66):  # one FORMERR per pointer loop; the short packet and QR=1 are dropped
            reply = bads.recv(2048)
            assert reply[:2] == b"\x43\x21" and reply[2] & 0x80 and reply[3] & 0xF == 1
        assert srv.largest_batch > 1
        if loop == "compiled":  # the good queries were answered in C, the rest by the handler
            assert srv._compiled_loop.answered >= 200
    finally:
        good.close()
        bads.close()
        await srv.close()


def test_compiled_loop_falls_back_when_it_cannot_build(tmp_path: Path) -> None:
    """No working compiler: load() says why and returns None (the server then serves with the
    ctypes loop, which the `batched` runs of these tests cover), and the setup step exits 1."""
    env = {**os.environ, "CC": "false", "PODNS_EXT_DIR": str(tmp_path)}
    code = ("from podns.clusterdns import fastudp; assert fastudp.load() is None; "
            "print(fastudp.reason())")
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60,
                          check=True)
    assert "false failed" in done.stdout
    done = subprocess.run([sys.executable, "-m", "podns.clusterdns.fastudp"], env=env, capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 1 and "the Python loop will serve" in done.stderr
    assert not list(tmp_path.iterdir())  # no half-written build left
