"""Port-forward's TCP side: a connection to a pod's port from the pod's network view.

As the kubelet (which dials `localhost:<port>` inside the pod's network namespace), the target
is the pod itself: in namespace mode the socket is created inside the pod's network namespace
(a worker thread enters it with setns, creates the socket and returns; the socket stays in that
namespace) and connects to 127.0.0.1 there, so a server bound to the pod's loopback is reached
too; in loopback mode it connects to the pod's own 127.x address. `splice` copies both ways
until both directions ended; a client half-close becomes a TCP half-close (shutdown(SHUT_WR)).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import socket
from collections.abc import Awaitable, Callable

#: a connection to port N of the pod
Dialer = Callable[[int], Awaitable[tuple[asyncio.StreamReader, asyncio.StreamWriter]]]

CLONE_NEWNET = 0x40000000
CONNECT_TIMEOUT = 10.0
CHUNK = 256 * 1024

_libc = ctypes.CDLL(None, use_errno=True)


def _socket_in(netns_path: str) -> socket.socket:
    """A TCP socket created inside the network namespace at `netns_path` (run in a thread: setns
    changes only the calling thread, which is moved back before returning)."""
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    target = os.open(netns_path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if _libc.setns(target, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"entering network namespace {netns_path}: {os.strerror(err)}")
        try:
            return socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        finally:
            if _libc.setns(own, CLONE_NEWNET) != 0:  # pragma: no cover - cannot fail for our own ns
                os._exit(70)  # a thread stuck in a pod's namespace must not serve anything else
    finally:
        os.close(target)
        os.close(own)


def dialer(pod_ip: str, netns_path: str | None) -> Dialer:
    """A Dialer for one pod (see the module docstring)."""

    async def dial(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if netns_path is None:
            return await asyncio.wait_for(asyncio.open_connection(pod_ip, port), CONNECT_TIMEOUT)
        sock = await asyncio.to_thread(_socket_in, netns_path)
        try:
            sock.setblocking(False)
            await asyncio.wait_for(asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port)),
                                   CONNECT_TIMEOUT)
        except BaseException:
            sock.close()
            raise
        return await asyncio.open_connection(sock=sock)

    return dial


def forward_error(port: int, pod: str, uid: str, exc: BaseException) -> str:
    """The kubelet's message for a port nothing listens on (or any other dial failure)."""
    if isinstance(exc, TimeoutError):
        why = "i/o timeout"
    elif isinstance(exc, OSError) and exc.errno:
        why = f"connect: {os.strerror(exc.errno).lower()}"
    else:
        why = str(exc) or type(exc).__name__
    return (f"error forwarding port {port} to pod {pod}, uid {uid}: failed to connect to localhost:{port} "
            f"inside the pod's network: {why}")


async def splice(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 incoming: Callable[[], Awaitable[bytes | None]],
                 send: Callable[[bytes], Awaitable[None]]) -> None:
    """Copy the client's bytes (`incoming()`, None at its end) to the pod and the pod's bytes to
    `send` until both directions are done, then close the TCP connection."""

    async def to_pod() -> None:
        while (data := await incoming()) is not None:
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()

    async def from_pod() -> None:
        while data := await reader.read(CHUNK):
            await send(data)

    up = asyncio.create_task(to_pod(), name="portforward-up")
    down = asyncio.create_task(from_pod(), name="portforward-down")
    try:
        await asyncio.wait([down], return_when=asyncio.ALL_COMPLETED)
        # the pod closed its side: the client's remaining bytes have nowhere to go
    except asyncio.CancelledError:
        raise
    finally:
        up.cancel()
        down.cancel()
        await asyncio.gather(up, down, return_exceptions=True)
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()
