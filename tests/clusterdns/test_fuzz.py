"""Property tests: the parser and the handler never crash, whatever the bytes."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator

import dns.flags
import dns.message
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from podns.clusterdns import wire
from podns.clusterdns.handler import Forward, Handler
from podns.clusterdns.server import DNSServer
from tests.clusterdns.test_server import make_loop_server

pytestmark = pytest.mark.timeout(60)

_names = st.lists(st.sampled_from(["svc1", "testns", "svc", "cluster", "local", "hdls1", "_http", "_tcp",
                                   "pod", "10-0-0-1", "x" * 63, "A", "\x00", "."]), max_size=8)


@st.composite
def mutated_queries(draw: st.DrawFn) -> bytes:
    """A valid query for a fixture-ish name, then bytes flipped, cut or appended."""
    labels = draw(_names)
    name = ".".join(labels) + "." if labels else "."
    try:
        rdtype = draw(st.sampled_from(["A", "AAAA", "SRV", "PTR", "TXT", "ANY", "NS"]))
        q = dns.message.make_query(name, rdtype, use_edns=draw(st.sampled_from([-1, 0, 1])))
        data = bytearray(q.to_wire())
    except Exception:
        data = bytearray(b"\x00" * 12)
    for _ in range(draw(st.integers(0, 4))):
        if data:
            data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    cut = draw(st.integers(0, len(data)))
    return bytes(data[:cut]) + draw(st.binary(max_size=8))


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.binary(max_size=300), mutated_queries()))
def test_parser_only_raises_its_own_errors(data: bytes) -> None:
    try:
        q = wire.parse_query(data)
    except (wire.Drop, wire.FormatError):
        return
    assert 0 <= q.qtype < 65536 and 0 <= q.qclass < 65536
    if q.question:
        assert wire.read_name(q.qname_wire, 0)[0] == q.qname_wire.lower()


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.one_of(st.binary(max_size=300), mutated_queries()))
def test_handler_answers_parseable_or_drops(handler: Handler, data: bytes) -> None:
    """Any input: None (drop), a Forward, or a response dnspython can parse with our ID."""
    out = handler.handle(data, "udp")
    if out is None or isinstance(out, Forward):
        return
    assert len(out) >= 12 and out[:2] == data[:2] and out[2] & 0x80
    if (out[2] >> 3) & 0xF == 0:  # dnspython parses UPDATE (opcode 5) bodies by other rules
        dns.message.from_wire(out)
    else:
        assert out[3] & 0xF in (1, 4)  # FORMERR or NOTIMP


@pytest.fixture(scope="module", params=["compiled", "batched"])
def batched_server(request: pytest.FixtureRequest) -> Iterator[DNSServer]:
    """One server per batched loop (compiled, ctypes) for every example (its event loop in a
    thread: hypothesis drives synchronous tests)."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    srv, _ = asyncio.run_coroutine_threadsafe(make_loop_server(request.param), loop).result(30)
    yield srv
    asyncio.run_coroutine_threadsafe(srv.close(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)


def _check_reply(reply: bytes, sent_ids: set[bytes]) -> None:
    assert len(reply) >= 12 and reply[:2] in sent_ids and reply[2] & 0x80
    if (reply[2] >> 3) & 0xF == 0:
        dns.message.from_wire(reply)
    else:
        assert reply[3] & 0xF in (1, 4)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batch=st.lists(st.one_of(st.binary(max_size=300), mutated_queries()), min_size=1, max_size=12))
def test_batched_loop_answers_every_good_query_among_garbage(batched_server: DNSServer,
                                                              batch: list[bytes]) -> None:
    """Fuzzed datagrams interleaved with good queries reach the batched loop back to back: every
    good query is answered (nothing else in its batch loses it), and every other reply is a
    parseable response (or FORMERR/NOTIMP) to one of the fuzzed datagrams."""
    good = dns.message.make_query("svc1.testns.svc.cluster.local.", "A")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as g, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as b:
        for i, data in enumerate(batch):
            b.sendto(data, batched_server.address)
            good.id = i
            g.sendto(good.to_wire(), batched_server.address)
        g.settimeout(5)
        assert sorted(dns.message.from_wire(g.recv(2048)).id for _ in batch) == list(range(len(batch)))
        b.setblocking(False)  # replies to the fuzz were sent before the last good answer
        sent_ids = {d[:2] for d in batch}
        replies = 0
        while True:
            try:
                reply = b.recv(65535)
            except BlockingIOError:
                break
            replies += 1
            _check_reply(reply, sent_ids)
        assert replies <= len(batch)


#: in-zone questions with inline answers (small, SRV with additionals, over 512 bytes: `big`)
#: and without (NODATA, NXDOMAIN, the ExternalName CNAME)
_ZONE_NAMES = ["svc1.testns.svc.cluster.local.", "hdls1.testns.svc.cluster.local.",
               "_http._tcp.hdls1.testns.svc.cluster.local.", "big.testns.svc.cluster.local.",
               "_http._tcp.big.testns.svc.cluster.local.", "1.0.0.10.in-addr.arpa.",
               "nope.testns.svc.cluster.local.", "external.testns.svc.cluster.local."]
#: (version, payload size, flags) of the query's OPT, or None: no EDNS
_EDNS = [None, (0, 512, 0), (0, 1232, 0), (0, 4096, 0), (0, 65535, 0), (0, 100, 0),
         (0, 1232, dns.flags.DO), (1, 1232, 0)]


@st.composite
def query_forms(draw: st.DrawFn) -> bytes:
    """A query for a name of the zone in any of the forms a client sends: each letter's case
    (0x20), RD/AD/CD, with or without EDNS0 (payload sizes, DO, versions)."""
    name = draw(st.sampled_from(_ZONE_NAMES))
    mask = draw(st.integers(0, (1 << len(name)) - 1))
    name = "".join(c.upper() if mask >> i & 1 else c for i, c in enumerate(name))
    q = dns.message.make_query(name, draw(st.sampled_from(["A", "AAAA", "SRV", "PTR", "TXT", "CNAME"])))
    rd = dns.flags.RD
    q.flags = draw(st.sampled_from([0, rd, rd | dns.flags.AD, rd | dns.flags.CD]))
    edns = draw(st.sampled_from(_EDNS))
    if edns is not None:
        q.use_edns(edns[0], edns[2], edns[1])
    return q.to_wire()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(forms=st.lists(query_forms(), min_size=1, max_size=16))
def test_batched_loops_answer_every_form_byte_for_byte_like_answer(batched_server: DNSServer,
                                                                  forms: list[bytes]) -> None:
    """Each batched loop (the compiled one included) gives every form of an in-zone query the
    exact bytes `DNSServer._answer` gives it (the Python loops' per-query code): ID, RD, the
    question's case as asked, EDNS, the 512/advertised/1232-byte limits and TC."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        sent = {}
        for i, data in enumerate(forms):
            data = i.to_bytes(2, "big") + data[2:]
            sent[data[:2]] = data
            s.sendto(data, batched_server.address)
        s.settimeout(5)
        for _ in forms:
            reply = s.recv(65535)
            expected = batched_server._answer(sent.pop(reply[:2]))
            assert reply == expected
        assert not sent
