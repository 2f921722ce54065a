"""server/recovery.py: a member's state rebuilt from a Storage (here the simulator's SimDisk), then run by
the production MemberDriver through the tiny in-test shell (tests/unit/member_shell.py). Pure: no
sockets, no clocks, no sleeping."""

from __future__ import annotations

import random

from pyetcd.raft.core import RaftConfig
from pyetcd.raft.types import ConfChange, ConfChangeType, Entry, EntryType, HardState, Role
from pyetcd.server.members import Member
from pyetcd.server.recovery import ClusterSpec, bootstrap_entries, recover
from pyetcd.server.requests import PUT, Request
from pyetcd.store.store import Store
from pyetcd.testing.sim.disk import SimDisk

from .member_shell import EPOCH_NS, Net, Shell, Waiter, cluster, event, member, put


def _spec(self_id: int, ids: tuple[int, ...], state_new: bool = True) -> ClusterSpec:
    return ClusterSpec(f"n{self_id}", self_id, [member(i) for i in ids], state_new, [f"http://n{self_id}:2379"],
                       10, 1)


def _recover(disk: SimDisk, self_id: int, ids: tuple[int, ...], state_new: bool = True):  # type: ignore[no-untyped-def]
    return recover(disk, _spec(self_id, ids, state_new), RaftConfig(self_id), random.Random(7))


def _tree(store: Store) -> object:
    return store.get("/", True, True, EPOCH_NS).node.to_json_obj()


def _add_node(i: int) -> ConfChange:
    return ConfChange(ConfChangeType.ADD_NODE, i, Member(i, "", [f"http://n{i}:2380"], []).encode())


# ---- a new founding member -----------------------------------------------------------------------

def test_a_new_founder_writes_one_committed_add_node_per_member_sorted_by_id_at_term_1() -> None:
    disk = SimDisk()
    rec = recover(disk, ClusterSpec("n2", 2, [member(3), member(1), member(2)], True, ["http://n2:2379"], 10, 1),
                  RaftConfig(2), random.Random(1))

    expected = [Entry(1, i, EntryType.CONF_CHANGE, _add_node(i).encode()) for i in (1, 2, 3)]
    assert bootstrap_entries([member(3), member(1), member(2)]) == expected
    # Durable before anything else happens: the entries, then the hard state that commits them, one fsync.
    assert disk.records == [("ent", e) for e in expected] + [("hs", HardState(1, 0, 3))]
    assert (disk.durable, disk.fsyncs) == (4, 1)
    # The Member records carry no name (every founder writes byte-identical entries).
    assert [ConfChange.decode(e.data).context for e in expected] == \
        [b'[1, "", ["http://n1:2380"], []]', b'[2, "", ["http://n2:2380"], []]', b'[3, "", ["http://n3:2380"], []]']

    assert rec.hard_state == HardState(1, 0, 3)
    assert (rec.replayed, rec.snap_index) == (3, 0)
    assert sorted(rec.node.members.by_id) == [1, 2, 3]
    assert rec.node.members.by_id[1].peer_urls == ["http://n1:2380"]
    assert rec.node.store.index == 3  # each ADD_NODE consumed one etcd index
    st = rec.raft.status()
    assert (st.term, st.vote, st.role, st.commit, st.applied, st.last_index, st.voters) == \
        (1, 0, Role.FOLLOWER, 3, 3, 3, (1, 2, 3))


def test_every_founder_writes_the_same_log() -> None:
    disks = [SimDisk() for _ in range(3)]
    for i, d in enumerate(disks, 1):
        _recover(d, i, (1, 2, 3))
    assert disks[0].records == disks[1].records == disks[2].records


def test_a_restarted_founder_does_not_bootstrap_again() -> None:
    disk = SimDisk()
    _recover(disk, 1, (1, 2, 3))
    before = list(disk.records)
    rec = _recover(disk, 1, (1, 2, 3))
    assert disk.records == before and disk.fsyncs == 1
    assert rec.replayed == 3 and rec.node.store.index == 3


# ---- restarts ------------------------------------------------------------------------------------

def test_a_restart_replays_the_committed_prefix_to_the_same_store() -> None:
    s = Shell(1)
    s.run(0.0)
    for i, (path, value) in enumerate([("/a", "1"), ("/b", "2"), ("/a", "3"), ("/dir/c", "4")]):
        s.write(Waiter(f"w{i}"), put(path, value), 1.0)
        s.run(1.0)
    assert [event(a).node.value for a in s.answers] == ["1", "2", "3", "4"]
    index, tree, members = s.driver.store.index, _tree(s.driver.store), s.driver.members.ordered()
    assert index == 6  # 1 ADD_NODE + 1 attribute publication + 4 writes
    st = s.status()
    assert (st.commit, st.applied, st.last_index) == (7, 7, 7)

    rec = s.start()  # the same disk, a new process

    assert rec.replayed == 7
    assert rec.node.store.index == 6
    assert _tree(rec.node.store) == tree
    assert rec.node.members.ordered() == members
    assert s.value("/a") == "3" and s.value("/dir/c") == "4"
    assert s.driver.store.get("/a", False, False, EPOCH_NS).node.modified_index == 5


def test_a_restart_does_not_apply_entries_past_the_durable_commit_index() -> None:
    disk = SimDisk()
    boot = bootstrap_entries([member(1), member(2), member(3)])
    a = Request(PUT, "/a", value="x", origin=1, req_id=5).encode()
    b = Request(PUT, "/b", value="y", origin=1, req_id=6).encode()
    disk.write(None, boot + [Entry(2, 4), Entry(2, 5, data=a), Entry(2, 6, data=b)], HardState(2, 1, 5))
    disk.sync()

    rec = _recover(disk, 2, (1, 2, 3))

    assert rec.replayed == 5
    assert rec.hard_state == HardState(2, 1, 5)
    st = rec.raft.status()
    assert (st.term, st.vote, st.commit, st.applied, st.last_index) == (2, 1, 5, 5, 6)
    assert rec.node.store.index == 4
    assert rec.node.store.get("/a", False, False, EPOCH_NS).node.value == "x"
    assert "/b" not in str(_tree(rec.node.store))  # uncommitted: in the log, not in the store


def test_a_snapshot_and_the_entries_after_it_recover_to_the_same_store() -> None:
    s = Shell(1, snapshot_count=10, keep_entries=2)
    s.run(0.0)  # log: 1 ADD_NODE, 2 leader's empty entry, 3 attribute publication
    for i in range(7):  # entries 4..10
        s.write(Waiter(f"w{i}"), put(f"/k{i % 3}", f"v{i}"), 1.0)
        s.run(1.0)
    assert [j.meta.index for j in s.jobs] == [10]
    assert s.driver.snap_index == 10
    for i in range(7, 10):  # entries 11..13, after the snapshot
        s.write(Waiter(f"w{i}"), put(f"/k{i % 3}", f"v{i}"), 2.0)
        s.run(2.0)
    assert s.status().applied == 13
    index, tree = s.driver.store.index, _tree(s.driver.store)
    assert index == 12
    assert not any(k == "ent" and v.index <= 10 for k, v in s.disk.records)  # the log before it is gone

    rec = s.start()

    assert rec.snap_index == 10
    assert rec.replayed == 3  # only the entries after the snapshot
    assert rec.node.store.index == 12
    assert _tree(rec.node.store) == tree
    assert sorted(rec.node.members.by_id) == [1]
    assert rec.node.members.by_id[1].name == "n1"  # published before the snapshot, kept in it
    st = s.status()
    assert (st.snap_index, st.applied, st.voters) == (10, 13, (1,))


# ---- a joining member ----------------------------------------------------------------------------

def test_a_joining_member_with_an_empty_log_starts_from_its_initial_members() -> None:
    disk = SimDisk()
    rec = _recover(disk, 4, (1, 2, 3, 4), state_new=False)

    assert disk.records == [] and disk.fsyncs == 0  # nothing bootstrapped
    assert (rec.replayed, rec.snap_index, rec.hard_state) == (0, 0, HardState(0, 0, 0))
    assert sorted(rec.node.members.by_id) == [1, 2, 3, 4]
    assert rec.node.members.by_id[2] == member(2)
    assert rec.node.store.index == 0
    st = rec.raft.status()
    assert (st.term, st.role, st.commit, st.last_index, st.voters) == (0, Role.FOLLOWER, 0, 0, (1, 2, 3, 4))


def test_a_joining_member_learns_the_log_from_the_leader_and_ends_with_the_same_store() -> None:
    net = cluster(3)
    leader = net.elect(1, 0.0)
    leader.write(Waiter("a"), put("/a", "1"), 1.0)
    net.settle(1.0)
    leader.driver.change_membership(Waiter("add"), None, _add_node(4), 1.0)
    net.settle(1.0)
    assert [a.result for a in leader.answer_for(Waiter("add"))] == [None]

    joiner = Shell(4, (1, 2, 3, 4), state_new=False)
    assert joiner.status().last_index == 0
    net = Net(*net.shells.values(), joiner)
    net.tick(2.0, n=3)

    assert joiner.status().commit == leader.status().commit
    assert joiner.driver.store.index == leader.driver.store.index
    assert _tree(joiner.driver.store) == _tree(leader.driver.store)
    assert sorted(joiner.driver.members.by_id) == [1, 2, 3, 4]
    assert joiner.value("/a") == "1"


# ---- a lone voter --------------------------------------------------------------------------------

def test_a_lone_voter_campaigns_at_once() -> None:
    rec = _recover(SimDisk(), 1, (1,))
    st = rec.raft.status()
    assert (st.role, st.term, st.vote, st.lead) == (Role.LEADER, 2, 1, 1)
    # Its empty entry of the new term is appended, not yet durable (the first turn writes it).
    assert (st.commit, st.last_index) == (1, 2)


def test_a_restarted_lone_voter_campaigns_at_once_in_a_new_term() -> None:
    s = Shell(1)
    s.run(0.0)
    assert s.status().term == 2
    s.start()
    st = s.status()
    assert (st.role, st.term) == (Role.LEADER, 3)


def test_a_founder_of_a_larger_cluster_waits_for_an_election() -> None:
    rec = _recover(SimDisk(), 1, (1, 2, 3))
    st = rec.raft.status()
    assert (st.role, st.term, st.lead) == (Role.FOLLOWER, 1, 0)
