"""Two ways to drive the Raft core in tests.

- `raft(...)` + `persist()` + `take()`: one bare `Raft`, stepped by hand, for rule-level tests.
- `Cluster`: RawNodes wired by an in-memory FIFO network with blockable links; `stabilize()` runs
  Ready -> persist -> send -> apply -> advance until nothing moves. Deterministic (seeded jitter).
"""

from __future__ import annotations

import random
from collections import deque

from pyetcd.raft.core import Raft, RaftConfig
from pyetcd.raft.log import RaftLog
from pyetcd.raft.rawnode import RawNode
from pyetcd.raft.types import (
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


def entries(*terms: int, start: int = 1) -> list[Entry]:
    """Entries with these terms at consecutive indexes from `start`."""
    return [Entry(t, start + i) for i, t in enumerate(terms)]


def make_log(terms: tuple[int, ...] = (), committed: int = 0) -> RaftLog:
    log = RaftLog()
    log.entries = entries(*terms)
    log.stable_index = log.last_index
    log.committed = committed
    log.applied = committed
    return log


def raft(node_id: int = 1, voters: tuple[int, ...] = (1, 2, 3), terms: tuple[int, ...] = (), term: int = 0,
         vote: int = 0, committed: int = 0, pre_vote: bool = False, check_quorum: bool = False,
         election_ticks: int = 10, inflight_max: int = 256, entries_per_append_max: int = 512,
         seed: int = 0) -> Raft:
    cfg = RaftConfig(node_id, election_ticks=election_ticks, heartbeat_ticks=1, inflight_max=inflight_max,
                     entries_per_append_max=entries_per_append_max, pre_vote=pre_vote,
                     check_quorum=check_quorum)
    return Raft(cfg, make_log(terms, committed), HardState(term, vote, committed), voters, random.Random(seed))


def persist(r: Raft) -> None:
    """The runtime fsynced everything the log holds."""
    if r.log.last_index > r.log.stable_index:
        r.on_persisted(r.log.last_index, r.log.last_term)


def take(r: Raft, kind: MsgType | None = None) -> list[Message]:
    """Pop the outgoing messages (of one kind, if given; the others stay queued)."""
    if kind is None:
        out, r.msgs = r.msgs, []
        return out
    out = [m for m in r.msgs if m.type is kind]
    r.msgs = [m for m in r.msgs if m.type is not kind]
    return out


def make_leader(r: Raft) -> None:
    """Win an election by hand: campaign (no PreVote), grant votes from a quorum, persist."""
    r.step(Message(MsgType.HUP, r.id, r.id))
    if r.role is Role.PRE_CANDIDATE:
        for pid in r.voters:
            if pid != r.id and r.role is Role.PRE_CANDIDATE:
                r.step(Message(MsgType.PRE_VOTE_RESP, r.id, pid, r.term + 1))
    for pid in r.voters:
        if pid != r.id and r.role is Role.CANDIDATE:
            r.step(Message(MsgType.VOTE_RESP, r.id, pid, r.term))
    assert r.role is Role.LEADER
    persist(r)
    take(r)


class Cluster:
    def __init__(self, ids: tuple[int, ...] = (1, 2, 3), *, pre_vote: bool = True, check_quorum: bool = True,
                 election_ticks: int = 10, inflight_max: int = 256, entries_per_append_max: int = 512,
                 seed: int = 0, bootstrap: bool = False) -> None:
        self.ids = ids
        self.bootstrap = bootstrap
        self.cfg = dict(election_ticks=election_ticks, heartbeat_ticks=1, inflight_max=inflight_max,
                        entries_per_append_max=entries_per_append_max, pre_vote=pre_vote,
                        check_quorum=check_quorum)
        self.seed = seed
        self.nodes: dict[int, RawNode] = {}
        self.down: set[int] = set()
        self.blocked: set[tuple[int, int]] = set()
        self.queue: deque[Message] = deque()
        self.applied: dict[int, list[Entry]] = {}
        self.read_states: dict[int, list[ReadState]] = {}
        self.snapshots_installed: dict[int, list[Snapshot]] = {}
        self.sent: list[Message] = []
        for i in ids:
            self.add(i, voters=ids)
        self.stabilize()  # apply bootstrap entries (a node does not campaign with a conf change unapplied)

    def add(self, i: int, voters: tuple[int, ...] = ()) -> RawNode:
        cfg = RaftConfig(i, **self.cfg)  # type: ignore[arg-type]
        log, hs = RaftLog(), HardState()
        if self.bootstrap and voters:
            # As etcd bootstraps: the founding configuration is the first entries of the log, so a
            # member that joins later learns it by replication.
            log.entries = [Entry(1, k + 1, EntryType.CONF_CHANGE, ConfChange(ConfChangeType.ADD_NODE, v).encode())
                           for k, v in enumerate(voters)]
            log.stable_index = log.last_index
            hs = HardState(1, 0, len(voters))
        self.nodes[i] = RawNode(cfg, log, hs, voters, random.Random(self.seed * 1000 + i))
        self.applied[i] = []
        self.read_states[i] = []
        self.snapshots_installed[i] = []
        return self.nodes[i]

    def raft(self, i: int) -> Raft:
        return self.nodes[i].raft

    # ---- network -------------------------------------------------------------------------------

    def isolate(self, i: int) -> None:
        for j in self.nodes:
            if j != i:
                self.blocked |= {(i, j), (j, i)}

    def heal(self) -> None:
        self.blocked.clear()

    # ---- driving -------------------------------------------------------------------------------

    def _ready(self, i: int) -> bool:
        n = self.nodes[i]
        moved = False
        while n.has_ready():
            moved = True
            rd = n.ready()
            self.queue.extend(rd.messages)  # "persisted" (in memory), then sent
            if rd.snapshot is not None:
                self.snapshots_installed[i].append(rd.snapshot)
            for e in rd.committed_entries:
                if e.type is EntryType.CONF_CHANGE:
                    n.apply_conf_change(ConfChange.decode(e.data))
                self.applied[i].append(e)
            self.read_states[i].extend(rd.read_states)
            n.advance(rd)
        return moved

    def stabilize(self, limit: int = 100_000) -> None:
        for _ in range(limit):
            moved = False
            for i in list(self.nodes):
                if i not in self.down:
                    moved |= self._ready(i)
            if not self.queue:
                if not moved:
                    return
                continue
            m = self.queue.popleft()
            self.sent.append(m)
            if (m.frm, m.to) in self.blocked or m.to in self.down or m.to not in self.nodes:
                continue
            self.nodes[m.to].step(m)
            if m.type is MsgType.SNAP and m.frm in self.nodes and m.frm not in self.down:
                self.nodes[m.frm].report_snapshot(m.to, True)
        raise AssertionError("cluster did not stabilize")

    def tick(self, n: int = 1, only: tuple[int, ...] | None = None) -> None:
        for _ in range(n):
            for i in list(self.nodes):
                if i not in self.down and (only is None or i in only):
                    self.nodes[i].tick()
            self.stabilize()

    def elect(self, i: int) -> None:
        self.nodes[i].campaign()
        self.stabilize()
        assert self.leader() == i, (self.leader(), [self.raft(j).role for j in self.nodes])

    def leader(self) -> int | None:
        leaders = [i for i in self.nodes if i not in self.down and self.raft(i).role is Role.LEADER]
        if not leaders:
            return None
        return max(leaders, key=lambda i: self.raft(i).term)

    def propose(self, i: int, data: bytes) -> None:
        self.nodes[i].propose(data)
        self.stabilize()

    def data_applied(self, i: int) -> list[bytes]:
        return [e.data for e in self.applied[i] if e.type is EntryType.NORMAL and e.data]

    def compact(self, i: int, keep_entries: int = 0) -> Snapshot:
        r = self.raft(i)
        idx = r.log.applied
        term = r.log.term(idx)
        assert term is not None
        snap = Snapshot(SnapshotMeta(idx, term, ConfState(r.voters)), b"state@%d" % idx)
        self.nodes[i].compact(snap, keep_entries)
        return snap
