"""SimNode: one cluster member driven like runtime/loop.py drives the real one, minus the I/O.

One loop turn: step everything in the inbox (messages, ticks, client requests, snapshot reports), take a
Ready, write its snapshot/entries/hard state to the SimDisk, and when `must_sync` wait for the simulated
fsync. Only after it completes are messages sent, committed entries applied, read states parked and
`advance()` called; anything that arrives meanwhile waits in the inbox (the real loop is blocked in fsync
too). A crash at any moment loses the RawNode, the state machine and the unsynced disk tail; a restart
rebuilds everything from the disk: the newest snapshot, then the entries after it, then the hard state.

Bootstrap (as etcd does): the founding members' logs start with one ADD_NODE entry per member at term 1,
committed. A member added later starts empty and learns the configuration from the log or a snapshot, so
no node ever has to be told the voters out of band.
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
    ReadState,
    Ready,
    Role,
    Snapshot,
    SnapshotMeta,
)
from .disk import SimDisk
from .kv import KvMachine

if TYPE_CHECKING:
    from .runner import Cluster

INBOX_MAX = 10_000  # bound: a paused node's backlog (messages beyond it are dropped, like a full socket)


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


@dataclass
class ClientOp:
    """A request from a simulated client, answered only by the node it was sent to."""

    op_id: int
    kind: str  # "put", "cas", "read"
    key: str
    value: str | None = None
    expected: str | None = None
    on_done: Callable[[ClientOp, bool, str | None], None] = field(default=lambda op, ok, val: None)
    on_dropped: Callable[[ClientOp], None] = field(default=lambda op: None)


def bootstrap(disk: SimDisk, voters: tuple[int, ...]) -> None:
    """Write a founding member's initial state: the initial configuration as committed entries."""
    for i, v in enumerate(voters):
        disk.append("ent", Entry(1, i + 1, EntryType.CONF_CHANGE, ConfChange(ConfChangeType.ADD_NODE, v).encode()))
    disk.append("hs", HardState(1, 0, len(voters)))
    disk.sync()


class SimNode:
    def __init__(self, cluster: Cluster, node_id: int, params: NodeParams) -> None:
        self.cluster = cluster
        self.world = cluster.world
        self.id = node_id
        self.params = params
        self.disk = SimDisk()
        self.raft_rng = self.world.rng(f"raft/{node_id}")
        self.disk_rng = self.world.rng(f"disk/{node_id}")
        self.alive = False
        self.removed = False  # applied its own removal and shut down for good
        self.paused = False
        self.crash_in_next_fsync = False  # fault point armed by the nemesis (BUGGIFY-style)
        self.incarnation = 0
        self.rn: RawNode | None = None
        self.kv = KvMachine()
        self.voters: tuple[int, ...] = ()
        self._reset_volatile()

    def _reset_volatile(self) -> None:
        self.inbox: list[tuple[str, Any]] = []
        self.busy = False  # waiting for an fsync
        self.synced = False
        self.pending_rd: Ready | None = None
        self.client_ops: dict[int, ClientOp] = {}
        self.reads: dict[bytes, ClientOp] = {}
        self.parked_reads: list[ReadState] = []
        self.remove_self = False
        self._pumping = False
        self.last_snapshot_index = 0

    # ---- lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        assert not self.alive and not self.removed
        rec = self.disk.load()
        if rec.snapshot is not None:
            meta = rec.snapshot.meta
            log = RaftLog(meta.index, meta.term)
            log.snapshot = rec.snapshot
            self.kv = KvMachine.decode(rec.snapshot.data)
            self.voters = meta.conf.voters
        else:
            log = RaftLog()
            self.kv = KvMachine()
            self.voters = ()
        log.entries = list(rec.entries)
        log.stable_index = log.last_index
        p = self.params
        cfg = RaftConfig(self.id, election_ticks=p.election_ticks, heartbeat_ticks=p.heartbeat_ticks,
                         inflight_max=p.inflight_max, entries_per_append_max=p.entries_per_append_max,
                         pre_vote=p.pre_vote, check_quorum=p.check_quorum)
        self._reset_volatile()
        self.last_snapshot_index = log.snap_index
        self.rn = RawNode(cfg, log, rec.hard_state, self.voters, self.raft_rng)
        self.alive = True
        self.paused = False
        self.incarnation += 1
        self.world.trace(f"n{self.id} start: term={rec.hard_state.term} commit={rec.hard_state.commit} "
                         f"snap={log.snap_index} last={log.last_index} voters={self.voters}")
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
            op: ClientOp = v
            try:
                if op.kind == "read":
                    ctx = str(op.op_id).encode()
                    rn.read_index(ctx)
                    self.reads[ctx] = op
                else:
                    rn.propose(self.cluster.encode_op(op))
                    self.client_ops[op.op_id] = op
            except ProposalDropped:
                op.on_dropped(op)

    def _finish(self, rd: Ready) -> None:
        rn = self.rn
        assert rn is not None
        for m in rd.messages:
            self.cluster.net.send(m)
        if rd.soft_state is not None:
            self.world.trace(f"n{self.id} {rd.soft_state.role.name} term={rn.raft.term} lead={rd.soft_state.lead}")
        if rd.snapshot is not None:
            self.kv = KvMachine.decode(rd.snapshot.data)
            self.voters = rd.snapshot.meta.conf.voters
            self.last_snapshot_index = rd.snapshot.meta.index
            self.world.trace(f"n{self.id} installed snapshot at {rd.snapshot.meta.index}")
        for e in rd.committed_entries:
            self._apply(e)
        rn.advance(rd)
        self.parked_reads.extend(rd.read_states)
        self._serve_reads()
        self._maybe_snapshot()
        if self.remove_self:
            self.shutdown_removed()

    def _apply(self, e: Entry) -> None:
        rn = self.rn
        assert rn is not None
        self.cluster.checker.on_apply(self, e)
        if e.type is EntryType.CONF_CHANGE:
            self.kv.skip(e.index)
            cc = ConfChange.decode(e.data)
            self.voters = rn.apply_conf_change(cc)
            self.cluster.on_conf_applied(self, e.index, cc, self.voters)
            if cc.type is ConfChangeType.REMOVE_NODE and cc.node_id == self.id:
                self.remove_self = True
            return
        out = self.kv.apply(e.index, e.data)
        if out is not None and not out.duplicate:
            op = self.client_ops.pop(out.op_id, None)
            if op is not None:
                op.on_done(op, out.ok, None)

    def _serve_reads(self) -> None:
        if not self.parked_reads:
            return
        still: list[ReadState] = []
        for rs in self.parked_reads:
            if rs.index <= self.kv.index:
                op = self.reads.pop(rs.context, None)
                if op is not None:
                    op.on_done(op, True, self.kv.data.get(op.key))
            else:
                still.append(rs)
        self.parked_reads = still

    def _maybe_snapshot(self) -> None:
        rn = self.rn
        assert rn is not None
        if self.kv.index - self.last_snapshot_index < self.params.snapshot_every_entries:
            return
        log = rn.raft.log
        term = log.term(self.kv.index)
        assert term is not None
        snap = Snapshot(SnapshotMeta(self.kv.index, term, ConfState(self.voters)), self.kv.encode())
        # Like runtime/member.py: the WAL is synced first (a commit-only hard state may still be
        # volatile: Ready.must_sync skips those), then the snapshot is saved before the log is released.
        self.disk.sync()
        self.disk.append("save", snap)
        self.disk.sync()
        rn.compact(snap, self.params.keep_entries)
        self.disk.compact()
        self.last_snapshot_index = self.kv.index
        self.world.trace(f"n{self.id} snapshot at {self.kv.index}, log now starts at {log.first_index}")

    # ---- views for checkers and the nemesis ----------------------------------------------------

    @property
    def is_leader(self) -> bool:
        return self.alive and self.rn is not None and self.rn.raft.role is Role.LEADER
