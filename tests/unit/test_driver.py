"""server/driver.py (MemberDriver) driven by hand: one or several members, each recovered over a SimDisk,
turned by the tiny in-test shell of tests/unit/member_shell.py with explicit clocks, their messages
moved by the test. Pure: no sockets, no threads, no sleeping."""

from __future__ import annotations

from pyetcd.raft.types import HardState, MsgType, Role
from pyetcd.server.driver import DISK_RETRY_S, NO_SPACE, SNAPSHOT_RETRY_S, TIMED_OUT
from pyetcd.server.pending import Kind
from pyetcd.store import errors

from .member_shell import REQUEST_ID_START, TIMEOUT_S, Net, Shell, Waiter, cluster, error, event, put


def _disk_state(s: Shell) -> tuple[int, int, int, int]:
    d = s.disk
    return len(d.records), d.durable, d.fsyncs, d.full_refusals


def _leader(now: float = 0.0, **kw: object) -> Shell:
    """A single-member cluster, settled: log 1 ADD_NODE, 2 the leader's empty entry, 3 its attributes."""
    s = Shell(1, **kw)  # type: ignore[arg-type]
    s.run(now)
    st = s.status()
    assert (st.role, st.term, st.commit, st.applied) == (Role.LEADER, 2, 3, 3)
    assert s.driver.store.index == 2
    return s


def _three(now: float = 0.0) -> tuple[Net, Shell, Shell, Shell]:
    """Three members, member 1 elected: log 1-3 ADD_NODE, 4 empty, 5-7 the members' attributes."""
    net = cluster(3)
    net.elect(1, now)
    for s in net.shells.values():
        st = s.status()
        assert (st.term, st.commit, st.applied, st.last_index) == (2, 7, 7, 7)
        assert s.driver.store.index == 6
    return net, net[1], net[2], net[3]


# ---- batching ------------------------------------------------------------------------------------

def test_writes_offered_before_a_turn_become_one_proposal_and_are_answered_per_waiter() -> None:
    s = _leader()
    waiters = [Waiter(f"w{i}") for i in range(3)]
    for i, w in enumerate(waiters):
        s.write(w, put(f"/k{i}", f"v{i}"), 1.0)

    turn = s.begin(1.0)
    assert turn is not None
    p = turn.persist
    assert p is not None
    assert [e.index for e in p.entries] == [4, 5, 6]
    assert {e.term for e in p.entries} == {2}
    assert (p.snapshot, p.hard_state, p.must_sync) == (None, None, True)  # the entries, nothing else
    assert turn.send_now == [] and turn.answers == []
    assert turn.ready is not None and turn.ready.messages == [] and turn.ready.committed_entries == []
    assert s.answers == []  # nothing answered before the sync

    out = s.complete(turn)
    assert out.answers == []  # durable and committed now; applied by the next turn
    assert s.status().commit == 6

    turn, out = s.turn(1.0)  # type: ignore[misc]
    assert turn.persist is not None and turn.persist.entries == [] and not turn.persist.must_sync
    assert turn.persist.hard_state == HardState(2, 1, 6)
    assert [(a.waiter, a.kind) for a in out.answers] == [(w, Kind.WRITE) for w in waiters]
    got = [event(a) for a in out.answers]
    assert [(e.action, e.node.key, e.node.value, e.index) for e in got] == \
        [("set", "/k0", "v0", 3), ("set", "/k1", "v1", 4), ("set", "/k2", "v2", 5)]
    assert [a.applied.index for a in out.answers] == [4, 5, 6]  # type: ignore[union-attr]
    assert s.run(1.0) == 0


def test_a_batch_goes_to_each_follower_as_one_append() -> None:
    net, leader, f2, f3 = _three()
    for i in range(4):
        leader.write(Waiter(f"w{i}"), put("/k", f"v{i}"), 1.0)

    turn = leader.begin(1.0)
    assert turn is not None and turn.persist is not None
    assert [e.index for e in turn.persist.entries] == [8, 9, 10, 11]
    assert sorted(m.to for m in turn.send_now) == [2, 3]
    assert {m.type for m in turn.send_now} == {MsgType.APP}
    assert all([e.index for e in m.entries] == [8, 9, 10, 11] for m in turn.send_now)
    leader.complete(turn)
    net.settle(1.0)

    assert [event(a).node.value for a in leader.answers] == ["v0", "v1", "v2", "v3"]
    assert [event(a).prev_node.value for a in leader.answers[1:]] == ["v0", "v1", "v2"]  # type: ignore[union-attr]
    assert f2.value("/k") == f3.value("/k") == "v3"


def test_quorum_reads_offered_together_share_one_read_index_round() -> None:
    net, leader, f2, f3 = _three()
    readers = [Waiter(f"r{i}") for i in range(3)]
    for r in readers:
        leader.driver.read(r, r, 1.0)

    turn, out = leader.turn(1.0)  # type: ignore[misc]
    ctx = REQUEST_ID_START.to_bytes(8, "big")  # the first read's request id
    beats = [m for m in out.messages if m.type is MsgType.HEARTBEAT]
    assert [(m.to, m.context) for m in sorted(beats, key=lambda m: m.to)] == [(2, ctx), (3, ctx)]
    assert out.messages == beats and turn.send_now == []
    assert out.answers == [] and leader.answers == []

    net.settle(1.0)

    assert [(a.waiter, a.result, a.kind) for a in leader.answers] == [(r, None, Kind.READ) for r in readers]
    beats = [m for m in leader.sent if m.type is MsgType.HEARTBEAT]
    assert {m.context for m in beats} == {ctx} and len(beats) == 2  # one round, one context
    assert leader.status().applied == 7


def test_a_quorum_read_on_a_follower_is_answered_once_the_leaders_read_index_is_applied() -> None:
    net, leader, f2, f3 = _three()
    f2.driver.read(Waiter("r"), "tag", 1.0)
    net.settle(1.0)
    assert [(a.waiter, a.tag, a.result) for a in f2.answers] == [(Waiter("r"), "tag", None)]
    assert [m.type for m in f2.sent if m.type is MsgType.READ_INDEX] == [MsgType.READ_INDEX]


# ---- send before fsync ---------------------------------------------------------------------------

def test_the_leader_sends_appends_before_its_fsync_and_counts_itself_only_once_persisted() -> None:
    net, leader, f2, f3 = _three()
    w = Waiter("w")
    leader.write(w, put("/a", "1"), 1.0)

    turn = leader.begin(1.0)
    assert turn is not None and turn.persist is not None
    assert [e.index for e in turn.persist.entries] == [8]
    # The replication messages leave with the turn, before the leader's own sync.
    assert sorted((m.type, m.to, m.index, tuple(e.index for e in m.entries)) for m in turn.send_now) == \
        [(MsgType.APP, 2, 7, (8,)), (MsgType.APP, 3, 7, (8,))]
    assert turn.ready is not None and turn.ready.messages == []
    assert not [v for k, v in leader.disk.records if k == "ent" and v.index == 8]  # not written yet

    # Only follower 2 gets the entry and acks it while the leader's fsync is running.
    net.deliver()
    f3.outbox.clear()  # follower 3 is slow: it has not answered yet
    f2.run(1.0)
    acks = [m for m in f2.outbox if m.type is MsgType.APP_RESP]
    assert [(m.index, m.reject) for m in acks] == [(8, False)]
    net.deliver()
    # Follower 2 and a leader whose own copy is not durable are not a quorum.
    assert leader.status().commit == 7
    assert dict(leader.status().match) == {1: 7, 2: 8, 3: 7}
    assert leader.answers == []

    leader.complete(turn)  # the fsync returned
    st = leader.status()
    assert st.commit == 8 and dict(st.match) == {1: 8, 2: 8, 3: 7}
    leader.run(1.0)
    assert [(a.waiter, event(a).node.value, event(a).index) for a in leader.answers] == [(w, "1", 7)]


def test_a_follower_acks_only_after_its_sync() -> None:
    net, leader, f2, f3 = _three()
    leader.write(Waiter("w"), put("/a", "1"), 1.0)
    leader.run(1.0)
    net.deliver()
    turn = f2.begin(1.0)
    assert turn is not None and turn.persist is not None and turn.persist.must_sync
    assert turn.send_now == []  # a follower sends nothing before its sync
    assert turn.ready is not None and [m.type for m in turn.ready.messages] == [MsgType.APP_RESP]
    assert f2.outbox == []
    f2.complete(turn)
    assert [(m.type, m.index) for m in f2.outbox] == [(MsgType.APP_RESP, 8)]


# ---- request timeout -----------------------------------------------------------------------------

def test_a_write_without_a_leader_times_out_at_its_deadline_and_not_before() -> None:
    s = Shell(1, (1, 2, 3), timeout_s=5.0)  # founders of a three-member cluster: nobody leads yet
    assert s.status().lead == 0
    w = Waiter("w")
    s.write(w, put("/a", "1"), 10.0)

    assert s.turn(10.0) is None
    assert s.turn(14.999) is None
    assert s.answers == []
    turn, _ = s.turn(15.0)  # type: ignore[misc]
    assert [a.waiter for a in turn.answers] == [w]
    e = error(turn.answers[0])
    assert (e.code, e.cause, e.index, e.message, e.http_status) == \
        (300, "etcdserver: request timed out", 0, "Raft Internal Error", 500)
    assert TIMED_OUT == "etcdserver: request timed out"
    assert s.turn(16.0) is None and len(s.answers) == 1  # answered once
    assert s.driver.store.index == 3


def test_a_quorum_read_without_a_leader_times_out_too() -> None:
    s = Shell(1, (1, 2, 3), timeout_s=2.0)
    s.driver.read(Waiter("r"), None, 0.0)
    assert s.turn(1.9) is None
    turn, _ = s.turn(2.0)  # type: ignore[misc]
    assert [(a.waiter, error(a).cause, a.kind) for a in turn.answers] == [(Waiter("r"), TIMED_OUT, Kind.READ)]


# ---- a full disk ---------------------------------------------------------------------------------

def test_a_full_disk_on_a_single_member() -> None:
    s = _leader()
    s.write(Waiter("a"), put("/a", "1"), 1.0)
    s.run(1.0)
    assert [event(a).node.value for a in s.answers] == ["1"]
    store_index, commit = s.driver.store.index, s.status().commit
    assert (store_index, commit) == (3, 4)

    s.disk.full = True
    s.write(Waiter("b"), put("/b", "2"), 2.0)
    durable = s.disk.records[:s.disk.durable]
    turn = s.begin(2.0)
    assert turn is not None and turn.persist is not None and [e.index for e in turn.persist.entries] == [5]
    out = s.complete(turn)  # sync raises DiskFull -> persist_failed

    assert s.disk.full_refusals == 1
    assert s.disk.records == durable  # the WAL truncated back to its last sync: nothing of the turn kept
    assert [(a.waiter, a.kind) for a in out.answers] == [(Waiter("b"), Kind.WRITE)]
    e = error(out.answers[0])
    assert (e.code, e.cause) == (errors.RAFT_INTERNAL, NO_SPACE) == (300, "etcdserver: no space")
    assert out.applied == [] and out.messages == []
    assert s.driver.store.index == store_index and s.value("/b") is None
    assert s.driver.disk_full is True
    st = s.status()
    assert st.role is Role.FOLLOWER and st.lead == 0 and st.disk_full
    assert (st.commit, st.last_index, st.term) == (4, 4, 2)  # the unsaved tail is gone

    # A new write is refused at once, by the next turn, without waiting for its deadline.
    s.write(Waiter("c"), put("/c", "3"), 2.1)
    turn, _ = s.turn(2.1)  # type: ignore[misc]
    assert [(a.waiter, error(a).cause) for a in turn.answers] == [(Waiter("c"), NO_SPACE)]
    assert turn.persist is None

    # Within DISK_RETRY_S nothing touches the disk, whatever comes in.
    quiet, mark = _disk_state(s), len(s.turns)
    for now in (2.2, 2.5, 2.9, 2.999):
        s.driver.tick()
        s.run(now)
    assert _disk_state(s) == quiet
    # One turn: the Ready that tells the shell it no longer leads (nothing to write in it).
    assert [(t.persist.entries, t.persist.hard_state, t.persist.must_sync)  # type: ignore[union-attr]
            for t in s.turns[mark:]] == [([], None, False)]
    assert s.turns[mark].ready.soft_state.role is Role.FOLLOWER  # type: ignore[union-attr]

    # Then a probe: the hard state, synced, to find out whether there is room again.
    turn, out = s.turn(2.0 + DISK_RETRY_S)  # type: ignore[misc]
    assert turn.probe and turn.persist == type(turn.persist)(None, [], HardState(2, 1, 4), True)
    assert s.disk.full_refusals == 2 and _disk_state(s)[:3] == quiet[:3]
    assert s.driver.disk_full and s.turn(3.5) is None  # the next probe is a full DISK_RETRY_S later

    s.disk.full = False
    turn, out = s.turn(4.0)  # type: ignore[misc]
    assert turn.probe
    assert s.driver.disk_full is False and s.status().disk_full is False
    assert s.disk.records[-1] == ("hs", HardState(2, 1, 4)) and s.disk.durable == len(s.disk.records)

    # It campaigns again (an election timeout: at most 2 x 10 ticks) and leads.
    for k in range(20):
        s.driver.tick()
        s.run(4.0 + k / 100)
    st = s.status()
    assert (st.role, st.term) == (Role.LEADER, 3)
    s.write(Waiter("d"), put("/d", "4"), 5.0)
    s.run(5.0)
    assert [(a.waiter, event(a).node.value) for a in s.answers[-1:]] == [(Waiter("d"), "4")]

    # A restart recovers exactly the acknowledged writes.
    acked = {event(a).node.key: event(a).node.value for a in s.answers if a.kind is Kind.WRITE
             and not isinstance(a.result, Exception)}
    assert acked == {"/a": "1", "/d": "4"}
    index = s.driver.store.index
    s.start()
    s.run(6.0)
    assert {k: s.value(k) for k in ("/a", "/b", "/c", "/d")} == {"/a": "1", "/b": None, "/c": None, "/d": "4"}
    assert s.driver.store.index == index + 1  # and its attributes published again at start (as etcd)


def test_a_lone_voter_restarting_on_a_full_disk_refuses_its_unsaved_term_until_a_retry_is_due() -> None:
    s = _leader()
    s.write(Waiter("a"), put("/a", "1"), 0.0)
    s.run(0.0)
    s.disk.full = True
    s.start()  # campaigns at once: term 3, in memory only
    assert (s.status().role, s.status().term) == (Role.LEADER, 3)

    turn, out = s.turn(10.0)  # type: ignore[misc]
    assert turn.persist is not None and turn.persist.hard_state == HardState(3, 1, 4)
    assert s.driver.disk_full and s.status().role is Role.FOLLOWER and out.messages == []
    quiet = _disk_state(s)

    # Its term and vote are still not durable: every Ready needs a sync, and is refused unwritten.
    s.driver.tick()
    turn, out = s.turn(10.5)  # type: ignore[misc]
    assert turn.refused and turn.persist is None
    assert turn.ready is not None and turn.ready.must_sync and turn.ready.hard_state == HardState(3, 1, 4)
    assert _disk_state(s) == quiet
    assert s.turn(10.5) is None  # stalled until an input or the retry

    s.driver.tick()
    turn, _ = s.turn(11.0)  # due: written, and refused by the disk
    assert not turn.refused and not turn.probe and turn.persist.hard_state == HardState(3, 1, 4)  # type: ignore[union-attr]
    assert s.disk.full_refusals == quiet[3] + 1 and s.driver.disk_full

    s.disk.full = False
    s.driver.tick()
    s.turn(12.0)
    assert not s.driver.disk_full
    assert s.disk.load().hard_state == HardState(3, 1, 4)
    for k in range(20):
        s.driver.tick()
        s.run(12.0 + k / 100)
    assert (s.status().role, s.status().term) == (Role.LEADER, 4)
    assert s.value("/a") == "1"


def test_a_follower_with_a_full_disk_does_not_ack_keeps_answering_heartbeats_and_does_not_campaign() -> None:
    net, leader, f2, f3 = _three()
    f3.disk.full = True
    f3.outbox.clear()
    sent_before = len(f3.sent)

    leader.write(Waiter("a"), put("/a", "1"), 1.0)
    net.settle(1.0)
    assert [event(a).node.value for a in leader.answers] == ["1"]  # committed by 1 and 2
    assert f3.driver.disk_full and f3.disk.full_refusals == 1
    st3 = f3.status()
    assert (st3.last_index, st3.commit, st3.applied, st3.term, st3.role) == (7, 7, 7, 2, Role.FOLLOWER)
    assert f3.value("/a") is None

    # Within DISK_RETRY_S, a Ready that needs a sync is refused without touching the disk.
    quiet = _disk_state(f3)
    net.tick(1.1)
    refused = [t for t in f3.turns if t.refused]
    assert refused and all(t.persist is None and t.ready is not None and t.ready.must_sync for t in refused)
    assert [e.index for e in refused[0].ready.entries] == [8]  # type: ignore[union-attr]
    assert _disk_state(f3) == quiet

    for k in range(10):
        net.tick(1.2 + k / 100)
    out3 = f3.sent[sent_before:]
    # No ack past what it holds on disk (index 7); heartbeats are answered.
    assert all(m.reject or m.index <= 7 for m in out3 if m.type is MsgType.APP_RESP)
    assert sum(m.type is MsgType.HEARTBEAT_RESP for m in out3) >= 10
    assert dict(leader.status().match)[3] == 7

    # Cut off from the leader, it still never campaigns.
    net.isolate(3)
    mark = len(f3.sent)
    for k in range(100):
        net.tick(2.0 + k / 10, only=(3,))
    st3 = f3.status()
    assert (st3.term, st3.role, st3.vote) == (2, Role.FOLLOWER, 1)
    assert not [m for m in f3.sent[mark:] if m.type in (MsgType.PRE_VOTE, MsgType.VOTE)]
    assert f3.disk.full_refusals > 1  # it kept probing, once per DISK_RETRY_S

    # Room again: it catches up.
    f3.disk.full = False
    net.heal()
    for k in range(5):
        net.tick(20.0 + k / 10)
    assert not f3.driver.disk_full
    assert f3.status().applied == leader.status().applied == 8
    assert f3.driver.store.index == leader.driver.store.index == 7
    assert f3.value("/a") == "1"
    assert leader.status().term == 2


def test_a_leader_whose_disk_fills_steps_down_and_hands_over_to_its_most_up_to_date_follower() -> None:
    net, leader, f2, f3 = _three()
    net.blocked = {(1, 3)}  # follower 3 falls behind
    leader.write(Waiter("a"), put("/a", "1"), 1.0)
    net.settle(1.0)
    assert dict(leader.status().match) == {1: 8, 2: 8, 3: 7}

    leader.disk.full = True
    f3.write(Waiter("b"), put("/b", "2"), 2.0)  # a write forwarded to the leader
    f3.run(2.0)
    net.deliver()
    turn = leader.begin(2.0)
    assert turn is not None and turn.persist is not None and [e.index for e in turn.persist.entries] == [9]
    assert sorted((m.type, m.to) for m in turn.send_now) == [(MsgType.APP, 2), (MsgType.APP, 3)]
    leader.outbox.clear()  # those appends are lost
    out = leader.complete(turn)

    # It hands over at once: MsgTimeoutNow to follower 2 (match 8; follower 3 has 7) leaves with this
    # turn's output, not with some later turn's.
    assert [(m.type, m.to, m.term) for m in out.messages] == [(MsgType.TIMEOUT_NOW, 2, 2)]
    assert out.answers == [] and out.applied == []
    st = leader.status()
    assert (st.role, st.lead, st.term, st.last_index, st.disk_full) == (Role.FOLLOWER, 0, 2, 8, True)

    net.heal()
    net.settle(2.0)
    assert f2.status().role is Role.LEADER and f2.status().term == 3
    assert leader.status().term == 3 and leader.status().lead == 2
    f2.write(Waiter("c"), put("/c", "3"), 2.5)
    net.settle(2.5)
    assert [event(a).node.value for a in f2.answers] == ["3"]
    assert f3.value("/c") == "3" and leader.value("/c") is None  # the full disk holds nothing new
    assert f2.value("/b") is None  # its entry was lost with the appends

    f3.run(2.0 + TIMEOUT_S - 0.001)
    assert f3.answers == []
    f3.run(2.0 + TIMEOUT_S)
    assert [(a.waiter, error(a).cause) for a in f3.answers] == [(Waiter("b"), TIMED_OUT)]


def test_a_leaders_write_sent_before_its_failed_fsync_is_not_refused_it_may_commit_elsewhere() -> None:
    """"No space" means "not done". A write whose entry left in send_now may still commit through the
    followers, so the leader keeps it waiting; it is answered with its real result once applied."""
    net, leader, f2, f3 = _three()
    leader.disk.full = True
    leader.write(Waiter("a"), put("/a", "1"), 1.0)
    turn = leader.begin(1.0)
    assert turn is not None and sorted((m.type, m.to, [e.index for e in m.entries]) for m in turn.send_now) \
        == [(MsgType.APP, 2, [8]), (MsgType.APP, 3, [8])]
    out = leader.complete(turn)
    assert out.answers == [] and leader.status().role is Role.FOLLOWER

    net.settle(1.0)  # the followers hold entry 8; the one told to campaign leads and commits it
    assert f2.value("/a") == f3.value("/a") == "1" and leader.value("/a") is None
    assert leader.answers == []

    leader.disk.full = False
    for k in range(10):
        net.tick(1.0 + DISK_RETRY_S + k / 10)
    assert leader.value("/a") == "1"
    assert [(a.waiter, event(a).node.value) for a in leader.answers] == [(Waiter("a"), "1")]


# ---- snapshots -----------------------------------------------------------------------------------

def test_a_snapshot_job_after_snapshot_count_entries_and_compaction_once_saved() -> None:
    s = _leader(snapshot_count=10, keep_entries=2)
    s.save_snapshots = False
    for i in range(6):  # entries 4..9
        s.write(Waiter(f"w{i}"), put("/k", f"v{i}"), 1.0)
        s.run(1.0)
    assert s.jobs == []
    s.write(Waiter("w6"), put("/k", "v6"), 1.0)
    s.run(1.0)  # entry 10: 10 applied since the last snapshot (none)

    [job] = s.jobs
    assert (job.meta.index, job.meta.term, job.meta.conf.voters) == (10, 2, (1,))
    assert job.hard_state == HardState(2, 1, 10) and job.last_index == 10
    assert s.status().snap_index == 0

    assert s.save(job)
    assert s.status().snap_index == 8  # keeps min(keep_entries, snapshot_count) = 2 entries behind it
    assert s.driver.snap_index == 10
    assert [k for k, _ in s.disk.records[-2:]] == ["save", "hs"]

    for i in range(9):  # entries 11..19: not yet snapshot_count after the snapshot
        s.write(Waiter(f"x{i}"), put("/k", f"x{i}"), 2.0)
        s.run(2.0)
    assert len(s.jobs) == 1
    s.write(Waiter("x9"), put("/k", "x9"), 2.0)
    s.run(2.0)
    assert [j.meta.index for j in s.jobs] == [10, 20]


def test_a_snapshot_that_finds_the_disk_full_leaves_the_log_whole_and_is_retried_later() -> None:
    s = _leader(snapshot_count=10, keep_entries=2)
    s.save_snapshots = False
    for i in range(7):  # entries 4..10
        s.write(Waiter(f"w{i}"), put("/k", f"v{i}"), 100.0)
        s.run(100.0)
    [job] = s.jobs
    records = list(s.disk.records)

    s.disk.full = True
    assert not s.save(job)  # DiskFull -> snapshot_failed
    s.disk.full = False
    st = s.status()
    assert (st.snap_index, st.last_index, st.applied) == (0, 10, 10)
    assert len(s.driver.raft.entries(1, 11)) == 10  # the whole log, still in memory
    assert s.disk.records == records
    assert s.driver.snap_index == 0

    # More writes before SNAPSHOT_RETRY_S: no new job.
    for k, now in enumerate((101.0, 105.0, 100.0 + SNAPSHOT_RETRY_S - 0.001)):
        s.write(Waiter(f"y{k}"), put("/k", f"y{k}"), now)
        s.run(now)
    assert len(s.jobs) == 1 and not s.driver.disk_full
    assert s.status().applied == 13

    # The first turn once it is due (proposing entry 14) snapshots what is applied (13).
    s.save_snapshots = True
    s.write(Waiter("z"), put("/k", "z"), 100.0 + SNAPSHOT_RETRY_S)
    s.run(100.0 + SNAPSHOT_RETRY_S)
    assert [j.meta.index for j in s.jobs] == [10, 13]
    assert s.driver.snap_index == 13
    assert s.status().snap_index == 11  # 2 entries kept behind it
    assert s.status().applied == 14


def test_one_snapshot_job_at_a_time_until_it_is_saved() -> None:
    s = _leader(snapshot_count=5, keep_entries=2)
    s.save_snapshots = False  # the job's writer is still running
    for i in range(15):
        s.write(Waiter(f"w{i}"), put("/k", f"v{i}"), 1.0)
        s.run(1.0)
    [job] = s.jobs
    assert s.driver.snapshotting and job.meta.index == 5
    assert s.status().snap_index == 0  # nothing compacted before the snapshot is durable
    assert s.save(job)
    assert not s.driver.snapshotting and s.driver.snap_index == 5
    s.write(Waiter("x"), put("/k", "x"), 1.0)
    s.run(1.0)  # far past snapshot_count since 5: the next job comes at once
    assert len(s.jobs) == 2 and s.jobs[1].meta.index >= 5 + 5


def test_a_snapshot_saved_after_a_newer_one_was_installed_changes_nothing() -> None:
    s = _leader(snapshot_count=5, keep_entries=2)
    s.save_snapshots = False
    for i in range(3):
        s.write(Waiter(f"w{i}"), put("/k", f"v{i}"), 1.0)
        s.run(1.0)
    [job] = s.jobs
    assert not s.driver.snapshot_superseded(job)
    s.driver.snap_index = job.meta.index + 1  # as a leader's snapshot installed meanwhile would set it
    assert s.driver.snapshot_superseded(job)
    before = s.status()
    assert s.save(job)
    assert s.status().snap_index == before.snap_index == 0  # not compacted to the older snapshot
    assert s.driver.snap_index == job.meta.index + 1 and not s.driver.snapshotting


# ---- cancel --------------------------------------------------------------------------------------

def test_cancel_drops_a_waiters_requests() -> None:
    s = _leader()
    gone, kept, early = Waiter("gone"), Waiter("kept"), Waiter("early")
    s.write(early, put("/early", "0"), 1.0)
    s.driver.cancel(early)  # before any turn: never proposed
    s.write(gone, put("/gone", "1"), 1.0)
    s.write(kept, put("/kept", "2"), 1.0)
    s.driver.read(gone, None, 1.0)
    turn = s.begin(1.0)
    assert turn is not None and turn.persist is not None
    assert [e.index for e in turn.persist.entries] == [4, 5]  # early was not proposed
    s.driver.cancel(gone)  # its connection closed while the write is in Raft
    s.complete(turn)
    s.run(1.0)
    s.run(100.0)  # long past every deadline

    assert [(a.waiter, event(a).node.value) for a in s.answers] == [(kept, "2")]
    assert s.value("/gone") == "1"  # proposed before the cancel: it still applies, unanswered
    assert s.value("/early") is None
