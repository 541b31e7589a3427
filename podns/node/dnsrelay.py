"""The node's DNS relay: the pods' nameserver in namespace mode (like NodeLocal DNSCache).

Pods in their own network namespaces cannot reach the cluster DNS when it listens on the root
namespace's loopback, so the agent listens on the bridge's gateway address, port 53, UDP and
TCP, and relays every query to the cluster DNS (`--cluster-dns host:port`) unchanged: no cache,
no rewriting, so answers (and their TTLs, rcodes, truncation) are exactly the cluster DNS's.

UDP: one upstream socket per query (the upstream's answer goes back to the client that asked,
whatever its ID), at most `MAX_INFLIGHT` queries at once, later ones dropped (the client
retries, as with any lost datagram); no answer within `UPSTREAM_TIMEOUT` is silence too.
TCP: each client connection is piped to its own upstream connection (DNS over TCP is a
length-prefixed stream), at most `MAX_TCP` at once, idle ones closed after `TCP_IDLE` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket

log = logging.getLogger(__name__)

#: a query the cluster DNS has not answered by then is dropped (the stub resolver retries)
UPSTREAM_TIMEOUT = 2.0
MAX_INFLIGHT = 1024
MAX_TCP = 256
#: RFC 7766 suggests closing idle DNS TCP connections after a few seconds
TCP_IDLE = 10.0


class _Upstream(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.answer: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if not self.answer.done():
            self.answer.set_result(data)

    def error_received(self, exc: Exception) -> None:
        if not self.answer.done():
            self.answer.set_exception(exc)


class _UDPServer(asyncio.DatagramProtocol):
    def __init__(self, relay: DNSRelay) -> None:
        self.relay = relay
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # asyncio types the argument BaseTransport for every protocol; a DatagramProtocol's is
        # always a DatagramTransport (create_datagram_endpoint), and overriding with the
        # narrower type would break the override's signature
        self.transport = transport  # type: ignore[assignment]  # see above

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if self.relay.inflight >= MAX_INFLIGHT or len(data) < 12:
            self.relay.dropped += 1
            return
        self.relay.inflight += 1
        task = asyncio.get_running_loop().create_task(self._relay(data, addr))
        self.relay.tasks.add(task)
        task.add_done_callback(self.relay.tasks.discard)

    async def _relay(self, query: bytes, client: tuple[str, int]) -> None:
        transport: asyncio.DatagramTransport | None = None
        try:
            loop = asyncio.get_running_loop()
            transport, proto = await loop.create_datagram_endpoint(_Upstream, remote_addr=self.relay.upstream)
            transport.sendto(query)
            answer = await asyncio.wait_for(proto.answer, UPSTREAM_TIMEOUT)
            if self.transport is not None:
                self.transport.sendto(answer, client)
            self.relay.relayed += 1
        except (OSError, TimeoutError):
            self.relay.dropped += 1
        finally:
            self.relay.inflight -= 1
            if transport is not None:
                transport.close()


#: port 0: how many UDP/TCP pairs to try before giving up (another process holding the TCP twin
#: of a free UDP port is rare; twenty in a row is a machine out of ports)
BIND_ATTEMPTS = 20


def _bind_pair(listen: tuple[str, int]) -> tuple[socket.socket, socket.socket]:
    """A bound UDP socket and a listening TCP socket on one port of `listen`'s host."""
    host, port = listen
    for _attempt in range(BIND_ATTEMPTS):
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            for sock in (udp, tcp):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            udp.bind((host, port))
            tcp.bind((host, udp.getsockname()[1]))
            tcp.listen(128)
        except OSError:
            udp.close()
            tcp.close()
            if port:
                raise
            continue
        tcp.setblocking(False)
        return udp, tcp
    raise OSError(f"no free port for UDP and TCP on {host}")


class DNSRelay:
    """Relays DNS on `listen` (host, port) to `upstream` (host, port). `await start()`/`stop()`."""

    def __init__(self, listen: tuple[str, int], upstream: tuple[str, int]) -> None:
        self.listen = listen
        self.upstream = upstream
        self.inflight = 0
        self.relayed = 0
        self.dropped = 0
        self.tasks: set[asyncio.Task[None]] = set()
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.Server | None = None
        self._tcp_sem = asyncio.Semaphore(MAX_TCP)

    async def start(self) -> None:
        """Listen (UDP and TCP); raises OSError when the address cannot be bound.

        With port 0 (tests) the kernel picks the UDP port and TCP takes the same number; when
        another process holds that TCP port, another pair is tried (as the cluster DNS server does).
        """
        udp, tcp = _bind_pair(self.listen)
        self.listen = (self.listen[0], udp.getsockname()[1])
        loop = asyncio.get_running_loop()
        self._udp, _ = await loop.create_datagram_endpoint(lambda: _UDPServer(self), sock=udp)
        try:
            self._tcp = await asyncio.start_server(self._serve_tcp, sock=tcp)
        except OSError:
            self._udp.close()
            tcp.close()
            raise

    async def stop(self) -> None:
        if self._udp is not None:
            self._udp.close()
        if self._tcp is not None:
            self._tcp.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._tcp.wait_closed(), 1.0)
        for task in list(self.tasks):
            task.cancel()
        for task in list(self.tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def _serve_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self.tasks.add(task)
        try:
            if self._tcp_sem.locked():
                return  # over the limit: close at once
            async with self._tcp_sem:
                try:
                    up_r, up_w = await asyncio.wait_for(asyncio.open_connection(*self.upstream),
                                                        UPSTREAM_TIMEOUT)
                except (OSError, TimeoutError):
                    self.dropped += 1
                    return
                try:
                    await asyncio.gather(_pipe(reader, up_w), _pipe(up_r, writer))
                    self.relayed += 1
                finally:
                    up_w.close()
        finally:
            writer.close()
            if task is not None:
                self.tasks.discard(task)


async def _pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
    """Copy until EOF or `TCP_IDLE` seconds without data, then half-close `dst`."""
    try:
        while True:
            data = await asyncio.wait_for(src.read(65536), TCP_IDLE)
            if not data:
                break
            dst.write(data)
            await dst.drain()
    except (OSError, TimeoutError):
        pass
    finally:
        with contextlib.suppress(OSError, RuntimeError):
            if dst.can_write_eof():
                dst.write_eof()
