"""Snapshot files: `<term>-<index>.snap` (16 hex digits each) in the snap directory.

Written atomically: temp file, fsync, rename, fsync the directory. A file is magic + u32 crc + u64 len +
payload; loading picks the newest file and refuses (naming it) one whose checksum fails.
"""

from __future__ import annotations

import logging
import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

MAGIC = b"PYETCDS1"
_HEAD = struct.Struct("<IQ")
SNAPSHOTS_KEPT = 3
log = logging.getLogger("pyetcd.snap")


class SnapshotCorrupt(Exception):
    pass


@dataclass(frozen=True, slots=True)
class Snapshot:
    term: int
    index: int
    data: bytes


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class SnapDir:
    def __init__(self, path: Path) -> None:
        self.path = path
        path.mkdir(parents=True, exist_ok=True)

    def _files(self) -> list[tuple[int, int, Path]]:
        out = []
        for p in self.path.glob("*.snap"):
            try:
                term_hex, index_hex = p.stem.split("-")
                out.append((int(index_hex, 16), int(term_hex, 16), p))
            except ValueError:
                continue
        return sorted(out)

    def save(self, snap: Snapshot) -> Path:
        final = self.path / f"{snap.term:016x}-{snap.index:016x}.snap"
        tmp = final.with_suffix(".snap.tmp")
        with open(tmp, "wb") as f:
            f.write(MAGIC + _HEAD.pack(zlib.crc32(snap.data), len(snap.data)) + snap.data)
            f.flush()
            os.fsync(f.fileno())
        os.rename(tmp, final)
        fsync_dir(self.path)
        for _, _, old in self._files()[:-SNAPSHOTS_KEPT]:
            old.unlink()
        return final

    def load_newest(self) -> Snapshot | None:
        for tmp in self.path.glob("*.snap.tmp"):
            log.warning("removing unfinished snapshot %s", tmp)
            tmp.unlink()
        files = self._files()
        if not files:
            return None
        index, term, path = files[-1]
        raw = path.read_bytes()
        if len(raw) < len(MAGIC) + _HEAD.size or not raw.startswith(MAGIC):
            raise SnapshotCorrupt(f"{path}: not a pyetcd snapshot")
        crc, length = _HEAD.unpack_from(raw, len(MAGIC))
        data = raw[len(MAGIC) + _HEAD.size:]
        if len(data) != length or zlib.crc32(data) != crc:
            raise SnapshotCorrupt(f"{path}: checksum mismatch (length {len(data)} of {length})")
        return Snapshot(term, index, data)
