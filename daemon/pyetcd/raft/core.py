"""The Raft state machine (Ongaro & Ousterhout), pure and deterministic: ticks and messages in,
messages and log changes out (see rawnode.RawNode for the Ready/advance contract).

Included: randomized election timeouts (from an injected random.Random), PreVote (§9.6 of the thesis)
and CheckQuorum (a leader that has not heard from a quorum for an election timeout steps down), so a
partitioned or paused node cannot disrupt a healthy cluster; log replication with probing, pipelining
bounded by `inflight_max`; commit only of current-term entries by counting matches; snapshots for
followers behind the compacted log; leadership transfer (MsgTimeoutNow); ReadIndex for linearizable
reads (§6.4); single-server membership changes, one at a time.

Roles are swapped by `become_*`, each choosing its `_step_*` function (etcd-raft's structure). The
leader counts its own log only once it is on disk (`on_persisted`), so nothing is committed that a
crash of the leader alone could undo.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from .log import RaftLog
from .progress import Progress, ProgressState, committed_index, quorum
from .types import (
    NONE,
    ConfChange,
    ConfChangeType,
    Entry,
    EntryType,
    HardState,
    Message,
    MsgType,
    ReadState,
    Role,
    Snapshot,
    SoftState,
)

TRANSFER_CONTEXT = b"transfer"


class Rng(Protocol):
    """The injected randomness (a seeded random.Random): the only source of election jitter."""

    def randrange(self, stop: int) -> int: ...


@dataclass(frozen=True)
class RaftConfig:
    node_id: int
    election_ticks: int = 10
    heartbeat_ticks: int = 1
    inflight_max: int = 256
    entries_per_append_max: int = 512
    pre_vote: bool = True
    check_quorum: bool = True

    def validate(self) -> None:
        if self.node_id == NONE:
            raise ValueError("node id must not be 0")
        if self.heartbeat_ticks <= 0 or self.election_ticks <= self.heartbeat_ticks:
            raise ValueError("need 0 < heartbeat_ticks < election_ticks")


@dataclass
class _PendingRead:
    index: int
    frm: int  # who asked (self, or a follower that forwarded MsgReadIndex)
    acks: set[int] = field(default_factory=set)


class ProposalDropped(Exception):
    """Not accepted: no leader known, a leadership transfer is running, or a conf change is pending."""


class Raft:
    def __init__(self, config: RaftConfig, log: RaftLog, hard_state: HardState, voters: tuple[int, ...],
                 rng: Rng) -> None:
        config.validate()
        self.cfg = config
        self.id = config.node_id
        self.log = log
        self.rng = rng
        self.term = hard_state.term
        self.vote = hard_state.vote
        if hard_state.commit:
            log.commit_to(min(hard_state.commit, log.last_index))
        self.lead = NONE
        self.role = Role.FOLLOWER
        self.prs: dict[int, Progress] = {v: Progress(log.last_index + 1, config.inflight_max) for v in voters}
        self.votes: dict[int, bool] = {}
        self.msgs: list[Message] = []
        self.read_states: list[ReadState] = []
        self.pending_reads: dict[bytes, _PendingRead] = {}
        self.reads_waiting_for_commit: list[Message] = []
        self.election_elapsed = 0
        self.heartbeat_elapsed = 0
        self.randomized_election_ticks = 0
        self.pending_conf_index = 0
        self.lead_transferee = NONE
        self.disk_full = False  # see persist_failed()
        self._step: Callable[[Message], None] = self._step_follower
        self._tick: Callable[[], None] = self._tick_election
        self.become_follower(self.term, NONE)

    # ---- introspection -------------------------------------------------------------------------

    def soft_state(self) -> SoftState:
        return SoftState(self.lead, self.role)

    def hard_state(self) -> HardState:
        return HardState(self.term, self.vote, self.log.committed)

    @property
    def voters(self) -> tuple[int, ...]:
        return tuple(sorted(self.prs))

    def promotable(self) -> bool:
        # A node that cannot persist a vote for itself must not campaign (nor, being unable to persist
        # its own entries, lead).
        return self.id in self.prs and not self.disk_full

    # ---- role changes --------------------------------------------------------------------------

    def _reset(self, term: int) -> None:
        if self.term != term:
            self.term = term
            self.vote = NONE
        self.lead = NONE
        self.election_elapsed = 0
        self.heartbeat_elapsed = 0
        self.randomized_election_ticks = self.cfg.election_ticks + self.rng.randrange(self.cfg.election_ticks)
        self.votes = {}
        self.lead_transferee = NONE
        self.pending_reads.clear()
        self.reads_waiting_for_commit.clear()
        for pid in self.prs:
            pr = Progress(self.log.last_index + 1, self.cfg.inflight_max)
            if pid == self.id:
                pr.match = self.log.stable_index
            self.prs[pid] = pr

    def become_follower(self, term: int, lead: int) -> None:
        self._reset(term)
        self.lead = lead
        self.role = Role.FOLLOWER
        self._step = self._step_follower
        self._tick = self._tick_election

    def become_pre_candidate(self) -> None:
        assert self.role is not Role.LEADER
        # PreVote changes neither term nor vote: a node that cannot win leaves the cluster undisturbed.
        self.votes = {}
        self.lead = NONE
        self.role = Role.PRE_CANDIDATE
        self._step = self._step_candidate
        self._tick = self._tick_election

    def become_candidate(self) -> None:
        assert self.role is not Role.LEADER
        self._reset(self.term + 1)
        self.vote = self.id
        self.role = Role.CANDIDATE
        self._step = self._step_candidate
        self._tick = self._tick_election

    def become_leader(self) -> None:
        assert self.role is Role.CANDIDATE
        self._reset(self.term)
        self.lead = self.id
        self.role = Role.LEADER
        self._step = self._step_leader
        self._tick = self._tick_heartbeat
        for pid, pr in self.prs.items():
            if pid == self.id:
                pr.become_replicate()
                pr.match = self.log.stable_index
                pr.next = self.log.last_index + 1
        # Conservatively assume a conf change may be pending in the uncommitted tail.
        self.pending_conf_index = self.log.last_index
        # An empty entry of our term: committing it commits everything before it (§5.4.2) and tells
        # us our commit index is current, which ReadIndex needs.
        self._append([Entry(self.term, 0)])

    # ---- ticks ---------------------------------------------------------------------------------

    def tick(self) -> None:
        self._tick()

    def _tick_election(self) -> None:
        self.election_elapsed += 1
        if self.promotable() and self.election_elapsed >= self.randomized_election_ticks:
            self.election_elapsed = 0
            self.step(Message(MsgType.HUP, self.id, self.id))

    def _tick_heartbeat(self) -> None:
        self.heartbeat_elapsed += 1
        self.election_elapsed += 1
        if self.election_elapsed >= self.cfg.election_ticks:
            self.election_elapsed = 0
            if self.cfg.check_quorum:
                self.step(Message(MsgType.CHECK_QUORUM, self.id, self.id))
            if self.role is Role.LEADER and self.lead_transferee != NONE:
                self.lead_transferee = NONE  # the transfer did not finish in an election timeout
        if self.role is not Role.LEADER:
            return
        if self.heartbeat_elapsed >= self.cfg.heartbeat_ticks:
            self.heartbeat_elapsed = 0
            self.step(Message(MsgType.BEAT, self.id, self.id))

    # ---- the step function ---------------------------------------------------------------------

    def step(self, m: Message) -> None:
        if m.term == 0:
            pass  # local message
        elif m.term > self.term:
            if m.type in (MsgType.VOTE, MsgType.PRE_VOTE):
                force = m.context == TRANSFER_CONTEXT
                in_lease = (self.cfg.check_quorum and self.lead != NONE
                            and self.election_elapsed < self.cfg.election_ticks)
                if in_lease and not force:
                    return  # we heard from a live leader recently: ignore the disruptive candidate
            if m.type is MsgType.PRE_VOTE:
                pass  # never change term for a pre-vote
            elif m.type is MsgType.PRE_VOTE_RESP and not m.reject:
                pass  # the term in a granted pre-vote is the future term we asked for
            elif m.type in (MsgType.APP, MsgType.HEARTBEAT, MsgType.SNAP):
                self.become_follower(m.term, m.frm)
            else:
                self.become_follower(m.term, NONE)
        elif m.term < self.term:
            if (self.cfg.check_quorum or self.cfg.pre_vote) and m.type in (MsgType.HEARTBEAT, MsgType.APP):
                # A stale leader (e.g. after a pause) learns our term and steps down.
                self._send(Message(MsgType.APP_RESP, m.frm, self.id, self.term))
            elif m.type is MsgType.PRE_VOTE:
                self._send(Message(MsgType.PRE_VOTE_RESP, m.frm, self.id, self.term, reject=True))
            return

        if m.type is MsgType.HUP:
            if self.role is not Role.LEADER:
                self._hup(transfer=False)
        elif m.type in (MsgType.VOTE, MsgType.PRE_VOTE):
            self._handle_vote_request(m)
        else:
            self._step(m)

    def _hup(self, transfer: bool) -> None:
        if not self.promotable():
            return
        if self._has_unapplied_conf_change():
            return  # campaigning with a pending conf change could elect us under a stale config
        if self.cfg.pre_vote and not transfer:
            self._campaign(pre=True, transfer=False)
        else:
            self._campaign(pre=False, transfer=transfer)

    def _has_unapplied_conf_change(self) -> bool:
        # Fix: while a received snapshot is pending, applied < snap_index; entries up to the snapshot
        # are gone (its conf is already in prs), so only look past it.
        lo = max(self.log.applied, self.log.snap_index) + 1
        if self.log.committed < lo:
            return False
        for e in self.log.slice(lo, self.log.committed + 1):
            if e.type is EntryType.CONF_CHANGE:
                return True
        return False

    def _campaign(self, pre: bool, transfer: bool) -> None:
        if pre:
            self.become_pre_candidate()
            vote_type, term = MsgType.PRE_VOTE, self.term + 1
        else:
            self.become_candidate()
            vote_type, term = MsgType.VOTE, self.term
        if self._poll(self.id, True) == 1:
            # A single voter wins at once.
            if pre:
                self._campaign(pre=False, transfer=transfer)
            else:
                self.become_leader()
            return
        ctx = TRANSFER_CONTEXT if transfer else b""
        for pid in self.voters:
            if pid != self.id:
                self._send(Message(vote_type, pid, self.id, term, log_term=self.log.last_term,
                                   index=self.log.last_index, context=ctx))

    def _poll(self, frm: int, granted: bool) -> int:
        """Record a vote; 1 = won, -1 = lost, 0 = pending."""
        self.votes.setdefault(frm, granted)
        yes = sum(1 for pid, v in self.votes.items() if v and pid in self.prs)
        no = sum(1 for pid, v in self.votes.items() if not v and pid in self.prs)
        need = quorum(len(self.prs))
        if yes >= need:
            return 1
        if no > len(self.prs) - need:
            return -1
        return 0

    def _handle_vote_request(self, m: Message) -> None:
        can_vote = (self.vote == m.frm or (self.vote == NONE and self.lead == NONE)
                    or (m.type is MsgType.PRE_VOTE and m.term > self.term))
        resp_type = MsgType.VOTE_RESP if m.type is MsgType.VOTE else MsgType.PRE_VOTE_RESP
        if can_vote and self.log.is_up_to_date(m.index, m.log_term):
            # A granted pre-vote carries the candidate's future term so it is not mistaken for stale.
            self._send(Message(resp_type, m.frm, self.id, m.term))
            if m.type is MsgType.VOTE:
                self.election_elapsed = 0
                self.vote = m.frm
        else:
            self._send(Message(resp_type, m.frm, self.id, self.term, reject=True))

    # ---- leader --------------------------------------------------------------------------------

    def _step_leader(self, m: Message) -> None:
        t = m.type
        if t is MsgType.BEAT:
            self._bcast_heartbeat(b"")
            return
        if t is MsgType.CHECK_QUORUM:
            if not self._quorum_active():
                self.become_follower(self.term, NONE)
            return
        if t is MsgType.PROP:
            self._leader_propose(m)
            return
        if t is MsgType.READ_INDEX:
            self._leader_read_index(m)
            return
        pr = self.prs.get(m.frm)
        if pr is None:
            return
        if t is MsgType.APP_RESP:
            self._handle_append_response(m, pr)
        elif t is MsgType.HEARTBEAT_RESP:
            pr.recent_active = True
            pr.probe_sent = False
            # Fix (as etcd-raft): a full window in REPLICATE whose append was lost would pause this
            # follower forever; each heartbeat answer frees one slot, so the next append goes out and
            # its reject (or ack) gets replication moving again.
            if pr.state is ProgressState.REPLICATE and pr.is_paused() and pr.inflight:
                pr.inflight.popleft()
            if pr.match < self.log.last_index:
                self._send_append(m.frm)
            if m.context:
                self._ack_read(m.context, m.frm)
        elif t is MsgType.SNAP_STATUS:
            if pr.state is ProgressState.SNAPSHOT:
                if m.reject:
                    pr.pending_snapshot = 0
                pr.become_probe()
                pr.probe_sent = True  # wait for the follower's next answer (or heartbeat) before retrying
        elif t is MsgType.UNREACHABLE:
            if pr.state is ProgressState.REPLICATE:
                pr.become_probe()
        elif t is MsgType.TRANSFER_LEADER:
            self._leader_transfer(m.frm, pr)

    def _leader_propose(self, m: Message) -> None:
        if self.id not in self.prs or self.lead_transferee != NONE:
            raise ProposalDropped("leader is leaving")
        entries = []
        for e in m.entries:
            if e.type is EntryType.CONF_CHANGE:
                if self.pending_conf_index > self.log.applied:
                    raise ProposalDropped("a configuration change is already in progress")
                self.pending_conf_index = self.log.last_index + len(entries) + 1
            entries.append(e)
        self._append(entries)
        self._bcast_append()

    def _append(self, entries: list[Entry] | tuple[Entry, ...]) -> None:
        last = self.log.last_index
        stamped = [Entry(self.term, last + 1 + i, e.type, e.data) for i, e in enumerate(entries)]
        self.log.append(stamped)
        # Our own progress advances in on_persisted, once these are on disk.

    def on_persisted(self, index: int, term: int) -> None:
        """The runtime made entries up to (index, term) durable."""
        self.log.stable_to(index, term)
        if self.role is Role.LEADER:
            pr = self.prs.get(self.id)
            if pr is not None and pr.maybe_update(self.log.stable_index):
                self._maybe_commit()

    def _maybe_commit(self) -> bool:
        matches = [pr.match for pr in self.prs.values()]
        if not matches:
            return False
        if self.log.maybe_commit(committed_index(matches), self.term):
            self._bcast_append()  # followers learn the new commit index
            self._release_reads_waiting_for_commit()
            return True
        return False

    def _handle_append_response(self, m: Message, pr: Progress) -> None:
        pr.recent_active = True
        if m.reject:
            if pr.maybe_decr_to(m.index, m.reject_hint):
                if pr.state is ProgressState.REPLICATE:
                    pr.become_probe()
                self._send_append(m.frm)
            return
        old_paused = pr.is_paused()
        if pr.maybe_update(m.index):
            if pr.state is ProgressState.PROBE:
                pr.become_replicate()
            elif pr.state is ProgressState.SNAPSHOT and pr.match >= pr.pending_snapshot:
                pr.become_probe()
                pr.become_replicate()
            if not self._maybe_commit() and old_paused:
                self._send_append(m.frm)
            # Pipeline more while the window allows; `next` passing the end means all is in flight.
            while pr.next <= self.log.last_index and not pr.is_paused() and self._send_append(m.frm):
                pass
            if m.frm == self.lead_transferee and pr.match == self.log.last_index:
                self._send(Message(MsgType.TIMEOUT_NOW, m.frm, self.id, self.term))

    def _leader_transfer(self, transferee: int, pr: Progress) -> None:
        if transferee == self.id or transferee == self.lead_transferee:
            return
        self.lead_transferee = transferee
        self.election_elapsed = 0
        if pr.match == self.log.last_index:
            self._send(Message(MsgType.TIMEOUT_NOW, transferee, self.id, self.term))
        else:
            self._send_append(transferee)

    def _quorum_active(self) -> bool:
        active = 0
        for pid, pr in self.prs.items():
            if pid == self.id or pr.recent_active:
                active += 1
            pr.recent_active = False
        return active >= quorum(len(self.prs))

    def _bcast_append(self) -> None:
        for pid in self.voters:
            if pid != self.id:
                self._send_append(pid)

    def _bcast_heartbeat(self, ctx: bytes) -> None:
        for pid in self.voters:
            if pid == self.id:
                continue
            pr = self.prs[pid]
            # Never tell a follower to commit past what it has (it may be behind).
            commit = min(pr.match, self.log.committed)
            self._send(Message(MsgType.HEARTBEAT, pid, self.id, self.term, commit=commit, context=ctx))

    def _send_append(self, to: int) -> bool:
        pr = self.prs[to]
        if pr.is_paused():
            return False
        prev_index = pr.next - 1
        prev_term = self.log.term(prev_index)
        if prev_term is None:
            return self._send_snapshot(to, pr)
        entries = tuple(self.log.slice(pr.next, self.log.last_index + 1, self.cfg.entries_per_append_max)) \
            if pr.next <= self.log.last_index else ()
        self._send(Message(MsgType.APP, to, self.id, self.term, log_term=prev_term, index=prev_index,
                           entries=entries, commit=self.log.committed))
        if entries:
            pr.sent_entries(entries[-1].index)
        elif pr.state is ProgressState.PROBE:
            pr.probe_sent = True
        return True

    def _send_snapshot(self, to: int, pr: Progress) -> bool:
        snap = self.log.snapshot
        if not pr.recent_active or snap is None:
            return False
        pr.become_snapshot(snap.meta.index)
        self._send(Message(MsgType.SNAP, to, self.id, self.term, snapshot=snap))
        return True

    # ---- ReadIndex -----------------------------------------------------------------------------

    def read_index(self, ctx: bytes) -> None:
        self.step(Message(MsgType.READ_INDEX, self.id, self.id, entries=(Entry(0, 0, data=ctx),)))

    def _leader_read_index(self, m: Message) -> None:
        ctx = m.entries[0].data
        if self.log.term(self.log.committed) != self.term:
            # Until an entry of our term commits we do not know the cluster's commit index.
            # Fix: this check now comes before the single-voter shortcut too (as in etcd-raft): a node
            # left alone after the others were removed may not yet know the commit index they reached.
            self.reads_waiting_for_commit.append(m)
            return
        if len(self.prs) == 1:
            self._answer_read(m.frm, self.log.committed, ctx)
            return
        self.pending_reads[ctx] = _PendingRead(self.log.committed, m.frm, {self.id})
        self._bcast_heartbeat(ctx)

    def _release_reads_waiting_for_commit(self) -> None:
        if self.reads_waiting_for_commit and self.log.term(self.log.committed) == self.term:
            waiting, self.reads_waiting_for_commit = self.reads_waiting_for_commit, []
            for m in waiting:
                self._leader_read_index(m)

    def _ack_read(self, ctx: bytes, frm: int) -> None:
        read = self.pending_reads.get(ctx)
        if read is None:
            return
        read.acks.add(frm)
        if len(read.acks & set(self.prs)) >= quorum(len(self.prs)):
            # Heartbeats are answered in order, so every read queued before this one is confirmed too.
            for key in list(self.pending_reads):
                done = self.pending_reads.pop(key)
                self._answer_read(done.frm, done.index, key)
                if key == ctx:
                    break

    def _answer_read(self, to: int, index: int, ctx: bytes) -> None:
        if to == self.id:
            self.read_states.append(ReadState(index, ctx))
        else:
            self._send(Message(MsgType.READ_INDEX_RESP, to, self.id, self.term, index=index, context=ctx))

    # ---- candidate and follower ----------------------------------------------------------------

    def _step_candidate(self, m: Message) -> None:
        t = m.type
        if t is MsgType.PROP:
            raise ProposalDropped("no leader")
        if t in (MsgType.APP, MsgType.HEARTBEAT, MsgType.SNAP):
            self.become_follower(m.term, m.frm)
            self._step_follower(m)
            return
        own = MsgType.PRE_VOTE_RESP if self.role is Role.PRE_CANDIDATE else MsgType.VOTE_RESP
        if t is own:
            result = self._poll(m.frm, not m.reject)
            if result == 1:
                if self.role is Role.PRE_CANDIDATE:
                    self._campaign(pre=False, transfer=False)
                else:
                    self.become_leader()
                    self._bcast_append()
            elif result == -1:
                self.become_follower(self.term, NONE)

    def _step_follower(self, m: Message) -> None:
        t = m.type
        if t is MsgType.PROP:
            if self.lead == NONE:
                raise ProposalDropped("no leader")
            self._send(Message(MsgType.PROP, self.lead, self.id, entries=m.entries))
        elif t is MsgType.APP:
            self.election_elapsed = 0
            self.lead = m.frm
            self._handle_append(m)
        elif t is MsgType.HEARTBEAT:
            self.election_elapsed = 0
            self.lead = m.frm
            self.log.commit_to(min(m.commit, self.log.last_index))
            self._send(Message(MsgType.HEARTBEAT_RESP, m.frm, self.id, self.term, context=m.context))
        elif t is MsgType.SNAP:
            self.election_elapsed = 0
            self.lead = m.frm
            self._handle_snapshot(m)
        elif t is MsgType.TRANSFER_LEADER:
            if self.lead != NONE:
                self._send(Message(MsgType.TRANSFER_LEADER, self.lead, m.frm))
        elif t is MsgType.TIMEOUT_NOW:
            self._hup(transfer=True)
        elif t is MsgType.READ_INDEX:
            if self.lead == NONE:
                raise ProposalDropped("no leader")
            self._send(Message(MsgType.READ_INDEX, self.lead, self.id, entries=m.entries))
        elif t is MsgType.READ_INDEX_RESP:
            self.read_states.append(ReadState(m.index, m.context))

    def _handle_append(self, m: Message) -> None:
        if m.index < self.log.committed:
            self._send(Message(MsgType.APP_RESP, m.frm, self.id, self.term, index=self.log.committed))
            return
        last_new = self.log.maybe_append(m.index, m.log_term, m.commit, m.entries)
        if last_new is not None:
            self._send(Message(MsgType.APP_RESP, m.frm, self.id, self.term, index=last_new))
        else:
            hint = min(m.index, self.log.last_index)
            self._send(Message(MsgType.APP_RESP, m.frm, self.id, self.term, index=m.index, reject=True,
                               reject_hint=hint))

    def _handle_snapshot(self, m: Message) -> None:
        snap = m.snapshot
        assert snap is not None
        meta = snap.meta
        if meta.index <= self.log.committed:
            self._send(Message(MsgType.APP_RESP, m.frm, self.id, self.term, index=self.log.committed))
            return
        if self.log.match_term(meta.index, meta.term):
            self.log.commit_to(meta.index)  # we already have it: fast-forward
        else:
            self.log.restore(snap)
            self.log.pending_snapshot = snap
            self.log.stable_index = meta.index  # persisted with the Ready that carries it
            self._restore_conf(meta.conf.voters)
        self._send(Message(MsgType.APP_RESP, m.frm, self.id, self.term, index=self.log.last_index))

    # ---- membership ----------------------------------------------------------------------------

    def apply_conf_change(self, cc: ConfChange) -> tuple[int, ...]:
        """Called when a committed conf-change entry is applied. Returns the new voter set."""
        if cc.type is ConfChangeType.ADD_NODE:
            if cc.node_id not in self.prs:
                pr = Progress(self.log.last_index + 1, self.cfg.inflight_max)
                pr.recent_active = True  # give it an election timeout before CheckQuorum counts it out
                self.prs[cc.node_id] = pr
        elif cc.type is ConfChangeType.REMOVE_NODE:
            self.prs.pop(cc.node_id, None)
            if cc.node_id == self.lead_transferee:
                self.lead_transferee = NONE
            if self.role is Role.LEADER and self.prs:
                self._maybe_commit()  # the quorum may have shrunk
        if self.role is Role.LEADER and cc.node_id == self.id and cc.type is ConfChangeType.REMOVE_NODE:
            self.become_follower(self.term, NONE)
        return self.voters

    def _restore_conf(self, voters: tuple[int, ...]) -> None:
        self.prs = {v: Progress(self.log.last_index + 1, self.cfg.inflight_max) for v in voters}

    # ---- output --------------------------------------------------------------------------------

    def _send(self, m: Message) -> None:
        self.msgs.append(m)

    def compact(self, snap: Snapshot, keep_entries: int) -> None:
        self.log.compact(snap, keep_entries)

    # ---- a full disk ---------------------------------------------------------------------------

    def persist_failed(self) -> None:
        """The last Ready's entries, snapshot or hard state could not be made durable (disk full).

        The log forgets its unstable tail (what the disk has is what we have: nothing unpersisted may
        be acked or applied) and the commit index falls back to what we hold. A leader steps down: it
        may already have sent that tail to followers, so it must never append other entries at those
        indexes in its term; it hands over to the most up-to-date follower at once (MsgTimeoutNow only
        speeds up an election that the voting rules keep safe). Until `persist_recovered()` the node
        neither campaigns nor takes leadership; it still follows and answers heartbeats."""
        log = self.log
        del log.entries[log.stable_index - log.snap_index:]
        log.committed = max(log.applied, min(log.committed, log.last_index))
        self.disk_full = True
        if self.role is Role.LEADER:
            others = [(pr.match, pid) for pid, pr in self.prs.items() if pid != self.id]
            if others:
                _, best = max(others)
                self._send(Message(MsgType.TIMEOUT_NOW, best, self.id, self.term))
            self.become_follower(self.term, NONE)
        elif self.role is not Role.FOLLOWER:
            self.become_follower(self.term, NONE)

    def persist_recovered(self) -> None:
        self.disk_full = False
