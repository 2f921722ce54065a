"""A member's durable state and its Raft node: recovery, persisting each Ready, snapshots.

This is the I/O half of ServerNode. `process_ready()` is the group commit: everything Raft produced this
turn (hard state, entries, an incoming snapshot) is appended to the WAL and made durable by one
fdatasync before any message is sent or any entry applied, so nothing acknowledged can be lost by a crash
of a minority (and nothing a member promised in a vote is forgotten).

Recovery: newest snapshot (store + members + voters) -> WAL records after it (entries; a later entry
with an index already seen truncates the tail, as Raft did) -> apply the committed prefix -> RawNode.
A brand-new cluster member writes the bootstrap conf changes (one per initial member, term 1) first.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..raft.core import RaftConfig
from ..raft.log import RaftLog
from ..raft.rawnode import RawNode
from ..raft.types import (
    ConfChange,
    ConfChangeType,
    ConfState,
    Entry,
    EntryType,
    HardState,
    Message,
    MsgType,
    ReadState,
    Role,
    Snapshot,
    SnapshotMeta,
)
from ..server.members import Member, MemberRegistry, id_hex
from ..server.node import Applied, ServerNode
from ..server.stats import self_stats
from ..storage import wal_codec
from ..storage.snap import SnapDir
from ..storage.snap import Snapshot as SnapFile
from ..storage.wal import Wal
from ..store.store import Store

log = logging.getLogger("pyetcd.member")
SNAPSHOT_KEEP_ENTRIES = 5000  # log kept behind a snapshot so slightly lagging followers avoid a snapshot
READIES_PER_TURN_MAX = 8
_REPLICATION = frozenset({MsgType.APP, MsgType.HEARTBEAT, MsgType.SNAP})


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


@dataclass
class TurnOutput:
    applied: list[Applied] = field(default_factory=list)
    messages: list[Message] = field(default_factory=list)
    read_states: list[ReadState] = field(default_factory=list)
    became_leader: bool = False


class MemberState:
    """Implements http.status.ServerView for the client API."""

    def __init__(self, spec: ClusterSpec, data_dir: Path, snapshot_count: int, start_ns: int,
                 cluster_id: int, rng: random.Random | None = None) -> None:
        self.spec = spec
        self.name = spec.name
        self.self_id = spec.self_id
        self.snapshot_count = snapshot_count
        self.start_ns = start_ns
        self.leader_start_ns = start_ns
        self.cluster_id = cluster_id
        self.cluster_token = spec.token
        self.links: dict[int, Any] = {}  # peer id -> runtime.peers.PeerLink (set by the loop)
        self.store_replaced = False
        self.recv_appends = 0
        self.send_appends = 0
        member_dir = data_dir / "member"
        self.snaps = SnapDir(member_dir / "snap")
        snap_file = self.snaps.load_newest()
        members = MemberRegistry()
        self.node = ServerNode(Store(), members, self.self_id)
        raft_log = RaftLog()
        voters: tuple[int, ...] = ()
        if snap_file is not None:
            voters = self.node.restore(snap_file.data)
            raft_log = RaftLog(snap_file.index, snap_file.term)
            raft_log.snapshot = Snapshot(SnapshotMeta(snap_file.index, snap_file.term, ConfState(voters)),
                                         snap_file.data)
            raft_log.applied = raft_log.committed = snap_file.index
        self.snap_index = raft_log.snap_index
        self.wal, records = Wal.open(member_dir / "wal", self.snap_index + 1)
        hard = HardState()
        for rec in records:
            if rec.rtype == wal_codec.ENTRY:
                term, index, data = rec.entry()
                if index > raft_log.snap_index:
                    raft_log.append([Entry(term, index, EntryType(rec.entry_type()), data)])
            elif rec.rtype == wal_codec.HARD_STATE:
                hard = HardState(*rec.hard_state())
        fresh = not records and snap_file is None
        if fresh:
            hard = self._bootstrap(raft_log, members)
        raft_log.stable_index = raft_log.last_index
        commit = min(max(hard.commit, raft_log.snap_index), raft_log.last_index)
        # Replay the committed prefix into the store; conf changes in it build the voter set.
        voter_set = set(voters)
        replayed = 0
        for e in raft_log.slice(raft_log.applied + 1, commit + 1) if commit > raft_log.applied else []:
            if e.type is EntryType.CONF_CHANGE:
                cc = ConfChange.decode(e.data)
                if cc.type is ConfChangeType.ADD_NODE:
                    voter_set.add(cc.node_id)
                elif cc.type is ConfChangeType.REMOVE_NODE:
                    voter_set.discard(cc.node_id)
            self.node.apply(e)
            replayed += 1
        raft_log.committed = raft_log.applied = commit
        self.node.applied_index = commit
        if not voter_set:  # joining an existing cluster with an empty log: start from --initial-cluster
            voter_set = {m.id for m in spec.initial}
            for m in spec.initial:
                members.by_id.setdefault(m.id, m)
        hard = HardState(hard.term, hard.vote, commit)
        cfg = RaftConfig(self.self_id, election_ticks=spec.election_ticks, heartbeat_ticks=spec.heartbeat_ticks)
        self.raft = RawNode(cfg, raft_log, hard, tuple(sorted(voter_set)), rng or random.Random())
        self.node.raft = self.raft
        self.raft.raft.log.snapshot = raft_log.snapshot
        log.info("recovered: snapshot index %d, %d entries in the log, %d replayed, etcd index %d, "
                 "raft index %d, term %d, voters %s", self.snap_index, raft_log.last_index - raft_log.snap_index,
                 replayed, self.store.index, commit, hard.term, ",".join(id_hex(v) for v in sorted(voter_set)))
        if len(voter_set) == 1 and self.self_id in voter_set:
            self.raft.campaign()  # a lone voter need not wait an election timeout

    def _bootstrap(self, raft_log: RaftLog, members: MemberRegistry) -> HardState:
        """A new cluster: every initial member writes the same conf-change entries (sorted by id)."""
        if not self.spec.state_new:
            return HardState()
        entries = []
        for i, m in enumerate(sorted(self.spec.initial, key=lambda m: m.id)):
            cc = ConfChange(ConfChangeType.ADD_NODE, m.id, Member(m.id, "", m.peer_urls, []).encode())
            entries.append(Entry(1, i + 1, EntryType.CONF_CHANGE, cc.encode()))
        raft_log.append(entries)
        hard = HardState(1, 0, len(entries))
        for e in entries:
            self.wal.append(wal_codec.encode_entry(e.term, e.index, e.data, e.type))
        self.wal.append(wal_codec.encode_hard_state(hard.term, hard.vote, hard.commit))
        self.wal.sync()
        return hard

    # ---- ServerView ----------------------------------------------------------------------------

    @property
    def store(self) -> Store:
        return self.node.store

    @property
    def members(self) -> MemberRegistry:
        return self.node.members

    @property
    def cluster_id_bytes(self) -> bytes:
        return id_hex(self.cluster_id).encode()

    @property
    def leader_id(self) -> int:
        return self.raft.lead

    @property
    def commit_index(self) -> int:
        return self.raft.raft.log.committed

    @property
    def term(self) -> int:
        return self.raft.raft.term

    @property
    def is_leader(self) -> bool:
        return self.raft.raft.role is Role.LEADER

    @property
    def healthy(self) -> bool:
        return self.raft.lead != 0

    def follower_stats(self) -> dict[str, object]:
        out: dict[str, object] = {}
        for pid, link in sorted(self.links.items()):
            lat = list(link.stats.latencies_ms)
            avg = sum(lat) / len(lat) if lat else 0.0
            sd = (sum((x - avg) ** 2 for x in lat) / len(lat)) ** 0.5 if lat else 0.0
            out[id_hex(pid)] = {
                "latency": {"current": link.stats.current_ms, "average": avg, "standardDeviation": sd,
                            "minimum": min(lat) if lat else 0.0, "maximum": max(lat) if lat else 0.0},
                "counts": {"fail": link.stats.fail, "success": link.stats.success},
            }
        return out

    def self_stats(self, now_ns: int) -> dict[str, object]:
        role = self.raft.raft.role
        state = {Role.LEADER: "StateLeader", Role.CANDIDATE: "StateCandidate",
                 Role.PRE_CANDIDATE: "StatePreCandidate"}.get(role, "StateFollower")  # etcd's StateType names
        return self_stats(self.name, self.self_id, state, self.start_ns, self.raft.lead, self.leader_start_ns,
                          now_ns, self.recv_appends, self.send_appends)

    # ---- one turn ------------------------------------------------------------------------------

    def process_ready(self, out: TurnOutput, send_early: Callable[[list[Message]], None] | None = None) -> None:
        """Persist, then hand out messages, applied entries and read states; repeat while Raft has
        more (a leader's own ack can commit what it just persisted).

        `send_early` lets a leader put its replication messages (MsgApp, heartbeats, snapshots) on the
        wire before its own fsync, so followers write in parallel (Raft thesis §10.2.1). This is safe
        because the leader counts its own log toward a quorum only after the fsync (`on_persisted`);
        every other message (votes, acks) still waits for the fsync."""
        raft = self.raft
        for _ in range(READIES_PER_TURN_MAX):
            if not raft.has_ready():
                return
            rd = raft.ready()
            if rd.soft_state is not None and rd.soft_state.role is Role.LEADER:
                out.became_leader = True
            if rd.snapshot is not None:
                self._install_snapshot(rd.snapshot)
            for e in rd.entries:
                self.wal.append(wal_codec.encode_entry(e.term, e.index, e.data, e.type))
            if rd.hard_state is not None:
                hs = rd.hard_state
                self.wal.append(wal_codec.encode_hard_state(hs.term, hs.vote, hs.commit))
            messages = rd.messages
            if send_early is not None and rd.must_sync and self.is_leader and messages:
                early = [m for m in messages if m.type in _REPLICATION]
                if early:
                    messages = [m for m in messages if m.type not in _REPLICATION]
                    send_early(early)
            if rd.must_sync:
                self.wal.sync()
            out.messages.extend(messages)
            for e in rd.committed_entries:
                out.applied.append(self.node.apply(e))
            out.read_states.extend(rd.read_states)
            raft.advance(rd)
            self._maybe_snapshot()

    def _install_snapshot(self, snap: Snapshot) -> None:
        """A snapshot from the leader: make it durable, then become it."""
        self.snaps.save(SnapFile(snap.meta.term, snap.meta.index, snap.data))
        self.node.restore(snap.data)
        self.node.applied_index = snap.meta.index
        self.store_replaced = True  # watchers registered on the old store can never fire: the loop ends them
        self.wal.cut(snap.meta.index + 1)
        self._write_hard_state()
        self.wal.release_before(snap.meta.index + 1)
        self.snap_index = snap.meta.index
        log.info("installed snapshot from the leader at raft index %d", snap.meta.index)

    def _maybe_snapshot(self) -> None:
        applied = self.raft.raft.log.applied
        if applied - self.snap_index < self.snapshot_count:
            return
        term = self.raft.raft.log.term(applied) or self.term
        data = self.node.snapshot_data(self.raft.raft.voters)
        path = self.snaps.save(SnapFile(term, applied, data))
        snap = Snapshot(SnapshotMeta(applied, term, ConfState(self.raft.raft.voters)), data)
        self.raft.compact(snap, min(SNAPSHOT_KEEP_ENTRIES, self.snapshot_count))
        # Segments wholly covered by the snapshot can go (the in-memory log keeps more for followers;
        # after a restart they catch up from the snapshot instead).
        self.wal.cut(self.raft.raft.log.last_index + 1)
        self._write_hard_state()  # the released segments may hold the only copy of term and vote
        self.wal.sync()
        released = self.wal.release_before(applied + 1)
        self.snap_index = applied
        log.info("snapshot at raft index %d saved to %s; %d WAL segment(s) released", applied, path, released)

    def _write_hard_state(self) -> None:
        hs = self.raft.raft.hard_state()
        self.wal.append(wal_codec.encode_hard_state(hs.term, hs.vote, hs.commit))

    def close(self) -> None:
        self.wal.close()

