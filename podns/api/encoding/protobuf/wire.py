"""Protocol-buffers wire format: a bounds-checked reader and a writer.

This module knows only the wire format (varints, the four wire types this package meets,
tags), nothing about Kubernetes. Every read checks its bounds, so a truncated or corrupt body
becomes a `WireError` at the exact offset instead of an `IndexError` or a silent misread;
the decoder turns that into a 400 BadRequest.
"""

from __future__ import annotations

from collections.abc import Iterator

#: wire types (protobuf encoding spec); groups (3, 4) are not used by Kubernetes and rejected
VARINT = 0
FIXED64 = 1
LEN = 2
FIXED32 = 5

#: protobuf field numbers are 29 bits wide
MAX_FIELD_NUMBER = (1 << 29) - 1


class WireError(ValueError):
    """The bytes are not a well-formed protobuf message (truncated, overlong, bad wire type)."""


def read_varint(buf: bytes, pos: int, end: int) -> tuple[int, int]:
    """Read one base-128 varint at `pos` (never past `end`); return (value, next position).

    At most 10 bytes, as protobuf allows for 64-bit values; more is corrupt data."""
    result = 0
    shift = 0
    start = pos
    while True:
        if pos >= end:
            raise WireError(f"truncated varint at offset {start}")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            break
        shift += 7
        if shift >= 70:
            raise WireError(f"varint longer than 10 bytes at offset {start}")
    if result >> 64:
        raise WireError(f"varint overflows 64 bits at offset {start}")
    return result, pos


def iter_fields(buf: bytes, start: int = 0, end: int | None = None) -> Iterator[tuple[int, int, int | bytes]]:
    """Yield (field number, wire type, value) for each field of the message in buf[start:end].

    The value is an int for VARINT/FIXED32/FIXED64 (unsigned, as on the wire) and a
    `memoryview`-free `bytes` slice for LEN fields."""
    if end is None:
        end = len(buf)
    pos = start
    while pos < end:
        tag_at = pos
        tag, pos = read_varint(buf, pos, end)
        number, wtype = tag >> 3, tag & 7
        if number == 0 or number > MAX_FIELD_NUMBER:
            raise WireError(f"invalid field number {number} at offset {tag_at}")
        if wtype == VARINT:
            value, pos = read_varint(buf, pos, end)
            yield number, wtype, value
        elif wtype == LEN:
            size, pos = read_varint(buf, pos, end)
            if size > end - pos:
                raise WireError(
                    f"field {number} at offset {tag_at} claims {size} bytes, only {end - pos} left")
            yield number, wtype, buf[pos:pos + size]
            pos += size
        elif wtype == FIXED64:
            if end - pos < 8:
                raise WireError(f"truncated fixed64 field {number} at offset {tag_at}")
            yield number, wtype, int.from_bytes(buf[pos:pos + 8], "little")
            pos += 8
        elif wtype == FIXED32:
            if end - pos < 4:
                raise WireError(f"truncated fixed32 field {number} at offset {tag_at}")
            yield number, wtype, int.from_bytes(buf[pos:pos + 4], "little")
            pos += 4
        else:
            raise WireError(f"unsupported wire type {wtype} for field {number} at offset {tag_at}")


def to_signed(value: int, bits: int) -> int:
    """Reinterpret an unsigned wire integer as two's-complement of `bits` bits (int32, int64).

    protobuf sign-extends negative int32 to 64 bits on the wire, so int32 takes the low 32."""
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >> (bits - 1) else value


class Writer:
    """Appends protobuf fields to a growing buffer."""

    __slots__ = ("buf",)

    def __init__(self) -> None:
        self.buf = bytearray()

    def varint(self, value: int) -> None:
        """Write a bare varint; negative values as 64-bit two's complement (protobuf int32/64)."""
        if value < 0:
            value += 1 << 64
        while True:
            b = value & 0x7F
            value >>= 7
            if value:
                self.buf.append(b | 0x80)
            else:
                self.buf.append(b)
                return

    def tag(self, number: int, wtype: int) -> None:
        self.varint((number << 3) | wtype)

    def varint_field(self, number: int, value: int) -> None:
        self.tag(number, VARINT)
        self.varint(value)

    def bytes_field(self, number: int, value: bytes) -> None:
        self.tag(number, LEN)
        self.varint(len(value))
        self.buf += value

    def fixed64_field(self, number: int, value: int) -> None:
        self.tag(number, FIXED64)
        self.buf += (value & ((1 << 64) - 1)).to_bytes(8, "little")

    def getvalue(self) -> bytes:
        return bytes(self.buf)
