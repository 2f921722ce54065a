"""Raft thesis §4.1: single-server membership changes, one at a time, taking effect when applied."""

from __future__ import annotations

import pytest
from pyetcd.raft.core import ProposalDropped
from pyetcd.raft.types import ConfChange, ConfChangeType, Entry, EntryType, Message, MsgType, Role

from .harness import Cluster, make_leader, raft, take

ADD, REMOVE = ConfChangeType.ADD_NODE, ConfChangeType.REMOVE_NODE


def test_added_node_joins_and_receives_the_whole_log() -> None:
    c = Cluster((1, 2, 3), bootstrap=True)
    c.elect(1)
    c.propose(1, b"before")
    c.add(4)  # starts empty, with no voters: it learns from the leader
    c.nodes[1].propose_conf_change(ConfChange(ADD, 4))
    c.stabilize()
    assert c.raft(1).voters == (1, 2, 3, 4)
    c.tick(3)
    assert c.data_applied(4) == [b"before"]
    assert c.raft(4).voters == (1, 2, 3, 4)
    c.propose(1, b"after")
    assert c.data_applied(4) == [b"before", b"after"]


def test_a_second_conf_change_is_refused_while_one_is_pending() -> None:
    r = raft(1, (1, 2, 3))
    make_leader(r)
    r.step(Message(MsgType.PROP, 1, 1, entries=(Entry(0, 0, EntryType.CONF_CHANGE, ConfChange(ADD, 4).encode()),)))
    with pytest.raises(ProposalDropped):
        r.step(Message(MsgType.PROP, 1, 1,
                       entries=(Entry(0, 0, EntryType.CONF_CHANGE, ConfChange(ADD, 5).encode()),)))
    assert [e.type for e in r.log.entries].count(EntryType.CONF_CHANGE) == 1


def test_the_next_conf_change_is_accepted_once_the_previous_one_is_applied() -> None:
    c = Cluster((1, 2, 3))
    c.elect(1)
    c.add(4)
    c.nodes[1].propose_conf_change(ConfChange(ADD, 4))
    c.stabilize()
    c.nodes[1].propose_conf_change(ConfChange(REMOVE, 2))
    c.stabilize()
    assert c.raft(1).voters == (1, 3, 4)


def test_a_new_leader_refuses_conf_changes_until_its_uncommitted_tail_is_applied() -> None:
    r = raft(1, (1, 2, 3), terms=(1, 1), term=1)
    make_leader(r)
    with pytest.raises(ProposalDropped):
        r.step(Message(MsgType.PROP, 1, 1,
                       entries=(Entry(0, 0, EntryType.CONF_CHANGE, ConfChange(ADD, 4).encode()),)))


def test_removing_a_node_shrinks_the_quorum() -> None:
    c = Cluster((1, 2, 3, 4, 5))
    c.elect(1)
    c.nodes[1].propose_conf_change(ConfChange(REMOVE, 5))
    c.stabilize()
    c.nodes[1].propose_conf_change(ConfChange(REMOVE, 4))
    c.stabilize()
    assert c.raft(1).voters == (1, 2, 3)
    c.down |= {3, 4, 5}  # 2 of the remaining 3 still commit
    c.propose(1, b"x")
    assert c.data_applied(2) == [b"x"]


def test_removing_the_leader_makes_it_step_down_and_the_rest_elect_a_new_one() -> None:
    c = Cluster((1, 2, 3))
    c.elect(1)
    c.nodes[1].propose_conf_change(ConfChange(REMOVE, 1))
    c.stabilize()
    assert c.raft(1).role is Role.FOLLOWER
    assert not c.raft(1).promotable()
    c.down.add(1)
    c.tick(40)
    assert c.leader() in (2, 3)
    assert c.raft(c.leader()).voters == (2, 3)  # type: ignore[arg-type]


def test_a_removed_node_does_not_campaign() -> None:
    r = raft(3, (1, 2, 3))
    r.apply_conf_change(ConfChange(REMOVE, 3))
    for _ in range(100):
        r.tick()
    assert r.role is Role.FOLLOWER and take(r) == []


def test_a_node_with_a_committed_unapplied_conf_change_does_not_campaign() -> None:
    r = raft(2, (1, 2, 3), term=1)
    cc = Entry(1, 1, EntryType.CONF_CHANGE, ConfChange(REMOVE, 3).encode())
    r.step(Message(MsgType.APP, 2, 1, 1, log_term=0, index=0, entries=(cc,), commit=1))
    r.on_persisted(1, 1)
    take(r)
    r.step(Message(MsgType.HUP, 2, 2))
    assert r.role is Role.FOLLOWER and take(r) == []


def test_added_node_joining_by_snapshot_learns_the_configuration_from_it() -> None:
    c = Cluster((1, 2, 3))
    c.elect(1)
    c.propose(1, b"before")
    c.compact(1)
    c.add(4)
    c.nodes[1].propose_conf_change(ConfChange(ADD, 4))
    c.stabilize()
    c.tick(3)
    assert c.snapshots_installed[4] and c.raft(4).voters == (1, 2, 3, 4)


def test_a_joiner_replaying_a_log_without_the_founding_configuration_would_see_only_itself() -> None:
    # Why founders must bootstrap their configuration into the log (see Cluster(bootstrap=True) and
    # testing/sim/node.py): without it a joiner that catches up by log applies only ADD 4 and ends
    # up believing it is a one-voter cluster, which could elect itself alone.
    c = Cluster((1, 2, 3))
    c.elect(1)
    c.add(4)
    c.nodes[1].propose_conf_change(ConfChange(ADD, 4))
    c.stabilize()
    c.tick(3)
    assert c.raft(4).voters == (4,)
