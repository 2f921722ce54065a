"""Raft thesis §9.6 (PreVote) and §6.2 (CheckQuorum, and ignoring RequestVote within the minimum election
timeout of hearing from a leader): partitioned or paused nodes must not disrupt a healthy cluster."""

from __future__ import annotations

from pyetcd.raft.types import Message, MsgType, Role

from .harness import Cluster, make_leader, raft, take


def test_prevote_a_partitioned_node_rejoining_does_not_bump_the_clusters_term() -> None:
    c = Cluster((1, 2, 3), pre_vote=True, check_quorum=True)
    c.elect(1)
    term = c.raft(1).term
    c.isolate(3)
    c.tick(100)
    assert c.raft(3).term == term, "pre-campaigns must not increase the term"
    assert c.raft(3).role is Role.PRE_CANDIDATE
    c.heal()
    c.tick(5)
    assert c.leader() == 1
    assert {c.raft(i).term for i in c.nodes} == {term}
    assert c.raft(3).role is Role.FOLLOWER and c.raft(3).lead == 1


def test_without_prevote_a_rejoining_node_forces_a_new_term() -> None:
    c = Cluster((1, 2, 3), pre_vote=False, check_quorum=False)
    c.elect(1)
    term = c.raft(1).term
    c.isolate(3)
    c.tick(50)
    assert c.raft(3).term > term
    c.heal()
    c.tick(30)
    assert c.raft(1).term > term  # the contrast that PreVote exists for


def test_prevote_does_not_change_term_or_vote_of_the_voters() -> None:
    r = raft(1, (1, 2, 3), terms=(1,), term=1)
    r.step(Message(MsgType.PRE_VOTE, 1, 2, 2, log_term=1, index=1))
    (resp,) = take(r)
    assert resp.type is MsgType.PRE_VOTE_RESP and not resp.reject and resp.term == 2
    assert (r.term, r.vote) == (1, 0)


def test_prevote_is_rejected_for_a_candidate_with_a_stale_log() -> None:
    r = raft(1, (1, 2, 3), terms=(1, 2), term=2)
    r.step(Message(MsgType.PRE_VOTE, 1, 2, 3, log_term=1, index=5))
    (resp,) = take(r)
    assert resp.reject and resp.term == 2


def test_pre_candidate_becomes_candidate_only_with_a_quorum_of_pre_votes() -> None:
    r = raft(1, (1, 2, 3), pre_vote=True, term=3)
    r.step(Message(MsgType.HUP, 1, 1))
    assert r.role is Role.PRE_CANDIDATE and r.term == 3
    pre = take(r, MsgType.PRE_VOTE)
    assert {m.term for m in pre} == {4}
    r.step(Message(MsgType.PRE_VOTE_RESP, 1, 2, 4))
    assert r.role is Role.CANDIDATE and r.term == 4 and r.vote == 1


def test_check_quorum_an_isolated_leader_steps_down_after_an_election_timeout() -> None:
    c = Cluster((1, 2, 3), pre_vote=True, check_quorum=True)
    c.elect(1)
    c.isolate(1)
    et = c.raft(1).cfg.election_ticks
    c.tick(et - 1, only=(1,))
    assert c.raft(1).role is Role.LEADER  # heard from the others in this window
    c.tick(et + 1, only=(1,))
    assert c.raft(1).role is Role.FOLLOWER and c.raft(1).lead == 0


def test_check_quorum_a_leader_with_a_quorum_stays_leader() -> None:
    c = Cluster((1, 2, 3), pre_vote=True, check_quorum=True)
    c.elect(1)
    c.isolate(3)
    c.tick(50)
    assert c.leader() == 1 and c.raft(1).role is Role.LEADER


def test_follower_in_lease_ignores_a_disruptive_candidate() -> None:
    r = raft(2, (1, 2, 3), check_quorum=True, term=1)
    r.step(Message(MsgType.HEARTBEAT, 2, 1, 1))
    take(r)
    r.step(Message(MsgType.VOTE, 2, 3, 5, log_term=9, index=9))
    assert take(r) == [] and r.term == 1 and r.lead == 1
    # Once an election timeout passes without the leader, the vote is considered.
    for _ in range(r.cfg.election_ticks):
        r.election_elapsed += 1
    r.step(Message(MsgType.VOTE, 2, 3, 5, log_term=9, index=9))
    assert r.term == 5 and r.vote == 3


def test_a_leadership_transfer_vote_overrides_the_lease() -> None:
    r = raft(2, (1, 2, 3), check_quorum=True, term=1)
    r.step(Message(MsgType.HEARTBEAT, 2, 1, 1))
    take(r)
    r.step(Message(MsgType.VOTE, 2, 3, 2, log_term=0, index=0, context=b"transfer"))
    (resp,) = take(r, MsgType.VOTE_RESP)
    assert not resp.reject and r.term == 2


def test_a_leader_ignores_votes_while_it_holds_its_lease() -> None:
    r = raft(1, (1, 2, 3), check_quorum=True)
    make_leader(r)
    r.step(Message(MsgType.VOTE, 1, 2, 9, log_term=9, index=9))
    assert r.role is Role.LEADER and r.term == 1


def test_a_paused_leader_that_resumes_steps_down_on_the_new_term() -> None:
    c = Cluster((1, 2, 3), pre_vote=True, check_quorum=True)
    c.elect(1)
    c.down.add(1)  # SIGSTOP
    c.tick(40)
    new = c.leader()
    assert new in (2, 3)
    c.down.discard(1)  # SIGCONT
    c.nodes[1].raft.step(Message(MsgType.BEAT, 1, 1))
    c.stabilize()
    assert c.raft(1).role is Role.FOLLOWER and c.raft(1).term == c.raft(new).term
