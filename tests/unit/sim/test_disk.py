"""SimDisk: durability, torn tails, and replay after compaction."""

from __future__ import annotations

import random

from pyetcd.raft.types import ConfState, Entry, HardState, Snapshot, SnapshotMeta
from pyetcd.testing.sim.disk import SimDisk


def test_a_crash_keeps_synced_records_and_a_prefix_of_the_rest() -> None:
    for seed in range(20):
        d = SimDisk()
        d.append("ent", Entry(1, 1))
        d.sync()
        for i in range(2, 6):
            d.append("ent", Entry(1, i))
        d.crash(random.Random(seed))
        idx = [e.index for e in d.load().entries]
        assert idx == list(range(1, len(idx) + 1)) and len(idx) >= 1


def test_replay_truncates_on_conflict_and_restarts_after_an_installed_snapshot() -> None:
    d = SimDisk()
    for e in (Entry(1, 1), Entry(1, 2), Entry(1, 3), Entry(2, 2)):
        d.append("ent", e)
    d.append("hs", HardState(2, 1, 1))
    assert [(e.index, e.term) for e in d.load().entries] == [(1, 1), (2, 2)]
    snap = Snapshot(SnapshotMeta(10, 3, ConfState((1, 2))), b"")
    d.append("snap", snap)
    d.append("ent", Entry(3, 11))
    rec = d.load()
    assert rec.snapshot is snap and [e.index for e in rec.entries] == [11]
    assert rec.hard_state == HardState(2, 1, 1)


def test_compaction_does_not_change_what_recovery_sees() -> None:
    d = SimDisk()
    for i in range(1, 8):
        d.append("ent", Entry(1, i))
        d.append("hs", HardState(1, 0, i - 1))
    d.append("save", Snapshot(SnapshotMeta(4, 1, ConfState((1,))), b""))
    d.append("ent", Entry(2, 8))
    d.sync()
    before = d.load()
    d.compact()
    after = d.load()
    assert len(d.records) < 16
    assert (after.hard_state, after.snapshot, after.entries) == (before.hard_state, before.snapshot, before.entries)
