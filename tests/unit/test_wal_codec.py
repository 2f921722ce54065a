"""WAL record framing: round trips, torn tails (truncation, zero fill) and corruption (bit flips)."""

from __future__ import annotations

import struct
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pyetcd.storage import wal_codec
from pyetcd.storage.wal_codec import HEADER_BYTES, CorruptRecord, decode, encode_entry, encode_hard_state

entry_st = st.tuples(st.integers(0, 2**64 - 1), st.integers(0, 2**64 - 1), st.binary(max_size=64))
stream_st = st.lists(entry_st, min_size=1, max_size=6)


def _encode(entries: list[tuple[int, int, bytes]]) -> tuple[bytes, list[int]]:
    """The byte stream and the offset where each record starts (plus the end)."""
    buf = b""
    bounds = [0]
    for term, index, data in entries:
        buf += encode_entry(term, index, data)
        bounds.append(len(buf))
    return buf, bounds


def test_entry_and_hard_state_round_trip() -> None:
    buf = encode_entry(3, 7, b"payload") + encode_hard_state(3, 2, 7) + encode_entry(4, 8, b"")
    d = decode(buf)
    assert (d.torn, d.valid_bytes) == (False, len(buf))
    assert [r.rtype for r in d.records] == [wal_codec.ENTRY, wal_codec.HARD_STATE, wal_codec.ENTRY]
    assert d.records[0].entry() == (3, 7, b"payload")
    assert d.records[1].hard_state() == (3, 2, 7)
    assert d.records[2].entry() == (4, 8, b"")
    # record type byte + term + index + entry type byte + data
    assert [r.offset for r in d.records] == [0, HEADER_BYTES + 1 + 16 + 1 + 7, 2 * HEADER_BYTES + 2 + 16 + 1 + 7 + 24]


def d_type(rec: bytes) -> int:
    return decode(rec).records[0].entry_type()


def test_record_layout() -> None:
    rec = encode_entry(1, 2, b"x")
    length, payload_crc, header_crc = struct.unpack_from("<III", rec)
    payload = rec[HEADER_BYTES:]
    assert length == len(payload) == 1 + 16 + 1 + 1 and payload[0] == wal_codec.ENTRY
    assert d_type(rec) == 0
    assert payload_crc == zlib.crc32(payload)
    assert header_crc == zlib.crc32(rec[:8])


def test_empty_buffer() -> None:
    d = decode(b"")
    assert (d.records, d.valid_bytes, d.torn) == ([], 0, False)


@settings(max_examples=200, deadline=None)
@given(stream_st)
def test_round_trip(entries: list[tuple[int, int, bytes]]) -> None:
    buf, bounds = _encode(entries)
    d = decode(buf)
    assert [r.entry() for r in d.records] == entries
    assert [r.offset for r in d.records] == bounds[:-1]
    assert (d.valid_bytes, d.torn) == (len(buf), False)


@settings(max_examples=300, deadline=None)
@given(stream_st, st.data())
def test_any_truncation_is_a_prefix(entries: list[tuple[int, int, bytes]], data: st.DataObject) -> None:
    buf, bounds = _encode(entries)
    cut = data.draw(st.integers(0, len(buf)))
    d = decode(buf[:cut])
    whole = sum(1 for b in bounds[1:] if b <= cut)
    assert [r.entry() for r in d.records] == entries[:whole]
    assert d.valid_bytes == bounds[whole]
    assert d.torn == (cut not in bounds)


@settings(max_examples=200, deadline=None)
@given(stream_st, st.integers(1, 5000))
def test_zero_filled_tail_is_torn(entries: list[tuple[int, int, bytes]], zeros: int) -> None:
    buf, _ = _encode(entries)
    d = decode(buf + b"\0" * zeros)
    assert [r.entry() for r in d.records] == entries
    assert (d.valid_bytes, d.torn) == (len(buf), True)


def test_final_record_with_zero_filled_block_is_torn() -> None:
    first = encode_entry(1, 1, b"a" * 4000)
    second = encode_entry(1, 2, b"b" * 1000)  # straddles the 4096-byte block boundary
    buf = first + second
    damaged = buf[:4096] + b"\0" * (len(buf) - 4096)
    d = decode(damaged)
    assert (len(d.records), d.valid_bytes, d.torn) == (1, len(first), True)


@settings(max_examples=400, deadline=None)
@given(st.lists(entry_st, min_size=2, max_size=6), st.data())
def test_bit_flip_in_non_final_record_is_corruption(entries: list[tuple[int, int, bytes]],
                                                   data: st.DataObject) -> None:
    buf, bounds = _encode(entries)
    victim = data.draw(st.integers(0, len(entries) - 2))
    byte = data.draw(st.integers(bounds[victim], bounds[victim + 1] - 1))
    bit = data.draw(st.integers(0, 7))
    damaged = bytearray(buf)
    damaged[byte] ^= 1 << bit
    with pytest.raises(CorruptRecord) as info:
        decode(bytes(damaged))
    assert info.value.offset == bounds[victim]
    assert f"offset {bounds[victim]}" in str(info.value)


@settings(max_examples=300, deadline=None)
@given(stream_st, st.data())
def test_bit_flip_in_final_record(entries: list[tuple[int, int, bytes]], data: st.DataObject) -> None:
    buf, bounds = _encode(entries)
    last = bounds[-2]
    byte = data.draw(st.integers(last, len(buf) - 1))
    damaged = bytearray(buf)
    damaged[byte] ^= 1 << data.draw(st.integers(0, 7))
    try:
        d = decode(bytes(damaged))
    except CorruptRecord as e:
        assert e.offset == last
        return
    # only acceptable silent outcome: a torn tail whose damaged region is all zeros
    assert d.torn and d.valid_bytes == last and not bytes(damaged[last:]).strip(b"\0")
    assert [r.entry() for r in d.records] == entries[:-1]


def test_nonzero_garbage_after_records_is_corruption() -> None:
    buf, bounds = _encode([(1, 1, b"a")])
    with pytest.raises(CorruptRecord) as info:
        decode(buf + b"\x01" + b"\0" * 40)
    assert (info.value.offset, info.value.reason) == (bounds[1], "bad header")


def test_payload_crc_mismatch_reason() -> None:
    buf = bytearray(encode_entry(1, 1, b"abc") + encode_entry(1, 2, b"d"))
    buf[HEADER_BYTES + 3] ^= 0x10
    with pytest.raises(CorruptRecord) as info:
        decode(bytes(buf))
    assert (info.value.offset, info.value.reason) == (0, "payload CRC mismatch")


@pytest.mark.parametrize("length", [0, wal_codec.RECORD_BYTES_MAX + 1])
def test_impossible_length_with_valid_header_crc_is_corruption(length: int) -> None:
    len_crc = struct.pack("<II", length, 0)
    header = len_crc + struct.pack("<I", zlib.crc32(len_crc))
    with pytest.raises(CorruptRecord):
        decode(header + b"\x01" * 20)
