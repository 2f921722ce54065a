"""Raft §7: log compaction and InstallSnapshot for followers behind the compacted log."""

from __future__ import annotations

import random

from pyetcd.raft.core import RaftConfig
from pyetcd.raft.log import RaftLog
from pyetcd.raft.progress import ProgressState
from pyetcd.raft.rawnode import RawNode
from pyetcd.raft.types import ConfState, HardState, Message, MsgType, Snapshot, SnapshotMeta

from .harness import Cluster, raft, take


def test_compaction_keeps_the_requested_tail_and_the_snapshot_term() -> None:
    c = Cluster((1, 2, 3))
    c.elect(1)
    for i in range(10):
        c.propose(1, b"%d" % i)
    snap = c.compact(1, keep_entries=3)
    log = c.raft(1).log
    assert log.snap_index == snap.meta.index - 3
    assert log.term(log.snap_index) == log.snap_term
    assert log.snapshot is snap


def test_a_node_behind_the_compacted_log_gets_the_snapshot_and_then_the_rest() -> None:
    c = Cluster((1, 2, 3))
    c.elect(1)
    c.isolate(3)
    for i in range(10):
        c.propose(1, b"%d" % i)
    snap = c.compact(1)
    c.propose(1, b"after")
    c.heal()
    c.tick(3)
    assert c.snapshots_installed[3] == [snap]
    assert any(m.type is MsgType.SNAP and m.to == 3 for m in c.sent)
    r3 = c.raft(3)
    assert r3.log.snap_index == snap.meta.index and r3.log.applied == r3.log.committed
    assert c.data_applied(3) == [b"after"]  # entries before the snapshot came inside it
    assert r3.log.entries == c.raft(1).log.slice(snap.meta.index + 1, c.raft(1).log.last_index + 1)
    assert c.raft(1).prs[3].state is ProgressState.REPLICATE


def test_restore_hands_the_snapshot_to_the_application_before_any_committed_entry() -> None:
    # Regression: while the snapshot is pending, applied < snap_index, and asking for committed
    # entries used to trip slice()'s assertion.
    r = raft(2, (1, 2, 3), terms=(1,), term=1)
    snap = Snapshot(SnapshotMeta(10, 1, ConfState((1, 2, 3))), b"s")
    r.step(Message(MsgType.SNAP, 2, 1, 1, snapshot=snap))
    assert r.log.pending_snapshot is snap and r.log.committed == 10
    assert r.log.next_committed() == []
    (resp,) = take(r, MsgType.APP_RESP)
    assert resp.index == 10 and not resp.reject
    r.step(Message(MsgType.HUP, 2, 2))  # must not trip on the pending snapshot either


def test_a_stale_snapshot_is_answered_with_the_commit_index() -> None:
    r = raft(2, (1, 2, 3), terms=(1, 1, 1, 1, 1), term=1, committed=5)
    snap = Snapshot(SnapshotMeta(3, 1, ConfState((1, 2, 3))), b"s")
    r.step(Message(MsgType.SNAP, 2, 1, 1, snapshot=snap))
    (resp,) = take(r, MsgType.APP_RESP)
    assert resp.index == 5 and r.log.last_index == 5 and r.log.pending_snapshot is None


def test_snapshot_restores_the_configuration() -> None:
    r = raft(4, (), term=1)
    snap = Snapshot(SnapshotMeta(7, 1, ConfState((1, 2, 3, 4))), b"s")
    r.step(Message(MsgType.SNAP, 4, 1, 1, snapshot=snap))
    assert r.voters == (1, 2, 3, 4)


def test_a_failed_snapshot_send_returns_the_follower_to_probing() -> None:
    c = Cluster((1, 2, 3))
    c.elect(1)
    c.isolate(3)
    for i in range(5):
        c.propose(1, b"%d" % i)
    c.compact(1)
    pr = c.raft(1).prs[3]
    pr.become_probe()
    pr.next = 1  # as if node 3 had rejected its way back to the start of the log
    pr.recent_active = True
    c.raft(1).step(Message(MsgType.HEARTBEAT_RESP, 1, 3, c.raft(1).term))
    assert c.raft(1).prs[3].state is ProgressState.SNAPSHOT
    c.nodes[1].report_snapshot(3, False)
    assert c.raft(1).prs[3].state is ProgressState.PROBE


def test_a_node_restarted_from_snapshot_and_log_continues() -> None:
    c = Cluster((1, 2, 3))
    c.elect(1)
    for i in range(6):
        c.propose(1, b"%d" % i)
    snap = c.compact(2)
    old = c.raft(2)
    log = RaftLog(snap.meta.index, snap.meta.term)
    log.snapshot = snap
    log.entries = old.log.slice(snap.meta.index + 1, old.log.last_index + 1)
    log.stable_index = log.last_index
    hs = old.hard_state()
    c.nodes[2] = RawNode(RaftConfig(2), log, HardState(hs.term, hs.vote, hs.commit), snap.meta.conf.voters,
                         random.Random(2))
    c.applied[2] = []
    c.propose(1, b"later")
    c.tick(2)
    assert c.data_applied(2) == [b"later"]
    assert c.raft(2).log.entries[-1] == c.raft(1).log.entries[-1]
