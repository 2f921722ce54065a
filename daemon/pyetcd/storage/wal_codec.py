"""WAL record framing (pure): bytes in, records out.

Record layout (little endian):
    u32 payload_len | u32 payload_crc | u32 header_crc | payload (u8 type + body)
`header_crc` covers the first 8 bytes, so a flipped length bit is caught before it is trusted.

A segment may end in zero padding: wal.py writes zeros ahead of its records so that a sync overwrites
blocks that already exist instead of growing the file. A record header is never all zeros (its length
is at least 1, and crc32 of eight zero bytes is not zero), so an all-zero header at a record boundary
ends the records: with nothing but zeros after it, that is the CLEAN end of the segment (`valid_bytes`
is where the next record goes).

Why damage followed by data can be a mere crash: records are written over those zeros, not appended, so
no journal commit orders a batch's pages (with O_APPEND on ext4, data=ordered, a batch became visible
only with the size update, after its data). A power cut in the middle of the batch's fdatasync may leave
any subset of its pages (or 512-byte sectors) on the disk, in any order: valid records, then a page that
never arrived (still zeros; it starts at a record boundary or inside a record), then non-zero later pages
of the same batch, then padding. Nothing in that batch was acknowledged (acks follow a completed
fdatasync), so it may be discarded. etcd's WAL decoder has the same rule: a zero frame length ends the
log, and a record failing its CRC with a zeroed sector is a torn write that ends it too.

The records therefore end (torn=True when non-zero bytes follow `valid_bytes`, which the caller must
overwrite with zeros; torn=False when only zeros follow) at the first of:
* an all-zero header at a record boundary, whatever follows;
* a bad header cut short by the end of the file, or whose bytes from a sector boundary inside it on are
  zeros up to the end of that sector (or of the file): the rest of it never reached the disk; or whose
  bytes before a sector boundary inside it are all zeros: the sector holding its start never reached the
  disk (that sector keeps its old content, the synced records before it and zero padding);
* a valid header whose record runs past the end of the file;
* a record failing its CRC in which a whole sector starting inside it is zeros (it may run past the
  record's end: a lost page that starts inside the record), or whose payload is all zeros with only
  zeros after it (the header alone was written).
This holds only for the LAST segment, and the caller enforces that: an earlier segment was fully synced
before the next one was created, so a torn result there (anything but zero padding after the records)
is corruption that must refuse to start.

Everything else is corruption, wherever it is: a bad header or a CRC mismatch without such zeros (a bit
flip, stray bytes). An invariant this relies on: no record holds a run of 512 zero bytes (entries are
JSON, which escapes NUL, or short binary records), so a zeroed sector inside a record always means a
write that did not arrive, never its content. Acknowledged data may be damaged there, so the caller must stop and name the file
and offset instead of guessing. These checks run only once a header or a CRC has failed: a clean decode
pays nothing for them.
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
    """Decode a whole segment. Raises CorruptRecord for damage that is not a torn tail (module docstring);
    a torn tail ends the records wherever it is, so a caller decoding a segment that is not the last one
    must refuse a torn result."""
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
            if _torn_record(buf, pos, stop):
                return Decoded(records, pos, True)  # a record of the last batch, partly never written
            raise CorruptRecord(pos, "payload CRC mismatch")
        append(Record(buf[start], buf[start + 1:stop], pos))
        pos = stop
    return Decoded(records, pos, False)


def data_end(buf: bytes, start: int) -> int:
    """The offset just past the last non-zero byte at or after `start` (`start` if there is none)."""
    return start + len(buf[start:].rstrip(b"\0"))


def _bad_header(buf: bytes, records: list[Record], pos: int) -> Decoded:
    """What a header that does not decode at `pos` (or fewer bytes than a header) means."""
    cut = pos + HEADER_BYTES
    if not buf[pos:cut].strip(b"\0"):
        return Decoded(records, pos, data_end(buf, pos) > pos)  # the end: clean, or a lost page after it
    if len(buf) < cut or _lost_sector(buf, pos, cut):
        return Decoded(records, pos, True)  # a header cut short by the end of the file or at a sector
    boundary = next_sector(pos + 1)
    if boundary < cut and not buf[pos:boundary].strip(b"\0"):
        return Decoded(records, pos, True)  # the sector holding the header's start never arrived
    raise CorruptRecord(pos, "bad header")


def next_sector(offset: int) -> int:
    """The first sector boundary at or after `offset`."""
    return -(-offset // SECTOR_BYTES) * SECTOR_BYTES


def _torn_record(buf: bytes, pos: int, stop: int) -> bool:
    """Whether the record [pos, stop), which fails its CRC, looks never fully written rather than damaged
    after it was: a whole sector starting inside it never reached the disk, or its payload is all zeros
    and so is everything after it (the header alone was written; a payload starts with its non-zero type
    byte)."""
    payload = pos + HEADER_BYTES
    return _lost_sector(buf, pos, stop) or data_end(buf, payload) == payload


_ZERO_SECTOR = bytes(SECTOR_BYTES)


def _lost_sector(buf: bytes, start: int, end: int) -> bool:
    """True if a sector that starts inside (start, end) is all zeros up to its own end or the end of the
    file (it may reach past `end`): a write that did not reach the disk (a bit flip does not zero a
    sector)."""
    sector = next_sector(start + 1)
    while sector < end:
        chunk = buf[sector:sector + SECTOR_BYTES]
        if _ZERO_SECTOR.startswith(chunk):
            return True
        sector += SECTOR_BYTES
    return False
