"""The API server inside each pod's network namespace (namespace mode).

A pod in its own network namespace has no route to the host's loopback, where the API server
usually listens, so in-cluster clients (client-go, the official Python client, `podns.kube`)
could not reach `KUBERNETES_SERVICE_HOST`. For each pod the agent therefore opens a listening
socket *inside the pod's namespace* at 127.0.0.1:<the API server's port> (a socket belongs to
the namespace it was created in: a short-lived thread enters the namespace with setns(2), binds,
and leaves) and relays each connection, unchanged, to the API server the agent itself uses. TLS
stays end to end: the pod verifies the API server's certificate (which covers 127.0.0.1) with
its ServiceAccount `ca.crt`, and the pod's token authenticates it; the relay sees only bytes.

So `KUBERNETES_SERVICE_HOST=127.0.0.1` and `KUBERNETES_SERVICE_PORT=<port>` hold in both pod
network modes. A pod that itself listens on 127.0.0.1 at that port cannot have both; its
listener fails with EADDRINUSE (or the relay does, reported as a sandbox error and retried).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import socket
import threading

from podns.node.proxy.userspace import CONNECT_TIMEOUT
from podns.node.proxy.userspace import _pipe as pipe

log = logging.getLogger(__name__)

CLONE_NEWNET = 0x40000000
#: the address the relay listens on in every pod's namespace (the serving certificate covers it)
RELAY_HOST = "127.0.0.1"


class RelayError(Exception):
    """The relay could not listen in the pod's namespace."""


def _setns(fd: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def _listen_in(netns_path: str, port: int) -> socket.socket:
    """A listening TCP socket at RELAY_HOST:`port` in the network namespace `netns_path`, made
    in a dedicated thread (setns changes only the calling thread; the thread ends afterwards, so
    no pooled thread is ever left in a pod's namespace)."""
    result: list[socket.socket | BaseException] = []

    def run() -> None:
        own = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        try:
            target = os.open(netns_path, os.O_RDONLY | os.O_CLOEXEC)
            try:
                _setns(target)
                try:
                    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                    try:
                        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                        sock.bind((RELAY_HOST, port))
                        sock.listen(128)
                        sock.setblocking(False)
                    except OSError:
                        sock.close()
                        raise
                    result.append(sock)
                finally:
                    _setns(own)
            finally:
                os.close(target)
        except BaseException as exc:  # handed to the caller
            result.append(exc)
        finally:
            os.close(own)

    thread = threading.Thread(target=run, name="podns-api-relay-setns", daemon=True)
    thread.start()
    thread.join()
    got = result[-1] if result else RelayError("the thread ended without a result")
    if not isinstance(got, socket.socket):
        raise RelayError(f"listening on {RELAY_HOST}:{port} in {netns_path}: {got}") from got
    return got


class ApiRelay:
    """Per-pod listeners relaying to `upstream` (host, port): see the module docstring."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self._servers: dict[str, asyncio.Server] = {}

    @property
    def port(self) -> int:
        return self.upstream[1]

    async def add(self, uid: str, netns_path: str) -> None:
        """Listen in the pod's namespace (again after `remove`); RelayError when it cannot."""
        if uid in self._servers:
            return
        sock = await asyncio.to_thread(_listen_in, netns_path, self.port)
        self._servers[uid] = await asyncio.start_server(self._relay, sock=sock)

    async def remove(self, uid: str) -> None:
        server = self._servers.pop(uid, None)
        if server is not None:
            server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 1.0)

    async def stop(self) -> None:
        for uid in list(self._servers):
            await self.remove(uid)

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.wait_for(asyncio.open_connection(*self.upstream),
                                                          CONNECT_TIMEOUT)
        except (OSError, TimeoutError) as exc:
            log.debug("API relay: connecting to %s:%d: %s", *self.upstream, exc)
            writer.close()
            return
        try:
            await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        finally:
            for w in (writer, up_writer):
                w.close()
