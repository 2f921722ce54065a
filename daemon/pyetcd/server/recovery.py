"""Recovery: a member's state rebuilt from what its storage holds. One function, used by the daemon (over
the WAL and snapshot files) and by the simulator (over its crash-losing disk).

Newest snapshot (store + members + voters) -> log entries after it -> the committed prefix replayed into
the store (conf changes in it build the voter set) -> a RawNode over that log. A brand-new member of a new
cluster first writes the bootstrap entries: one ADD_NODE per initial member, sorted by id, at term 1,
committed (every founder writes the same ones). A member joining an existing cluster with an empty log
starts from the members it was told and learns everything else from the leader.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from ..raft.core import RaftConfig, Rng
from ..raft.log import RaftLog
from ..raft.rawnode import RawNode
from ..raft.types import (
    ConfChange,
    ConfChangeType,
    ConfState,
    Entry,
    EntryType,
    HardState,
    Snapshot,
    SnapshotMeta,
)
from ..store.codec import gc_paused
from ..store.store import Store
from .durable import Loaded, Storage
from .members import Member, MemberRegistry
from .node import Applied, ServerNode


@dataclass
class ClusterSpec:
    """Who this member is and whom it starts with."""

    name: str
    self_id: int
    initial: list[Member]  # from --initial-cluster, ids computed from peer URLs + token
    state_new: bool
    client_urls: list[str]
    election_ticks: int
    heartbeat_ticks: int
    token: str = "etcd-cluster"


class StateObserver(Protocol):
    """For checkers (the simulator's): sees the state machine after each change, in recovery and in the
    driver's turns. Production passes None."""

    def restored(self, node: ServerNode, index: int) -> None: ...

    def applied(self, node: ServerNode, entry: Entry, applied: Applied, etcd_index_before: int) -> None: ...


@dataclass
class Recovered:
    node: ServerNode
    raft: RawNode
    snap_index: int
    replayed: int  # committed entries applied from the log
    hard_state: HardState


def bootstrap_entries(initial: list[Member]) -> list[Entry]:
    """The log every founding member starts with (its Member record, without name, as context)."""
    out = []
    for i, m in enumerate(sorted(initial, key=lambda m: m.id)):
        cc = ConfChange(ConfChangeType.ADD_NODE, m.id, Member(m.id, "", list(m.peer_urls), []).encode())
        out.append(Entry(1, i + 1, EntryType.CONF_CHANGE, cc.encode()))
    return out


def recover(storage: Storage, spec: ClusterSpec, config: RaftConfig, rng: Rng,
            observer: StateObserver | None = None) -> Recovered:
    """The cyclic GC is paused throughout (store/codec.py's gc_paused): with a large store, its passes over
    the millions of objects the snapshot and the replay create cost more than building them (1M keys:
    seconds)."""
    with gc_paused():
        return _recover(storage, spec, config, rng, observer)


def _recover(storage: Storage, spec: ClusterSpec, config: RaftConfig, rng: Rng,
             observer: StateObserver | None) -> Recovered:
    loaded = storage.load()
    if loaded.empty and spec.state_new:
        entries = bootstrap_entries(spec.initial)
        hard = HardState(1, 0, len(entries))
        storage.write(None, entries, hard)
        storage.sync()
        loaded = Loaded(hard, None, entries)
    node = ServerNode(Store(), MemberRegistry(), spec.self_id)
    raft_log = RaftLog()
    voters: tuple[int, ...] = ()
    if loaded.snapshot is not None:
        meta = loaded.snapshot.meta
        data = loaded.snapshot.data
        voters = node.restore(data)
        raft_log = RaftLog(meta.index, meta.term)
        raft_log.snapshot = Snapshot(SnapshotMeta(meta.index, meta.term, ConfState(voters)),
                                     loaded.snapshot_source or data)
        raft_log.applied = raft_log.committed = meta.index
        node.applied_index = meta.index
        if observer is not None:
            observer.restored(node, meta.index)
    raft_log.append([e for e in loaded.entries if e.index > raft_log.snap_index])
    raft_log.stable_index = raft_log.last_index
    hard = loaded.hard_state
    commit = min(max(hard.commit, raft_log.snap_index), raft_log.last_index)
    voter_set = set(voters)
    replayed = 0
    if commit > raft_log.applied:
        for e in raft_log.slice(raft_log.applied + 1, commit + 1):
            if e.type is EntryType.CONF_CHANGE:
                cc = ConfChange.decode(e.data)
                if cc.type is ConfChangeType.ADD_NODE:
                    voter_set.add(cc.node_id)
                elif cc.type is ConfChangeType.REMOVE_NODE:
                    voter_set.discard(cc.node_id)
            before = node.store.index
            applied = node.apply(e)
            if observer is not None:
                observer.applied(node, e, applied, before)
            replayed += 1
    raft_log.committed = raft_log.applied = commit
    node.applied_index = commit
    if not voter_set:  # joining an existing cluster with an empty log: start from --initial-cluster
        voter_set = {m.id for m in spec.initial}
        for m in spec.initial:
            node.members.by_id.setdefault(m.id, Member(m.id, m.name, list(m.peer_urls), list(m.client_urls)))
    hard = HardState(hard.term, hard.vote, commit)
    raw = RawNode(config, raft_log, hard, tuple(sorted(voter_set)), rng)
    node.raft = raw
    if voter_set == {spec.self_id}:
        raw.campaign()  # a lone voter need not wait an election timeout
    return Recovered(node, raw, raft_log.snap_index, replayed, hard)
