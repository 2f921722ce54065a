"""SimNode: one cluster member in the simulated world, running the production member driver
(server/driver.py) and the production recovery (server/recovery.py) over the simulated disk. It is a shell
like runtime/loop.py: it feeds the driver ticks, messages and client requests, writes what the driver asks
to persist to its SimDisk, and reports the outcome; the only logic here is the simulated I/O.

One turn, as the loop does it: `driver.next_turn()`; deliver the answers available now; send a leader's
replication messages before its fsync; write the records, then wait for the simulated fsync (a random
latency: anything that arrives meanwhile waits in the inbox, as the real loop is blocked in fsync too);
then `driver.persisted()` (or `persist_failed()` when the disk is full) and send, answer and save a
snapshot as its output says. Faults at the I/O boundary: a crash at any moment (the unsynced tail of the
disk keeps a random prefix), a crash inside an fsync, a full disk (DiskFull), an fsync that fails with
EIO (the member stops, as the daemon does, and a supervisor restarts it from what is durable).

Bootstrap: founders recover with `--initial-cluster-state new` (recovery writes the bootstrap entries);
a member added later starts with an empty log and, like `--initial-cluster-state existing`, with the
members it was told at join time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ...raft.core import RaftConfig
from ...raft.types import ConfChange, Entry, Message, Snapshot, Status
from ...server.driver import Answer, DriverConfig, MemberDriver, Output, SnapshotJob, Turn
from ...server.members import Member
from ...server.node import ServerNode
from ...server.recovery import ClusterSpec, recover
from ...server.requests import Request
from ...storage.errors import DiskFull
from ...store.errors import V2Error
from ...store.event import Event
from ...store.store import Store
from .disk import SimDisk

if TYPE_CHECKING:
    from .runner import Cluster

INBOX_MAX = 10_000  # bound: a paused node's backlog (messages beyond it are dropped, like a full socket)
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
    snapshot_ms_max: int = 30  # a snapshot is saved up to this long after it was taken (a forked writer)
    keep_entries: int = 5
    pre_vote: bool = True
    check_quorum: bool = True
    request_timeout_ms: int = 1000  # the daemon's request timeout: then etcd's 300 "request timed out"


@dataclass
class ClientOp:
    """A request from a simulated client, answered only by the node it was sent to.

    `request` is what the HTTP layer would hand the driver (a write's Request, origin/req_id unset);
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


class SimNode:
    def __init__(self, cluster: Cluster, node_id: int, params: NodeParams, founders: tuple[int, ...] = (),
                 initial: list[Member] | None = None) -> None:
        self.cluster = cluster
        self.world = cluster.world
        self.id = node_id
        self.params = params
        self.founders = founders  # non-empty: a founding member (--initial-cluster-state new)
        self.initial = initial or []  # a joining member's --initial-cluster
        self.disk = SimDisk()
        self.raft_rng = self.world.rng(f"raft/{node_id}")
        self.disk_rng = self.world.rng(f"disk/{node_id}")
        self.clock_skew_ns = self.world.rng(f"clock/{node_id}").randint(-50, 50) * 1_000_000
        self.alive = False
        self.removed = False  # applied its own removal and shut down for good
        self.paused = False
        self.crash_in_next_fsync = False  # fault point armed by the nemesis (BUGGIFY-style)
        self.incarnation = 0
        self.counts = {"write_batches": 0, "sent_before_fsync": 0, "disk_full_turns": 0, "eio_stops": 0}
        self.driver: MemberDriver | None = None
        self.server: ServerNode | None = None  # the state machine of the current (or last) incarnation
        self.replay_term = 0  # the durable term while recovery replays (no driver yet)
        self._reset_volatile()

    def _reset_volatile(self) -> None:
        self.inbox: list[tuple[str, Any]] = []
        self.busy = False  # waiting for an fsync
        self.pending_turn: Turn | None = None
        self._pumping = False

    # ---- views ---------------------------------------------------------------------------------

    @property
    def store(self) -> Store:
        assert self.server is not None
        return self.server.store

    def status(self) -> Status | None:
        return self.driver.status() if self.driver is not None else None

    @property
    def voters(self) -> tuple[int, ...]:
        return self.driver.raft.voters if self.driver is not None else ()

    @property
    def applied(self) -> int:
        return self.driver.raft.applied_index if self.driver is not None else 0

    @property
    def term(self) -> int:
        return self.driver.raft.term if self.driver is not None else 0

    @property
    def is_leader(self) -> bool:
        return self.alive and self.driver is not None and self.driver.raft.is_leader

    def now_ns(self) -> int:
        return EPOCH_NS + self.world.now_ms * 1_000_000 + self.clock_skew_ns

    def _now_s(self) -> float:
        return self.world.now_ms / 1000

    # ---- lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        """Recover from the disk with the production recovery, then run the production driver."""
        assert not self.alive and not self.removed
        self._reset_volatile()
        p = self.params
        initial = [member_record(v) for v in self.founders] if self.founders else self.initial
        spec = ClusterSpec(f"n{self.id}", self.id, initial, bool(self.founders), [f"http://n{self.id}:2379"],
                           p.election_ticks, p.heartbeat_ticks, "sim")
        cfg = RaftConfig(self.id, election_ticks=p.election_ticks, heartbeat_ticks=p.heartbeat_ticks,
                         inflight_max=p.inflight_max, entries_per_append_max=p.entries_per_append_max,
                         pre_vote=p.pre_vote, check_quorum=p.check_quorum)
        self.replay_term = self.disk.load().hard_state.term
        rec = recover(self.disk, spec, cfg, self.raft_rng, self.cluster.checker.observer(self))
        self.server = rec.node
        # Request ids start from the member's clock at process start (µs), as the daemon's do: they must
        # never repeat across restarts (an entry proposed before a crash can commit after it).
        dcfg = DriverConfig(spec.name, spec.client_urls, p.snapshot_every_entries, p.request_timeout_ms / 1000,
                            self.now_ns() // 1000, p.keep_entries)
        self.driver = MemberDriver(rec.node, rec.raft, rec.snap_index, dcfg, self.cluster.checker.observer(self))
        self.alive = True
        self.paused = False
        self.incarnation += 1
        st = self.driver.status()
        self.world.trace(f"n{self.id} start: term={st.term} commit={st.commit} snap={st.snap_index} "
                         f"last={st.last_index} voters={st.voters} etcd_index={self.store.index}")
        # Ticks start at a random phase: members' clocks are not aligned.
        self.world.after(self.world.rng(f"tick/{self.id}/{self.incarnation}").randint(1, p.tick_ms),
                         self._tick, self.incarnation)
        self._pump()

    def crash(self) -> None:
        if not self.alive:
            return
        self.fold_counts()
        lost = self.disk.crash(self.disk_rng)
        self.world.trace(f"n{self.id} CRASH (lost {lost} unsynced records)")
        self.alive = False
        self.incarnation += 1
        self.driver = None
        self._reset_volatile()

    def fold_counts(self) -> None:
        """Keep the driver's counters across incarnations (a crash loses the driver)."""
        if self.driver is not None:
            self.counts["write_batches"] += self.driver.write_batches
            self.driver.write_batches = 0

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
        if not self.alive or len(self.inbox) >= INBOX_MAX:
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

    def _handle(self, item: tuple[str, Any]) -> None:
        d = self.driver
        assert d is not None
        kind, v = item
        if kind == "tick":
            d.tick()
        elif kind == "msg":
            d.step([v])
        elif kind == "snap_status":
            d.report_snapshot(v[0], v[1])
        elif kind == "conf":
            ok = d.propose_conf_change(v)
            self.world.trace(f"n{self.id} conf change {v.type.name} {v.node_id} {'proposed' if ok else 'dropped'}")
        elif kind == "transfer":
            d.transfer_leadership(v)
        elif kind == "snapshot_written":
            self._save_snapshot(*v)
        elif kind == "client":
            op: ClientOp = v
            if op.request is None:
                d.read(op, op, self._now_s())
            else:
                d.propose(op, op, op.request, self._now_s())

    # ---- the loop turn -------------------------------------------------------------------------

    def _pump(self) -> None:
        if not self.alive or self.paused or self._pumping or self.busy:
            return
        self._pumping = True
        try:
            while self.alive and not self.busy:
                inbox, self.inbox = self.inbox, []
                for item in inbox:
                    self._handle(item)
                    if not self.alive:  # a failed snapshot write stopped it
                        return
                d = self.driver
                assert d is not None
                turn = d.next_turn(self._now_s(), self.now_ns())
                if turn is None:
                    if not self.inbox:
                        return
                    continue
                self._answer(turn.answers)
                if turn.send_now:
                    self.counts["sent_before_fsync"] += 1
                    self._send(turn.send_now)
                if turn.ready is not None:
                    self.cluster.checker.on_ready(self, turn.ready.entries)
                p = turn.persist
                if p is None or turn.refused:
                    self._finish(turn, failed=turn.refused)
                    continue
                self.disk.write(p.snapshot, p.entries, p.hard_state)
                if not p.must_sync:
                    self._finish(turn)
                    continue
                if self.crash_in_next_fsync:
                    # Written but not yet synced: the crash keeps a random prefix of it. Nothing of this
                    # turn was acknowledged or applied, so nothing may depend on it.
                    self.crash_in_next_fsync = False
                    self.crash()
                    self.cluster.restart_later(self.id)
                    return
                self.busy, self.pending_turn = True, turn
                self.world.after(self.disk_rng.randint(0, self.params.fsync_ms_max), self._fsynced,
                                 self.incarnation)
        finally:
            self._pumping = False

    def _fsynced(self, incarnation: int) -> None:
        if incarnation != self.incarnation or not self.alive:
            return
        turn, self.pending_turn = self.pending_turn, None
        self.busy = False
        assert turn is not None
        try:
            self.disk.sync()
        except DiskFull:
            self._finish(turn, failed=True)
        except OSError as e:
            self._stop_on_disk_error(e)
            return
        else:
            self._finish(turn)
        self._pump()

    def _stop_on_disk_error(self, err: OSError) -> None:
        """As the daemon does after a failed fsync: stop; the supervisor restarts it from what is durable."""
        self.world.trace(f"n{self.id} fsync failed ({err}): stopping")
        self.counts["eio_stops"] += 1
        self.crash()
        self.cluster.restart_later(self.id)

    def _finish(self, turn: Turn, failed: bool = False) -> None:
        d = self.driver
        assert d is not None
        out = d.persist_failed(turn) if failed else d.persisted(turn)
        self.counts["disk_full_turns"] += failed
        if failed and not turn.refused:
            self.world.trace(f"n{self.id} disk full: nothing of the turn kept")
        self._apply_output(out)

    def _apply_output(self, out: Output) -> None:
        d = self.driver
        assert d is not None
        self._send(out.messages)
        for a in out.applied:
            cc = a.conf_change
            if cc is not None:
                self.cluster.on_conf_applied(self, a.index, cc, self.voters)
        if out.became_leader:
            self.world.trace(f"n{self.id} LEADER term={d.raft.term}")
        if out.store_replaced:
            self.world.trace(f"n{self.id} installed snapshot at {d.snap_index}")
        self._answer(out.answers)
        job = out.snapshot
        if job is not None:
            # As the daemon's forked writer: the state is captured now, the file is saved a while later
            # (the node goes on meanwhile, and may crash or install a leader's snapshot first).
            data = job.build()
            self.world.after(self.disk_rng.randint(0, self.params.snapshot_ms_max), self._snapshot_written,
                             self.incarnation, job, data)
        if out.removed_self:
            self.shutdown_removed()

    def _snapshot_written(self, incarnation: int, job: SnapshotJob, data: bytes) -> None:
        """The writer is done: the node saves the snapshot when it next runs (not while paused). Never
        dropped for a full inbox: the driver asks for no other snapshot until it hears of this one."""
        if incarnation != self.incarnation or not self.alive:
            return  # crashed (or stopped) meanwhile: the snapshot was never saved
        self.inbox.append(("snapshot_written", (job, data)))
        self._pump()

    def _save_snapshot(self, job: SnapshotJob, data: bytes) -> None:
        d = self.driver
        assert d is not None
        try:
            self.disk.save_snapshot(Snapshot(job.meta, data), job.hard_state, job.last_index)
        except DiskFull:
            d.snapshot_failed(job)
            self.world.trace(f"n{self.id} no room for a snapshot at {job.meta.index}")
        except OSError as e:
            self._stop_on_disk_error(e)
            return
        else:
            d.snapshot_saved(job, data)
            self.world.trace(f"n{self.id} snapshot at {job.meta.index}")

    def _send(self, messages: list[Message]) -> None:
        for m in messages:
            self.cluster.net.send(m)

    def _answer(self, answers: list[Answer]) -> None:
        for a in answers:
            op: ClientOp = a.waiter
            res: Result
            if a.result is None:  # a quorum read whose ReadIndex is applied: served from the local store
                try:
                    res = self.store.get(op.path, False, False, self.now_ns())
                except V2Error as e:
                    res = e
            else:
                res = a.result
            if a.applied is not None:
                self.cluster.checker.on_answer(self, op, a.applied)
            op.on_done(op, res)
            if a.applied is not None:
                self.cluster.on_answered(self, op, a.applied)

    def log_entries(self, lo: int, hi: int) -> list[Entry]:
        assert self.driver is not None
        return self.driver.raft.entries(lo, hi)

