"""Checks of the data dir (and --wal-dir) made before pyetcd binds a port or writes a byte: each failure is a
StartupError whose one-line message names the directory and what is wrong with it.

* the data dir (or --wal-dir) exists but is not a directory, or is not writable;
* it does not exist and its parent does not exist, is not a directory or is not writable (pyetcd then
  creates only the data dir itself, never missing parents: a mistyped path stops the start instead);
* it holds etcd's own files: etcd 3.x keeps its keys in `member/snap/db` (a bbolt database, which pyetcd
  never writes) and its WAL segments, named as pyetcd names its own, begin with a frame pyetcd's codec does
  not produce (an 8-byte little-endian length, whose top byte may carry etcd's padding flag, then a
  protobuf walpb.Record: field 1, its type, comes first). pyetcd's own segments begin with a record
  header whose third word is the CRC of the first two (storage/wal_codec.py);
* the data dir's member/wal holds segments while --wal-dir points elsewhere (they would be ignored).

`hold()` then takes the data dir (and --wal-dir) for this process: an exclusive flock on the directory
itself, held until the process exits (no lock file is written). A second pyetcd given the same directory
stops at start, naming the directory and the holder's pid, instead of appending to the same WAL (etcd 3.4
waits on its WAL's lock without a word). The snapshot writer closes its inherited copy (it closes every
descriptor), so a member killed with -9 frees its data dir at once.
"""

from __future__ import annotations

import fcntl
import os
import struct
import zlib
from pathlib import Path

from .wal_codec import HEADER

BBOLT_MAGIC = 0xED0CDAED  # bbolt's meta page: the magic follows the 16-byte page header


class StartupError(Exception):
    """pyetcd cannot start; str() is the one-line reason (what, and where)."""


def check(data_dir: Path, wal_dir: Path | None = None) -> None:
    """StartupError unless pyetcd can use `data_dir` (and `wal_dir`) as its own. Reads only."""
    _usable(data_dir, "data dir")
    for sub in ("member", "member/wal", "member/snap", "proxy"):
        if (data_dir / sub).exists() or (data_dir / sub).is_symlink():
            _usable(data_dir / sub, "data dir")
    if wal_dir is not None:
        _usable(wal_dir, "--wal-dir")
    evidence = etcd_evidence(data_dir, wal_dir)
    if evidence:
        where = wal_dir if wal_dir is not None and evidence.startswith(str(wal_dir)) else data_dir
        raise StartupError(f"{where} is an etcd data dir, not pyetcd's ({evidence}): pyetcd cannot read etcd's "
                           "files; give pyetcd a data dir of its own")
    default_wal = data_dir / "member" / "wal"
    if wal_dir is not None and _segments(default_wal) and not _same(default_wal, wal_dir):
        raise StartupError(f"{default_wal} holds WAL files but --wal-dir is {wal_dir}: move them there first "
                           "(or start without --wal-dir)")


def hold(path: Path, what: str) -> int:
    """Lock directory `path` (which exists) for this process; returns the descriptor, to be kept open.
    StartupError if another process holds it."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _flock_holder(os.fstat(fd))
        os.close(fd)
        by = f"another process (pid {holder})" if holder else "another process"
        raise StartupError(f"{what} {path} is in use by {by}: one pyetcd per data dir; stop it first, or give "
                           "this one a data dir of its own") from None
    return fd


def _flock_holder(st: os.stat_result) -> int:
    """The pid holding a flock on the file `st` describes, from /proc/locks (0 if unknown)."""
    want = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    try:
        with open("/proc/locks") as f:
            for line in f:
                fields = line.split()  # id: FLOCK ADVISORY WRITE pid maj:min:inode start end
                if len(fields) >= 6 and fields[1] == "FLOCK" and fields[5] == want and fields[4].isdigit():
                    return int(fields[4])
    except OSError:
        pass
    return 0


def etcd_evidence(data_dir: Path, wal_dir: Path | None = None) -> str:
    """Why `data_dir` (or `wal_dir`) looks written by etcd itself; "" if it does not."""
    db = data_dir / "member" / "snap" / "db"
    if db.is_file():
        head = _head(db, 20)
        if len(head) == 20 and struct.unpack_from("<I", head, 16)[0] == BBOLT_MAGIC:
            return f"{db} is etcd's bbolt database"
        return f"{db} is etcd's database file"
    for wal in (wal_dir if wal_dir is not None else data_dir / "member" / "wal",):
        segs = _segments(wal)
        if segs and is_etcd_wal(_head(segs[0], 16)):
            return f"{segs[0]} is in etcd's WAL format"
    return ""


def is_etcd_wal(head: bytes) -> bool:
    """Whether a WAL segment starting with `head` (16 bytes) is etcd's: not a pyetcd record header, but an
    etcd frame (length, padding flag in the top byte) followed by a protobuf record's type field."""
    if len(head) < 9:
        return False
    if len(head) >= HEADER.size:
        length, _, header_crc = HEADER.unpack_from(head)
        if header_crc == zlib.crc32(head[:8]) and length > 0:
            return False  # pyetcd's
    frame = int.from_bytes(head[:8], "little")
    length, flags = frame & ((1 << 56) - 1), frame >> 56
    padded_ok = flags == 0 or (flags & 0x80 and 0 < flags & 0x7F < 8)
    return bool(padded_ok) and 0 < length < (1 << 30) and head[8] == 0x08


def _usable(path: Path, what: str) -> None:
    if path.exists():
        if not path.is_dir():
            raise StartupError(f"{what} {path} is not a directory")
        if not os.access(path, os.W_OK | os.X_OK):
            raise StartupError(f"{what} {path} is not writable{_why_not_writable(path)}")
        return
    if path.is_symlink():
        raise StartupError(f"{what} {path} is a dangling symbolic link")
    parent = path.absolute().parent
    if not parent.exists():
        raise StartupError(f"cannot create {what} {path}: {parent} does not exist")
    if not parent.is_dir():
        raise StartupError(f"cannot create {what} {path}: {parent} is not a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise StartupError(f"cannot create {what} {path}: {parent} is not writable{_why_not_writable(parent)}")


def _why_not_writable(path: Path) -> str:
    try:
        if os.statvfs(path).f_flag & os.ST_RDONLY:
            return " (read-only file system)"
    except OSError:
        pass
    return f" by uid {os.geteuid()}"


def _segments(wal: Path) -> list[Path]:
    try:
        return sorted(p for p in wal.glob("*.wal") if p.is_file())
    except OSError:
        return []


def _head(path: Path, n: int) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read(n)
    except OSError:
        return b""


def _same(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return False
