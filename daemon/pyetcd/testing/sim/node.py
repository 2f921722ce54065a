"""SimNode: one cluster member driven like runtime/loop.py + runtime/member.py drive the real one, minus
the I/O. The state machine is the real server glue: a ServerNode over the real v2 Store, with the real
PendingTable for client requests waiting on Raft.

One loop turn: step everything in the inbox (messages, ticks, client requests, snapshot reports), do the
leader's duties (a SYNC when a TTL is due, by this node's simulated clock), offer again the requests
Raft dropped, take a Ready, write its snapshot/entries/hard state to the SimDisk, and when `must_sync`
wait for the simulated fsync. Only after it completes are messages sent, committed entries applied
(`ServerNode.apply`), read states recorded and `advance()` called; then the origin's pending request is
answered by (origin, req_id) as loop.py's `_on_applied` does, and quorum reads whose ReadIndex is applied
are served from `store.get`. Anything that arrives while waiting for the fsync waits in the inbox (the
real loop is blocked in fsync too). A crash at any moment loses the RawNode, the ServerNode, the pending
table and the unsynced disk tail; a restart recovers as member.py does: the newest snapshot
(`ServerNode.restore`), then the entries after it, the committed prefix replayed into the store, then
the RawNode.

Bootstrap (as member.py does): the founding members' logs start with one ADD_NODE entry per member (its
Member record as context) at term 1, committed. A member added later starts with an empty log and, like
`--initial-cluster-state existing`, with the voters and members it was told at join time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ...raft.core import ProposalDropped, RaftConfig
from ...raft.log import RaftLog
from ...raft.rawnode import RawNode
from ...raft.types import (
    ConfChange,
    ConfChangeType,
    ConfState,
    Entry,
    EntryType,
    HardState,
    Message,
    Ready,
    Role,
    Snapshot,
    SnapshotMeta,
)
from ...server.members import Member, MemberRegistry
from ...server.node import Applied, ServerNode
from ...server.pending import Pending, PendingTable
from ...server.requests import Request
from ...store.errors import RAFT_INTERNAL, V2Error
from ...store.event import Event
from ...store.store import Store
from .disk import SimDisk

if TYPE_CHECKING:
    from .runner import Cluster

INBOX_MAX = 10_000  # bound: a paused node's backlog (messages beyond it are dropped, like a full socket)
REQ_IDS_FROM_CLOCK = True  # see _reset_volatile
EPOCH_NS = 1_700_000_000 * 1_000_000_000  # simulated wall clock = epoch + virtual time (+ the node's skew)

# What a client gets back: the store's Event or V2Error, as the HTTP layer would render them.
Result = Event | V2Error


@dataclass
class NodeParams:
    tick_ms: int = 10
    election_ticks: int = 10
    heartbeat_ticks: int = 1
    inflight_max: int = 4
    entries_per_append_max: int = 8
    fsync_ms_max: int = 2
    snapshot_every_entries: int = 20
    keep_entries: int = 5
    pre_vote: bool = True
    check_quorum: bool = True
    request_timeout_ms: int = 1000  # loop.py's request_timeout_s: then etcd's 300 "request timed out"


@dataclass
class ClientOp:
    """A request from a simulated client, answered only by the node it was sent to.

    `request` is what the HTTP layer would hand the loop (a Propose's Request, origin/req_id unset);
    None for a quorum GET of `path`."""

    op_id: int
    kind: str  # "put", "cas", "create", "delete", "read", "ttl"
    path: str
    request: Request | None = None
    on_done: Callable[[ClientOp, Result], None] = field(default=lambda op, res: None)


def peer_urls(node_id: int) -> list[str]:
    return [f"http://n{node_id}:2380"]


def member_record(node_id: int) -> Member:
    return Member(node_id, "", peer_urls(node_id), [])


def bootstrap(disk: SimDisk, voters: tuple[int, ...]) -> None:
    """Write a founding member's initial state as member.py's `_bootstrap` does: one ADD_NODE per
    initial member (sorted by id, its Member record as context) at term 1, committed."""
    for i, v in enumerate(sorted(voters)):
        cc = ConfChange(ConfChangeType.ADD_NODE, v, member_record(v).encode())
        disk.append("ent", Entry(1, i + 1, EntryType.CONF_CHANGE, cc.encode()))
    disk.append("hs", HardState(1, 0, len(voters)))
    disk.sync()


class SimNode:
    def __init__(self, cluster: Cluster, node_id: int, params: NodeParams,
                 initial: list[Member] | None = None) -> None:
        self.cluster = cluster
        self.world = cluster.world
        self.id = node_id
        self.params = params
        self.initial = initial or []  # a joining member's --initial-cluster (empty for founders)
        self.disk = SimDisk()
        self.raft_rng = self.world.rng(f"raft/{node_id}")
        self.disk_rng = self.world.rng(f"disk/{node_id}")
        self.clock_skew_ns = self.world.rng(f"clock/{node_id}").randint(-50, 50) * 1_000_000
        self.alive = False
        self.removed = False  # applied its own removal and shut down for good
        self.paused = False
        self.crash_in_next_fsync = False  # fault point armed by the nemesis (BUGGIFY-style)
        self.incarnation = 0
        self.rn: RawNode | None = None
        self.replay_term = 0
        self.server = ServerNode(Store(), MemberRegistry(), node_id)
        self._reset_volatile()

    def _reset_volatile(self) -> None:
        self.inbox: list[tuple[str, Any]] = []
        self.busy = False  # waiting for an fsync
        self.synced = False
        self.pending_rd: Ready | None = None
        # Request ids must never repeat across a member's restarts: the origin answers by (origin, req_id)
        # alone, and an entry proposed before a crash can still commit after the restart. loop.py's
        # `PendingTable()` restarts at 1, which the simulator showed answering a new client from an old
        # entry (seed 374) and a quorum read from an old write (seed 753). As etcd's idutil does, the
        # ids start from the member's clock at process start (µs: no process issues requests faster).
        # REQ_IDS_FROM_CLOCK = False replays the runtime's current behaviour.
        self.requests = PendingTable(next_id=self.now_ns() // 1000 if REQ_IDS_FROM_CLOCK else 1)
        self._pumping = False
        self.snap_index = 0

    # ---- views ---------------------------------------------------------------------------------

    @property
    def store(self) -> Store:
        return self.server.store

    @property
    def voters(self) -> tuple[int, ...]:
        return self.rn.raft.voters if self.rn is not None else ()

    @property
    def applied(self) -> int:
        return self.rn.raft.log.applied if self.rn is not None else 0

    @property
    def is_leader(self) -> bool:
        return self.alive and self.rn is not None and self.rn.raft.role is Role.LEADER

    def now_ns(self) -> int:
        return EPOCH_NS + self.world.now_ms * 1_000_000 + self.clock_skew_ns

    # ---- lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        """Recover as member.py does: snapshot, WAL entries after it, replay of the committed prefix."""
        assert not self.alive and not self.removed
        self._reset_volatile()
        rec = self.disk.load()
        self.server = ServerNode(Store(), MemberRegistry(), self.id)
        log = RaftLog()
        voters: tuple[int, ...] = ()
        if rec.snapshot is not None:
            meta = rec.snapshot.meta
            voters = self.server.restore(rec.snapshot.data)
            log = RaftLog(meta.index, meta.term)
            log.snapshot = rec.snapshot
            log.applied = log.committed = meta.index
            self.server.applied_index = meta.index
            self.cluster.checker.on_restore(self, meta.index)
        self.snap_index = log.snap_index
        for e in rec.entries:
            log.append([e])
        log.stable_index = log.last_index
        hard = rec.hard_state
        commit = min(max(hard.commit, log.snap_index), log.last_index)
        voter_set = set(voters)
        self.replay_term = hard.term
        if commit > log.applied:
            for e in log.slice(log.applied + 1, commit + 1):
                if e.type is EntryType.CONF_CHANGE:
                    cc = ConfChange.decode(e.data)
                    if cc.type is ConfChangeType.ADD_NODE:
                        voter_set.add(cc.node_id)
                    elif cc.type is ConfChangeType.REMOVE_NODE:
                        voter_set.discard(cc.node_id)
                self._apply(e)
        log.committed = log.applied = commit
        self.server.applied_index = commit
        if not voter_set:  # joining with an empty log: start from --initial-cluster (member.py)
            voter_set = {m.id for m in self.initial}
            for m in self.initial:
                self.server.members.by_id.setdefault(m.id, Member(m.id, m.name, list(m.peer_urls),
                                                                  list(m.client_urls)))
        p = self.params
        cfg = RaftConfig(self.id, election_ticks=p.election_ticks, heartbeat_ticks=p.heartbeat_ticks,
                         inflight_max=p.inflight_max, entries_per_append_max=p.entries_per_append_max,
                         pre_vote=p.pre_vote, check_quorum=p.check_quorum)
        self.rn = RawNode(cfg, log, HardState(hard.term, hard.vote, commit), tuple(sorted(voter_set)),
                          self.raft_rng)
        self.server.raft = self.rn
        self.alive = True
        self.paused = False
        self.incarnation += 1
        self.world.trace(f"n{self.id} start: term={hard.term} commit={commit} snap={log.snap_index} "
                         f"last={log.last_index} voters={self.voters} etcd_index={self.store.index}")
        # Ticks start at a random phase: members' clocks are not aligned.
        self.world.after(self.world.rng(f"tick/{self.id}/{self.incarnation}").randint(1, p.tick_ms),
                         self._tick, self.incarnation)
        self._pump()

    def crash(self) -> None:
        if not self.alive:
            return
        lost = self.disk.crash(self.disk_rng)
        self.world.trace(f"n{self.id} CRASH (lost {lost} unsynced records)")
        self.alive = False
        self.incarnation += 1
        self.rn = None
        self.server.raft = None
        self._reset_volatile()

    def shutdown_removed(self) -> None:
        self.world.trace(f"n{self.id} applied its own removal: shutting down")
        self.crash()
        self.removed = True

    def pause(self) -> None:
        if self.alive:
            self.world.trace(f"n{self.id} PAUSE")
            self.paused = True

    def resume(self) -> None:
        if self.alive and self.paused:
            self.world.trace(f"n{self.id} RESUME ({len(self.inbox)} queued)")
            self.paused = False
            self._pump()

    # ---- inputs --------------------------------------------------------------------------------

    def _enqueue(self, item: tuple[str, Any]) -> None:
        if not self.alive:
            return
        if len(self.inbox) >= INBOX_MAX:
            return
        self.inbox.append(item)
        self._pump()

    def _tick(self, incarnation: int) -> None:
        if incarnation != self.incarnation or not self.alive:
            return
        self.world.after(self.params.tick_ms, self._tick, incarnation)
        if not self.paused:  # a stopped process misses its ticks
            self._enqueue(("tick", None))

    def receive(self, m: Message) -> None:
        self._enqueue(("msg", m))

    def snapshot_status(self, peer: int, ok: bool) -> None:
        self._enqueue(("snap_status", (peer, ok)))

    def submit(self, op: ClientOp) -> bool:
        """False when the node is down (the client's connection is refused)."""
        if not self.alive:
            return False
        self._enqueue(("client", op))
        return True

    def propose_conf_change(self, cc: ConfChange) -> None:
        self._enqueue(("conf", cc))

    def transfer_leadership(self, to: int) -> None:
        self._enqueue(("transfer", to))

    # ---- the loop turn -------------------------------------------------------------------------

    def _pump(self) -> None:
        if not self.alive or self.paused or self._pumping:
            return
        self._pumping = True
        try:
            while self.alive:
                if self.busy:
                    if not self.synced:
                        return
                    rd, self.pending_rd = self.pending_rd, None
                    self.busy = self.synced = False
                    assert rd is not None
                    self._finish(rd)
                    continue
                inbox, self.inbox = self.inbox, []
                for item in inbox:
                    self._handle(item)
                if not self.alive:
                    return
                self._leader_duties()
                self._submit_pending()
                self._expire_pending()
                assert self.rn is not None
                if not self.rn.has_ready():
                    if not self.inbox:
                        return
                    continue
                rd = self.rn.ready()
                self.cluster.checker.on_ready(self, rd)
                if rd.snapshot is not None:
                    self.disk.append("snap", rd.snapshot)
                for e in rd.entries:
                    self.disk.append("ent", e)
                if rd.hard_state is not None:
                    self.disk.append("hs", rd.hard_state)
                if rd.must_sync and self.crash_in_next_fsync:
                    # Written but not yet synced: the crash keeps a random prefix of it. Nothing of this
                    # Ready was sent or applied, so nothing may depend on it.
                    self.crash_in_next_fsync = False
                    self.crash()
                    self.cluster.restart_later(self.id)
                    return
                if rd.must_sync:
                    self.busy, self.pending_rd = True, rd
                    self.world.after(self.disk_rng.randint(0, self.params.fsync_ms_max), self._fsynced,
                                     self.incarnation)
                    return
                self._finish(rd)
        finally:
            self._pumping = False

    def _fsynced(self, incarnation: int) -> None:
        if incarnation != self.incarnation or not self.alive:
            return
        self.disk.sync()
        self.synced = True
        self._pump()

    def _handle(self, item: tuple[str, Any]) -> None:
        rn = self.rn
        assert rn is not None
        kind, v = item
        if kind == "tick":
            rn.tick()
        elif kind == "msg":
            rn.step(v)
        elif kind == "snap_status":
            rn.report_snapshot(v[0], v[1])
        elif kind == "conf":
            try:
                rn.propose_conf_change(v)
                self.world.trace(f"n{self.id} proposed {v.type.name} {v.node_id}")
            except ProposalDropped as e:
                self.world.trace(f"n{self.id} conf change {v.type.name} {v.node_id} dropped: {e}")
        elif kind == "transfer":
            rn.transfer_leadership(v)
        elif kind == "client":
            self._submit(v)

    def _submit(self, op: ClientOp) -> None:
        """loop.py's `_submit`: a write becomes a Request stamped with (origin, req_id)."""
        rn = self.rn
        assert rn is not None
        rid = self.requests.new_id()
        p = Pending(rid, op, op, (self.world.now_ms + self.params.request_timeout_ms) / 1000)
        req = op.request
        if req is not None:
            p.data = Request(req.kind, req.path, req.value, req.dir, req.prev_value, req.prev_index,
                             req.prev_exist, req.expire_at_ns, req.refresh, req.recursive, req.sorted,
                             req.time_ns, req.peer_urls, self.id, rid).encode()
        self.requests.add(p)
        self._offer(p)

    def _submit_pending(self) -> None:
        for p in self.requests.unsubmitted():
            self._offer(p)

    def _offer(self, p: Pending) -> None:
        """loop.py's `_offer`: if Raft drops it (no leader yet) it stays unsubmitted and is offered again
        every turn until its deadline."""
        rn = self.rn
        assert rn is not None
        try:
            if p.outcome.request is None:
                rn.read_index(p.req_id.to_bytes(8, "big"))
            else:
                rn.propose(p.data)
            p.submitted = True
        except ProposalDropped:
            pass

    def _expire_pending(self) -> None:
        for p in self.requests.expired(self.world.now_ms / 1000):
            op: ClientOp = p.waiter
            op.on_done(op, V2Error(RAFT_INTERNAL, "etcdserver: request timed out"))

    def _leader_duties(self) -> None:
        """loop.py's: the leader proposes a SYNC (its clock) when a TTL is due."""
        rn = self.rn
        assert rn is not None
        if rn.raft.role is Role.LEADER:
            sync = self.server.sync_due(self.now_ns())
            if sync is not None:
                try:
                    rn.propose(sync.encode())
                except ProposalDropped:
                    pass

    def _finish(self, rd: Ready) -> None:
        rn = self.rn
        assert rn is not None
        for m in rd.messages:
            self.cluster.net.send(m)
        if rd.soft_state is not None:
            self.world.trace(f"n{self.id} {rd.soft_state.role.name} term={rn.raft.term} lead={rd.soft_state.lead}")
        if rd.snapshot is not None:
            # member.py's _install_snapshot: the store, members and voters become the snapshot's.
            self.server.restore(rd.snapshot.data)
            self.server.applied_index = rd.snapshot.meta.index
            self.snap_index = rd.snapshot.meta.index
            self.cluster.checker.on_restore(self, rd.snapshot.meta.index)
            self.world.trace(f"n{self.id} installed snapshot at {rd.snapshot.meta.index}")
        applied = [self._apply(e) for e in rd.committed_entries]
        rn.advance(rd)
        self._maybe_snapshot()
        remove_self = False
        for a in applied:
            remove_self |= self._on_applied(a)
        for rs in rd.read_states:
            p = self.requests.by_id.get(int.from_bytes(rs.context, "big"))
            if p is not None:
                p.read_index = max(rs.index, 1)
        for p in self.requests.reads_ready(rn.raft.log.applied):
            self._serve_read(p)
        if remove_self:
            self.shutdown_removed()

    def _apply(self, e: Entry) -> Applied:
        before = self.store.index
        applied = self.server.apply(e)
        self.cluster.checker.on_apply(self, e, applied, before)
        if applied.conf_change is not None:
            self.cluster.on_conf_applied(self, e.index, applied.conf_change, self.voters)
        return applied

    def _on_applied(self, applied: Applied) -> bool:
        """loop.py's `_on_applied`: only the origin answers, by req_id. True: we were removed."""
        req = applied.request
        if req is not None and req.origin == self.id and req.req_id:
            p = self.requests.pop(req.req_id)
            if p is not None:
                op: ClientOp = p.waiter
                self.cluster.checker.on_answer(self, p, req)
                assert applied.result is not None, ("a client request applied without a result", req)
                op.on_done(op, applied.result)
                self.cluster.on_answered(self, op, applied)
        cc = applied.conf_change
        return cc is not None and cc.type is ConfChangeType.REMOVE_NODE and cc.node_id == self.id

    def _serve_read(self, p: Pending) -> None:
        op: ClientOp = p.waiter
        try:
            res: Result = self.store.get(op.path, False, False, self.now_ns())
        except V2Error as e:
            res = e
        op.on_done(op, res)

    def _maybe_snapshot(self) -> None:
        """member.py's `_maybe_snapshot`, on the simulated disk."""
        rn = self.rn
        assert rn is not None
        log = rn.raft.log
        applied = log.applied
        if applied - self.snap_index < self.params.snapshot_every_entries:
            return
        term = log.term(applied)
        assert term is not None
        snap = Snapshot(SnapshotMeta(applied, term, ConfState(rn.raft.voters)),
                        self.server.snapshot_data(rn.raft.voters))
        # The WAL is synced first (a commit-only hard state may still be volatile: Ready.must_sync
        # skips those), then the snapshot is saved before the log is released.
        self.disk.sync()
        self.disk.append("save", snap)
        self.disk.sync()
        rn.compact(snap, self.params.keep_entries)
        self.disk.compact()
        self.snap_index = applied
        self.world.trace(f"n{self.id} snapshot at {applied}, log now starts at {log.first_index}")



