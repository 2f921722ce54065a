"""MemberDriver: what one member does each turn, as a function of its inputs (sans-IO).

The event loop (runtime/loop.py) and the simulator (testing/sim/node.py) both run this class; neither
has a copy of its logic. Inputs are method calls: client work offered (`propose`, `read`,
`change_membership`), peer messages (`step`), ticks (`tick`), transport reports, and the outcome of
persisting (`persisted` / `persist_failed`). Outputs are returned values, never flags on shared objects:

    turn = driver.next_turn(now_s, wall_ns)    # None: nothing to do now
    send turn.send_now and deliver turn.answers
    write turn.persist to storage and sync it (if any)  -> out = driver.persisted(turn)
                                  or on DiskFull        -> out = driver.persist_failed(turn)
    send out.messages, deliver out.answers and out.fired; save out.snapshot (then snapshot_saved/failed)

A SnapshotJob's `build()` encodes the state as of the job's index: the shell calls it before the next
turn, inline (the simulator) or in a forked child that also writes the file (the event loop: the
copy-on-write pages hold the state the job names while the loop goes on), and reports later with
snapshot_saved(job, data) or snapshot_failed(job). No other job is asked for until then.

Rules it owns:
- The request table: every write, quorum read and membership change waits here (by request id, unique
  across restarts: ids start from the clock at process start) until its entry is applied, its ReadIndex
  is applied, or its deadline passes (etcd's "request timed out").
- Batching: all writes offered since the last turn go to Raft as one proposal (one append, one MsgApp
  per follower); all quorum reads share one ReadIndex round.
- Send before fsync: a leader's replication messages leave before its own fsync (Raft thesis 10.2.1);
  it counts its own log toward a quorum only once persisted (Raft.on_persisted). Everything else
  (votes, acks) waits for the fsync.
- A full disk: a Ready that cannot be persisted is neither applied nor acknowledged; Raft drops its
  unstable tail and a leader steps down (RawNode.persist_failed). New writes, and pending ones that can
  never commit, are answered "etcdserver: no space" at once ("no space" means "not done": a write that
  may still commit through another member waits for its entry or its deadline); reads, watches and
  heartbeats go on. Persisting is tried again at most every DISK_RETRY_S (a hard-state write probes when
  Raft has nothing to write), and the first success ends it.
- Leader duties: a SYNC entry when a TTL is due (the leader's clock, never backwards), and once a leader
  is known, this member's name and client URLs (etcd's attribute publication).
- Snapshots: after `snapshot_count` applied entries, the store is snapshotted and the log compacted;
  one snapshot at a time, and one that finishes after a newer snapshot from the leader was installed
  changes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..raft.core import ProposalDropped
from ..raft.rawnode import RawNode
from ..raft.types import (
    ConfChange,
    ConfChangeType,
    ConfState,
    Entry,
    HardState,
    Message,
    MsgType,
    Ready,
    Role,
    Snapshot,
    SnapshotMeta,
    SnapshotSource,
    Status,
)
from ..store import errors
from ..store.errors import V2Error
from ..store.event import Event
from ..store.store import Store
from ..store.watcher_hub import Watcher
from .auth import AuthState
from .members import MemberRegistry
from .node import Applied, ServerNode
from .pending import Kind, Pending, PendingTable
from .recovery import StateObserver
from .requests import MEMBER_ATTRS, Request

READIES_PER_TURN_MAX = 8
DISK_RETRY_S = 1.0
SNAPSHOT_RETRY_S = 10.0
SNAPSHOT_KEEP_ENTRIES = 5000  # log kept behind a snapshot so slightly lagging followers avoid a snapshot
_REPLICATION = frozenset({MsgType.APP, MsgType.HEARTBEAT, MsgType.SNAP})
# What may still be sent from a Ready that could not be persisted: none of these claims that our log or
# vote is durable (acks and granted votes do, and are dropped).
_SAFE_UNPERSISTED = frozenset({MsgType.HEARTBEAT_RESP, MsgType.PROP, MsgType.READ_INDEX, MsgType.READ_INDEX_RESP,
                               MsgType.PRE_VOTE_RESP, MsgType.TIMEOUT_NOW, MsgType.TRANSFER_LEADER})

TIMED_OUT = "etcdserver: request timed out"
# What operators grep for, in etcd's words: role and leader changes (raft), members and snapshots (etcdserver).
rlog = logging.getLogger("pyetcd.raft")
log = logging.getLogger("pyetcd.etcdserver")
_ROLE_NAMES = {Role.FOLLOWER: "follower", Role.PRE_CANDIDATE: "pre-candidate", Role.CANDIDATE: "candidate",
               Role.LEADER: "leader"}
NO_SPACE = "etcdserver: no space"  # etcd's ErrNoSpace


def request_error(cause: str) -> V2Error:
    return V2Error(errors.RAFT_INTERNAL, cause, 0)


@dataclass(slots=True)
class Answer:
    """The end of a request: `result` is the applied write's Event or V2Error, or a V2Error for a request
    that cannot complete (timed out, no space); None when a quorum read may now be served locally or a
    membership change was applied."""

    waiter: Any
    tag: Any
    result: Event | V2Error | None
    kind: Kind
    applied: Applied | None = None  # the entry a write was answered from


@dataclass(slots=True)
class Persist:
    """Records to make durable, in this order, before `persisted()`: one sync when must_sync."""

    snapshot: Snapshot | None
    entries: list[Entry]
    hard_state: HardState | None
    must_sync: bool


@dataclass(slots=True)
class Turn:
    answers: list[Answer] = field(default_factory=list)  # deliverable now
    send_now: list[Message] = field(default_factory=list)  # before the sync (a leader's replication)
    persist: Persist | None = None
    ready: Ready | None = None
    refused: bool = False  # the disk is full and no retry is due: treat as failed without writing
    probe: bool = False  # a hard-state write that only tests whether the disk has room again
    # Writes and membership changes this leader appended to its own log this turn (request ids): if the
    # turn cannot be persisted and none of its entries left in send_now, they can never commit.
    proposed: list[int] = field(default_factory=list)


@dataclass(slots=True)
class SnapshotJob:
    """Take a snapshot at `meta.index`: `build()` returns its bytes and must run before the next turn
    changes the state (inline, or in a child forked at once). The storage then makes them durable and
    releases the log before them; `hard_state` and `last_index` are the node's at the job's start."""

    meta: SnapshotMeta
    build: Callable[[], bytes]
    hard_state: HardState
    last_index: int


@dataclass(slots=True)
class Output:
    messages: list[Message] = field(default_factory=list)
    answers: list[Answer] = field(default_factory=list)
    fired: list[tuple[Watcher, Event]] = field(default_factory=list)
    applied: list[Applied] = field(default_factory=list)
    snapshot: SnapshotJob | None = None  # save it, then snapshot_saved() or snapshot_failed()
    store_replaced: bool = False  # a leader's snapshot replaced the store: every watch must end
    became_leader: bool = False
    removed_self: bool = False  # this member applied its own removal: stop


@dataclass
class DriverConfig:
    name: str
    client_urls: list[str]
    snapshot_count: int
    request_timeout_s: float
    request_id_start: int  # from the clock at process start: ids never repeat across restarts
    snapshot_keep_entries: int = SNAPSHOT_KEEP_ENTRIES


class MemberDriver:
    def __init__(self, node: ServerNode, raft: RawNode, snap_index: int, config: DriverConfig,
                 observer: StateObserver | None = None) -> None:
        self.node = node
        self.observer = observer  # checkers (the simulator's): see the store after each change
        self.raft = raft
        self.config = config
        self.self_id = node.self_id
        self.snap_index = snap_index
        self.requests = PendingTable(next_id=config.request_id_start)
        self.disk_full = False
        self._disk_retry_at = 0.0
        self._snapshot_retry_at = 0.0
        self._snapshot_job: SnapshotJob | None = None  # handed out, not yet saved or failed
        self._now_s = 0.0  # the clock of the latest turn (time comes in only through next_turn)
        self._published = False
        self._offered = False  # work offered since the last turn (run a turn even without a Ready)
        # A Ready could not be persisted: take no other until an input arrives or a retry is due (the same
        # Ready would only fail again, and the shell would spin).
        self._stalled = False
        self._answers: list[Answer] = []  # refusals decided outside a turn, delivered by the next one
        self.leader_since_ns = 0
        self.recv_appends = 0
        self.send_appends = 0
        self.write_batches = 0  # proposals that carried more than one client write
        self._role, self._lead, self._known_lead = Role.FOLLOWER, 0, 0  # what the log last said (_log_soft_state)
        # /metrics (etcd_server_*): plain ints, read by runtime/metrics.py at scrape time
        self.leader_changes = 0  # a Ready named a leader other than the last one named (0 counts as named)
        self._last_lead = 0
        self.proposals_failed = 0  # writes and membership changes answered "timed out" or "no space"

    # ---- views ---------------------------------------------------------------------------------

    @property
    def store(self) -> Store:
        return self.node.store

    @property
    def members(self) -> MemberRegistry:
        return self.node.members

    @property
    def auth(self) -> AuthState:
        return self.node.auth

    def status(self) -> Status:
        return self.raft.status()

    def has_work(self) -> bool:
        """True when a turn should run now, without waiting for I/O."""
        return self._offered or bool(self._answers) or (not self._stalled and self.raft.has_ready())

    # ---- inputs --------------------------------------------------------------------------------

    def tick(self) -> None:
        self._stalled = False
        self.raft.tick()

    def step(self, messages: list[Message]) -> None:
        self._stalled = False
        for m in messages:
            if m.entries and m.type is MsgType.APP:
                self.recv_appends += 1
            self.raft.step(m)

    def report_unreachable(self, peer: int) -> None:
        self._stalled = False
        self.raft.report_unreachable(peer)

    def report_snapshot(self, peer: int, ok: bool) -> None:
        self._stalled = False
        self.raft.report_snapshot(peer, ok)

    def propose(self, waiter: Any, tag: Any, request: Request, now_s: float) -> None:
        """A client write: answered with its applied result (or an error) by a later turn."""
        if self._refuse_if_disk_full(waiter, tag, Kind.WRITE):
            return
        rid = self.requests.new_id()
        req = request
        stamped = Request(req.kind, req.path, req.value, req.dir, req.prev_value, req.prev_index, req.prev_exist,
                          req.expire_at_ns, req.refresh, req.recursive, req.sorted, req.time_ns, req.peer_urls,
                          self.self_id, rid)
        data = stamped.encode()
        self.node.proposed_here(data, stamped)
        self.requests.add(Pending(rid, Kind.WRITE, waiter, tag, now_s + self.config.request_timeout_s, data))
        self._offered = True

    def read(self, waiter: Any, tag: Any, now_s: float) -> None:
        """A linearizable read: answered (result None) once a ReadIndex confirmed by a quorum is applied."""
        rid = self.requests.new_id()
        self.requests.add(Pending(rid, Kind.READ, waiter, tag, now_s + self.config.request_timeout_s))
        self._offered = True

    def change_membership(self, waiter: Any, tag: Any, cc: ConfChange, now_s: float) -> None:
        if self._refuse_if_disk_full(waiter, tag, Kind.CONF):
            return
        rid = self.requests.new_id()
        self.requests.add(Pending(rid, Kind.CONF, waiter, tag, now_s + self.config.request_timeout_s,
                                  conf_change=cc))
        self._offered = True

    def cancel(self, waiter: Any) -> None:
        """The waiter went away (its connection closed): forget its requests."""
        self.requests.drop_waiter(waiter)

    def watch(self, path: str, recursive: bool, stream: bool, since_index: int,
              watcher_id: int) -> tuple[Watcher, Event | None]:
        """Register a watcher (raises V2Error, e.g. 401 when since_index left the history)."""
        return self.node.store.watch(path, recursive, stream, since_index, watcher_id)

    def unwatch(self, watcher: Watcher) -> None:
        self.node.store.hub.remove(watcher)

    def hand_over_leadership(self) -> int:
        """A leader stopping gracefully hands over to its most up-to-date follower first (etcd does the
        same), so the cluster does not wait an election timeout. Returns the target, 0 if none."""
        st = self.raft.status()
        if st.role is not Role.LEADER:
            return 0
        others = [(match, pid) for pid, match in st.match if pid != self.self_id]
        if not others:
            return 0
        target = max(others)[1]
        self.raft.transfer_leadership(target)
        return target

    def transfer_leadership(self, to: int) -> None:
        self._stalled = False
        self.raft.transfer_leadership(to)

    def propose_conf_change(self, cc: ConfChange) -> bool:
        """A membership change with nobody waiting for it (tools, the simulator's nemesis)."""
        try:
            self.raft.propose_conf_change(cc)
            return True
        except ProposalDropped:
            return False

    # ---- one turn ------------------------------------------------------------------------------

    def next_turn(self, now_s: float, wall_ns: int) -> Turn | None:
        """Do the turn's duties, hand the offered work to Raft, and take Raft's next Ready."""
        self._now_s = now_s
        answers, self._answers = self._answers, []
        for p in self.requests.expired(now_s):
            answers.append(Answer(p.waiter, p.tag, request_error(TIMED_OUT), p.kind))
            self.proposals_failed += p.kind is not Kind.READ
        if self._stalled and now_s < self._disk_retry_at:
            return Turn(answers) if answers else None
        self._stalled = False
        self._leader_duties(wall_ns)
        proposed = self._submit_offered()
        raft = self.raft
        if not raft.has_ready():
            if self.disk_full and now_s >= self._disk_retry_at:
                self._disk_retry_at = now_s + DISK_RETRY_S
                probe = Persist(None, [], raft.hard_state(), True)
                return Turn(answers, [], probe, None, probe=True)
            return Turn(answers) if answers else None
        rd = raft.ready()
        if rd.soft_state is not None:
            self._log_soft_state(rd.soft_state.role, rd.soft_state.lead)
        if rd.soft_state is not None and rd.soft_state.role is Role.LEADER:
            self.leader_since_ns = wall_ns
        if rd.soft_state is not None:  # etcd's leader_changes_seen: a new non-zero leader
            self.leader_changes += rd.soft_state.lead != 0 and rd.soft_state.lead != self._last_lead
            self._last_lead = rd.soft_state.lead
        hard = rd.hard_state
        if rd.snapshot is not None and hard is None:
            hard = raft.hard_state()  # a new WAL segment starts after the snapshot: it must carry term and vote
        persist = Persist(rd.snapshot, rd.entries, hard, rd.must_sync)
        if self.disk_full and rd.must_sync:
            if now_s < self._disk_retry_at:
                return Turn(answers, [], None, rd, refused=True)
            self._disk_retry_at = now_s + DISK_RETRY_S
        send_now: list[Message] = []
        if rd.must_sync and raft.is_leader and rd.messages:
            send_now = [m for m in rd.messages if m.type in _REPLICATION]
            if send_now:
                rd.messages = [m for m in rd.messages if m.type not in _REPLICATION]
                self._count_sent(send_now)
        return Turn(answers, send_now, persist, rd, proposed=proposed)

    def persisted(self, turn: Turn) -> Output:
        """The turn's records are durable (or there were none to write)."""
        if turn.refused:
            return self.persist_failed(turn)
        out = Output()
        if self.disk_full and (turn.probe or (turn.persist is not None and turn.persist.must_sync)):
            self.disk_full = False
            self.raft.persist_recovered()
        rd = turn.ready
        if rd is None:
            return out
        raft = self.raft
        if rd.soft_state is not None and rd.soft_state.role is Role.LEADER:
            out.became_leader = True
        self._count_sent(rd.messages)
        out.messages = rd.messages
        if rd.snapshot is not None:
            meta = rd.snapshot.meta
            self.node.restore(rd.snapshot.data)
            self.node.applied_index = meta.index
            self.snap_index = meta.index
            out.store_replaced = True  # watchers on the old store can never fire
            if self.observer is not None:
                self.observer.restored(self.node, meta.index)
        observer = self.observer
        for e in rd.committed_entries:
            before = self.node.store.index
            applied = self.node.apply(e)
            if observer is not None:
                observer.applied(self.node, e, applied, before)
            out.applied.append(applied)
            self._on_applied(applied, out)
        raft.advance(rd)
        self._read_states(rd, out)
        if (not self.disk_full and self._snapshot_job is None
                and raft.applied_index - self.snap_index >= self.config.snapshot_count
                and self._now_s >= self._snapshot_retry_at):
            out.snapshot = self._snapshot()
        return out

    def persist_failed(self, turn: Turn) -> Output:
        """The disk is full: nothing of the turn's records was kept. Acknowledge nothing, apply nothing.

        "No space" is a definite answer, so only requests that can never commit get it: those Raft never
        took, and those this leader appended this turn when no entry left the member (send_now). Every
        other write in flight may still commit through another member (entries sent before the fsync,
        proposals forwarded to the leader, entries persisted earlier): it keeps waiting for its entry to
        be applied or its deadline ("request timed out")."""
        out = Output()
        self._stalled = True
        if not self.disk_full:
            self.disk_full = True
            self._disk_retry_at = self._now_s + DISK_RETRY_S
        rd = turn.ready
        if rd is not None:
            self.raft.persist_failed(rd)
            out.messages = [m for m in rd.messages if m.type in _SAFE_UNPERSISTED]
            self._read_states(rd, out)
        sent = any(m.entries for m in turn.send_now if m.type is MsgType.APP)
        for p in self.requests.take_changes(set() if sent else set(turn.proposed)):
            out.answers.append(Answer(p.waiter, p.tag, request_error(NO_SPACE), p.kind))
            self.proposals_failed += 1
        return out

    def snapshot_saved(self, job: SnapshotJob, data: bytes | SnapshotSource) -> None:
        """The job's snapshot is durable; `data` is its bytes or where to read them (for lagging
        followers). A snapshot from the leader installed meanwhile is newer: then nothing changes."""
        if self._snapshot_job is job:
            self._snapshot_job = None
        meta = job.meta
        if meta.index <= self.snap_index:
            log.info("snapshot at %d is older than the one installed since (%d): log left as it is", meta.index,
                     self.snap_index)
            return
        keep = min(self.config.snapshot_keep_entries, self.config.snapshot_count)
        self.raft.compact(Snapshot(meta, data), keep)
        if meta.index > keep:
            log.info("compacted raft log at %d", meta.index - keep)
        self.snap_index = meta.index

    def snapshot_failed(self, job: SnapshotJob) -> None:
        """No room for the snapshot (or its writer died): nothing changed on disk (the log stays whole).
        Try again after SNAPSHOT_RETRY_S; the log's own writes find out for themselves whether the disk is
        full."""
        if self._snapshot_job is job:
            self._snapshot_job = None
        self._snapshot_retry_at = self._now_s + SNAPSHOT_RETRY_S

    def snapshot_superseded(self, job: SnapshotJob) -> bool:
        """A snapshot from the leader at or after the job's index was installed since the job was handed
        out: the job's file is of no use (and --max-snapshots may already have pruned it)."""
        return job.meta.index <= self.snap_index

    @property
    def snapshotting(self) -> bool:
        """A snapshot job was handed out and not yet reported saved or failed."""
        return self._snapshot_job is not None

    # ---- inside a turn -------------------------------------------------------------------------

    def _refuse_if_disk_full(self, waiter: Any, tag: Any, kind: Kind) -> bool:
        if self.disk_full:
            self._answers.append(Answer(waiter, tag, request_error(NO_SPACE), kind))
            self.proposals_failed += 1
            return True
        return False

    def _leader_duties(self, wall_ns: int) -> None:
        raft = self.raft
        if raft.is_leader:
            sync = self.node.sync_due(wall_ns)
            if sync is not None:
                try:
                    raft.propose(sync.encode())
                except ProposalDropped:
                    pass
        if not self._published and raft.lead:
            self._publish_attributes()

    def _publish_attributes(self) -> None:
        """Tell the cluster our name and client URLs (etcd's member attribute publication), at every start
        even when unchanged, as etcd does: it consumes an etcd index, so X-Etcd-Index after a restart is etcd's."""
        self._published = True
        urls = list(self.config.client_urls)
        req = Request(MEMBER_ATTRS, value=self.config.name, peer_urls=tuple(urls), origin=self.self_id)
        try:
            self.raft.propose(req.encode())
        except ProposalDropped:
            self._published = False

    def _submit_offered(self) -> list[int]:
        """Hand the waiting requests to Raft in batches. What Raft drops (no leader yet, a conf change in
        flight) stays unsubmitted and is offered again every turn until its deadline. Returns the request
        ids of writes and membership changes appended to this (leader's) own log (see Turn.proposed)."""
        self._offered = False
        pending = self.requests.unsubmitted()
        if not pending:
            return []
        raft = self.raft
        leader = raft.is_leader
        proposed: list[int] = []
        writes = [p for p in pending if p.kind is Kind.WRITE]
        reads = [p for p in pending if p.kind is Kind.READ]
        if writes and not self.disk_full:
            try:
                raft.propose_many([p.data for p in writes])
                for p in writes:
                    p.submitted = True
                    if leader:
                        proposed.append(p.req_id)
                self.write_batches += len(writes) > 1
            except ProposalDropped:
                pass
        if reads:
            ctx = reads[0].req_id
            try:
                raft.read_index(ctx.to_bytes(8, "big"))
                for p in reads:
                    p.submitted, p.read_ctx = True, ctx
            except ProposalDropped:
                pass
        for p in pending:
            if p.kind is Kind.CONF and p.conf_change is not None and not self.disk_full:
                try:
                    raft.propose_conf_change(p.conf_change)
                    p.submitted = True
                    if leader:
                        proposed.append(p.req_id)
                except ProposalDropped:
                    pass
        return proposed

    def _on_applied(self, applied: Applied, out: Output) -> None:
        req = applied.request
        if req is not None and req.origin == self.self_id and req.req_id:
            p = self.requests.pop(req.req_id)
            if p is not None:
                out.answers.append(Answer(p.waiter, p.tag, applied.result, p.kind, applied))
        cc = applied.conf_change
        if cc is not None:
            p = self.requests.conf_change_waiter(cc)
            if p is not None:
                out.answers.append(Answer(p.waiter, p.tag, None, p.kind))
            if cc.type is ConfChangeType.REMOVE_NODE and cc.node_id == self.self_id:
                out.removed_self = True
            self._log_conf_change(cc)
        out.fired.extend(applied.fired)

    def _read_states(self, rd: Ready, out: Output) -> None:
        for rs in rd.read_states:
            for p in self.requests.reads_with_context(int.from_bytes(rs.context, "big")):
                p.read_index = max(rs.index, 1)
        for p in self.requests.reads_ready(self.raft.applied_index):
            out.answers.append(Answer(p.waiter, p.tag, None, p.kind))

    def _log_soft_state(self, role: Role, lead: int) -> None:
        """etcd's raft lines: "<id> became leader at term N", "<id> elected leader <id> at term N", ..."""
        term = self.raft.term
        if role is not self._role:
            rlog.info("%x became %s at term %d", self.self_id, _ROLE_NAMES.get(role, role.name.lower()), term)
        if lead != self._lead:
            if not lead:
                rlog.info("raft.node: %x lost leader %x at term %d", self.self_id, self._lead, term)
            elif self._known_lead and self._known_lead != lead:
                rlog.info("raft.node: %x changed leader from %x to %x at term %d (leader changed)", self.self_id,
                          self._known_lead, lead, term)
            else:
                rlog.info("raft.node: %x elected leader %x at term %d", self.self_id, lead, term)
            self._known_lead = lead or self._known_lead
        self._role, self._lead = role, lead

    def _log_conf_change(self, cc: ConfChange) -> None:
        member = self.members.by_id.get(cc.node_id)
        urls = list(member.peer_urls) if member is not None else []
        if cc.type is ConfChangeType.ADD_NODE:
            log.info("added member %x %s to the cluster", cc.node_id, urls)
        elif cc.type is ConfChangeType.REMOVE_NODE:
            log.info("removed member %x from the cluster", cc.node_id)
        else:
            log.info("updated member %x %s in the cluster", cc.node_id, urls)

    def _snapshot(self) -> SnapshotJob:
        raft = self.raft
        applied = raft.applied_index
        log.info("start to snapshot (applied: %d, lastsnap: %d)", applied, self.snap_index)
        term = raft.log_term(applied) or raft.term
        voters = raft.voters
        node = self.node

        def build() -> bytes:
            return node.snapshot_data(voters)

        job = SnapshotJob(SnapshotMeta(applied, term, ConfState(voters)), build, raft.hard_state(),
                          raft.status().last_index)
        self._snapshot_job = job
        return job

    def _count_sent(self, messages: list[Message]) -> None:
        for m in messages:
            if m.entries and m.type is MsgType.APP:
                self.send_appends += 1
