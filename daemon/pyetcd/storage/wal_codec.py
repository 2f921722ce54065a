"""WAL record framing (pure): bytes in, records out.

Record layout (little endian):
    u32 payload_len | u32 payload_crc | u32 header_crc | payload (u8 type + body)
`header_crc` covers the first 8 bytes, so a flipped length bit is caught before it is trusted.

Decoding a segment distinguishes two kinds of damage:
* torn tail: the segment ends inside a record, or everything from the bad record to the end of the
  file is zero bytes, or the final record fails its CRC and holds a whole zeroed 512-byte sector (the
  file grew but the data never reached the disk). Only an unsynced, hence unacknowledged, write can
  look like this; the caller truncates it.
* corruption: any other bad header or CRC. Acknowledged data may be damaged there, so the caller must
  stop and name the file and offset instead of guessing.
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
    valid_bytes: int  # length of the clean prefix
    torn: bool  # bytes after valid_bytes are a torn tail


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
            return Decoded(records, pos, True)
        length, payload_crc, header_crc = unpack(buf, pos)
        if crc32(view[pos:pos + 8]) != header_crc or length == 0 or length > RECORD_BYTES_MAX:
            return _damaged(buf, records, pos, "bad header")
        start = pos + HEADER_BYTES
        stop = start + length
        if stop > end:
            return Decoded(records, pos, True)
        if crc32(view[start:stop]) != payload_crc:
            if stop == end and _has_zero_sector(buf, pos, end):
                return Decoded(records, pos, True)  # last record, partly never written: torn
            return _damaged(buf, records, pos, "payload CRC mismatch")
        append(Record(buf[start], buf[start + 1:stop], pos))
        pos = stop
    return Decoded(records, pos, False)


def _has_zero_sector(buf: bytes, start: int, end: int) -> bool:
    """True if a whole disk sector inside [start, end) is zeros: a write that did not reach the disk
    (etcd's WAL uses the same test to tell a torn final record from corruption)."""
    sector = (start + SECTOR_BYTES - 1) // SECTOR_BYTES * SECTOR_BYTES
    zeros = bytes(SECTOR_BYTES)
    while sector + SECTOR_BYTES <= end:
        if buf[sector:sector + SECTOR_BYTES] == zeros:
            return True
        sector += SECTOR_BYTES
    return False


def _damaged(buf: bytes, records: list[Record], pos: int, reason: str) -> Decoded:
    if not buf[pos:].strip(b"\0"):
        return Decoded(records, pos, True)
    raise CorruptRecord(pos, reason)
