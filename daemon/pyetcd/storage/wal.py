"""The write-ahead log on disk: numbered segment files of wal_codec records.

Segments are `<seq>-<first_index>.wal` (16 hex digits each). Appends are buffered in memory and reach
the disk in one write + one fdatasync per loop turn (`sync`), which is the group commit: nothing is
acknowledged before the sync that covers it returns. A snapshot cuts a new segment so that whole older
segments can be released. On open, a torn tail of the last segment is truncated (and logged); any other
damage stops the start with an error naming the file and offset.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from . import wal_codec
from .snap import fsync_dir

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
    def __init__(self, path: Path) -> None:
        self.path = path
        self.segments: list[tuple[int, int, Path]] = []  # (seq, first_index, path), oldest first
        self._fd = -1
        self._buffer = bytearray()
        self.segment_bytes = 0
        self.fsyncs = 0

    @classmethod
    def open(cls, path: Path, first_index: int) -> tuple[Wal, list[wal_codec.Record]]:
        """Open (or create) the WAL and return every record in it, oldest first."""
        path.mkdir(parents=True, exist_ok=True)
        wal = cls(path)
        found = sorted((parsed[0], parsed[1], p) for p in path.glob("*.wal") if (parsed := _parse_name(p)))
        records: list[wal_codec.Record] = []
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
                os.truncate(seg, decoded.valid_bytes)
            records.extend(decoded.records)
            wal.segments.append((seq, first, seg))
        if wal.segments:
            seg = wal.segments[-1][2]
            wal._fd = os.open(seg, os.O_WRONLY | os.O_APPEND)
            wal.segment_bytes = os.fstat(wal._fd).st_size
        else:
            wal._new_segment(0, first_index)
        return wal, records

    def _new_segment(self, seq: int, first_index: int) -> None:
        seg = self.path / _segment_name(seq, first_index)
        fd = os.open(seg, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL, 0o600)
        os.fsync(fd)
        fsync_dir(self.path)
        if self._fd >= 0:
            os.close(self._fd)
        self._fd = fd
        self.segments.append((seq, first_index, seg))
        self.segment_bytes = 0

    def append(self, record: bytes) -> None:
        self._buffer += record

    @property
    def pending_bytes(self) -> int:
        return len(self._buffer)

    def sync(self) -> None:
        """Write everything appended since the last sync and make it durable (one fdatasync)."""
        if not self._buffer:
            return
        data = memoryview(self._buffer)
        while data:
            written = os.write(self._fd, data)
            data = data[written:]
        self.segment_bytes += len(self._buffer)
        self._buffer = bytearray()
        os.fdatasync(self._fd)
        self.fsyncs += 1

    def cut(self, next_index: int) -> None:
        """Start a new segment whose first entry will be next_index (after syncing the current one)."""
        self.sync()
        self._new_segment(self.segments[-1][0] + 1, next_index)

    def release_before(self, index: int) -> int:
        """Delete segments holding only entries below `index` (covered by a snapshot)."""
        removed = 0
        while len(self.segments) > 1 and self.segments[1][1] <= index:
            _, _, seg = self.segments.pop(0)
            seg.unlink()
            removed += 1
        if removed:
            fsync_dir(self.path)
        return removed

    def close(self) -> None:
        if self._fd >= 0:
            self.sync()
            os.close(self._fd)
            self._fd = -1
