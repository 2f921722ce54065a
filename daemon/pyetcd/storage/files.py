"""FileStorage: the member's stable storage on the local disk (server/durable.py's Storage), over the WAL
segments (wal.py) and the snapshot files (snap.py) in `<data-dir>/member/{wal,snap}` (the WAL in --wal-dir
instead when given). Of the segments a snapshot covers, the newest are kept up to `max_wals` segments in
all, and the newest `max_snapshots` snapshot files (etcd's --max-wals and --max-snapshots; 0: keep all).

A snapshot received from the leader is saved (atomically) before the WAL is cut after it; the segments it
covers are released only once the sync that makes the new segment's hard state durable has returned, so
a crash in between never loses the term and vote. Errors are those of wal.py and snap.py: DiskFull after
they restored a clean state, any other OSError for "stop".

Once a WAL sync has found the disk full, later syncs first check that there is real room again: a probe
file must get ROOM_TO_RESUME bytes (or the size of the batch that failed, if larger) from the file
system, else DiskFull is raised without writing. Without this, a small record (the driver's hard-state
probe, a heartbeat's commit) that fits in the unused end of the segment's last page would "succeed" on a
disk that is still full, and the member would flip between full and not full once per retry (a leader
that stepped down would even become electable again).

The member's own snapshot is saved in two steps so that the first can run in a forked child while the
loop goes on (runtime/snapshotter.py): `write_snapshot_file` (the file alone: SnapDir.save) and then, in
the member's process, `snapshot_file_saved` (cut the WAL, start the new segment with the newest hard
state this storage has made durable, release what the snapshot covers). The cut index and that hard
state are tracked here from what was written and synced, not taken from the job: while the child wrote,
the log and the term may have moved on, and a stale hard state must never be the newest on disk.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path

from ..raft.types import ConfState, Entry, EntryType, HardState, Snapshot, SnapshotMeta, SnapshotSource
from ..server.durable import Loaded
from ..server.metrics import Histogram, WalMetrics
from . import wal_codec
from .errors import DEFAULT_IO, DiskFull, DiskIo, is_disk_full
from .snap import SnapDir
from .snap import Snapshot as SnapFile
from .wal import Wal, WalCorrupt

log = logging.getLogger("pyetcd.storage")
ROOM_TO_RESUME = 256 * 1024  # free bytes a full disk must have again before WAL writes resume
ROOM_PROBE = ".room-probe"  # in the WAL directory; never a segment (*.wal)


def wal_path(data_dir: Path, wal_dir: Path | None = None) -> Path:
    """Where the WAL segments are: --wal-dir, else <data-dir>/member/wal."""
    return wal_dir if wal_dir is not None else data_dir / "member" / "wal"


def loaded_from(snap_file: SnapFile | None, records: list[wal_codec.Record], wal_path: Path) -> Loaded:
    """What a member recovers from: the snapshot, the last hard state, and the entries after the snapshot
    (a later record for an index truncates the tail, as Raft did when it wrote it). WalCorrupt on a gap."""
    out = Loaded()
    snap_index = 0
    if snap_file is not None:
        out.snapshot = Snapshot(SnapshotMeta(snap_file.index, snap_file.term, ConfState(())), snap_file.data)
        snap_index = snap_file.index
    ents: list[Entry] = []
    for rec in records:
        if rec.rtype == wal_codec.ENTRY:
            term, index, data = rec.entry()
            if index <= snap_index:
                continue
            while ents and ents[-1].index >= index:
                ents.pop()
            expected = ents[-1].index + 1 if ents else snap_index + 1
            if index != expected:
                raise WalCorrupt(f"{wal_path}: entry {index} follows {expected - 1} (a gap in the log); "
                                 "refusing to start")
            ents.append(Entry(term, index, EntryType(rec.entry_type()), data))
        elif rec.rtype == wal_codec.HARD_STATE:
            out.hard_state = HardState(*rec.hard_state())
    out.entries = ents
    return out


class TimedSyncs(DiskIo):
    """The WAL's DiskIo, every fdatasync timed (etcd_disk_wal_fsync_duration_seconds: the sync call alone,
    failed ones too, as etcd observes it); the calls themselves go to `base`."""

    def __init__(self, base: DiskIo, hist: Histogram) -> None:
        self.base, self.hist = base, hist

    def open(self, path: str | os.PathLike[str], flags: int, mode: int = 0o600) -> int:
        return self.base.open(path, flags, mode)

    def write(self, fd: int, data: bytes | memoryview) -> int:
        return self.base.write(fd, data)

    def fdatasync(self, fd: int) -> None:
        started = time.perf_counter()
        try:
            self.base.fdatasync(fd)
        finally:
            self.hist.observe(time.perf_counter() - started)

    def fsync(self, fd: int) -> None:
        self.base.fsync(fd)

    def ftruncate(self, fd: int, length: int) -> None:
        self.base.ftruncate(fd, length)

    def rename(self, src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        self.base.rename(src, dst)


class FileStorage:
    def __init__(self, data_dir: Path, io: DiskIo = DEFAULT_IO, wal_dir: Path | None = None,
                 max_wals: int = 5, max_snapshots: int = 5) -> None:
        member_dir = data_dir / "member"
        self.max_wals = max_wals
        self.metrics = WalMetrics()  # read by /metrics (runtime/metrics.py)
        self._unsynced_entries = 0
        self.snaps = SnapDir(member_dir / "snap", io, max_snapshots)
        self._snap_file = self.snaps.load_newest()
        snap_index = self._snap_file.index if self._snap_file is not None else 0
        self.wal, self._records = Wal.open(wal_path(data_dir, wal_dir), snap_index + 1, TimedSyncs(io, self.metrics.fsync))
        self._release_before = 0  # segments to release once the next sync has returned
        self._room_needed = 0  # after a sync found the disk full: bytes to find free before writing again
        # What the WAL holds (once synced): the last entry index and hard state written, and the synced ones
        self._written_last = self._synced_last = snap_index
        self._written_hs: HardState | None = None
        for rec in reversed(self._records):  # the last entry record is the log's end (a lower index truncates)
            if rec.rtype == wal_codec.ENTRY:
                self._written_last = max(snap_index, rec.entry()[1])
                break
        for rec in reversed(self._records):
            if rec.rtype == wal_codec.HARD_STATE:
                self._written_hs = HardState(*rec.hard_state())
                break
        self._synced_last, self._synced_hs = self._written_last, self._written_hs
        (self.wal.path / ROOM_PROBE).unlink(missing_ok=True)  # left by a crash during _check_room

    def load(self) -> Loaded:
        snap = self._snap_file
        loaded = loaded_from(snap, self._records, self.wal.path)
        if snap is not None:
            loaded.snapshot_source = self.snaps.source(snap.term, snap.index)
        self._records = []  # read once
        self._snap_file = None  # nor kept: the Raft log reads the file again if a follower needs it
        return loaded

    def write(self, snapshot: Snapshot | None, entries: Sequence[Entry], hard_state: HardState | None) -> None:
        wal = self.wal
        if snapshot is not None:
            meta = snapshot.meta
            self.snaps.save(SnapFile(meta.term, meta.index, snapshot.data))
            wal.cut(meta.index + 1)
            self._release_before = meta.index + 1
            self._written_last = self._synced_last = meta.index
            log.info("installed snapshot from the leader at raft index %d", meta.index)
        for e in entries:
            wal.append(wal_codec.encode_entry(e.term, e.index, e.data, e.type))
        if entries:
            self._written_last = entries[-1].index
        self._unsynced_entries += len(entries)
        if hard_state is not None:
            wal.append(wal_codec.encode_hard_state(hard_state.term, hard_state.vote, hard_state.commit))
            self._written_hs = hard_state

    def sync(self) -> None:
        wal = self.wal
        pending = wal.pending_bytes
        if self._room_needed and pending:
            self._check_room(self._room_needed)
        self._wal_sync()
        self._room_needed = 0
        if pending:
            m = self.metrics
            m.write_bytes += pending
            m.entries_per_fsync.observe(self._unsynced_entries)
            self._unsynced_entries = 0
        if self._release_before:
            index, self._release_before = self._release_before, 0
            self.wal.release_before(index, self.max_wals)

    def _wal_sync(self) -> None:
        """wal.sync(), keeping track of what the WAL holds."""
        pending = self.wal.pending_bytes
        try:
            self.wal.sync()
        except DiskFull:
            self._room_needed = max(ROOM_TO_RESUME, pending)
            self._unsynced_entries = 0  # dropped with the batch
            self._written_last, self._written_hs = self._synced_last, self._synced_hs
            raise
        self._synced_last, self._synced_hs = self._written_last, self._written_hs

    def _check_room(self, nbytes: int) -> None:
        """DiskFull (dropping the buffered records, as a failed sync would) unless the file system can
        give `nbytes` to a probe file right now (posix_fallocate: quotas count too). An error other than
        "full" says nothing about room: the real write decides then."""
        probe = self.wal.path / ROOM_PROBE
        fd = -1
        try:
            fd = self.wal.io.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            os.posix_fallocate(fd, 0, nbytes)
        except OSError as e:
            if is_disk_full(e):
                self.wal.discard()
                self._unsynced_entries = 0
                self._written_last, self._written_hs = self._synced_last, self._synced_hs
                raise DiskFull(probe, f"no room for {nbytes} bytes yet", e.errno) from e
            log.debug("could not check for room with %s: %s", probe, e)
        finally:
            if fd >= 0:
                os.close(fd)
                probe.unlink(missing_ok=True)

    def save_snapshot(self, snap: Snapshot, hard_state: HardState, last_index: int) -> None:
        """Both steps at once (`hard_state` and `last_index` are what this storage tracked itself)."""
        self.write_snapshot_file(snap.meta, snap.data)
        self.snapshot_file_saved(snap.meta)

    def write_snapshot_file(self, meta: SnapshotMeta, data: bytes) -> None:
        """Make the member's own snapshot file durable and touch nothing else (safe in a forked child).
        DiskFull: no new file, nothing else changed."""
        self.snaps.save(SnapFile(meta.term, meta.index, data))

    def unfinished_snapshot(self, meta: SnapshotMeta) -> Path:
        """The temp file write_snapshot_file(meta, ...) writes before its rename (to remove if the writer
        was stopped)."""
        return self.snaps.temp_path(meta.term, meta.index)

    def snapshot_file_saved(self, meta: SnapshotMeta) -> SnapshotSource:
        """After write_snapshot_file(meta, ...) returned: release the WAL segments the snapshot covers;
        returns the file's payload as a source to read back for lagging followers. DiskFull: the snapshot
        file stays, the whole log stays."""
        wal = self.wal
        self._wal_sync()  # a commit-only hard state may still be buffered
        source = self.snaps.source(meta.term, meta.index)
        # Segments wholly covered by the snapshot can go (the in-memory log keeps more for followers;
        # after a restart they catch up from the snapshot instead). The new segment starts with the hard
        # state: the released ones may hold the only copy of term and vote.
        wal.cut(self._synced_last + 1)
        hs = self._synced_hs
        if hs is not None:
            wal.append(wal_codec.encode_hard_state(hs.term, hs.vote, hs.commit))
        wal.sync()
        released = wal.release_before(meta.index + 1, self.max_wals)
        log.info("saved snapshot at index %d (%s; %d WAL segment(s) released)", meta.index, source.path, released)
        return source

    def close(self) -> None:
        self.wal.close()
