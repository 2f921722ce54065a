"""RawNode: the application's handle on a Raft node (etcd-raft's RawNode).

Contract, once per loop turn: `tick()` as time passes, `step()` each received message, `propose()` and
`read_index()` for clients; then while `has_ready()`: `rd = ready()`, persist rd.hard_state, rd.entries
and rd.snapshot (one fsync when rd.must_sync), send rd.messages, apply rd.snapshot and
rd.committed_entries (calling `apply_conf_change` for conf-change entries), serve rd.read_states once
applied reaches their index, then `advance(rd)`.
"""

from __future__ import annotations

from .core import ProposalDropped, Raft, RaftConfig, Rng
from .log import RaftLog
from .types import (
    NONE,
    ConfChange,
    Entry,
    EntryType,
    HardState,
    Message,
    MsgType,
    Ready,
    Role,
    Snapshot,
    Status,
)

__all__ = ["ProposalDropped", "RawNode"]


class RawNode:
    def __init__(self, config: RaftConfig, log: RaftLog, hard_state: HardState, voters: tuple[int, ...],
                 rng: Rng) -> None:
        self.raft = Raft(config, log, hard_state, voters, rng)
        self._prev_soft = self.raft.soft_state()
        self._prev_hard = self.raft.hard_state()

    # ---- inputs --------------------------------------------------------------------------------

    def tick(self) -> None:
        self.raft.tick()

    def campaign(self) -> None:
        self.raft.step(Message(MsgType.HUP, self.raft.id, self.raft.id))

    def step(self, m: Message) -> None:
        """A message from a peer. Proposals that cannot be forwarded are dropped silently (the
        proposer's own timeout answers its client)."""
        if m.type in (MsgType.HUP, MsgType.BEAT, MsgType.CHECK_QUORUM):
            return  # local-only messages never come from the network
        if m.frm not in self.raft.prs and m.type not in (MsgType.APP, MsgType.HEARTBEAT, MsgType.SNAP,
                                                         MsgType.VOTE, MsgType.PRE_VOTE, MsgType.TIMEOUT_NOW,
                                                         MsgType.PROP, MsgType.READ_INDEX):
            return  # responses from nodes not in the configuration
        try:
            self.raft.step(m)
        except ProposalDropped:
            pass

    def propose(self, data: bytes) -> None:
        """Raises ProposalDropped when no leader can take it now."""
        self.raft.step(Message(MsgType.PROP, self.raft.id, self.raft.id, entries=(Entry(0, 0, data=data),)))

    def propose_many(self, datas: list[bytes]) -> None:
        """Several proposals as one message: one append (and one MsgApp per follower) for the batch."""
        entries = tuple(Entry(0, 0, data=d) for d in datas)
        self.raft.step(Message(MsgType.PROP, self.raft.id, self.raft.id, entries=entries))

    def propose_conf_change(self, cc: ConfChange) -> None:
        entry = Entry(0, 0, EntryType.CONF_CHANGE, cc.encode())
        self.raft.step(Message(MsgType.PROP, self.raft.id, self.raft.id, entries=(entry,)))

    def read_index(self, ctx: bytes) -> None:
        """Ask for a linearizable read point; raises ProposalDropped without a leader."""
        self.raft.read_index(ctx)

    def transfer_leadership(self, to: int) -> None:
        self.raft.step(Message(MsgType.TRANSFER_LEADER, self.raft.id, to))

    def report_unreachable(self, peer: int) -> None:
        self.raft.step(Message(MsgType.UNREACHABLE, self.raft.id, peer))

    def report_snapshot(self, peer: int, ok: bool) -> None:
        self.raft.step(Message(MsgType.SNAP_STATUS, self.raft.id, peer, reject=not ok))

    def apply_conf_change(self, cc: ConfChange) -> tuple[int, ...]:
        return self.raft.apply_conf_change(cc)

    def compact(self, snap: Snapshot, keep_entries: int) -> None:
        self.raft.compact(snap, keep_entries)

    def persist_failed(self, rd: Ready) -> None:
        """`rd` could not be made durable (the disk is full): nothing of it is applied or advanced; the
        unstable tail is dropped and Raft stops campaigning and leading (see Raft.persist_failed). Its
        next Ready asks again for what is still needed (the hard state, a pending snapshot). What stepping
        down sends (a leader's MsgTimeoutNow) is added to rd.messages, to leave now with the rest of
        what may be sent from a failed Ready, not with some later Ready."""
        queued = len(self.raft.msgs)
        self.raft.persist_failed()
        rd.messages.extend(self.raft.msgs[queued:])
        del self.raft.msgs[queued:]

    def persist_recovered(self) -> None:
        """A write reached the disk again: the node may campaign and lead."""
        self.raft.persist_recovered()

    # ---- outputs -------------------------------------------------------------------------------

    def status(self) -> Status:
        r = self.raft
        log = r.log
        match = tuple((pid, pr.match) for pid, pr in sorted(r.prs.items())) if r.role is Role.LEADER else ()
        return Status(r.id, r.term, r.vote, r.lead, r.role, log.committed, log.applied, log.last_index,
                      log.snap_index, r.voters, match, r.disk_full)

    # Cheap views of single fields, for per-request headers and per-turn checks.
    @property
    def lead(self) -> int:
        return self.raft.lead

    @property
    def term(self) -> int:
        return self.raft.term

    @property
    def is_leader(self) -> bool:
        return self.raft.role is Role.LEADER

    @property
    def commit_index(self) -> int:
        return self.raft.log.committed

    @property
    def applied_index(self) -> int:
        return self.raft.log.applied

    @property
    def voters(self) -> tuple[int, ...]:
        return self.raft.voters

    def hard_state(self) -> HardState:
        return self.raft.hard_state()

    def log_term(self, index: int) -> int | None:
        return self.raft.log.term(index)

    def entries(self, lo: int, hi: int) -> list[Entry]:
        """Log entries [lo, hi) still held in memory (for checkers and tools)."""
        return self.raft.log.slice(lo, hi)

    def has_ready(self) -> bool:
        r = self.raft
        log = r.log
        return bool(r.msgs or r.read_states or log.pending_snapshot is not None
                    or log.stable_index < log.last_index
                    or min(log.committed, log.stable_index) > log.applied
                    or r.soft_state() != self._prev_soft or r.hard_state() != self._prev_hard)

    def ready(self) -> Ready:
        r = self.raft
        rd = Ready()
        soft = r.soft_state()
        if soft != self._prev_soft:
            rd.soft_state = soft
        hard = r.hard_state()
        if hard != self._prev_hard:
            rd.hard_state = hard
        rd.entries = r.log.unstable_entries()
        prev = self._prev_hard
        rd.must_sync = bool(rd.entries) or r.log.pending_snapshot is not None or (
            hard.term != prev.term or hard.vote != prev.vote)
        rd.snapshot = r.log.pending_snapshot
        rd.committed_entries = r.log.next_committed()
        rd.messages, r.msgs = r.msgs, []
        rd.read_states, r.read_states = r.read_states, []
        return rd

    def advance(self, rd: Ready) -> None:
        r = self.raft
        if rd.soft_state is not None:
            self._prev_soft = rd.soft_state
        if rd.hard_state is not None:
            self._prev_hard = rd.hard_state
        if rd.snapshot is not None:
            if r.log.pending_snapshot is rd.snapshot:
                r.log.pending_snapshot = None
            if r.log.applied < rd.snapshot.meta.index:
                r.log.applied = rd.snapshot.meta.index
        if rd.entries:
            last = rd.entries[-1]
            r.on_persisted(last.index, last.term)
        if rd.committed_entries:
            r.log.applied_to(rd.committed_entries[-1].index)

    @property
    def leader_known(self) -> bool:
        return self.raft.lead != NONE
