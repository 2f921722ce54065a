"""Raft §5.2 (leader election) and §5.4.1 (election restriction)."""

from __future__ import annotations

import random

import pytest
from pyetcd.raft.types import NONE, Message, MsgType, Role

from .harness import Cluster, make_leader, persist, raft, take


def test_follower_that_hears_nothing_for_an_election_timeout_becomes_candidate() -> None:
    r = raft(1, (1, 2, 3))
    for _ in range(2 * r.cfg.election_ticks):
        r.tick()
    assert r.role is Role.CANDIDATE
    assert r.term == 1 and r.vote == 1
    votes = take(r, MsgType.VOTE)
    assert sorted(m.to for m in votes) == [2, 3]
    assert all(m.term == 1 and m.index == 0 and m.log_term == 0 for m in votes)


@pytest.mark.parametrize("seed", range(20))
def test_randomized_election_timeout_is_between_one_and_two_election_timeouts(seed: int) -> None:
    r = raft(1, (1, 2, 3), seed=seed)
    et = r.cfg.election_ticks
    assert et <= r.randomized_election_ticks < 2 * et
    for tick in range(1, 2 * et + 1):
        r.tick()
        if r.role is Role.CANDIDATE:
            assert tick == r.randomized_election_ticks or tick >= et
            break
    assert r.role is Role.CANDIDATE


def test_candidate_with_votes_from_a_majority_becomes_leader() -> None:
    r = raft(1, (1, 2, 3, 4, 5))
    r.step(Message(MsgType.HUP, 1, 1))
    r.step(Message(MsgType.VOTE_RESP, 1, 2, 1))
    assert r.role is Role.CANDIDATE  # 2 of 5
    r.step(Message(MsgType.VOTE_RESP, 1, 3, 1))
    assert r.role is Role.LEADER and r.lead == 1


def test_candidate_rejected_by_a_majority_returns_to_follower() -> None:
    r = raft(1, (1, 2, 3))
    r.step(Message(MsgType.HUP, 1, 1))
    r.step(Message(MsgType.VOTE_RESP, 1, 2, 1, reject=True))
    assert r.role is Role.CANDIDATE
    r.step(Message(MsgType.VOTE_RESP, 1, 3, 1, reject=True))
    assert r.role is Role.FOLLOWER and r.term == 1


def test_duplicate_vote_from_one_node_counts_once() -> None:
    r = raft(1, (1, 2, 3, 4, 5))
    r.step(Message(MsgType.HUP, 1, 1))
    for _ in range(3):
        r.step(Message(MsgType.VOTE_RESP, 1, 2, 1))
    assert r.role is Role.CANDIDATE


def test_candidate_steps_down_on_append_from_a_leader_of_its_term() -> None:
    r = raft(1, (1, 2, 3))
    r.step(Message(MsgType.HUP, 1, 1))
    r.step(Message(MsgType.APP, 1, 2, 1))
    assert r.role is Role.FOLLOWER and r.lead == 2 and r.term == 1


@pytest.mark.parametrize("kind", [MsgType.APP, MsgType.HEARTBEAT, MsgType.VOTE, MsgType.APP_RESP])
def test_any_message_with_a_higher_term_turns_a_leader_into_follower(kind: MsgType) -> None:
    r = raft(1, (1, 2, 3))
    make_leader(r)
    r.step(Message(kind, 1, 2, r.term + 5, log_term=9, index=9))
    assert r.role is Role.FOLLOWER and r.term == 6


def test_stale_term_messages_are_ignored_but_a_stale_leader_learns_the_term() -> None:
    r = raft(1, (1, 2, 3), term=5, pre_vote=True)
    r.step(Message(MsgType.APP, 1, 2, 3, entries=()))
    out = take(r)
    assert [(m.type, m.to, m.term) for m in out] == [(MsgType.APP_RESP, 2, 5)]
    assert r.term == 5 and r.lead == NONE


def test_node_grants_at_most_one_vote_per_term() -> None:
    r = raft(1, (1, 2, 3))
    r.step(Message(MsgType.VOTE, 1, 2, 1))
    r.step(Message(MsgType.VOTE, 1, 3, 1))
    r.step(Message(MsgType.VOTE, 1, 2, 1))  # a retransmission from the same candidate is granted again
    resp = [(m.to, m.reject) for m in take(r, MsgType.VOTE_RESP)]
    assert resp == [(2, False), (3, True), (2, False)]
    assert r.vote == 2


def test_the_vote_is_part_of_the_hard_state_and_survives_a_restart() -> None:
    r = raft(1, (1, 2, 3))
    r.step(Message(MsgType.VOTE, 1, 2, 1))
    hs = r.hard_state()
    assert (hs.term, hs.vote) == (1, 2)
    again = raft(1, (1, 2, 3), term=hs.term, vote=hs.vote)
    again.step(Message(MsgType.VOTE, 1, 3, 1))
    assert take(again, MsgType.VOTE_RESP)[0].reject


# (voter's log terms, candidate's last log term, candidate's last index, granted?)
UP_TO_DATE = [
    ((1, 1), 1, 2, True),   # same last term, same length
    ((1, 1), 1, 3, True),   # same last term, longer
    ((1, 1), 1, 1, False),  # same last term, shorter
    ((1, 2), 1, 5, False),  # lower last term, however long
    ((1, 2), 3, 1, True),   # higher last term, however short
    ((), 0, 0, True),       # both empty
    ((1,), 0, 0, False),    # empty candidate, voter has an entry
]


@pytest.mark.parametrize(("voter_terms", "cand_term", "cand_index", "granted"), UP_TO_DATE)
def test_vote_is_granted_only_to_a_candidate_whose_log_is_at_least_as_up_to_date(
        voter_terms: tuple[int, ...], cand_term: int, cand_index: int, granted: bool) -> None:
    term = max(voter_terms, default=0) + 5
    r = raft(1, (1, 2, 3), terms=voter_terms, term=term - 1)
    r.step(Message(MsgType.VOTE, 1, 2, term, log_term=cand_term, index=cand_index))
    (resp,) = take(r, MsgType.VOTE_RESP)
    assert resp.reject is (not granted)
    assert r.vote == (2 if granted else NONE)


def test_leader_appends_an_empty_entry_of_its_term_on_election() -> None:
    r = raft(1, (1, 2, 3), terms=(1, 1), term=1)
    make_leader(r)
    assert r.log.last_index == 3 and r.log.term(3) == r.term == 2
    assert r.log.entries[-1].data == b""


@pytest.mark.parametrize("seed", range(8))
def test_election_safety_at_most_one_leader_per_term_under_partitions(seed: int) -> None:
    rng = random.Random(seed)
    c = Cluster((1, 2, 3, 4, 5), seed=seed, pre_vote=bool(seed % 2), check_quorum=bool(seed % 3))
    leaders: dict[int, int] = {}
    for _ in range(60):
        c.heal()
        if rng.random() < 0.7:
            ids = list(c.nodes)
            rng.shuffle(ids)
            cut = rng.randint(1, 4)
            for a in ids[:cut]:
                for b in ids[cut:]:
                    c.blocked |= {(a, b), (b, a)}
        for _ in range(rng.randint(1, 25)):
            c.tick()
            for i in c.nodes:
                rr = c.raft(i)
                if rr.role is Role.LEADER:
                    assert leaders.setdefault(rr.term, i) == i, f"two leaders in term {rr.term}"
    assert leaders, "no leader was ever elected"


def test_cluster_elects_a_leader_and_replicates_a_proposal() -> None:
    c = Cluster((1, 2, 3))
    c.tick(30)
    lead = c.leader()
    assert lead is not None
    c.propose(lead, b"x")
    follower = next(i for i in c.nodes if i != lead)
    c.propose(follower, b"y")  # forwarded to the leader
    c.tick(2)
    for i in c.nodes:
        assert c.data_applied(i) == [b"x", b"y"]
    persist(c.raft(lead))
