"""WAL record framing (pure): bytes in, records out.

Record layout (little endian):
    u32 payload_len | u32 payload_crc | u32 header_crc | payload (u8 type + body)
`header_crc` covers the first 8 bytes, so a flipped length bit is caught before it is trusted.

A segment may end in zero padding: wal.py writes zeros ahead of its records so that a sync overwrites
blocks that already exist instead of growing the file. A record header is never all zeros (its length
is at least 1, and crc32 of eight zero bytes is not zero), so an all-zero header at a record boundary
with nothing but zeros after it is the CLEAN end of the segment: `valid_bytes` is where the next record
goes.

Decoding a segment distinguishes two kinds of damage:
* torn tail: an unsynced, hence unacknowledged, write that reached the disk only in part (cut at the
  end of the file or at a 512-byte sector boundary, or missing a whole sector), followed by nothing but
  zeros (padding, or the end of the file): the segment ends inside a record; or a bad header is the
  last non-zero data and was cut at the end of the file or a sector boundary; or a final record fails
  its CRC and its payload is all zeros, or its bytes from a sector boundary on are zeros, or it holds a
  whole zeroed sector (etcd's WAL tells a torn final record from corruption the same way). The caller
  overwrites it with zeros.
* corruption: any other bad header or CRC (an all-zero header followed by non-zero bytes included).
  Acknowledged data may be damaged there, so the caller must stop and name the file and offset instead
  of guessing.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

HEADER = struct.Struct("<III")
HEADER_BYTES = HEADER.size
LEN_CRC = struct.Struct("<II")
RECORD_BYTES_MAX = 256 * 1024 * 1024
SECTOR_BYTES = 512

ENTRY = 1  # body: u64 term, u64 index, u8 entry type, entry data
HARD_STATE = 2  # body: u64 term, u64 vote, u64 commit

_ENTRY_HEAD = struct.Struct("<QQ")
_HARD_STATE = struct.Struct("<QQQ")


def encode_record(rtype: int, body: bytes) -> bytes:
    payload = bytes((rtype,)) + body
    len_crc = LEN_CRC.pack(len(payload), zlib.crc32(payload))
    return len_crc + struct.pack("<I", zlib.crc32(len_crc)) + payload


def encode_entry(term: int, index: int, data: bytes, etype: int = 0) -> bytes:
    return encode_record(ENTRY, _ENTRY_HEAD.pack(term, index) + bytes((etype,)) + data)


def encode_hard_state(term: int, vote: int, commit: int) -> bytes:
    return encode_record(HARD_STATE, _HARD_STATE.pack(term, vote, commit))


@dataclass(slots=True)  # not frozen: a frozen dataclass's __init__ costs ~3x, and a restart makes one per record
class Record:
    rtype: int
    body: bytes
    offset: int

    def entry(self) -> tuple[int, int, bytes]:
        """(term, index, data) of an ENTRY record."""
        term, index = _ENTRY_HEAD.unpack_from(self.body)
        return term, index, self.body[_ENTRY_HEAD.size + 1:]

    def entry_type(self) -> int:
        return self.body[_ENTRY_HEAD.size]

    def hard_state(self) -> tuple[int, int, int]:
        term, vote, commit = _HARD_STATE.unpack_from(self.body)
        return term, vote, commit


class CorruptRecord(Exception):
    def __init__(self, offset: int, reason: str) -> None:
        super().__init__(f"corrupt WAL record at offset {offset}: {reason}")
        self.offset = offset
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Decoded:
    records: list[Record]
    valid_bytes: int  # length of the clean prefix: where the next record goes
    torn: bool  # bytes after valid_bytes are a torn tail (else only zero padding, if anything, follows)


def decode(buf: bytes) -> Decoded:
    """Decode a whole segment. Raises CorruptRecord for damage that is not a torn tail."""
    records: list[Record] = []
    append = records.append
    crc32 = zlib.crc32
    unpack = HEADER.unpack_from
    pos = 0
    end = len(buf)
    view = memoryview(buf)
    while pos < end:
        if end - pos < HEADER_BYTES:
            return _bad_header(buf, records, pos)
        length, payload_crc, header_crc = unpack(buf, pos)
        if crc32(view[pos:pos + 8]) != header_crc or length == 0 or length > RECORD_BYTES_MAX:
            return _bad_header(buf, records, pos)
        start = pos + HEADER_BYTES
        stop = start + length
        if stop > end:
            return Decoded(records, pos, True)
        if crc32(view[start:stop]) != payload_crc:
            if data_end(buf, stop) == stop and _torn_record(buf, pos, stop):
                return Decoded(records, pos, True)  # the final record, partly never written
            raise CorruptRecord(pos, "payload CRC mismatch")
        append(Record(buf[start], buf[start + 1:stop], pos))
        pos = stop
    return Decoded(records, pos, False)


def data_end(buf: bytes, start: int) -> int:
    """The offset just past the last non-zero byte at or after `start` (`start` if there is none)."""
    return start + len(buf[start:].rstrip(b"\0"))


def _bad_header(buf: bytes, records: list[Record], pos: int) -> Decoded:
    """What a header that does not decode at `pos` (or fewer bytes than a header) means."""
    last = data_end(buf, pos)
    if last == pos:
        return Decoded(records, pos, False)  # zero padding (or nothing): the clean end
    cut = pos + HEADER_BYTES
    if last <= cut and (len(buf) < cut or next_sector(last) < cut):
        return Decoded(records, pos, True)  # a header cut short by the end of the file or at a sector
    raise CorruptRecord(pos, "bad header")


def next_sector(offset: int) -> int:
    """The first sector boundary at or after `offset`."""
    return -(-offset // SECTOR_BYTES) * SECTOR_BYTES


def _torn_record(buf: bytes, pos: int, stop: int) -> bool:
    """Whether the final record [pos, stop), which fails its CRC, looks never fully written rather than
    damaged after it was: its payload is all zeros (the header alone was written; a payload starts with
    its non-zero type byte), its bytes from a sector boundary on are zeros (a write cut short at a
    page or sector), or it holds a whole zeroed sector (a sector that did not reach the disk)."""
    payload = pos + HEADER_BYTES
    zeros_from = payload + len(buf[payload:stop].rstrip(b"\0"))
    if zeros_from == payload:
        return True
    return next_sector(zeros_from) < stop or _has_zero_sector(buf, pos, stop)


def _has_zero_sector(buf: bytes, start: int, end: int) -> bool:
    """True if a whole disk sector inside [start, end) is zeros: a write that did not reach the disk."""
    sector = next_sector(start)
    zeros = bytes(SECTOR_BYTES)
    while sector + SECTOR_BYTES <= end:
        if buf[sector:sector + SECTOR_BYTES] == zeros:
            return True
        sector += SECTOR_BYTES
    return False
