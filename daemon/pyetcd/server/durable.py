"""What a member needs of stable storage, as an interface with two implementations: the real WAL and
snapshot files (storage/files.py) and the simulator's disk (testing/sim/disk.py). Recovery
(server/recovery.py) and the member driver (server/driver.py) see only this.

The contract, in the order the driver uses it:
- `load()` once at start: the newest snapshot, the hard state, and the log entries after the snapshot
  (a later record for an index already seen has truncated the tail, as Raft did when it wrote it).
- `write(snapshot, entries, hard_state)` buffers one Ready's records; `sync()` makes everything written
  since the last sync durable (one fsync: the group commit). Nothing is acknowledged, sent as an ack or
  applied before the sync covering it returns.
- `sync()` raising `DiskFull` (storage/errors.py) means nothing since the last successful sync was kept
  and the files end at their last whole record; the caller acknowledges nothing it covered and may try
  again later. Any other OSError means the state of the disk is unknown: the member stops.
- `save_snapshot(...)` makes the member's own snapshot durable and lets the log before it go. It is the
  two steps `write_snapshot_file(meta, data)` (the file alone; the event loop runs it in a forked child,
  so it must touch nothing but that file) and `snapshot_file_saved(meta)` (in the member: release the log
  before it, start the next WAL segment with the newest durable hard state; returns where to read the
  snapshot back for lagging followers). DiskFull from either: the older snapshot and the whole log stay.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from ..raft.types import Entry, HardState, Snapshot, SnapshotMeta, SnapshotSource


@dataclass
class Loaded:
    hard_state: HardState = field(default_factory=HardState)
    # The newest snapshot. Its meta.conf may be empty: the voters are inside its data (ServerNode.restore).
    snapshot: Snapshot | None = None
    entries: list[Entry] = field(default_factory=list)  # contiguous, all after the snapshot
    # Where to read the snapshot again (its file), for the Raft log to keep instead of its bytes: a member
    # restarted with 1M keys would otherwise hold 126 MB it needs only if a follower lags that far.
    snapshot_source: SnapshotSource | None = None

    @property
    def empty(self) -> bool:
        return self.snapshot is None and not self.entries and self.hard_state == HardState()


class Storage(Protocol):
    def load(self) -> Loaded: ...

    def write(self, snapshot: Snapshot | None, entries: Sequence[Entry], hard_state: HardState | None) -> None:
        """Buffer records for the next sync. A snapshot (received from the leader) replaces the whole log
        before it; when one is given, `hard_state` is the node's full current hard state."""

    def sync(self) -> None:
        """Make everything written since the last sync durable. Raises DiskFull (nothing of it kept,
        retry later) or another OSError (stop)."""

    def save_snapshot(self, snap: Snapshot, hard_state: HardState, last_index: int) -> None:
        """Durably save the member's own snapshot (after syncing what is buffered), then release log
        records at or before its index; entries up to `last_index` stay. Raises DiskFull (the older
        snapshot and the whole log stay) or another OSError."""

    def write_snapshot_file(self, meta: SnapshotMeta, data: bytes) -> None:
        """The first half of save_snapshot: the snapshot file alone, durably (may run in a forked child)."""

    def unfinished_snapshot(self, meta: SnapshotMeta) -> Path:
        """The temp file write_snapshot_file(meta, ...) leaves if stopped midway (to remove)."""

    def snapshot_file_saved(self, meta: SnapshotMeta) -> SnapshotSource:
        """The second half: release the log the snapshot covers; returns where to read the snapshot back."""

    def close(self) -> None: ...


class ReadOnlyStorage:
    """A state already loaded, for recovering it without a disk to write to (offline tools: backup)."""

    def __init__(self, loaded: Loaded) -> None:
        self.loaded = loaded

    def load(self) -> Loaded:
        return self.loaded

    def write(self, snapshot: Snapshot | None, entries: Sequence[Entry], hard_state: HardState | None) -> None:
        raise PermissionError("read-only storage")

    def sync(self) -> None:
        raise PermissionError("read-only storage")

    def save_snapshot(self, snap: Snapshot, hard_state: HardState, last_index: int) -> None:
        raise PermissionError("read-only storage")

    def write_snapshot_file(self, meta: SnapshotMeta, data: bytes) -> None:
        raise PermissionError("read-only storage")

    def unfinished_snapshot(self, meta: SnapshotMeta) -> Path:
        raise PermissionError("read-only storage")

    def snapshot_file_saved(self, meta: SnapshotMeta) -> SnapshotSource:
        raise PermissionError("read-only storage")

    def close(self) -> None:
        pass
