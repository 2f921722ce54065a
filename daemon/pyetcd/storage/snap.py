"""Snapshot files: `<term>-<index>.snap` (16 hex digits each) in the snap directory.

Written atomically: temp file, fsync, rename, fsync the directory. A file is magic + u32 crc + u64 len +
payload; loading picks the newest file and refuses (naming it) one whose checksum fails. Saving keeps the
newest `keep` files (--max-snapshots, etcd's default 5; 0 keeps them all). A full disk
while saving removes the temp file and raises DiskFull; the older snapshots are untouched.

`save` may run in a forked child (runtime/snapshotter.py): it only opens, writes, fsyncs, renames and
removes files by path, and logs nothing unless removing its temp file fails. `source()` gives the
parent a handle on a saved file to read its payload back when a follower needs it (SnapFileSource: the
file stays readable through its open descriptor even once newer snapshots have pruned it).
"""

from __future__ import annotations

import logging
import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

from .errors import DEFAULT_IO, DiskFull, DiskIo, is_disk_full

MAGIC = b"PYETCDS1"
_HEAD = struct.Struct("<IQ")
SNAPSHOTS_KEPT = 5  # etcd's --max-snapshots default
log = logging.getLogger("pyetcd.snap")


class SnapshotCorrupt(Exception):
    pass


@dataclass(frozen=True, slots=True)
class Snapshot:
    term: int
    index: int
    data: bytes


def fsync_dir(path: Path, io: DiskIo = DEFAULT_IO) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        io.fsync(fd)
    finally:
        os.close(fd)


def write_all(io: DiskIo, fd: int, data: bytes | bytearray | memoryview) -> None:
    """os.write until all of data is written (a write may be short, e.g. when the disk fills up)."""
    view = memoryview(data)
    while view:
        view = view[io.write(fd, view):]


class SnapDir:
    def __init__(self, path: Path, io: DiskIo = DEFAULT_IO, keep: int = SNAPSHOTS_KEPT) -> None:
        self.path = path
        self.io = io
        self.keep = keep  # newest files kept by save (0: all)
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
        """Write the snapshot durably and drop all but the newest `keep` (0: none dropped).

        Raises DiskFull if the disk is full while creating, writing, fsyncing or renaming the temp file;
        the temp file is removed first and nothing else has changed. (If only the directory fsync after
        the rename hits a full disk, DiskFull is raised too; the new file then is complete and may or may
        not survive a crash, which is safe either way since the WAL was not released for it.) Any other
        OSError propagates (the temp file is removed if it can be)."""
        final = self.path / f"{snap.term:016x}-{snap.index:016x}.snap"
        tmp = self.temp_path(snap.term, snap.index)
        try:
            fd = self.io.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        except OSError as e:
            if is_disk_full(e):
                raise DiskFull(tmp, "creating a snapshot file", e.errno) from e
            raise
        try:
            try:
                write_all(self.io, fd, MAGIC + _HEAD.pack(zlib.crc32(snap.data), len(snap.data)) + snap.data)
                self.io.fsync(fd)
            finally:
                os.close(fd)
            self.io.rename(tmp, final)
        except OSError as e:
            self._discard(tmp, e)
        try:
            fsync_dir(self.path, self.io)
        except OSError as e:
            if is_disk_full(e):
                raise DiskFull(self.path, "fsyncing the snapshot directory", e.errno) from e
            raise
        if self.keep > 0:
            for _, _, old in self._files()[:-self.keep]:
                old.unlink(missing_ok=True)  # a forked writer and the member may both be pruning
        return final

    def _discard(self, tmp: Path, err: OSError) -> NoReturn:
        """Remove the temp file after `err`; raise DiskFull (if err is one) or err itself."""
        try:
            tmp.unlink(missing_ok=True)
        except OSError as cleanup:
            log.error("could not remove unfinished snapshot %s: %s", tmp, cleanup)
            raise err from cleanup  # plain OSError: the caller stops; load_newest removes it at start
        if is_disk_full(err):
            raise DiskFull(tmp, "writing a snapshot", err.errno) from err
        raise err

    def temp_path(self, term: int, index: int) -> Path:
        """Where `save` writes the snapshot (term, index) before renaming it."""
        return self.path / f"{term:016x}-{index:016x}.snap.tmp"

    def source(self, term: int, index: int) -> SnapFileSource:
        """The saved snapshot (term, index), to be read back later (raises OSError if it is not there)."""
        return SnapFileSource(self.path / f"{term:016x}-{index:016x}.snap")

    def load_newest(self) -> Snapshot | None:
        for tmp in self.path.glob("*.snap.tmp"):
            log.warning("removing unfinished snapshot %s", tmp)
            tmp.unlink()
        files = self._files()
        if not files:
            return None
        index, term, path = files[-1]
        return Snapshot(term, index, _payload(path, path.read_bytes()))


def _payload(path: Path, raw: bytes) -> bytes:
    """A snapshot file's payload, checked (SnapshotCorrupt names the file)."""
    if len(raw) < len(MAGIC) + _HEAD.size or not raw.startswith(MAGIC):
        raise SnapshotCorrupt(f"{path}: not a pyetcd snapshot")
    crc, length = _HEAD.unpack_from(raw, len(MAGIC))
    data = raw[len(MAGIC) + _HEAD.size:]
    if len(data) != length or zlib.crc32(data) != crc:
        raise SnapshotCorrupt(f"{path}: checksum mismatch (length {len(data)} of {length})")
    return data


class SnapFileSource:
    """A saved snapshot file's payload, read (and checked) on demand: raft/types.py's SnapshotSource. The
    file is opened now and read through that descriptor, so pruning it later does not lose it; the
    descriptor closes with the last reference (the Raft log's, or a MsgSnap's still being sent)."""

    __slots__ = ("path", "_fd")

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)

    def read(self) -> bytes:
        size = os.fstat(self._fd).st_size
        parts = [os.pread(self._fd, size, 0)]
        got = len(parts[0])
        while got < size:  # a short read (rare): keep reading
            chunk = os.pread(self._fd, size - got, got)
            if not chunk:
                break
            parts.append(chunk)
            got += len(chunk)
        return _payload(self.path, parts[0] if len(parts) == 1 else b"".join(parts))

    def __del__(self) -> None:
        fd, self._fd = getattr(self, "_fd", -1), -1
        if fd >= 0:
            os.close(fd)

    def __repr__(self) -> str:
        return f"SnapFileSource({str(self.path)!r})"
