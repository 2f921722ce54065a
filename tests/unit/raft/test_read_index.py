"""Raft thesis §6.4: ReadIndex. A leader serves a linearizable read at its commit index once (1) an entry
of its own term has committed and (2) a quorum has acknowledged a heartbeat sent after the request."""

from __future__ import annotations

import pytest
from pyetcd.raft.core import ProposalDropped
from pyetcd.raft.types import Message, MsgType, ReadState

from .harness import Cluster, make_leader, raft, take


def test_leader_waits_for_its_first_commit_in_the_term_before_serving_reads() -> None:
    r = raft(1, (1, 2, 3), terms=(1, 1), term=1, committed=1)
    make_leader(r)
    r.read_index(b"r1")
    assert take(r, MsgType.HEARTBEAT) == [] and r.read_states == []
    r.step(Message(MsgType.APP_RESP, 1, 2, 2, index=3))  # the term-2 empty entry commits
    assert r.log.committed == 3
    beats = take(r, MsgType.HEARTBEAT)
    assert {m.context for m in beats} == {b"r1"}
    r.step(Message(MsgType.HEARTBEAT_RESP, 1, 2, 2, context=b"r1"))
    assert r.read_states == [ReadState(3, b"r1")]


def test_read_is_served_only_after_a_quorum_acknowledges_the_heartbeat() -> None:
    r = raft(1, (1, 2, 3, 4, 5))
    make_leader(r)
    for pid in (2, 3):
        r.step(Message(MsgType.APP_RESP, 1, pid, 1, index=1))
    take(r)
    r.read_index(b"q")
    assert len(take(r, MsgType.HEARTBEAT)) == 4
    r.step(Message(MsgType.HEARTBEAT_RESP, 1, 2, 1, context=b"q"))
    assert r.read_states == []  # self + 1 of 5
    r.step(Message(MsgType.HEARTBEAT_RESP, 1, 2, 1, context=b"q"))  # a duplicate ack counts once
    assert r.read_states == []
    r.step(Message(MsgType.HEARTBEAT_RESP, 1, 4, 1, context=b"q"))
    assert r.read_states == [ReadState(1, b"q")]


def test_an_ack_for_a_later_read_confirms_the_earlier_ones_too() -> None:
    r = raft(1, (1, 2, 3))
    make_leader(r)
    r.step(Message(MsgType.APP_RESP, 1, 2, 1, index=1))
    r.read_index(b"a")
    r.read_index(b"b")
    r.step(Message(MsgType.HEARTBEAT_RESP, 1, 2, 1, context=b"b"))
    assert [rs.context for rs in r.read_states] == [b"a", b"b"]


def test_follower_forwards_read_index_to_the_leader_and_gets_the_read_state() -> None:
    c = Cluster((1, 2, 3))
    c.elect(1)
    c.propose(1, b"x")
    c.nodes[2].read_index(b"f")
    c.stabilize()
    assert c.read_states[2] == [ReadState(c.raft(1).log.committed, b"f")]
    assert c.read_states[1] == []


def test_read_index_without_a_leader_is_refused() -> None:
    r = raft(2, (1, 2, 3))
    with pytest.raises(ProposalDropped):
        r.read_index(b"x")


def test_a_deposed_leader_cannot_serve_a_read_on_its_own() -> None:
    c = Cluster((1, 2, 3))
    c.elect(1)
    c.isolate(1)
    c.nodes[1].read_index(b"stale")
    c.stabilize()
    assert c.read_states[1] == []


def test_single_voter_leader_also_waits_for_a_commit_in_its_term() -> None:
    # Regression: the one-voter shortcut answered before the term check, with a possibly stale commit.
    r = raft(1, (1,), terms=(1, 1), term=1, committed=1)
    r.step(Message(MsgType.HUP, 1, 1))
    assert r.log.committed == 1
    r.read_index(b"solo")
    assert r.read_states == []
    r.on_persisted(r.log.last_index, r.log.last_term)
    assert r.read_states == [ReadState(3, b"solo")]
