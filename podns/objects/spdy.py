"""SPDY/3.1 framing, sans I/O: bytes in, frames out; frames in, bytes out.

What kubectl before 1.30 (exec, attach, cp) and before 1.31 (port-forward) speaks after an
`Upgrade: SPDY/3.1` handshake, and what newer kubectl tunnels inside a WebSocket for
port-forward. Go's side is moby/spdystream (client-go's httpstream/spdy); this module follows
the SPDY draft 3.1 wire format as that library writes and reads it:

- control frames: `1 | version(15)=3 | type(16) | flags(8) | length(24) | payload`; data
  frames: `0 | stream id(31) | flags(8) | length(24) | payload`;
- header blocks (SYN_STREAM, SYN_REPLY, HEADERS) are `count(32)` then `len(32) name len(32)
  value` pairs, lower-case names, several values joined by NUL, compressed with zlib over the
  whole session in each direction (one stream, sync-flushed per block) with the SPDY/3 preset
  dictionary `HEADER_DICTIONARY`;
- flow control: spdystream neither sends WINDOW_UPDATE nor honours one, so neither does this
  codec's user; WINDOW_UPDATE and SETTINGS frames are decoded and may be ignored.

`Connection` holds the two zlib contexts and a receive buffer: `feed(data)` returns the frames
completed so far, the `*_frame` methods return bytes to send. A malformed frame raises
`SpdyError` (the caller closes the session with GOAWAY/RST as it sees fit).
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field

VERSION = 3

SYN_STREAM = 1
SYN_REPLY = 2
RST_STREAM = 3
SETTINGS = 4
PING = 6
GOAWAY = 7
HEADERS = 8
WINDOW_UPDATE = 9

FLAG_FIN = 0x01
FLAG_UNIDIRECTIONAL = 0x02

#: RST_STREAM status codes (draft 3.1 section 2.4.2)
PROTOCOL_ERROR = 1
INVALID_STREAM = 2
REFUSED_STREAM = 3
CANCEL = 5
INTERNAL_ERROR = 6

#: largest payload one frame may carry (24-bit length field)
MAX_FRAME_PAYLOAD = (1 << 24) - 1
#: largest frame `feed` accepts before the header says what it is (a bad peer cannot make us
#: buffer 16 MiB of garbage control frames; data frames are split by senders well below this)
MAX_CONTROL_PAYLOAD = 1 << 20

_WORDS = [*(
    "options head post put delete trace accept accept-charset accept-encoding accept-language "
    "accept-ranges age allow authorization cache-control connection content-base "
    "content-encoding content-language content-length content-location content-md5 "
    "content-range content-type date etag expect expires from host if-match if-modified-since "
    "if-none-match if-range if-unmodified-since last-modified location max-forwards pragma "
    "proxy-authenticate proxy-authorization range referer retry-after server te trailer "
    "transfer-encoding upgrade user-agent vary via warning www-authenticate method get status"
).split(), "200 OK", "version", "HTTP/1.1", "url", "public", "set-cookie", "keep-alive", "origin"]
_TAIL = (
    "100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505"
    "203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request401 "
    "Unauthorized403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented503 "
    "Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 Mon, Tue, Wed, "
    "Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,image/jpg,image/gif,application/xml,"
    "application/xhtml+xml,text/plain,text/javascript,publicprivatemax-age=gzip,deflate,sdch"
    "charset=utf-8charset=iso-8859-1,utf-,*,enq=0."
)
#: the SPDY/3 header compression dictionary (draft 3 section 2.6.10.1): length-prefixed words,
#: then a run of common values; 1423 bytes
HEADER_DICTIONARY = b"".join(struct.pack(">I", len(w)) + w.encode() for w in _WORDS) + _TAIL.encode()


class SpdyError(Exception):
    """The peer sent something that is not SPDY/3.1 (bad version, truncated block, bad zlib)."""


Headers = dict[str, list[str]]


@dataclass(frozen=True, slots=True)
class DataFrame:
    """Payload bytes of one stream; `fin` closes the sender's half."""

    stream_id: int
    data: bytes
    fin: bool = False


@dataclass(frozen=True, slots=True)
class SynStream:
    """The peer opens `stream_id` with `headers`."""

    stream_id: int
    headers: Headers
    associated_to: int = 0
    priority: int = 0
    fin: bool = False
    unidirectional: bool = False


@dataclass(frozen=True, slots=True)
class SynReply:
    """The peer accepts a stream we opened."""

    stream_id: int
    headers: Headers
    fin: bool = False


@dataclass(frozen=True, slots=True)
class HeadersFrame:
    """More headers on an open stream."""

    stream_id: int
    headers: Headers
    fin: bool = False


@dataclass(frozen=True, slots=True)
class RstStream:
    """The stream ends abnormally (status: PROTOCOL_ERROR, CANCEL, ...)."""

    stream_id: int
    status: int


@dataclass(frozen=True, slots=True)
class Settings:
    """Session settings: (flags, id, value) triples."""

    entries: tuple[tuple[int, int, int], ...] = ()


@dataclass(frozen=True, slots=True)
class Ping:
    """A liveness probe; the receiver echoes a ping the other side started."""

    ping_id: int


@dataclass(frozen=True, slots=True)
class GoAway:
    """The sender opens no more streams after `last_good_stream_id`."""

    last_good_stream_id: int
    status: int = 0


@dataclass(frozen=True, slots=True)
class WindowUpdate:
    """Flow-control credit (decoded, not acted upon: see the module docstring)."""

    stream_id: int
    delta: int


Frame = DataFrame | SynStream | SynReply | HeadersFrame | RstStream | Settings | Ping | GoAway | WindowUpdate


def encode_header_block(headers: Headers) -> bytes:
    """The uncompressed name/value block (names lower-cased, values NUL-joined)."""
    out = [struct.pack(">I", len(headers))]
    for name, values in headers.items():
        raw_name = name.lower().encode()
        raw_value = "\x00".join(values).encode()
        out += [struct.pack(">I", len(raw_name)), raw_name, struct.pack(">I", len(raw_value)), raw_value]
    return b"".join(out)


def decode_header_block(block: bytes) -> Headers:
    """The inverse of `encode_header_block`; SpdyError when truncated or not lower-case."""
    try:
        (count,) = struct.unpack_from(">I", block, 0)
        pos = 4
        headers: Headers = {}
        for _ in range(count):
            fields = []
            for _part in ("name", "value"):
                (n,) = struct.unpack_from(">I", block, pos)
                if pos + 4 + n > len(block):
                    raise SpdyError("truncated header block")
                fields.append(block[pos + 4:pos + 4 + n].decode())
                pos += 4 + n
            name, value = fields
            if name != name.lower():
                raise SpdyError("header was not lowercased")
            if name in headers:
                raise SpdyError("multiple headers with same name")
            headers[name] = value.split("\x00")
    except (struct.error, UnicodeDecodeError) as exc:
        raise SpdyError(f"malformed header block: {exc}") from None
    if pos != len(block):
        raise SpdyError("trailing bytes after the header block")
    return headers


def _control(ftype: int, flags: int, payload: bytes) -> bytes:
    return struct.pack(">HHI", 0x8000 | VERSION, ftype, (flags << 24) | len(payload)) + payload


@dataclass
class Connection:
    """One side of a SPDY session's framing (see the module docstring)."""

    _buffer: bytearray = field(default_factory=bytearray)
    _deflate: zlib._Compress = field(
        default_factory=lambda: zlib.compressobj(zlib.Z_BEST_COMPRESSION, zdict=HEADER_DICTIONARY))
    _inflate: zlib._Decompress = field(default_factory=lambda: zlib.decompressobj(zdict=HEADER_DICTIONARY))

    # -- encoding ------------------------------------------------------------------------------

    def _compress(self, headers: Headers) -> bytes:
        raw = encode_header_block(headers)
        return self._deflate.compress(raw) + self._deflate.flush(zlib.Z_SYNC_FLUSH)

    def data_frame(self, stream_id: int, data: bytes, *, fin: bool = False) -> bytes:
        """DATA frames carrying `data` (split at the frame size limit; empty with `fin` closes)."""
        out = []
        view = memoryview(data)
        while True:
            chunk = bytes(view[:MAX_FRAME_PAYLOAD])
            view = view[MAX_FRAME_PAYLOAD:]
            last = not view
            flags = FLAG_FIN if fin and last else 0
            out.append(struct.pack(">II", stream_id & 0x7FFFFFFF, (flags << 24) | len(chunk)) + chunk)
            if last:
                return b"".join(out)

    def syn_stream_frame(self, stream_id: int, headers: Headers, *, fin: bool = False,
                         associated_to: int = 0, priority: int = 0) -> bytes:
        payload = struct.pack(">IIBB", stream_id, associated_to, (priority & 7) << 5, 0)
        return _control(SYN_STREAM, FLAG_FIN if fin else 0, payload + self._compress(headers))

    def syn_reply_frame(self, stream_id: int, headers: Headers | None = None, *, fin: bool = False) -> bytes:
        payload = struct.pack(">I", stream_id) + self._compress(headers or {})
        return _control(SYN_REPLY, FLAG_FIN if fin else 0, payload)

    def headers_frame(self, stream_id: int, headers: Headers, *, fin: bool = False) -> bytes:
        payload = struct.pack(">I", stream_id) + self._compress(headers)
        return _control(HEADERS, FLAG_FIN if fin else 0, payload)

    @staticmethod
    def rst_stream_frame(stream_id: int, status: int) -> bytes:
        return _control(RST_STREAM, 0, struct.pack(">II", stream_id, status))

    @staticmethod
    def settings_frame(entries: tuple[tuple[int, int, int], ...] = ()) -> bytes:
        body = b"".join(struct.pack(">II", (f << 24) | i, v) for f, i, v in entries)
        return _control(SETTINGS, 0, struct.pack(">I", len(entries)) + body)

    @staticmethod
    def ping_frame(ping_id: int) -> bytes:
        return _control(PING, 0, struct.pack(">I", ping_id))

    @staticmethod
    def goaway_frame(last_good_stream_id: int, status: int = 0) -> bytes:
        return _control(GOAWAY, 0, struct.pack(">II", last_good_stream_id, status))

    @staticmethod
    def window_update_frame(stream_id: int, delta: int) -> bytes:
        return _control(WINDOW_UPDATE, 0, struct.pack(">II", stream_id, delta))

    def encode(self, frame: Frame) -> bytes:
        """Bytes of any frame value (the inverse of `feed`)."""
        match frame:
            case DataFrame(sid, data, fin):
                return self.data_frame(sid, data, fin=fin)
            case SynStream(sid, headers, assoc, prio, fin, _uni):
                return self.syn_stream_frame(sid, headers, fin=fin, associated_to=assoc, priority=prio)
            case SynReply(sid, headers, fin):
                return self.syn_reply_frame(sid, headers, fin=fin)
            case HeadersFrame(sid, headers, fin):
                return self.headers_frame(sid, headers, fin=fin)
            case RstStream(sid, st):
                return self.rst_stream_frame(sid, st)
            case Settings(entries):
                return self.settings_frame(entries)
            case Ping(pid):
                return self.ping_frame(pid)
            case GoAway(last, st):
                return self.goaway_frame(last, st)
            case WindowUpdate(sid, delta):
                return self.window_update_frame(sid, delta)
        raise TypeError(f"not a SPDY frame: {frame!r}")

    # -- decoding ------------------------------------------------------------------------------

    def feed(self, data: bytes) -> list[Frame]:
        """Append received bytes; return the frames now complete, in order."""
        self._buffer += data
        frames: list[Frame] = []
        buf = self._buffer
        pos = 0
        while len(buf) - pos >= 8:
            word, flags_len = struct.unpack_from(">II", buf, pos)
            flags, length = flags_len >> 24, flags_len & 0xFFFFFF
            control = bool(word & 0x80000000)
            if control and length > MAX_CONTROL_PAYLOAD:
                raise SpdyError(f"control frame of {length} bytes")
            if len(buf) - pos < 8 + length:
                break
            payload = bytes(buf[pos + 8:pos + 8 + length])
            pos += 8 + length
            if not control:
                frames.append(DataFrame(word & 0x7FFFFFFF, payload, bool(flags & FLAG_FIN)))
                continue
            version, ftype = (word >> 16) & 0x7FFF, word & 0xFFFF
            if version != VERSION:
                raise SpdyError(f"unsupported SPDY version {version}")
            frame = self._control_frame(ftype, flags, payload)
            if frame is not None:
                frames.append(frame)
        del buf[:pos]
        return frames

    def _headers(self, block: bytes) -> Headers:
        try:
            raw = self._inflate.decompress(block)
        except zlib.error as exc:
            raise SpdyError(f"header block does not decompress: {exc}") from None
        return decode_header_block(raw)

    def _control_frame(self, ftype: int, flags: int, p: bytes) -> Frame | None:
        fin = bool(flags & FLAG_FIN)
        try:
            if ftype == SYN_STREAM:
                sid, assoc, prio, _slot = struct.unpack_from(">IIBB", p, 0)
                return SynStream(sid & 0x7FFFFFFF, self._headers(p[10:]), assoc & 0x7FFFFFFF, prio >> 5, fin,
                                 bool(flags & FLAG_UNIDIRECTIONAL))
            if ftype in (SYN_REPLY, HEADERS):
                (sid,) = struct.unpack_from(">I", p, 0)
                cls = SynReply if ftype == SYN_REPLY else HeadersFrame
                return cls(sid & 0x7FFFFFFF, self._headers(p[4:]), fin)
            if ftype == RST_STREAM:
                sid, status = struct.unpack_from(">II", p, 0)
                return RstStream(sid & 0x7FFFFFFF, status)
            if ftype == SETTINGS:
                (count,) = struct.unpack_from(">I", p, 0)
                entries = []
                for i in range(count):
                    fid, value = struct.unpack_from(">II", p, 4 + 8 * i)
                    entries.append((fid >> 24, fid & 0xFFFFFF, value))
                return Settings(tuple(entries))
            if ftype == PING:
                return Ping(struct.unpack_from(">I", p, 0)[0])
            if ftype == GOAWAY:
                (last,) = struct.unpack_from(">I", p, 0)
                status = struct.unpack_from(">I", p, 4)[0] if len(p) >= 8 else 0  # SPDY/2 had no status
                return GoAway(last & 0x7FFFFFFF, status)
            if ftype == WINDOW_UPDATE:
                sid, delta = struct.unpack_from(">II", p, 0)
                return WindowUpdate(sid & 0x7FFFFFFF, delta & 0x7FFFFFFF)
        except struct.error as exc:
            raise SpdyError(f"truncated control frame of type {ftype}: {exc}") from None
        return None  # unknown control frame types are ignored (draft 3.1 section 2.2.1)
