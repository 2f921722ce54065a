"""SimDisk: what a node has on disk, and what a crash leaves of it.

The disk is an append-only record stream (the WAL, plus snapshot records), split into a durable prefix
(`durable` records, fsynced) and a volatile tail (written, not yet fsynced). A crash keeps the durable
prefix and a random prefix of the volatile tail: a real WAL keeps whatever pages reached the platter, and
its CRC chain cuts the replay at the first torn record, which is the same as keeping a prefix.

Records: ("ent", Entry), ("hs", HardState), ("snap", Snapshot) for a snapshot received from the leader
(it replaces the log), ("save", Snapshot) for a snapshot the node took of its own state (entries after
it stay). `load()` replays them the way the real storage's does.

It implements server/durable.py's Storage, so the simulator runs the production recovery and driver over
it, with the faults of a real disk: a full disk (`full`: a sync raises DiskFull and keeps nothing since
the last sync, as the real WAL truncates back to its last whole record) and a failing one (`fail_next_sync`:
the next sync raises EIO and the member must stop).
"""

from __future__ import annotations

import errno
import random
from collections.abc import Sequence
from typing import Any

from ...raft.types import Entry, HardState, Snapshot
from ...server.durable import Loaded
from ...storage.errors import DiskFull


class SimDisk:
    def __init__(self) -> None:
        self.records: list[tuple[str, Any]] = []
        self.durable = 0
        self.fsyncs = 0
        self.full = False  # fault: no space (until cleared)
        self.fail_next_sync = False  # fault: the next sync fails with EIO
        self.full_refusals = 0

    def append(self, kind: str, value: Any) -> None:
        self.records.append((kind, value))

    # ---- Storage -------------------------------------------------------------------------------

    def write(self, snapshot: Snapshot | None, entries: Sequence[Entry], hard_state: HardState | None) -> None:
        if snapshot is not None:
            self.append("snap", snapshot)
        for e in entries:
            self.append("ent", e)
        if hard_state is not None:
            self.append("hs", hard_state)

    def sync(self) -> None:
        if self.fail_next_sync:
            self.fail_next_sync = False
            raise OSError(errno.EIO, "injected EIO (simulated disk)")
        if self.full and len(self.records) > self.durable:
            del self.records[self.durable:]  # the WAL truncates back to its last whole record
            self.full_refusals += 1
            raise DiskFull(None, "simulated disk")
        self.durable = len(self.records)
        self.fsyncs += 1

    def save_snapshot(self, snap: Snapshot, hard_state: HardState, last_index: int) -> None:
        """As storage/files.py: the hard state after the snapshot is the newest one written, never the
        job's (the node went on while the snapshot was written); a snapshot older than one installed
        from the leader meanwhile is of no use (the real one is written, and never loaded)."""
        if self.full:
            self.full_refusals += 1
            raise DiskFull(None, "simulated disk: snapshot")
        self.sync()
        newest = max((v.meta.index for k, v in self.records if k in ("snap", "save")), default=0)
        if snap.meta.index <= newest:
            return
        hs = next((v for k, v in reversed(self.records) if k == "hs"), hard_state)
        self.append("save", snap)
        self.append("hs", hs)
        self.sync()
        self.compact()

    def close(self) -> None:
        pass

    def crash(self, rng: random.Random) -> int:
        """Lose the volatile tail except a random prefix of it; returns how many records were lost."""
        volatile = len(self.records) - self.durable
        keep = rng.randint(0, volatile) if volatile else 0
        del self.records[self.durable + keep:]
        self.durable = len(self.records)
        return volatile - keep

    def load(self) -> Loaded:
        rec = Loaded()
        ents: list[Entry] = []
        for kind, value in self.records:
            if kind == "hs":
                rec.hard_state = value
            elif kind == "ent":
                e: Entry = value
                while ents and ents[-1].index >= e.index:
                    ents.pop()  # a later record for an index truncates the tail (conflict)
                if ents:
                    assert e.index == ents[-1].index + 1, ("gap in the WAL", ents[-1].index, e.index)
                ents.append(e)
            elif kind == "snap":
                rec.snapshot = value
                ents = []
            elif kind == "save":
                snap: Snapshot = value
                if rec.snapshot is None or snap.meta.index > rec.snapshot.meta.index:
                    rec.snapshot = snap
        if rec.snapshot is not None:
            si = rec.snapshot.meta.index
            ents = [e for e in ents if e.index > si]
            assert not ents or ents[0].index == si + 1, ("WAL does not continue the snapshot", si,
                                                          ents[0].index)
        else:
            assert not ents or ents[0].index == 1
        rec.entries = ents
        return rec

    def compact(self) -> None:
        """Release durable records a recovery no longer needs (the WAL's release_before), so long runs
        keep the stream short. Replaying the result gives the same Loaded as before."""
        last_snap = max((i for i, (k, _) in enumerate(self.records[:self.durable]) if k in ("snap", "save")),
                        default=-1)
        if last_snap < 0:
            return
        snap: Snapshot = self.records[last_snap][1]
        head: list[tuple[str, Any]] = []
        last_hs: tuple[str, Any] | None = None
        for k, v in self.records[:last_snap]:
            if k == "hs":
                last_hs = (k, v)
            elif k == "snap":
                head = []  # an installed snapshot replaced everything before it
            elif k == "ent" and v.index > snap.meta.index:
                head.append((k, v))
        if last_hs is not None:
            head.insert(0, last_hs)
        dropped = last_snap - len(head)
        self.records = head + self.records[last_snap:]
        self.durable -= dropped
