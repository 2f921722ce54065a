"""SimDisk: what a node has on disk, and what a crash leaves of it.

The disk is an append-only record stream (the WAL, plus snapshot records), split into a durable prefix
(`durable` records, fsynced) and a volatile tail (written, not yet fsynced). A crash keeps the durable
prefix and a random prefix of the volatile tail: a real WAL keeps whatever pages reached the platter, and
its CRC chain cuts the replay at the first torn record, which is the same as keeping a prefix.

Records: ("ent", Entry), ("hs", HardState), ("snap", Snapshot) for a snapshot received from the leader
(it replaces the log), ("save", Snapshot) for a snapshot the node took of its own state (entries after
it stay). `load()` replays them the way the runtime's recovery does.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from ...raft.types import Entry, HardState, Snapshot


@dataclass
class Recovered:
    hard_state: HardState = field(default_factory=HardState)
    snapshot: Snapshot | None = None
    entries: list[Entry] = field(default_factory=list)  # contiguous, all after the snapshot


class SimDisk:
    def __init__(self) -> None:
        self.records: list[tuple[str, Any]] = []
        self.durable = 0
        self.fsyncs = 0

    def append(self, kind: str, value: Any) -> None:
        self.records.append((kind, value))

    def sync(self) -> None:
        self.durable = len(self.records)
        self.fsyncs += 1

    def crash(self, rng: random.Random) -> int:
        """Lose the volatile tail except a random prefix of it; returns how many records were lost."""
        volatile = len(self.records) - self.durable
        keep = rng.randint(0, volatile) if volatile else 0
        del self.records[self.durable + keep:]
        self.durable = len(self.records)
        return volatile - keep

    def load(self) -> Recovered:
        rec = Recovered()
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
        keep the stream short. Replaying the result gives the same Recovered as before."""
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
