"""The SPDY/3.1 codec: frames survive encode -> feed in any split, the header dictionary is the
spec's, and garbage raises SpdyError only (never another exception)."""

from __future__ import annotations

import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from podns.objects import spdy

stream_ids = st.integers(min_value=1, max_value=2**31 - 1)
names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz-0123456789", min_size=1, max_size=20)
values = st.lists(st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\x00"),
                          max_size=30), min_size=1, max_size=3)
headers = st.dictionaries(names, values, max_size=6)

frames = st.one_of(
    st.builds(spdy.DataFrame, stream_ids, st.binary(max_size=300), st.booleans()),
    st.builds(spdy.SynStream, stream_ids, headers, st.integers(0, 2**31 - 1), st.integers(0, 7),
              st.booleans()),
    st.builds(spdy.SynReply, stream_ids, headers, st.booleans()),
    st.builds(spdy.HeadersFrame, stream_ids, headers, st.booleans()),
    st.builds(spdy.RstStream, stream_ids, st.integers(1, 11)),
    st.builds(spdy.Settings, st.lists(st.tuples(st.integers(0, 255), st.integers(0, 2**24 - 1),
                                                st.integers(0, 2**32 - 1)), max_size=4).map(tuple)),
    st.builds(spdy.Ping, st.integers(0, 2**32 - 1)),
    st.builds(spdy.GoAway, st.integers(0, 2**31 - 1), st.integers(0, 2)),
    st.builds(spdy.WindowUpdate, stream_ids, st.integers(0, 2**31 - 1)),
)


def test_header_dictionary_is_the_spec_one() -> None:
    """The SPDY/3 dictionary is 1423 bytes; its Adler-32 is the DICTID Go's zlib writes."""
    assert len(spdy.HEADER_DICTIONARY) == 1423
    assert spdy.HEADER_DICTIONARY.startswith(b"\x00\x00\x00\x07options\x00\x00\x00\x04head")
    assert spdy.HEADER_DICTIONARY.endswith(b"charset=iso-8859-1,utf-,*,enq=0.")
    assert zlib.adler32(spdy.HEADER_DICTIONARY) == 0xE3C6A7C2


@settings(max_examples=150, deadline=None)
@given(st.lists(frames, max_size=8), st.lists(st.integers(1, 64), max_size=40))
def test_frames_round_trip_in_any_split(sent: list[spdy.Frame], cuts: list[int]) -> None:
    """given frames encoded by one side (one zlib stream for all header blocks), when the other
    side is fed the bytes in arbitrary pieces, then it decodes the same frames in order."""
    writer, reader = spdy.Connection(), spdy.Connection()
    wire = b"".join(writer.encode(f) for f in sent)
    got: list[spdy.Frame] = []
    pos = 0
    for cut in cuts:
        got += reader.feed(wire[pos:pos + cut])
        pos += cut
    got += reader.feed(wire[pos:])
    expected = [_normal(f) for f in sent]
    assert got == expected


def _normal(frame: spdy.Frame) -> spdy.Frame:
    """What decoding yields (header names lower-case, as written)."""
    if isinstance(frame, spdy.SynStream):
        return spdy.SynStream(frame.stream_id, frame.headers, frame.associated_to, frame.priority, frame.fin)
    return frame


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_garbage_raises_only_spdy_error(data: bytes) -> None:
    """given arbitrary bytes, feeding them yields frames or SpdyError, nothing else."""
    try:
        spdy.Connection().feed(data)
    except spdy.SpdyError:
        pass


@settings(max_examples=100, deadline=None)
@given(headers)
def test_header_block_round_trip(block: spdy.Headers) -> None:
    assert spdy.decode_header_block(spdy.encode_header_block(block)) == block


@pytest.mark.parametrize("block, why", [
    (b"\x00\x00\x00\x01\x00\x00\x00\x04Name\x00\x00\x00\x00", "lowercased"),
    (b"\x00\x00\x00\x01\x00\x00\x00\x09name", "truncated"),
    (b"\x00\x00\x00\x02\x00\x00\x00\x01a\x00\x00\x00\x00\x00\x00\x00\x01a\x00\x00\x00\x00", "same name"),
], ids=["upper-case", "truncated", "duplicate"])
def test_bad_header_blocks(block: bytes, why: str) -> None:
    with pytest.raises(spdy.SpdyError, match=why):
        spdy.decode_header_block(block)


def test_large_data_is_split_at_the_frame_limit() -> None:
    """given more than 16 MiB of data, data_frame emits several frames, FIN on the last only."""
    conn = spdy.Connection()
    data = b"x" * (spdy.MAX_FRAME_PAYLOAD + 10)
    got = spdy.Connection().feed(conn.data_frame(5, data, fin=True))
    assert [len(f.data) for f in got] == [spdy.MAX_FRAME_PAYLOAD, 10]  # type: ignore[union-attr]
    assert [f.fin for f in got] == [False, True]  # type: ignore[union-attr]
