"""UDP and TCP serving loops.

UDP is served by a dedicated thread, by the best of three loops that give the same bytes:
the compiled loop (`fastudp.py`, `_fastudp.c`: recvmmsg, the inline answers below and sendmmsg
in C, the GIL released around the system calls, every other datagram of the batch handed to
Python), else the ctypes loop (the same batching from Python: `mmsg.py`), else a blocking
`recvfrom`/`sendto` loop (no recvmmsg). The Python loops run the same per-query code
(`_answer`), which the compiled loop mirrors byte for byte. A plain query
(QR=0, opcode 0, one question, no other records) whose lower-cased question is in the serving
table is answered inline: copy the ID, pick the header for the RD bit, echo the question as
asked, append the precomputed tail. Everything else goes to `Handler.handle` on the same thread
(it only reads memory); questions that need the network (upstream forwarding, ExternalName
targets outside the zone) are handed to the event loop. This shape is what makes Python
competitive here: per query there is no allocation beyond the response bytes, no coroutine and
no DNS library. The socket gets a large receive buffer so bursts queue rather than drop.

TCP is served by asyncio: several queries per connection (answered in order), an idle timeout,
a cap on concurrent connections (excess connections are closed at once), and a zero length
prefix closes the connection. A client that connects and sends nothing costs one idle
coroutine until the timeout and never delays anyone else.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
import threading
import time
from types import ModuleType
from typing import Any

from podns.clusterdns import fastudp, mmsg, wire
from podns.clusterdns.answers import header, tail
from podns.clusterdns.forward import Forwarder
from podns.clusterdns.handler import Forward, Handler
from podns.clusterdns.index import RecordIndex
from podns.clusterdns.metrics import LATENCY_SAMPLE, Metrics

log = logging.getLogger(__name__)

#: receive buffer requested for the UDP socket (the kernel caps it at net.core.rmem_max)
UDP_RCVBUF = 8 << 20
#: largest UDP query read (bigger ones arrive cut and get FORMERR); a small buffer is much
#: cheaper per recvfrom than 64 KiB, and real queries are a few hundred bytes at most
UDP_MAX_QUERY = 4096
#: seconds a TCP connection may stay idle between queries (CoreDNS uses a few seconds too)
TCP_IDLE_TIMEOUT = 10.0
#: concurrent TCP connections served; more are closed immediately
TCP_MAX_CONNECTIONS = 1000
#: upstream forwards in flight at once; beyond it a query gets SERVFAIL at once (CoreDNS's
#: forward `max_concurrent`, whose docs suggest 1000): a slow or dead upstream must not let
#: pending forwards (a task and a socket each) grow without bound
MAX_FORWARDS = 1000
_QD1 = b"\x00\x01\x00\x00\x00\x00\x00\x00"
_QD1_AR1 = b"\x00\x01\x00\x00\x00\x00\x00\x01"
_OPT_HEAD = b"\x00\x00\x29"  # root owner + type OPT
_OPT = wire.opt_rr()
_UDP_CAP = wire.SERVER_UDP_SIZE


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


class DNSServer:
    """One UDP socket (served by a thread) and one TCP listener on the same address."""

    def __init__(self, index: RecordIndex, handler: Handler, metrics: Metrics, *,
                 forwarder: Forwarder | None = None, tcp_idle_timeout: float = TCP_IDLE_TIMEOUT,
                 tcp_max_connections: int = TCP_MAX_CONNECTIONS, reuse_port: bool = False,
                 max_forwards: int = MAX_FORWARDS, batch: bool | None = None,
                 compiled: bool | None = None) -> None:
        self.index = index
        self.handler = handler
        self.metrics = metrics
        self.forwarder = forwarder
        self.tcp_idle_timeout = tcp_idle_timeout
        self.tcp_max_connections = tcp_max_connections
        self.reuse_port = reuse_port
        self.tcp_connections = 0
        self.max_forwards = max_forwards
        self.forwards = 0  # forwards in flight (event loop only)
        #: recvmmsg/sendmmsg for UDP: None = when available, False = never (the plain loop)
        self.batch = batch
        #: the compiled loop: None = when it builds and loads, False = never (the Python loops)
        self.compiled = compiled
        #: the UDP loop serving: "compiled", "batched" (ctypes) or "plain" ("" until started)
        self.udp_loop = ""
        self._largest_batch = 0
        self._compiled_loop: Any = None
        self.counts = metrics.counts
        self.address: tuple[str, int] = ("", 0)
        self._udp: socket.socket | None = None
        self._tcp: asyncio.Server | None = None
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self, host: str, port: int) -> tuple[str, int]:
        """Bind UDP and TCP on (host, port); port 0 picks one free for both. Returns the address."""
        self._loop = asyncio.get_running_loop()
        for _attempt in range(20):
            udp = socket.socket(_family(host), socket.SOCK_DGRAM)
            tcp = socket.socket(_family(host), socket.SOCK_STREAM)
            for sock in (udp, tcp):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if self.reuse_port:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            with contextlib.suppress(OSError):
                udp.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, UDP_RCVBUF)
            try:
                udp.bind((host, port))
                tcp.bind((host, udp.getsockname()[1]))
            except OSError:
                udp.close()
                tcp.close()
                if port:
                    raise
                continue
            break
        else:
            raise OSError(f"no free port for UDP and TCP on {host}")
        tcp.listen(1024)
        tcp.setblocking(False)
        self._udp = udp
        self.address = (host, udp.getsockname()[1])
        self._tcp = await asyncio.start_server(self._tcp_client, sock=tcp)
        self._thread = threading.Thread(target=self._udp_loop, name="podns-dns-udp", daemon=True)
        self._thread.start()
        return self.address

    @property
    def largest_batch(self) -> int:
        """Most datagrams one recvmmsg returned (tests, diagnostics)."""
        if self._compiled_loop is not None:
            return int(self._compiled_loop.largest)
        return self._largest_batch

    async def close(self) -> None:
        self._stopping = True
        if self._tcp is not None:
            self._tcp.close()
        if self._udp is not None and self._thread is not None:
            wildcard = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}
            host = wildcard.get(self.address[0], self.address[0])
            with socket.socket(_family(host), socket.SOCK_DGRAM) as poke:  # wake the blocking recvfrom
                with contextlib.suppress(OSError):
                    poke.sendto(b"\x00", (host, self.address[1]))
            await asyncio.get_running_loop().run_in_executor(None, self._thread.join, 2.0)
            self._udp.close()
        for task in list(self._tasks):
            task.cancel()

    # ------------------------------------------------------------------ UDP

    def _answer(self, data: bytes) -> bytes | Forward | None:
        """One UDP query -> reply bytes, a Forward for the event loop, or None (drop).

        A plain query (one question, nothing else or a bare EDNS0 OPT; CD clear) found in the
        serving table is answered here from the precomputed parts; anything else goes to the
        handler. (The batched loop answers the commonest form, RD set and the question in lower
        case, before calling this: `mmsg.Batch.answer`.)"""
        if len(data) > 16 and not data[2] & 0xF8 and not data[3] & 0x10:  # QR=0, opcode QUERY, CD=0
            if data.startswith(_QD1, 4):  # one question, nothing else
                e = self.index.serving.get(data[12:].lower())
                if e is not None:
                    resp = data[:2] + header(e, data[2] & 1, False) + data[12:] + tail(e, len(data) - 12)
                    if len(resp) <= 512:
                        self.counts[e[1]] += 1
                        return resp
            elif (data.startswith(_QD1_AR1, 4) and data[-11:-8] == _OPT_HEAD and not data[-5]
                  and data[-2:] == b"\x00\x00"):  # one question + a bare EDNS0 OPT
                e = self.index.serving.get(data[12:-11].lower())
                if e is not None:
                    resp = (data[:2] + header(e, data[2] & 1, True) + data[12:-11] + tail(e, len(data) - 23)
                            + _OPT)
                    size = len(resp)
                    if size <= 512 or (size <= (data[-8] << 8 | data[-7]) and size <= _UDP_CAP):
                        self.counts[e[1]] += 1
                        return resp
        return self.handler.handle(data, "udp")

    def _udp_loop(self) -> None:
        """The UDP serving loop (runs in its own thread until close()): compiled when it builds
        and loads, else batched with ctypes when the C library can, else plain."""
        fast = fastudp.load() if self.batch is not False and self.compiled is not False else None
        if fast is not None:
            self.udp_loop = "compiled"
        elif self.batch is not False and mmsg.available():
            self.udp_loop = "batched"
        else:
            self.udp_loop = "plain"
        log.info("UDP on %s:%d served by the %s loop%s", *self.address[:2], self.udp_loop,
                 f" (compiled loop: {fastudp.reason()})" if fast is None and fastudp.reason() else "")
        if fast is not None:
            self._udp_loop_compiled(fast)
        elif self.udp_loop == "batched":
            self._udp_loop_batched()
        else:
            self._udp_loop_plain()

    def _udp_loop_plain(self) -> None:
        """One recvfrom + one sendto per query (where recvmmsg/sendmmsg are not available)."""
        sock = self._udp
        assert sock is not None and self._loop is not None
        recvfrom, sendto = sock.recvfrom, sock.sendto
        answer = self._answer
        hist = self.metrics.latency["udp"]
        perf = time.perf_counter
        loop = self._loop
        sample = LATENCY_SAMPLE
        t0 = 0.0
        while True:
            try:
                data, addr = recvfrom(UDP_MAX_QUERY)
            except OSError:
                if self._stopping:
                    return
                continue
            if self._stopping:
                return
            sample -= 1
            if not sample:
                sample = LATENCY_SAMPLE
                t0 = perf()
            try:
                out = answer(data)
                if out is None:
                    continue
                if isinstance(out, bytes):
                    sendto(out, addr)
                    if sample == LATENCY_SAMPLE:
                        hist.observe(perf() - t0)
                else:
                    loop.call_soon_threadsafe(self._spawn, out, addr)
            except OSError:
                continue  # e.g. ENOBUFS/EPERM on send: this client loses one answer
            except Exception:  # a bug must cost one query, never the server
                log.exception("answering a UDP query")

    def _udp_loop_batched(self) -> None:
        """recvmmsg takes every queued query (up to mmsg.BATCH), each is answered in turn, and
        sendmmsg sends the replies: two system calls per batch instead of two per query. A
        malformed datagram costs only itself (FORMERR or dropped, like the plain loop); the
        latency sample covers one whole batch, from receive to send."""
        sock = self._udp
        assert sock is not None and self._loop is not None
        batch = mmsg.Batch(sock, size=UDP_MAX_QUERY)
        recv, answer_all, send = batch.recv, batch.answer, batch.send
        answer = self._answer
        hist = self.metrics.latency["udp"]
        perf = time.perf_counter
        loop = self._loop
        spawn = self._spawn
        index, counts = self.index, self.counts

        def forward(out: object, i: int) -> None:
            loop.call_soon_threadsafe(spawn, out, batch.address(i))  # type: ignore[arg-type]  # out: a Forward

        sample = LATENCY_SAMPLE
        while True:
            try:
                n = recv()
            except OSError:
                return  # the socket is closed
            if self._stopping:
                return
            if not n:
                continue
            t0 = perf()
            if n > self._largest_batch:
                self._largest_batch = n
            answer_all(n, answer, forward, index.serving, counts)
            send()
            sample -= n
            if sample <= 0:
                sample = LATENCY_SAMPLE
                hist.observe(perf() - t0)

    def _udp_loop_compiled(self, fast: ModuleType) -> None:
        """The compiled loop receives batches, answers the plain precomputed questions and sends
        the replies without coming back here while every datagram of a batch is answered that
        way; `run()` returns the indexes of the others (misses, EDNS variants, anything
        malformed), answered here by the handler like the Python loops do, then `send()` sends
        the whole batch. A datagram that fails costs only itself."""
        sock = self._udp
        assert sock is not None and self._loop is not None
        engine = fast.Loop(sock.fileno(), self.index, self.counts, self.metrics.latency["udp"].observe,
                           _OPT, _UDP_CAP, size=UDP_MAX_QUERY, batch=mmsg.BATCH, sample=LATENCY_SAMPLE)
        self._compiled_loop = engine
        run, payload, queue, send, name = engine.run, engine.payload, engine.queue, engine.send, engine.name
        handle = self.handler.handle
        loop, spawn = self._loop, self._spawn
        overflow: list[tuple[bytes, int]] = []
        while True:
            try:
                rest = run()
            except OSError:
                return  # the socket is closed
            except Exception:  # a bug must cost one batch, never the server
                log.exception("serving UDP queries")
                continue
            if self._stopping:
                return
            for i in rest:
                try:
                    out = handle(payload(i), "udp")
                    if out is None:
                        continue
                    if isinstance(out, bytes):
                        if not queue(i, out):
                            overflow.append((out, i))
                    else:
                        loop.call_soon_threadsafe(spawn, out, mmsg.decode_address(name(i)))
                except Exception:  # a bug must cost one query, never the batch
                    log.exception("answering a UDP query")
            send()
            for out, i in overflow:
                with contextlib.suppress(OSError):
                    sock.sendto(out, mmsg.decode_address(name(i)))
            overflow.clear()

    def _spawn(self, forward: Forward, addr: tuple[str, int] | tuple[str, int, int, int]) -> None:
        task = asyncio.ensure_future(self._forward_udp(forward, addr))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _forward_udp(self, forward: Forward, addr: tuple[str, int] | tuple[str, int, int, int]) -> None:
        out = await self.complete(forward)
        if self._udp is not None and not self._stopping:
            with contextlib.suppress(OSError):
                self._udp.sendto(out, addr)

    async def complete(self, forward: Forward) -> bytes:
        """Finish a query the handler could not answer from memory: ask upstream."""
        q = forward.query
        reply: bytes | None = None
        if self.forwards >= self.max_forwards:
            self.metrics.forward_rejections += 1
        elif self.forwarder is not None:
            self.metrics.forwarded += 1
            self.forwards += 1
            try:
                if forward.cname is not None:
                    got = await self.forwarder.resolve(forward.target, q.qtype)
                    if got is not None:
                        rrs, truncated = got
                        reply = self._cname_reply(forward, rrs, truncated)
                else:
                    reply = await self.forwarder.exchange(forward.data, forward.proto)
            finally:
                self.forwards -= 1
            if reply is None:
                self.metrics.forward_errors += 1
        if reply is None:
            reply = wire.error_response(q, wire.SERVFAIL, ra=self.handler.ra)
        if forward.proto == "udp" and len(reply) > q.udp_limit():
            reply = wire.truncate(reply, (), q.udp_limit(), 12 + len(q.question), q.edns_size is not None)
        self.metrics.count(q.qtype, reply[3] & 0xF, len(reply), forward.proto)
        return reply

    def _cname_reply(self, forward: Forward, rrs: list[wire.RR], truncated: bool) -> bytes:
        q = forward.query
        assert forward.cname is not None
        flags = wire.QR | wire.AA | self.handler.ra | (q.flags & wire.RD) | (wire.TC if truncated else 0)
        msg, _ends = wire.encode_response(msg_id=q.msg_id, flags=flags, rcode=wire.NOERROR,
                                          qname=q.qname_wire.lower(), qtype=q.qtype,
                                          answer=[forward.cname, *rrs])
        msg = msg[:12] + q.question + msg[12 + len(q.question):]
        return wire.add_opt(msg) if q.edns_size is not None else msg

    # ------------------------------------------------------------------ TCP

    async def _tcp_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.tcp_connections >= self.tcp_max_connections:
            writer.close()
            return
        self.tcp_connections += 1
        try:
            while not self._stopping:
                size = struct.unpack("!H", await asyncio.wait_for(reader.readexactly(2),
                                                                  self.tcp_idle_timeout))[0]
                if size == 0:
                    break  # nothing to answer: RFC 7766 leaves it to us, we close
                data = await asyncio.wait_for(reader.readexactly(size), self.tcp_idle_timeout)
                out = self.handler.handle(data, "tcp")
                if isinstance(out, Forward):
                    out = await self.complete(out)
                if out is None:
                    continue
                writer.write(struct.pack("!H", len(out)) + out)
                await asyncio.wait_for(writer.drain(), self.tcp_idle_timeout)
        except (asyncio.IncompleteReadError, TimeoutError, ConnectionError, OSError):
            pass
        except Exception:
            log.exception("serving a TCP client")
        finally:
            self.tcp_connections -= 1
            writer.close()
