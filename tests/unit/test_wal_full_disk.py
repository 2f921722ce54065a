"""A full disk loses nothing: the WAL and snapshot files on a real, small tmpfs that fills up.

A sync/cut/save that hits ENOSPC raises DiskFull after putting the files back to their last durable
state (no torn record for the next open to zero or refuse), the objects stay usable, and writes
resume once space is freed. The WAL's zero room (wal.py) is space the segment already holds, so records
that fit in it are written even on a full disk; the batches here that must fail are larger (BIG), and a
failed sync gives the room back (the segment is truncated to its durable records). Faults a tmpfs cannot produce (EIO, ENOSPC from fdatasync, EDQUOT) are
injected through the DiskIo seam (FaultIo) and the PYETCD_FAULT_FSYNC_EIO_AFTER test fault point.
"""

from __future__ import annotations

import errno
import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from pyetcd.raft.types import Entry, EntryType, HardState
from pyetcd.storage import wal_codec
from pyetcd.storage.errors import (
    DEFAULT_IO,
    FAULT_FSYNC_EIO_AFTER_ENV,
    DiskFull,
    DiskIo,
    FaultIo,
    io_from_environment,
)
from pyetcd.storage.files import ROOM_PROBE, FileStorage
from pyetcd.storage.snap import SnapDir, Snapshot
from pyetcd.storage.wal import Wal

from tests.support.tmpfs import MountTmpfs, fill, free_bytes, mount_tmpfs

PAGE = os.sysconf("SC_PAGE_SIZE")
BIG = 128 * 1024  # more than a segment's zero room on a 1m tmpfs (at most 1/64 of the free space)
__all__ = ["mount_tmpfs"]  # the fixture (tests/support/tmpfs.py), used by name
_free = free_bytes
_fill = fill


def _append(wal: Wal, first: int, last: int, size: int = 0) -> None:
    for i in range(first, last + 1):
        wal.append(wal_codec.encode_entry(1, i, (b"data-%d-" % i).ljust(size, b"x")))


def _indexes(records: list[wal_codec.Record]) -> list[int]:
    return [r.entry()[1] for r in records if r.rtype == wal_codec.ENTRY]


def _reopen(path: Path, caplog: pytest.LogCaptureFixture) -> list[int]:
    """The records a restart would see; fails if the restart finds (and truncates) a torn tail."""
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="pyetcd.wal"):
        wal, records = Wal.open(path, 1)
    wal.close()
    assert not [r.getMessage() for r in caplog.records if r.name == "pyetcd.wal"]
    return _indexes(records)


class RecordingIo(DiskIo):
    """The real calls, remembering what each write was asked for and what it did."""

    def __init__(self) -> None:
        self.writes: list[tuple[int, int | str]] = []  # (bytes asked, bytes written or errno name)

    def write(self, fd: int, data: bytes | memoryview) -> int:
        try:
            n = os.write(fd, data)
        except OSError as e:
            self.writes.append((len(data), errno.errorcode[e.errno or 0]))
            raise
        self.writes.append((len(data), n))
        return n


# ---- WAL sync on a full tmpfs ----------------------------------------------------------------------

def test_sync_on_full_disk_raises_and_keeps_the_last_whole_record(
        mount_tmpfs: MountTmpfs, caplog: pytest.LogCaptureFixture) -> None:
    mnt = mount_tmpfs("1m")
    wal, _ = Wal.open(mnt / "wal", 1)
    seg = wal.segments[-1][2]
    _append(wal, 1, 3)
    wal.sync()
    good = wal.segment_bytes
    assert 0 < good < wal.room_end == seg.stat().st_size and wal.fsyncs == 1  # records, then zero room
    filler = _fill(mnt)

    _append(wal, 4, 4, size=BIG)  # far more than the slack in the segment's last page and its room
    with pytest.raises(DiskFull) as info:
        wal.sync()
    assert isinstance(info.value, OSError) and info.value.errno == errno.ENOSPC
    assert info.value.filename == str(seg)
    assert seg.stat().st_size == good == wal.segment_bytes
    assert wal.pending_bytes == 0 and wal.fsyncs == 1
    assert _reopen(mnt / "wal", caplog) == [1, 2, 3]

    # still full: a retry fails the same way and still leaves nothing behind
    _append(wal, 4, 4, size=BIG)
    with pytest.raises(DiskFull):
        wal.sync()
    assert seg.stat().st_size == good

    # space comes back: the same Wal object takes the re-appended record, no restart
    filler.unlink()
    _append(wal, 4, 4, size=BIG)
    _append(wal, 5, 5)
    wal.sync()
    assert wal.fsyncs == 2 and seg.stat().st_size == wal.room_end >= wal.segment_bytes > good + BIG
    wal.close()
    assert _reopen(mnt / "wal", caplog) == [1, 2, 3, 4, 5]


def test_partly_written_batch_is_truncated_away(mount_tmpfs: MountTmpfs, caplog: pytest.LogCaptureFixture) -> None:
    mnt = mount_tmpfs("1m")
    io = RecordingIo()
    wal, _ = Wal.open(mnt / "wal", 1, io=io)
    seg = wal.segments[-1][2]
    _append(wal, 1, 2)
    wal.sync()
    good, room_pages = wal.segment_bytes, wal.room_end // PAGE - 1  # the records take part of one page
    filler = _fill(mnt, leave=2 * PAGE)

    last = 2 + (wal.room_end - good + 2 * PAGE) // 3000 + 3  # the room and 2 pages fit, the rest does not
    _append(wal, 3, last, size=3000)
    io.writes.clear()
    with pytest.raises(DiskFull):
        wal.sync()
    asked, done = io.writes[0]
    assert isinstance(done, int) and 0 < done < asked, io.writes  # a real short write happened...
    assert io.writes[-1][1] == "ENOSPC"  # ...and then the next write found no space
    assert seg.stat().st_size == good == wal.segment_bytes == wal.room_end
    assert _free(mnt) == (2 + room_pages) * PAGE  # the partial write's pages (and the room) were given back
    assert wal.pending_bytes == 0 and wal.fsyncs == 1
    assert _reopen(mnt / "wal", caplog) == [1, 2]

    # what fits still goes through while the disk stays nearly full
    _append(wal, 3, 3, size=3000)
    wal.sync()
    filler.unlink()
    _append(wal, 4, last, size=3000)
    wal.sync()
    wal.close()
    assert _reopen(mnt / "wal", caplog) == list(range(1, last + 1))


def test_file_storage_after_a_full_disk_waits_for_real_room(mount_tmpfs: MountTmpfs) -> None:
    """A record that fits in the slack of the segment's last page is no sign of room: once a sync found
    the disk full, FileStorage refuses every sync until ROOM_TO_RESUME bytes are free again."""
    mnt = mount_tmpfs("1m")
    storage = FileStorage(mnt)
    storage.write(None, [Entry(1, 1, EntryType.NORMAL, b"x" * 100)], HardState(1, 1, 1))
    storage.sync()
    seg = storage.wal.segments[-1][2]
    good = storage.wal.segment_bytes
    assert good % PAGE and good % PAGE + 512 < PAGE  # the last page has slack for a hard state or two
    filler = _fill(mnt)

    storage.write(None, [Entry(1, 2, EntryType.NORMAL, b"y" * BIG)], None)
    with pytest.raises(DiskFull):
        storage.sync()
    for _ in range(3):  # a hard state alone (the driver's probe) would fit in the slack: still refused
        storage.write(None, [], HardState(1, 1, 1))
        with pytest.raises(DiskFull, match="no room for"):
            storage.sync()
        assert seg.stat().st_size == good and storage.wal.pending_bytes == 0
    assert not (storage.wal.path / ROOM_PROBE).exists()

    filler.unlink()
    storage.write(None, [Entry(1, 2, EntryType.NORMAL, b"y" * BIG)], HardState(1, 1, 2))
    storage.sync()
    storage.write(None, [], HardState(1, 1, 2))  # and no further check once writes succeed
    storage.sync()
    storage.close()
    loaded = FileStorage(mnt).load()
    assert [e.index for e in loaded.entries] == [1, 2] and loaded.hard_state == HardState(1, 1, 2)


# ---- cut on a full tmpfs ---------------------------------------------------------------------------

def test_cut_with_pending_records_on_full_disk(mount_tmpfs: MountTmpfs, caplog: pytest.LogCaptureFixture) -> None:
    mnt = mount_tmpfs("1m")
    wal, _ = Wal.open(mnt / "wal", 1)
    _append(wal, 1, 2)
    wal.sync()
    filler = _fill(mnt)
    _append(wal, 3, 3, size=BIG)
    with pytest.raises(DiskFull):
        wal.cut(4)
    assert [p.name for p in (mnt / "wal").iterdir()] == ["0000000000000000-0000000000000001.wal"]
    assert len(wal.segments) == 1
    filler.unlink()
    _append(wal, 3, 3, size=BIG)
    wal.cut(4)
    _append(wal, 4, 4)
    wal.close()
    assert _reopen(mnt / "wal", caplog) == [1, 2, 3, 4]
    assert len(list((mnt / "wal").glob("*.wal"))) == 2


def test_cut_when_no_file_can_be_created(mount_tmpfs: MountTmpfs, caplog: pytest.LogCaptureFixture) -> None:
    mnt = mount_tmpfs("1m", nr_inodes=32)
    wal, _ = Wal.open(mnt / "wal", 1)
    _append(wal, 1, 3)
    wal.sync()
    fillers = []
    while True:  # use up every inode: O_CREAT now fails with ENOSPC
        try:
            p = mnt / f"inode-{len(fillers)}"
            os.close(os.open(p, os.O_WRONLY | os.O_CREAT, 0o600))
            fillers.append(p)
        except OSError as e:
            assert e.errno == errno.ENOSPC
            break
    with pytest.raises(DiskFull) as info:
        wal.cut(4)
    assert info.value.filename == str(mnt / "wal" / "0000000000000001-0000000000000004.wal")
    assert [p.name for p in (mnt / "wal").iterdir()] == ["0000000000000000-0000000000000001.wal"]
    # the WAL keeps writing to the old segment
    _append(wal, 4, 5)
    wal.sync()
    assert _reopen(mnt / "wal", caplog) == [1, 2, 3, 4, 5]
    fillers.pop().unlink()
    wal.cut(6)
    _append(wal, 6, 6)
    wal.close()
    assert _reopen(mnt / "wal", caplog) == [1, 2, 3, 4, 5, 6]


def test_cut_whose_new_segment_fails_to_sync_leaves_no_stray_file(
        mount_tmpfs: MountTmpfs, caplog: pytest.LogCaptureFixture) -> None:
    mnt = mount_tmpfs("1m")
    io = FaultIo()
    wal, _ = Wal.open(mnt / "wal", 1, io=io)
    first = wal.segments[-1][2]
    _append(wal, 1, 3)
    wal.sync()
    io.fail("fsync", errno.ENOSPC)  # the new segment's fsync, after it was created
    with pytest.raises(DiskFull):
        wal.cut(4)
    assert io.calls["open"] == 2  # the file was created...
    assert list((mnt / "wal").iterdir()) == [first]  # ...and removed again
    # had it stayed, the next open would take the empty file as the last segment and later release
    # the old one although it holds 4 and 5
    _append(wal, 4, 5)
    wal.sync()
    wal.close()
    wal, records = Wal.open(mnt / "wal", 1)
    assert _indexes(records) == [1, 2, 3, 4, 5] and wal.segments[-1][2] == first
    assert wal.release_before(5) == 0
    wal.close()


# ---- snapshots on a full tmpfs ---------------------------------------------------------------------

def test_snapshot_save_on_full_disk(mount_tmpfs: MountTmpfs) -> None:
    mnt = mount_tmpfs("1m")
    snaps = SnapDir(mnt / "snap")
    older = snaps.save(Snapshot(1, 10, b"older"))
    filler = _fill(mnt, leave=PAGE)
    with pytest.raises(DiskFull) as info:
        snaps.save(Snapshot(1, 20, b"n" * 100_000))
    assert info.value.errno == errno.ENOSPC
    assert list((mnt / "snap").iterdir()) == [older]
    assert _free(mnt) == PAGE
    assert snaps.load_newest() == Snapshot(1, 10, b"older")
    filler.unlink()
    snaps.save(Snapshot(1, 20, b"n" * 100_000))
    assert snaps.load_newest() == Snapshot(1, 20, b"n" * 100_000)


@pytest.mark.parametrize("op", ["open", "write", "fsync", "rename"])
def test_snapshot_save_disk_full_at_every_step(tmp_path: Path, op: str) -> None:
    io = FaultIo()
    snaps = SnapDir(tmp_path, io=io)
    snaps.save(Snapshot(1, 10, b"older"))
    io.fail(op, errno.ENOSPC)
    with pytest.raises(DiskFull):
        snaps.save(Snapshot(1, 20, b"newer"))
    assert [p.name for p in tmp_path.iterdir()] == ["0000000000000001-000000000000000a.snap"]
    assert snaps.load_newest() == Snapshot(1, 10, b"older")


def test_snapshot_save_eio_is_not_disk_full(tmp_path: Path) -> None:
    io = FaultIo()
    snaps = SnapDir(tmp_path, io=io)
    io.fail("fsync", errno.EIO)
    with pytest.raises(OSError) as info:
        snaps.save(Snapshot(1, 20, b"newer"))
    assert not isinstance(info.value, DiskFull) and info.value.errno == errno.EIO
    assert list(tmp_path.iterdir()) == []


# ---- faults through the DiskIo seam ------------------------------------------------------------------

@pytest.mark.parametrize("op", ["write", "fdatasync"])
def test_eio_is_not_disk_full(tmp_path: Path, op: str) -> None:
    io = FaultIo()
    wal, _ = Wal.open(tmp_path, 1, io=io)
    _append(wal, 1, 1)
    wal.sync()
    io.fail(op, errno.EIO)
    _append(wal, 2, 2)
    with pytest.raises(OSError) as info:
        wal.sync()
    assert type(info.value) is OSError and info.value.errno == errno.EIO
    assert wal.fsyncs == 1
    assert wal.pending_bytes > 0  # nothing cleaned up: the caller stops


@pytest.mark.parametrize(("op", "err"), [("fdatasync", errno.ENOSPC), ("fdatasync", errno.EDQUOT),
                                         ("write", errno.EDQUOT)])
def test_full_from_write_or_fdatasync_rolls_back(tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                                  op: str, err: int) -> None:
    io = FaultIo()
    wal, _ = Wal.open(tmp_path, 1, io=io)
    seg = wal.segments[-1][2]
    _append(wal, 1, 2)
    wal.sync()
    good = wal.segment_bytes
    io.fail(op, err)
    _append(wal, 3, 4)
    with pytest.raises(DiskFull) as info:
        wal.sync()
    assert info.value.errno == errno.ENOSPC and info.value.os_errno == err
    assert seg.stat().st_size == good == wal.segment_bytes and wal.pending_bytes == 0
    assert io.calls["ftruncate"] == 1
    assert _reopen(tmp_path, caplog) == [1, 2]
    _append(wal, 3, 4)
    wal.sync()
    wal.close()
    assert _reopen(tmp_path, caplog) == [1, 2, 3, 4]


@pytest.mark.parametrize("op", ["ftruncate", "fdatasync"])
def test_failed_rollback_raises_the_original_error_plainly(tmp_path: Path, op: str) -> None:
    io = FaultIo()
    wal, _ = Wal.open(tmp_path, 1, io=io)
    _append(wal, 1, 1)
    io.fail("write", errno.ENOSPC)
    io.fail(op, errno.EIO)
    with pytest.raises(OSError) as info:
        wal.sync()
    assert type(info.value) is OSError and info.value.errno == errno.ENOSPC  # not DiskFull: stop
    assert isinstance(info.value.__cause__, OSError) and info.value.__cause__.errno == errno.EIO


def test_fault_io_counts_and_skips(tmp_path: Path) -> None:
    io = FaultIo()
    wal, _ = Wal.open(tmp_path, 1, io=io)
    io.fail("fdatasync", errno.EIO, after=2, times=1)
    for i in (1, 2):
        _append(wal, i, i)
        wal.sync()
    _append(wal, 3, 3)
    with pytest.raises(OSError, match="injected"):
        wal.sync()
    wal.sync()  # times=1: the device "recovered"
    assert io.calls["fdatasync"] == 4 and wal.fsyncs == 3
    with pytest.raises(ValueError):
        io.fail("unlink", errno.EIO)


# ---- the environment fault point -----------------------------------------------------------------

def test_environment_fault_point(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="pyetcd.storage"):
        assert io_from_environment({}) is DEFAULT_IO
        assert io_from_environment({FAULT_FSYNC_EIO_AFTER_ENV: ""}) is DEFAULT_IO
    assert not caplog.records
    with pytest.raises(ValueError, match=FAULT_FSYNC_EIO_AFTER_ENV):
        io_from_environment({FAULT_FSYNC_EIO_AFTER_ENV: "soon"})
    with pytest.raises(ValueError):
        io_from_environment({FAULT_FSYNC_EIO_AFTER_ENV: "-1"})

    with caplog.at_level(logging.WARNING, logger="pyetcd.storage"):
        io = io_from_environment({FAULT_FSYNC_EIO_AFTER_ENV: "2"})
    assert [r.levelno for r in caplog.records] == [logging.WARNING]
    assert "TEST FAULT POINT" in caplog.records[0].getMessage()
    wal, _ = Wal.open(tmp_path, 1, io=io)
    for i in (1, 2):
        _append(wal, i, i)
        wal.sync()
    wal.cut(3)  # segment creation fsyncs, it does not fdatasync: not counted
    for _ in range(2):  # the device stays broken
        _append(wal, 3, 3)
        with pytest.raises(OSError) as info:
            wal.sync()
        assert type(info.value) is OSError and info.value.errno == errno.EIO


def test_environment_fault_point_in_a_real_process(tmp_path: Path) -> None:
    script = textwrap.dedent("""
        import errno, logging, sys
        from pathlib import Path
        from pyetcd.storage import wal_codec
        from pyetcd.storage.errors import io_from_environment
        from pyetcd.storage.wal import Wal
        logging.basicConfig(level=logging.WARNING)
        wal, _ = Wal.open(Path(sys.argv[1]), 1, io=io_from_environment())
        for i in range(1, 10):
            wal.append(wal_codec.encode_entry(1, i, b"x"))
            try:
                wal.sync()
            except OSError as e:
                print(f"sync {i}: errno {errno.errorcode[e.errno]}")
                sys.exit(3)
            print(f"sync {i}: ok")
    """)
    env = dict(os.environ, **{FAULT_FSYNC_EIO_AFTER_ENV: "3"})
    r = subprocess.run([sys.executable, "-c", script, str(tmp_path)], env=env, capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 3, r.stderr
    assert r.stdout.splitlines() == ["sync 1: ok", "sync 2: ok", "sync 3: ok", "sync 4: errno EIO"]
    assert "WARNING" in r.stderr and "TEST FAULT POINT ARMED" in r.stderr
