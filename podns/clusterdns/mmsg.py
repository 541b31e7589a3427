"""Batched UDP datagram I/O: recvmmsg(2) / sendmmsg(2) through ctypes over preallocated buffers.

One `Batch` owns BATCH receive slots (payload buffer + source address each) and as many send
slots, all allocated once as bytearrays and described once in kernel structures (iovec,
mmsghdr). `recv()` blocks (without the GIL: ctypes releases it) until at least one datagram
is there and then takes every queued datagram up to BATCH in one system call; `send()` sends
every queued reply in one. Per datagram the Python side only slices a payload out of the
receive buffer and copies a reply into a send slot: the reply's destination is the receive
slot's source address, pointed at, never copied or decoded (only a forwarded query, which
leaves the batch, decodes its address with `address()`).

This is what nsd does to amortise system calls; for a server whose per-query work is a dict
lookup, the two system calls per query were most of the cost. `available()` says whether the
C library has both calls and the structure layout is the LP64 Linux one we describe (the
serving loop falls back to recvfrom/sendto otherwise).

Error contract: `recv()` returns 0 when interrupted or on a transient error (EINTR, ENOMEM,
ECONNREFUSED from an ICMP error queued on the socket); `send()` skips a datagram the kernel
refuses (EPERM, a bad destination, ENOBUFS) and sends the rest: one client loses one answer,
never the batch.
"""

from __future__ import annotations

import ctypes
import errno
import logging
import socket
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

log = logging.getLogger(__name__)

#: datagrams taken or sent per system call (nsd uses 64 too: beyond it the gain is flat and the
#: first query of a batch waits for the whole batch to be answered)
BATCH = 64
#: bytes reserved per source address (sockaddr_in6 is 28; rounded up for alignment)
NAME_SIZE = 32
#: bytes per send slot: replies over UDP are capped at 1232 (wire.SERVER_UDP_SIZE); a bigger one
#: goes out through the socket's sendto instead
SEND_SIZE = 2048
MSG_WAITFORONE = 0x10000
#: DNS header bytes 4..11 of a query with one question and no other records
_QD1 = b"\x00\x01\x00\x00\x00\x00\x00\x00"


class _IOVec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]


class _MsgHdr(ctypes.Structure):
    _fields_ = [("name", ctypes.c_void_p), ("namelen", ctypes.c_uint32), ("iov", ctypes.c_void_p),
                ("iovlen", ctypes.c_size_t), ("control", ctypes.c_void_p), ("controllen", ctypes.c_size_t),
                ("flags", ctypes.c_int)]


class _MMsgHdr(ctypes.Structure):
    _fields_ = [("hdr", _MsgHdr), ("len", ctypes.c_uint)]


_HDR = ctypes.sizeof(_MMsgHdr)
_IOV = ctypes.sizeof(_IOVec)
# indexes into the headers seen as arrays of 32-bit (I) and 64-bit (Q) words (layout checked
# by `available()`): one mmsghdr is 16 I / 8 Q; msg_name is Q 0, msg_namelen I 2, msg_len I 14;
# one iovec is 2 Q, iov_len Q 1
_I, _Q = 16, 8
_NAMELEN, _MSGLEN = 2, 14


def _libc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        # no argtypes: the arguments are plain ints (C int) and prebuilt c_void_p objects,
        # the cheapest call ctypes makes; restype is int by default
        libc.recvmmsg  # noqa: B018 (raises AttributeError where there is none)
        libc.sendmmsg  # noqa: B018
    except (OSError, AttributeError):
        return None
    return libc


_LIBC = _libc()


def available() -> bool:
    """Can this process batch (Linux C library with recvmmsg/sendmmsg, the LP64 layout)?"""
    return (_LIBC is not None and _HDR == 64 and _IOV == 16 and _MsgHdr.namelen.offset == 8
            and _MMsgHdr.len.offset == 56)


def _address_of(buf: bytearray) -> int:
    return ctypes.addressof((ctypes.c_char * len(buf)).from_buffer(buf))


class Batch:
    """Preallocated buffers and kernel structures for one socket's batched receive and send.

    Used by one thread only. After `n = recv()`, `payload(i)` is datagram i (0 <= i < n);
    the replies of `answer()` are queued and go out with `send()`."""

    def __init__(self, sock: socket.socket, *, size: int, batch: int = BATCH) -> None:
        if not available():
            raise OSError(errno.ENOSYS, "recvmmsg/sendmmsg are not available")
        self.sock = sock
        self.fd = sock.fileno()
        self.size = size
        self.batch = batch
        self.rbuf = bytearray(batch * size)
        self.rview = memoryview(self.rbuf)
        self.names = bytearray(batch * NAME_SIZE)
        self.sbuf = bytearray(batch * SEND_SIZE)
        self.rhdrs = bytearray(batch * _HDR)
        self.shdrs = bytearray(batch * _HDR)
        riov = bytearray(batch * _IOV)
        self.siov = bytearray(batch * _IOV)
        rbase, nbase, sbase = _address_of(self.rbuf), _address_of(self.names), _address_of(self.sbuf)
        riov_base, siov_base = _address_of(riov), _address_of(self.siov)
        rh = (_MMsgHdr * batch).from_buffer(self.rhdrs)
        sh = (_MMsgHdr * batch).from_buffer(self.shdrs)
        ri = (_IOVec * batch).from_buffer(riov)
        si = (_IOVec * batch).from_buffer(self.siov)
        for i in range(batch):
            ri[i].base, ri[i].len = rbase + i * size, size
            rh[i].hdr.name, rh[i].hdr.namelen = nbase + i * NAME_SIZE, NAME_SIZE
            rh[i].hdr.iov, rh[i].hdr.iovlen = riov_base + i * _IOV, 1
            si[i].base = sbase + i * SEND_SIZE
            sh[i].hdr.iov, sh[i].hdr.iovlen = siov_base + i * _IOV, 1
        self._keep = (riov, rh, sh, ri, si)  # the kernel structures point into these
        self.pristine = bytes(self.rhdrs)  # namelen is in-out: restored before each receive
        self.rints = memoryview(self.rhdrs).cast("I")
        self.sints = memoryview(self.shdrs).cast("I")
        self.sptrs = memoryview(self.shdrs).cast("Q")
        self.slens = memoryview(self.siov).cast("Q")
        self.nbase = nbase
        self.rhdr_ptr = ctypes.c_void_p(ctypes.addressof(rh))
        self.shdr_addr = ctypes.addressof(sh)
        self.shdr_ptrs = [ctypes.c_void_p(self.shdr_addr + k * _HDR) for k in range(batch)]
        self.queued = 0
        self.overflow: list[tuple[bytes, int]] = []  # replies too big for a send slot

    def recv(self) -> int:
        """Block until datagrams arrive; take up to `batch` of them. 0: nothing (retry)."""
        self.rhdrs[:] = self.pristine
        assert _LIBC is not None
        n: int = _LIBC.recvmmsg(self.fd, self.rhdr_ptr, self.batch, MSG_WAITFORONE, None)
        if n < 0:
            err = ctypes.get_errno()
            if err == errno.EBADF:
                raise OSError(err, "recvmmsg: socket closed")
            return 0
        return n

    def payload(self, i: int) -> bytes:
        """Datagram i of the last `recv()` (cut at `size` bytes when it was longer)."""
        start = i * self.size
        return bytes(self.rview[start:start + self.rints[i * _I + _MSGLEN]])

    def answer(self, n: int, answer: Callable[[bytes], object],
               other: Callable[[object, int], None], table: Mapping[bytes, Sequence[Any]] | None = None,
               counts: list[int] | None = None) -> None:
        """Answer each of the `n` datagrams of the last `recv()` and queue the replies.

        First `table` (with `counts`): a datagram whose bytes 2..3 are a plain recursive query
        (QR 0, opcode QUERY, RD set, AA/TC/CD clear), whose counts are one question and nothing
        else, and whose bytes from 12 on (the question, exactly as asked) are a key of `table`
        gets `id + table[key][0]` as its reply when that fits in 512 bytes, and
        `counts[table[key][1]]` is incremented. Every other datagram goes to `answer`, whose
        bytes are queued as the reply; None drops the datagram; anything else goes to
        `other(result, i)`. An exception costs only its own datagram (logged). Both paths are
        written out inline: this loop is the per-query cost of the whole server."""
        rbuf, rview, rints, size = self.rbuf, self.rview, self.rints, self.size
        sbuf, slens, sptrs, sints = self.sbuf, self.slens, self.sptrs, self.sints
        nbase = self.nbase
        get = table.get if table is not None and counts is not None else None
        startswith = rbuf.startswith
        j = self.queued
        for i in range(n):
            start = i * size
            end = start + rints[i * _I + _MSGLEN]
            if (get is not None and rbuf[start + 2] == 1 and not rbuf[start + 3] & 0x10
                    and end - start > 16 and startswith(_QD1, start + 4)):
                e = get(bytes(rview[start + 12:end]))
                if e is not None:
                    reply = e[0]
                    length = len(reply) + 2
                    if length <= 512:
                        at = j * SEND_SIZE
                        sbuf[at] = rbuf[start]
                        sbuf[at + 1] = rbuf[start + 1]
                        sbuf[at + 2:at + length] = reply
                        counts[e[1]] += 1  # type: ignore[index]  # get is set only with counts
                        slens[j * 2 + 1] = length
                        sptrs[j * _Q] = nbase + i * NAME_SIZE
                        sints[j * _I + _NAMELEN] = rints[i * _I + _NAMELEN]
                        j += 1
                        continue
            try:
                out = answer(bytes(rview[start:end]))
            except Exception:  # a bug must cost one query, never the batch
                log.exception("answering a UDP query")
                continue
            if out.__class__ is bytes:
                length = len(out)
                if length > SEND_SIZE:
                    self.overflow.append((out, i))
                    continue
                at = j * SEND_SIZE
                sbuf[at:at + length] = out
                slens[j * 2 + 1] = length
                sptrs[j * _Q] = nbase + i * NAME_SIZE
                sints[j * _I + _NAMELEN] = rints[i * _I + _NAMELEN]
                j += 1
            elif out is not None:
                other(out, i)
        self.queued = j

    def send(self) -> None:
        """Send every queued reply (skipping any the kernel refuses)."""
        assert _LIBC is not None
        done, total = 0, self.queued
        self.queued = 0
        while done < total:
            sent: int = _LIBC.sendmmsg(self.fd, self.shdr_ptrs[done], total - done, 0)
            if sent < 0:
                if ctypes.get_errno() == errno.EINTR:
                    continue
                sent = 1  # this datagram is refused: skip it, send the rest
            done += sent
        for reply, i in self.overflow:
            try:
                self.sock.sendto(reply, self.address(i))
            except OSError:
                pass
        self.overflow.clear()

    def address(self, i: int) -> tuple[str, int] | tuple[str, int, int, int]:
        """The source address of datagram i as the socket module spells it."""
        return decode_address(bytes(self.names[i * NAME_SIZE:i * NAME_SIZE + self.rints[i * _I + _NAMELEN]]))


def decode_address(raw: bytes) -> tuple[str, int] | tuple[str, int, int, int]:
    """A raw sockaddr_in / sockaddr_in6 (as recvmmsg wrote it) as the socket module spells it."""
    family = int.from_bytes(raw[:2], sys.byteorder)
    port = int.from_bytes(raw[2:4], "big")
    if family == socket.AF_INET6:
        return (socket.inet_ntop(socket.AF_INET6, raw[8:24]), port,
                int.from_bytes(raw[4:8], "big"), int.from_bytes(raw[24:28], sys.byteorder))
    return socket.inet_ntop(socket.AF_INET, raw[4:8]), port


__all__ = ["BATCH", "Batch", "available", "decode_address"]
