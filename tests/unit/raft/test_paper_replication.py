"""Raft §5.3 (log replication), §5.4.2 (committing entries from previous terms), and the pipelining
and persistence rules of this implementation."""

from __future__ import annotations

from pyetcd.raft.progress import ProgressState, committed_index
from pyetcd.raft.types import Entry, Message, MsgType, Role

from .harness import Cluster, entries, make_leader, persist, raft, take


def _prop(r_id: int, *data: bytes) -> Message:
    return Message(MsgType.PROP, r_id, r_id, entries=tuple(Entry(0, 0, data=d) for d in data))


def test_committed_index_is_the_highest_index_a_quorum_has() -> None:
    assert committed_index([5, 3, 1]) == 3
    assert committed_index([5, 5, 1, 1]) == 1
    assert committed_index([7, 6, 5, 4, 3]) == 5
    assert committed_index([9]) == 9


def test_leader_commits_a_previous_term_entry_only_through_a_current_term_entry_figure_8() -> None:
    # Figure 8 (c)-(e): S1 leads term 4 with an entry of term 2 at index 2 that has reached a majority.
    # Counting replicas must not commit it: a node whose log ends in term 3 could still win and
    # overwrite it. It commits only once an entry of term 4 is on a majority.
    r = raft(1, (1, 2, 3, 4, 5), terms=(1, 2), term=3, committed=1)
    make_leader(r)
    assert r.term == 4 and r.log.last_index == 3  # the empty term-4 entry
    r.step(Message(MsgType.APP_RESP, 1, 2, 4, index=2))
    r.step(Message(MsgType.APP_RESP, 1, 3, 4, index=2))
    assert r.log.committed == 1, "an old-term entry on a majority must not commit by counting"
    r.step(Message(MsgType.APP_RESP, 1, 2, 4, index=3))
    assert r.log.committed == 1  # 2 of 5 have the term-4 entry
    r.step(Message(MsgType.APP_RESP, 1, 3, 4, index=3))
    assert r.log.committed == 3, "a current-term entry on a majority commits it and everything before"


def test_leader_counts_its_own_entries_only_after_on_persisted() -> None:
    r = raft(1, (1, 2, 3))
    make_leader(r)
    r.step(Message(MsgType.APP_RESP, 1, 2, 1, index=1))
    assert r.log.committed == 1
    r.step(_prop(1, b"a"))
    take(r)
    assert r.log.stable_index == 1 and r.log.last_index == 2
    r.step(Message(MsgType.APP_RESP, 1, 3, 1, index=2))  # one follower has it: 1 of 3 counted
    assert r.log.committed == 1, "the leader's unsynced entry counted towards the quorum"
    r.on_persisted(2, 1)
    assert r.log.committed == 2


def test_single_node_leader_commits_only_after_persisting() -> None:
    r = raft(1, (1,))
    r.step(Message(MsgType.HUP, 1, 1))
    assert r.role is Role.LEADER and r.log.committed == 0
    persist(r)
    assert r.log.committed == 1
    r.step(_prop(1, b"a"))
    assert r.log.committed == 1
    persist(r)
    assert r.log.committed == 2


def test_follower_applies_only_entries_that_are_both_committed_and_persisted() -> None:
    r = raft(2, (1, 2, 3), term=1)
    r.step(Message(MsgType.APP, 2, 1, 1, log_term=0, index=0, entries=tuple(entries(1, 1)), commit=2))
    assert r.log.committed == 2 and r.log.stable_index == 0
    assert r.log.next_committed() == []
    r.on_persisted(2, 1)
    assert [e.index for e in r.log.next_committed()] == [1, 2]


def test_follower_rejects_append_whose_previous_entry_it_does_not_have() -> None:
    r = raft(2, (1, 2, 3), terms=(1, 1), term=2)
    r.step(Message(MsgType.APP, 2, 1, 2, log_term=2, index=2, entries=(Entry(2, 3),)))
    (resp,) = take(r, MsgType.APP_RESP)
    assert resp.reject and resp.index == 2 and resp.reject_hint == 2
    r.step(Message(MsgType.APP, 2, 1, 2, log_term=1, index=5, entries=(Entry(2, 6),)))
    (resp,) = take(r, MsgType.APP_RESP)
    assert resp.reject and resp.reject_hint == 2  # hint: our last index
    assert r.log.last_index == 2


def test_log_matching_an_append_that_matches_is_accepted_and_acked_with_the_last_new_index() -> None:
    r = raft(2, (1, 2, 3), terms=(1, 1), term=2)
    r.step(Message(MsgType.APP, 2, 1, 2, log_term=1, index=2, entries=(Entry(2, 3), Entry(2, 4)), commit=3))
    (resp,) = take(r, MsgType.APP_RESP)
    assert not resp.reject and resp.index == 4
    assert r.log.committed == 3


def test_conflicting_uncommitted_entries_are_truncated_and_replaced() -> None:
    r = raft(2, (1, 2, 3), terms=(1, 1, 1, 1), term=2, committed=1)
    r.step(Message(MsgType.APP, 2, 1, 2, log_term=1, index=1, entries=(Entry(2, 2),)))
    assert [(e.index, e.term) for e in r.log.entries] == [(1, 1), (2, 2)]
    assert r.log.stable_index == 1, "the truncated tail is no longer on disk as far as we know"


def test_an_append_already_contained_in_the_log_truncates_nothing() -> None:
    r = raft(2, (1, 2, 3), terms=(1, 1, 1, 1), term=1)
    # A delayed duplicate carrying only entry 2: the entries after it (3, 4) must stay.
    r.step(Message(MsgType.APP, 2, 1, 1, log_term=1, index=1, entries=(Entry(1, 2),)))
    assert r.log.last_index == 4
    (resp,) = take(r, MsgType.APP_RESP)
    assert resp.index == 2


def test_leader_backs_off_after_rejects_until_the_logs_match() -> None:
    c = Cluster((1, 2, 3), pre_vote=False, check_quorum=False)
    c.elect(1)
    for i in range(5):
        c.propose(1, b"%d" % i)
    # Node 3 misses everything from here; node 1 keeps writing.
    c.isolate(3)
    for i in range(5, 10):
        c.propose(1, b"%d" % i)
    c.heal()
    c.tick(3)
    assert c.raft(3).log.entries == c.raft(1).log.entries
    rejects = [m for m in c.sent if m.type is MsgType.APP_RESP and m.frm == 3 and m.reject]
    assert rejects, "the leader should have probed backwards"


def test_leader_overwrites_a_divergent_follower_log() -> None:
    c = Cluster((1, 2, 3), pre_vote=False, check_quorum=False)
    c.elect(1)
    c.propose(1, b"base")
    c.isolate(1)
    c.nodes[1].propose(b"lost-1")  # only on the old leader
    c.nodes[1].propose(b"lost-2")
    c.stabilize()
    c.elect(2)
    c.propose(2, b"kept")
    c.heal()
    c.tick(3)
    assert c.leader() == 2
    for i in (1, 2, 3):
        assert c.data_applied(i) == [b"base", b"kept"]
        assert c.raft(i).log.entries == c.raft(2).log.entries


def test_heartbeat_carries_min_of_the_followers_match_and_the_commit_index() -> None:
    r = raft(1, (1, 2, 3))
    make_leader(r)
    for d in (b"a", b"b", b"c"):
        r.step(_prop(1, d))
    persist(r)
    r.step(Message(MsgType.APP_RESP, 1, 2, 1, index=4))
    assert r.log.committed == 4
    take(r)
    r.step(Message(MsgType.BEAT, 1, 1))
    beats = {m.to: m.commit for m in take(r, MsgType.HEARTBEAT)}
    assert beats == {2: 4, 3: 0}, "node 3 acked nothing: it must not be told to commit past its log"


def test_follower_commits_from_a_heartbeat_no_further_than_its_log() -> None:
    r = raft(2, (1, 2, 3), terms=(1, 1), term=1)
    r.step(Message(MsgType.HEARTBEAT, 2, 1, 1, commit=5))
    assert r.log.committed == 2
    assert take(r, MsgType.HEARTBEAT_RESP)


def test_pipelined_appends_are_bounded_by_the_inflight_window() -> None:
    r = raft(1, (1, 2), inflight_max=2)
    make_leader(r)
    r.step(Message(MsgType.APP_RESP, 1, 2, 1, index=1))  # probe answered: replicate
    assert r.prs[2].state is ProgressState.REPLICATE
    take(r)
    for i in range(5):
        r.step(_prop(1, b"%d" % i))
    apps = [m for m in take(r, MsgType.APP) if m.entries]
    assert len(apps) == 2 and r.prs[2].is_paused()
    r.step(Message(MsgType.APP_RESP, 1, 2, 1, index=apps[0].entries[-1].index))
    assert [m for m in take(r, MsgType.APP) if m.entries], "an ack frees a slot"


def test_appends_are_batched_up_to_entries_per_append_max() -> None:
    r = raft(1, (1, 2), entries_per_append_max=3)
    make_leader(r)
    r.step(Message(MsgType.APP_RESP, 1, 2, 1, index=1))
    take(r)
    r.step(_prop(1, *[b"%d" % i for i in range(7)]))
    first = take(r, MsgType.APP)
    assert [len(m.entries) for m in first] == [3]  # one batch per broadcast...
    r.step(Message(MsgType.APP_RESP, 1, 2, 1, index=first[0].entries[-1].index))
    assert [len(m.entries) for m in take(r, MsgType.APP)] == [3, 1]  # ...the rest pipelined on the ack


def test_pipelining_stops_once_every_entry_is_in_flight() -> None:
    # Regression: with all entries sent but not acked, the leader used to loop sending empty appends.
    r = raft(1, (1, 2), inflight_max=8)
    make_leader(r)
    r.step(Message(MsgType.APP_RESP, 1, 2, 1, index=1))
    take(r)
    r.step(_prop(1, b"a", b"b", b"c"))
    apps = take(r, MsgType.APP)
    r.step(Message(MsgType.APP_RESP, 1, 2, 1, index=apps[0].entries[0].index))  # partial ack
    assert len(take(r, MsgType.APP)) <= 1


def test_a_lost_append_in_a_full_window_is_resent_after_a_heartbeat_response() -> None:
    # Regression: REPLICATE with inflight_max=1 and the only in-flight append lost stalled forever.
    r = raft(1, (1, 2), inflight_max=1)
    make_leader(r)
    r.step(Message(MsgType.APP_RESP, 1, 2, 1, index=1))
    take(r)
    r.step(_prop(1, b"a"))
    r.step(_prop(1, b"b"))
    persist(r)
    take(r)  # the append carrying entry 2 is "lost"
    assert r.prs[2].is_paused()
    r.step(Message(MsgType.HEARTBEAT_RESP, 1, 2, 1))
    resent = [m for m in take(r, MsgType.APP)]
    assert resent, "no append after the heartbeat response: replication stalled"
    # The follower rejects (it lacks entry 2); the leader falls back to probing from its match.
    r.step(Message(MsgType.APP_RESP, 1, 2, 1, index=resent[0].index, reject=True, reject_hint=1))
    (probe,) = take(r, MsgType.APP)
    assert probe.index == 1 and [e.index for e in probe.entries] == [2, 3]


def test_follower_acks_an_append_below_its_commit_index_with_the_commit_index() -> None:
    r = raft(2, (1, 2, 3), terms=(1, 1, 1), term=1, committed=3)
    r.step(Message(MsgType.APP, 2, 1, 1, log_term=1, index=1, entries=(Entry(1, 2),)))
    (resp,) = take(r, MsgType.APP_RESP)
    assert not resp.reject and resp.index == 3
