"""WAL record framing: round trips, zero padding (a clean end), torn tails (truncation, writes that reached
the disk in part, in any order: zeros where a page or sector never arrived, data after them) and corruption
(bit flips, stray bytes)."""

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
def test_zero_padding_is_a_clean_end(entries: list[tuple[int, int, bytes]], zeros: int) -> None:
    buf, _ = _encode(entries)
    d = decode(buf + b"\0" * zeros)
    assert [r.entry() for r in d.records] == entries
    assert (d.valid_bytes, d.torn) == (len(buf), False)


def _padded(buf: bytes, size: int = 8192) -> bytes:
    return buf + bytes(size - len(buf))


def test_record_cut_at_a_sector_inside_padding_is_torn() -> None:
    first = encode_entry(1, 1, b"a" * 400)
    second = encode_entry(1, 2, b"b" * 1000)  # crosses offset 512: only its first sector was written
    d = decode(_padded(first + second[:512 - len(first)]))
    assert (len(d.records), d.valid_bytes, d.torn) == (1, len(first), True)


def test_header_alone_inside_padding_is_torn() -> None:
    first = encode_entry(1, 1, b"a")
    d = decode(_padded(first + encode_entry(1, 2, b"b" * 50)[:HEADER_BYTES]))
    assert (len(d.records), d.valid_bytes, d.torn) == (1, len(first), True)


def test_header_cut_at_a_sector_inside_padding_is_torn() -> None:
    first = encode_entry(1, 1, b"a" * (512 - HEADER_BYTES - 18 - 5))  # the next header starts at 507
    assert len(first) == 507
    d = decode(_padded(first + encode_entry(1, 2, b"b")[:5]))
    assert (d.valid_bytes, d.torn) == (507, True)


def test_payload_written_in_part_within_a_sector_is_corruption() -> None:
    """Tears come in whole sectors (or at the end of the file): a payload cut short in the middle of a
    sector, with padding after it, is damage after the fact."""
    first = encode_entry(1, 1, b"a")
    second = encode_entry(1, 2, b"b" * 100)
    with pytest.raises(CorruptRecord) as info:
        decode(_padded(first + second[:60]))
    assert (info.value.offset, info.value.reason) == (len(first), "payload CRC mismatch")


def test_zero_header_ends_the_records_whatever_follows() -> None:
    """A page lost from a record boundary, later pages of the same (unacknowledged) batch written."""
    buf, bounds = _encode([(1, 1, b"a"), (1, 2, b"b"), (1, 3, b"c")])
    damaged = buf[:bounds[1]] + bytes(HEADER_BYTES) + buf[bounds[1] + HEADER_BYTES:]
    d = decode(_padded(damaged))
    assert ([r.entry()[1] for r in d.records], d.valid_bytes, d.torn) == ([1], bounds[1], True)


def _lost(buf: bytes, lo: int, hi: int) -> bytes:
    return buf[:lo] + bytes(hi - lo) + buf[hi:]


def _sectors_stream() -> tuple[bytes, list[int]]:
    return _encode([(1, i, bytes([i]) * 300) for i in range(1, 9)])  # ~2.6 KB, records of 330 bytes


def test_lost_sector_inside_a_record_with_data_after_is_torn() -> None:
    buf, bounds = _sectors_stream()
    assert bounds[3] < 1024 < 1536 < bounds[5] < bounds[-1]
    for lo in (1024, bounds[3] + HEADER_BYTES + 20):  # a whole sector inside; a page lost inside the payload
        d = decode(_padded(_lost(buf, lo, wal_codec.next_sector(lo + 1) + 512)))
        victim = max(i for i, b in enumerate(bounds) if b < lo)
        assert (len(d.records), d.valid_bytes, d.torn) == (victim, bounds[victim], True)


def test_header_cut_at_a_sector_with_data_after_is_torn() -> None:
    buf, bounds = _encode([(1, 1, b"a" * (512 - HEADER_BYTES - 18 - 5))] + [(1, i, b"b" * 300) for i in range(2, 6)])
    assert bounds[1] == 507
    d = decode(_padded(_lost(buf, 512, 1024)))
    assert (len(d.records), d.valid_bytes, d.torn) == (1, 507, True)


def test_zeros_shorter_than_a_sector_before_data_are_corruption() -> None:
    """Zeros from a sector boundary that stop before the sector ends are no lost write."""
    buf, bounds = _sectors_stream()
    with pytest.raises(CorruptRecord) as info:
        decode(_padded(_lost(buf, 1024, 1024 + 511)))
    victim = max(i for i, b in enumerate(bounds) if b < 1024)
    assert (info.value.offset, info.value.reason) == (bounds[victim], "payload CRC mismatch")
    buf, bounds = _encode([(1, 1, b"a" * (512 - HEADER_BYTES - 18 - 5))] + [(1, i, b"b" * 300) for i in range(2, 6)])
    with pytest.raises(CorruptRecord) as info:
        decode(_padded(_lost(buf, 512, 1000)))
    assert (info.value.offset, info.value.reason) == (507, "bad header")


def test_bit_flip_in_final_record_before_padding_is_corruption() -> None:
    buf, bounds = _encode([(1, 1, b"a"), (1, 2, b"some data")])
    damaged = bytearray(buf)
    damaged[-3] ^= 0x04
    with pytest.raises(CorruptRecord) as info:
        decode(_padded(bytes(damaged)))
    assert info.value.offset == bounds[1]


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
    # only acceptable silent outcome: a torn tail that looks unwritten (the payload all zeros, or zeros
    # from a sector boundary to its end: these records are too short to hold a whole sector)
    assert d.torn and d.valid_bytes == last and _looks_unwritten(bytes(damaged), last)
    assert [r.entry() for r in d.records] == entries[:-1]


def _looks_unwritten(buf: bytes, pos: int) -> bool:
    payload = buf[pos + HEADER_BYTES:]
    if not payload.strip(b"\0"):
        return True
    return any(not buf[b:].strip(b"\0") for b in range(pos + HEADER_BYTES, len(buf)) if b % 512 == 0)


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
