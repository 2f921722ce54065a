"""Snapshots off the loop: the two storage steps, the file read back for followers, the forked writer."""

from __future__ import annotations

import errno
import os
import selectors
import time
from pathlib import Path

import pytest
from pyetcd.raft.types import ConfState, Entry, HardState, Snapshot, SnapshotMeta
from pyetcd.runtime.snapshotter import Outcome, Snapshotter
from pyetcd.server.driver import SnapshotJob
from pyetcd.storage.errors import DiskFull
from pyetcd.storage.files import FileStorage
from pyetcd.storage.snap import SnapDir, SnapshotCorrupt
from pyetcd.storage.snap import Snapshot as SnapFile


def _entries(lo: int, hi: int, term: int = 1) -> list[Entry]:
    return [Entry(term, i, data=b"e%d" % i) for i in range(lo, hi + 1)]


def _meta(index: int, term: int = 1) -> SnapshotMeta:
    return SnapshotMeta(index, term, ConfState((1,)))


def test_two_steps_write_the_newest_durable_hard_state_not_the_jobs(tmp_path: Path) -> None:
    """While a writer child ran, the term and vote moved on: the segment started after the snapshot must
    carry the new ones (the released segments may hold the only copy), not the job's."""
    st = FileStorage(tmp_path)
    st.load()
    st.write(None, _entries(1, 10), HardState(1, 1, 10))
    st.sync()
    meta = _meta(10)
    st.write_snapshot_file(meta, b"state@10")  # what the child does
    st.write(None, _entries(11, 12, term=2), HardState(2, 3, 12))  # the loop went on meanwhile
    st.sync()
    source = st.snapshot_file_saved(meta)
    assert source.read() == b"state@10"
    st.close()

    again = FileStorage(tmp_path)
    loaded = again.load()
    assert loaded.hard_state == HardState(2, 3, 12)
    assert loaded.snapshot is not None and loaded.snapshot.meta.index == 10
    assert [e.index for e in loaded.entries] == [11, 12]
    again.close()


def test_a_restarted_member_keeps_where_its_snapshot_is_not_its_bytes(tmp_path: Path) -> None:
    """Recovery needs the bytes once (to restore the store); the Raft log keeps the file's source, so a
    restarted member with a big store does not hold its snapshot twice in memory."""
    st = FileStorage(tmp_path)
    st.load()
    st.write(None, _entries(1, 10), HardState(1, 1, 10))
    st.sync()
    st.write_snapshot_file(_meta(10), b"state@10")
    st.snapshot_file_saved(_meta(10))
    st.close()

    again = FileStorage(tmp_path)
    loaded = again.load()
    assert loaded.snapshot is not None and loaded.snapshot.data == b"state@10"
    assert loaded.snapshot_source is not None and loaded.snapshot_source.read() == b"state@10"
    assert again._snap_file is None  # not kept by the storage either
    again.close()


def test_a_commit_only_hard_state_still_buffered_is_synced_first(tmp_path: Path) -> None:
    st = FileStorage(tmp_path, max_wals=1)
    st.load()
    st.write(None, _entries(1, 5), HardState(1, 1, 4))
    st.sync()
    st.write(None, [], HardState(1, 1, 5))  # must_sync=False: buffered
    st.save_snapshot(Snapshot(_meta(5), b"s5"), HardState(1, 1, 4), 5)
    st.close()
    loaded = FileStorage(tmp_path).load()
    assert loaded.hard_state == HardState(1, 1, 5) and loaded.entries == []


def test_the_snapshot_source_survives_pruning_and_detects_damage(tmp_path: Path) -> None:
    snaps = SnapDir(tmp_path, keep=1)
    snaps.save(SnapFile(1, 10, b"ten" * 1000))
    source = snaps.source(1, 10)
    snaps.save(SnapFile(1, 20, b"twenty"))  # --max-snapshots 1 removes the file of index 10
    assert not (tmp_path / f"{1:016x}-{10:016x}.snap").exists()
    assert source.read() == b"ten" * 1000  # still readable through its descriptor
    snap = Snapshot(_meta(10), source)
    assert snap.data == b"ten" * 1000

    snaps.save(SnapFile(1, 30, b"thirty"))
    damaged = snaps.source(1, 30)
    with open(damaged.path, "r+b") as f:
        f.seek(-1, os.SEEK_END)
        f.write(b"X")
    with pytest.raises(SnapshotCorrupt):
        damaged.read()


# ---- the forked writer ----------------------------------------------------------------------------


def _job(index: int, build: object) -> SnapshotJob:
    return SnapshotJob(_meta(index), build, HardState(1, 1, index), index)  # type: ignore[arg-type]


def _run(tmp_path: Path, job: SnapshotJob, timeout_s: float = 20.0) -> tuple[FileStorage, list[tuple[Outcome, str]]]:
    st = FileStorage(tmp_path)
    st.load()
    st.write(None, _entries(1, job.meta.index), HardState(1, 1, job.meta.index))
    st.sync()
    sel = selectors.DefaultSelector()
    done: list[tuple[Outcome, str]] = []
    writer = Snapshotter(sel, st, lambda j, outcome, detail: done.append((outcome, detail)))
    assert writer.start(job) and writer.busy and writer.pid != os.getpid()
    deadline = time.monotonic() + timeout_s
    while not done and time.monotonic() < deadline:
        for key, _ in sel.select(0.1):
            assert key.data is writer
            writer.on_readable()
    assert not writer.busy and sel.get_map() == {}
    sel.close()
    return st, done


def test_the_child_builds_and_writes_the_file_while_the_parent_goes_on(tmp_path: Path) -> None:
    state = {"value": b"at-fork"}
    job = _job(7, lambda: state["value"])
    st, done = _run(tmp_path, job)
    state["value"] = b"changed in the parent"  # the child had its own copy
    assert done == [(Outcome.SAVED, "7 bytes")]
    assert st.snaps.load_newest() == SnapFile(1, 7, b"at-fork")
    assert st.snapshot_file_saved(job.meta).read() == b"at-fork"
    st.close()


def test_a_full_disk_in_the_child_is_reported_as_such(tmp_path: Path) -> None:
    def build() -> bytes:
        raise DiskFull(tmp_path, "simulated", errno.ENOSPC)

    st, done = _run(tmp_path, _job(3, build))
    assert [o for o, _ in done] == [Outcome.DISK_FULL] and "simulated" in done[0][1]
    assert st.snaps.load_newest() is None
    st.close()


def test_an_error_in_the_child_is_reported_with_its_reason(tmp_path: Path) -> None:
    def build() -> bytes:
        raise OSError(errno.EIO, "injected")

    st, done = _run(tmp_path, _job(3, build))
    assert [o for o, _ in done] == [Outcome.ERROR] and "injected" in done[0][1]
    st.close()


def test_a_child_that_dies_is_a_failed_snapshot_and_leaves_no_temp_file(tmp_path: Path) -> None:
    def build() -> bytes:
        os.kill(os.getpid(), 9)
        return b""

    st, done = _run(tmp_path, _job(3, build))
    assert [o for o, _ in done] == [Outcome.DIED] and "signal 9" in done[0][1]
    assert list((tmp_path / "member" / "snap").iterdir()) == []
    st.close()


def test_stop_kills_a_running_child_and_removes_its_temp_file(tmp_path: Path) -> None:
    st = FileStorage(tmp_path)
    st.load()
    sel = selectors.DefaultSelector()
    done: list[object] = []
    meta = _meta(5)
    tmp = st.unfinished_snapshot(meta)

    def build() -> bytes:
        tmp.write_bytes(b"half")  # as a write in progress would leave it
        time.sleep(60)
        return b""

    writer = Snapshotter(sel, st, lambda *a: done.append(a))
    assert writer.start(SnapshotJob(meta, build, HardState(), 5))
    assert _wait(lambda: tmp.exists())
    pid = writer.pid
    started = time.monotonic()
    writer.stop()
    assert time.monotonic() - started < 5
    assert not tmp.exists() and not writer.busy and done == []
    with pytest.raises(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)  # reaped
    writer.stop()  # nothing running: a no-op
    sel.close()
    st.close()


def _wait(cond: object, timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if cond():  # type: ignore[operator]
            return True
        time.sleep(0.01)
    return False
