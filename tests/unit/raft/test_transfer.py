"""Raft thesis §3.10: leadership transfer. The leader brings the transferee up to date, then sends
TIMEOUT_NOW; the transferee campaigns at once (no PreVote, overriding leases)."""

from __future__ import annotations

import pytest
from pyetcd.raft.core import ProposalDropped
from pyetcd.raft.types import Message, MsgType, Role

from .harness import Cluster


def test_transfer_to_an_up_to_date_follower_sends_timeout_now_and_it_wins() -> None:
    c = Cluster((1, 2, 3), pre_vote=True, check_quorum=True)
    c.elect(1)
    c.propose(1, b"x")
    c.nodes[1].transfer_leadership(2)
    c.stabilize()
    assert any(m.type is MsgType.TIMEOUT_NOW and m.to == 2 for m in c.sent)
    assert c.leader() == 2
    assert c.raft(1).role is Role.FOLLOWER and c.raft(1).lead == 2


def test_transfer_to_a_lagging_follower_catches_it_up_first() -> None:
    c = Cluster((1, 2, 3), pre_vote=True, check_quorum=True)
    c.elect(1)
    c.isolate(3)
    for i in range(5):
        c.propose(1, b"%d" % i)
    c.heal()
    c.sent.clear()
    c.nodes[1].transfer_leadership(3)
    c.stabilize()
    kinds = [m.type for m in c.sent if m.to == 3 and m.frm == 1]
    assert MsgType.APP in kinds and MsgType.TIMEOUT_NOW in kinds
    assert kinds.index(MsgType.APP) < kinds.index(MsgType.TIMEOUT_NOW)
    assert c.leader() == 3
    assert c.data_applied(3)[:5] == [b"%d" % i for i in range(5)]


def test_proposals_are_refused_while_a_transfer_is_in_progress() -> None:
    c = Cluster((1, 2, 3))
    c.elect(1)
    c.isolate(2)
    c.nodes[1].transfer_leadership(2)
    c.stabilize()
    with pytest.raises(ProposalDropped):
        c.nodes[1].propose(b"x")


def test_an_unfinished_transfer_is_abandoned_after_an_election_timeout() -> None:
    c = Cluster((1, 2, 3))
    c.elect(1)
    c.isolate(2)
    c.nodes[1].transfer_leadership(2)
    c.stabilize()
    c.tick(c.raft(1).cfg.election_ticks + 1, only=(1,))
    assert c.raft(1).role is Role.LEADER
    c.nodes[1].propose(b"after")  # accepted again


def test_a_follower_forwards_a_transfer_request_to_the_leader() -> None:
    c = Cluster((1, 2, 3))
    c.elect(1)
    c.nodes[3].raft.step(Message(MsgType.TRANSFER_LEADER, 3, 3))
    c.stabilize()
    assert c.leader() == 3
