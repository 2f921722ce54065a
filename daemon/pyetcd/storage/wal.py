"""The write-ahead log on disk: numbered segment files of wal_codec records.

Segments are `<seq>-<first_index>.wal` (16 hex digits each). Appends are buffered in memory and reach
the disk in one write + one fdatasync per loop turn (`sync`), which is the group commit: nothing is
acknowledged before the sync that covers it returns. A snapshot cuts a new segment so that whole older
segments can be released. On open, a torn tail of the last segment is truncated (and logged); any other
damage stops the start with an error naming the file and offset.

A full disk is not fatal: when ENOSPC/EDQUOT hits `sync` or `cut`, the segment is put back to its last
durable whole record (truncate + fdatasync), the unsynced records are dropped and DiskFull is raised; the
Wal stays usable and a later sync succeeds once there is space. Any other OSError (EIO above all: after a
failed fsync the state of the page cache is unknown) propagates untouched and the caller must stop.
All writing OS calls go through a DiskIo (storage/errors.py) so tests can inject faults.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import NoReturn

from . import wal_codec
from .errors import DEFAULT_IO, DiskFull, DiskIo, is_disk_full
from .snap import fsync_dir, write_all

log = logging.getLogger("pyetcd.wal")
SEGMENT_BYTES_MAX = 64 * 1024 * 1024


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
        self.segment_bytes = 0  # durable bytes in the current (last) segment
        self.fsyncs = 0  # syncs that made records durable (a failed or rolled-back sync does not count)

    @classmethod
    def open(cls, path: Path, first_index: int, io: DiskIo = DEFAULT_IO) -> tuple[Wal, list[wal_codec.Record]]:
        """Open (or create) the WAL and return every record in it, oldest first.

        Creating the first segment on a full disk raises DiskFull (no file is left behind)."""
        path.mkdir(parents=True, exist_ok=True)
        wal = cls(path, io)
        found = sorted((parsed[0], parsed[1], p) for p in path.glob("*.wal") if (parsed := _parse_name(p)))
        records: list[wal_codec.Record] = []
        truncate_to: int | None = None
        for i, (seq, first, seg) in enumerate(found):
            last = i == len(found) - 1
            raw = seg.read_bytes()
            try:
                decoded = wal_codec.decode(raw)
            except wal_codec.CorruptRecord as e:
                raise WalCorrupt(f"{seg}: corrupt record at offset {e.offset} ({e.reason}); refusing to start") from e
            if decoded.torn:
                if not last:
                    raise WalCorrupt(f"{seg}: truncated at offset {decoded.valid_bytes} but it is not the last "
                                     "segment; refusing to start")
                log.warning("WAL %s: torn last record at offset %d (%d bytes), truncating it",
                            seg, decoded.valid_bytes, len(raw) - decoded.valid_bytes)
                truncate_to = decoded.valid_bytes
            records.extend(decoded.records)
            wal.segments.append((seq, first, seg))
        if wal.segments:
            seg = wal.segments[-1][2]
            wal._fd = os.open(seg, os.O_WRONLY | os.O_APPEND)
            try:
                if truncate_to is not None:
                    io.ftruncate(wal._fd, truncate_to)
                wal.segment_bytes = os.fstat(wal._fd).st_size
            except OSError:
                os.close(wal._fd)
                raise
        else:
            wal._new_segment(0, first_index)
        return wal, records

    def _new_segment(self, seq: int, first_index: int) -> None:
        """Create and switch to a new segment. On a full disk: remove what was created, keep writing to
        the current segment, raise DiskFull."""
        seg = self.path / _segment_name(seq, first_index)
        try:
            fd = self.io.open(seg, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL, 0o600)
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
        self.segment_bytes = 0

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

        Raises DiskFull when the write or the fdatasync reports ENOSPC/EDQUOT (also after a short
        write): the segment has then been truncated back to `segment_bytes` (its last whole durable
        record) and fdatasynced, and every record appended since the last successful sync is discarded:
        none of them may be acknowledged; append again whatever is still needed and sync later.
        If that truncation itself fails, the original error is raised as a plain OSError (stop).
        Any other OSError (EIO, ...) propagates with nothing cleaned up: the caller must stop."""
        if not self._buffer:
            return
        try:
            write_all(self.io, self._fd, self._buffer)
            self.io.fdatasync(self._fd)
        except OSError as e:
            if not is_disk_full(e):
                raise
            self._roll_back(e)
        self.segment_bytes += len(self._buffer)
        self._buffer = bytearray()
        self.fsyncs += 1

    def _roll_back(self, err: OSError) -> NoReturn:
        seg = self.segments[-1][2]
        try:
            self.io.ftruncate(self._fd, self.segment_bytes)
            self.io.fdatasync(self._fd)
        except OSError as cleanup:
            log.error("WAL %s: disk full (%s) and truncating back to %d bytes failed: %s",
                      seg, err, self.segment_bytes, cleanup)
            raise err from cleanup
        self._buffer = bytearray()
        raise DiskFull(seg, "syncing the WAL", err.errno) from err

    def cut(self, next_index: int) -> None:
        """Start a new segment whose first entry will be next_index (after syncing the current one).

        Raises DiskFull (from the sync, see there, or from creating the segment): then no new segment
        exists and the WAL keeps writing to the current one."""
        self.sync()
        self._new_segment(self.segments[-1][0] + 1, next_index)

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
