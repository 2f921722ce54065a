"""The write-ahead log on disk: numbered segment files of wal_codec records.

Segments are `<seq>-<first_index>.wal` (16 hex digits each). Appends are buffered in memory and reach
the disk in one write + one fdatasync per loop turn (`sync`), which is the group commit: nothing is
acknowledged before the sync that covers it returns. A snapshot cuts a new segment so that whole older
segments can be released.

The current segment is longer than its records: zeros are written ahead of them (ZERO_CHUNK at a time,
never more than 1/ROOM_FREE_SHARE of the free space), and records are written over those zeros at the
logical end (`segment_bytes`), not appended. An fdatasync then changes neither the file's size nor its
extents, so ext4 need not commit its journal: on this machine's disk ~0.11 ms instead of ~0.16 ms after
200 bytes, ~0.12 instead of ~0.23 ms after 9.5 KB (fallocate alone is not enough: its unwritten extents
need a journal commit when first written). Only the sync that adds room (records past it) pays once per
chunk. On open, zero padding after the last record is a clean end; a cut gives the old segment's padding
back (not synced: padding left by a crash is a clean end too).

Since records overwrite zeros instead of growing the file, no journal commit orders a batch's pages: a
power cut in the middle of its fdatasync may leave any subset of them on the disk, in any order, so the
last segment may hold valid records, then a page that never arrived (zeros, from a record boundary or
inside a record), then later pages of the same batch, then padding. That batch was never acknowledged
(acks follow a completed fdatasync). So, in the LAST segment only, the records end at an all-zero header
at a record boundary or at a record failing its CRC that holds a zeroed sector (the exact shapes are in
wal_codec); non-zero bytes after that end are a torn tail: logged (file, offset, bytes discarded), copied
to `<segment>.<offset>.broken` (as etcd keeps a copy when it repairs its WAL) and overwritten with zeros,
keeping the file's size, so the next append lands right after the valid records.
In an earlier segment (fully synced before the next one was created) the same shapes are corruption. Any
other damage (a bit flip) stops the start with an error naming the file and offset.

A full disk is not fatal: when ENOSPC/EDQUOT hits `sync` or `cut`, the segment is cut back to its last
durable whole record (truncate to `segment_bytes` + fdatasync; its padding goes too and is written again
by a later sync), the unsynced records are dropped and DiskFull is raised; the Wal stays usable and a
later sync succeeds once there is space. Failing to add zero room is not even that: the records then
grow the file as they come. Any other OSError (EIO above all: after a failed fsync the state of the page
cache is unknown) propagates untouched and the caller must stop.
All writing OS calls go through a DiskIo (storage/errors.py) so tests can inject faults.
"""

from __future__ import annotations

import itertools
import logging
import os
from pathlib import Path
from typing import NoReturn

from . import wal_codec
from .errors import DEFAULT_IO, DiskFull, DiskIo, is_disk_full
from .snap import fsync_dir, write_all

log = logging.getLogger("pyetcd.wal")
SEGMENT_BYTES_MAX = 64 * 1024 * 1024  # counts records (`segment_bytes`), not padding
# Zero room added at a time. Writing and syncing 1 MiB of zeros costs ~0.2 + ~0.6 ms here (4 MiB: ~1 +
# ~2 ms, a stall of the loop), once per MiB of records.
ZERO_CHUNK = 1024 * 1024
ROOM_FREE_SHARE = 64  # room takes at most 1/64 of the free space: a nearly full disk works as without
BLOCK_BYTES = 4096  # the room ends on a file system block boundary


class WalCorrupt(Exception):
    pass


def _segment_name(seq: int, first_index: int) -> str:
    return f"{seq:016x}-{first_index:016x}.wal"


def _parse_name(path: Path) -> tuple[int, int] | None:
    try:
        seq_hex, first_hex = path.stem.split("-")
        return int(seq_hex, 16), int(first_hex, 16)
    except ValueError:
        return None


class Wal:
    def __init__(self, path: Path, io: DiskIo = DEFAULT_IO) -> None:
        self.path = path
        self.io = io
        self.segments: list[tuple[int, int, Path]] = []  # (seq, first_index, path), oldest first
        self._fd = -1
        self._buffer = bytearray()
        self.segment_bytes = 0  # durable record bytes in the current (last) segment: its logical end
        self.room_end = 0  # the current segment's size: records, then zeros from segment_bytes on
        self.fsyncs = 0  # syncs that made records durable (a failed or rolled-back sync does not count)

    @classmethod
    def open(cls, path: Path, first_index: int, io: DiskIo = DEFAULT_IO) -> tuple[Wal, list[wal_codec.Record]]:
        """Open (or create) the WAL and return every record in it, oldest first.

        Creating the first segment on a full disk raises DiskFull (no file is left behind)."""
        path.mkdir(parents=True, exist_ok=True)
        wal = cls(path, io)
        found = sorted((parsed[0], parsed[1], p) for p in path.glob("*.wal") if (parsed := _parse_name(p)))
        records: list[wal_codec.Record] = []
        valid = size = torn_end = 0
        for i, (seq, first, seg) in enumerate(found):
            raw = seg.read_bytes()
            try:
                decoded = wal_codec.decode(raw)
            except wal_codec.CorruptRecord as e:
                raise WalCorrupt(f"{seg}: corrupt record at offset {e.offset} ({e.reason}); refusing to start") from e
            valid, size, torn_end = decoded.valid_bytes, len(raw), decoded.valid_bytes
            if decoded.torn:
                torn_end = wal_codec.data_end(raw, valid)
                if i < len(found) - 1:
                    raise WalCorrupt(f"{seg}: damaged at offset {valid} ({torn_end - valid} bytes of data "
                                     "from there) but it is not the last segment, which was synced whole; "
                                     "refusing to start")
                kept = wal._keep_discarded(seg, valid, raw[valid:torn_end])
                log.warning("WAL %s: torn last record at offset %d: discarding the %d bytes after it (an "
                            "unacknowledged batch cut by a crash), zeroing them; %s", seg, valid,
                            torn_end - valid, f"a copy is kept in {kept}" if kept else "no copy could be kept")
            records.extend(decoded.records)
            wal.segments.append((seq, first, seg))
        if wal.segments:
            wal._open_last(valid, size, torn_end)
        else:
            wal._new_segment(0, first_index)
        return wal, records

    def _keep_discarded(self, seg: Path, offset: int, data: bytes) -> Path | None:
        """Save the bytes about to be zeroed to `<segment>.<offset>.broken` (durably), as etcd keeps a
        `.broken` copy when it repairs its WAL: if they were damage in synced records rather than a torn
        batch (a bit flip beside a zeroed sector reads the same), an operator can still get them back.
        Nothing reads these files; a failure to write one is logged and the start goes on."""
        copy = seg.with_name(f"{seg.name}.{offset:x}.broken")
        fd = -1
        try:
            fd = self.io.open(copy, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            write_all(self.io, fd, data)
            self.io.fsync(fd)
            fsync_dir(self.path, self.io)
        except OSError as e:
            log.error("WAL %s: could not keep a copy of the %d torn bytes at offset %d in %s: %s", seg, len(data),
                      offset, copy, e)
            return None
        finally:
            if fd >= 0:
                os.close(fd)
        return copy

    def _open_last(self, valid: int, size: int, torn_end: int) -> None:
        """Go on writing the last segment at `valid`, once its torn bytes up to `torn_end` are zeros."""
        fd = os.open(self.segments[-1][2], os.O_WRONLY)
        try:
            if torn_end > valid:
                self._zero_torn(fd, valid, torn_end)
        except OSError:
            os.close(fd)
            raise
        self._fd, self.segment_bytes, self.room_end = fd, valid, size

    def _zero_torn(self, fd: int, start: int, end: int) -> None:
        """Overwrite the torn tail at [start, end) with zeros, keeping the file's size and padding.
        Back to front (from the payload's first sector boundary on, the rest of the payload, the header
        after a sector boundary inside it, the header before it), each piece durable before the next:
        whichever of a piece's pages a crash lets through, the tail still decodes as torn (zeros only
        add zeroed sectors; the record's header goes last, never leaving data behind a header that is
        neither whole nor cut at a sector)."""
        payload = start + wal_codec.HEADER_BYTES
        cuts = sorted({start, wal_codec.next_sector(start), payload, wal_codec.next_sector(payload), end})
        cuts = [c for c in cuts if start <= c <= end]
        for lo, hi in reversed(list(itertools.pairwise(cuts))):
            self._write_at(fd, lo, bytes(hi - lo))
            self.io.fdatasync(fd)

    def _write_at(self, fd: int, offset: int, data: bytes | bytearray) -> None:
        # lseek + write (not O_APPEND: the file is longer than its records); lseek writes nothing
        os.lseek(fd, offset, os.SEEK_SET)
        write_all(self.io, fd, data)

    def _new_segment(self, seq: int, first_index: int) -> None:
        """Create and switch to a new segment. On a full disk: remove what was created, keep writing to
        the current segment, raise DiskFull."""
        seg = self.path / _segment_name(seq, first_index)
        try:
            fd = self.io.open(seg, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except OSError as e:
            if is_disk_full(e):
                raise DiskFull(seg, "creating a WAL segment", e.errno) from e
            raise
        try:
            self.io.fsync(fd)
            fsync_dir(self.path, self.io)
        except OSError as e:
            os.close(fd)
            if not is_disk_full(e):
                raise
            self._remove_failed_segment(seg, e)
        if self._fd >= 0:
            os.close(self._fd)
        self._fd = fd
        self.segments.append((seq, first_index, seg))
        self.segment_bytes = self.room_end = 0

    def _remove_failed_segment(self, seg: Path, err: OSError) -> NoReturn:
        # A stray empty segment would become "the last segment" on the next open while newer entries
        # keep going to the current one, so it must go before we report a recoverable DiskFull.
        try:
            seg.unlink(missing_ok=True)
            fsync_dir(self.path, self.io)
        except OSError as cleanup:
            log.error("WAL %s: could not remove the segment that failed with %s: %s", seg, err, cleanup)
            raise err from cleanup
        raise DiskFull(seg, "creating a WAL segment", err.errno) from err

    def append(self, record: bytes) -> None:
        self._buffer += record

    def discard(self) -> None:
        """Drop every record appended since the last sync (as a failed sync does)."""
        self._buffer = bytearray()

    @property
    def pending_bytes(self) -> int:
        return len(self._buffer)

    def sync(self) -> None:
        """Write everything appended since the last sync and make it durable (one fdatasync).

        The records go at `segment_bytes`, over zeros written earlier when they fit; when they do not,
        more zero room is written after them before the fdatasync (see `_add_room`).
        Raises DiskFull when the write or the fdatasync reports ENOSPC/EDQUOT (also after a short
        write): the segment has then been truncated back to `segment_bytes` (its last whole durable
        record) and fdatasynced, and every record appended since the last successful sync is discarded:
        none of them may be acknowledged; append again whatever is still needed and sync later.
        If that truncation itself fails, the original error is raised as a plain OSError (stop).
        Any other OSError (EIO, ...) propagates with nothing cleaned up: the caller must stop."""
        if not self._buffer:
            return
        end = self.segment_bytes + len(self._buffer)
        try:
            # the records first: a fault or a full disk hits them, not the zeros after them
            self._write_at(self._fd, self.segment_bytes, self._buffer)
            if end > self.room_end:
                self._add_room(end)
            self.io.fdatasync(self._fd)
        except OSError as e:
            if not is_disk_full(e):
                raise
            self._roll_back(e)
        self.segment_bytes = end
        self._buffer = bytearray()
        self.fsyncs += 1

    def _add_room(self, end: int) -> None:
        """Write zeros after the records that now reach `end` (the file position), so that the next
        syncs overwrite blocks that exist. A full disk only means no room: later records grow the file
        as they come (and a full disk hits them in sync, where it is handled)."""
        self.room_end = end
        target = self._room_target(end)
        if target <= end:
            return
        try:
            write_all(self.io, self._fd, bytes(target - end))
        except OSError as e:
            if not is_disk_full(e):
                raise
            self.room_end = os.fstat(self._fd).st_size  # the zeros that were written stay: room too
            log.debug("WAL %s: no room for %d bytes of zeros (%s)", self.segments[-1][2], target - end, e)
            return
        self.room_end = target

    def _room_target(self, end: int) -> int:
        """Where the zero room after `end` should end."""
        try:
            st = os.statvfs(self.path)
            free = st.f_bavail * st.f_frsize
        except OSError:
            free = 0
        chunk = min(ZERO_CHUNK, free // ROOM_FREE_SHARE)
        return (end + chunk) // BLOCK_BYTES * BLOCK_BYTES

    def _roll_back(self, err: OSError) -> NoReturn:
        """Truncate the segment back to `segment_bytes` (its padding goes too: the disk is full anyway,
        and the next sync writes room again) so that a reopen finds exactly the durable records."""
        seg = self.segments[-1][2]
        try:
            self.io.ftruncate(self._fd, self.segment_bytes)
            self.room_end = self.segment_bytes
            self.io.fdatasync(self._fd)
        except OSError as cleanup:
            log.error("WAL %s: disk full (%s) and truncating back to %d bytes failed: %s",
                      seg, err, self.segment_bytes, cleanup)
            raise err from cleanup
        self._buffer = bytearray()
        raise DiskFull(seg, "syncing the WAL", err.errno) from err

    def cut(self, next_index: int) -> None:
        """Start a new segment whose first entry will be next_index (after syncing the current one and
        giving back its zero padding).

        Raises DiskFull (from the sync, see there, or from creating the segment): then no new segment
        exists and the WAL keeps writing to the current one."""
        self.sync()
        self._trim_room()
        self._new_segment(self.segments[-1][0] + 1, next_index)

    def _trim_room(self) -> None:
        """Give the current segment's padding back to the file system (not synced: a crash may leave it,
        and padding is a clean end). Failing for a full disk is harmless: the padding stays."""
        if self.room_end <= self.segment_bytes:
            return
        try:
            self.io.ftruncate(self._fd, self.segment_bytes)
        except OSError as e:
            if not is_disk_full(e):
                raise
            return
        self.room_end = self.segment_bytes

    def release_before(self, index: int, keep: int = 1) -> int:
        """Delete segments holding only entries below `index` (covered by a snapshot), oldest first, while
        more than `keep` segments remain (--max-wals; 0: delete none). The last segment always stays."""
        removed = 0
        while len(self.segments) > max(keep, 1) and keep > 0 and self.segments[1][1] <= index:
            _, _, seg = self.segments.pop(0)
            seg.unlink()
            removed += 1
        if removed:
            fsync_dir(self.path, self.io)
        return removed

    def close(self) -> None:
        """Sync what is pending (which may raise, DiskFull included) and close the segment either way."""
        if self._fd >= 0:
            try:
                self.sync()
            finally:
                os.close(self._fd)
                self._fd = -1
