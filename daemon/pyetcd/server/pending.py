"""Client requests waiting for Raft: proposals until their entry is applied, quorum reads until their
ReadIndex is applied, membership changes until theirs is. Pure bookkeeping; time (monotonic seconds) is
passed in.

A proposal that Raft drops (no leader yet, a conf change already in flight) stays here and is offered
again on every turn until its deadline; then the client gets etcd's 500 errorCode 300
"etcdserver: request timed out". Nothing waits forever.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from ..raft.types import ConfChange


class Kind(Enum):
    WRITE = "write"
    READ = "read"  # linearizable (quorum) read: ReadIndex, then served locally
    CONF = "conf"  # membership change


@dataclass(slots=True)
class Pending:
    req_id: int
    kind: Kind
    waiter: Any  # who gets the answer (the runtime's connection, the simulator's client op)
    tag: Any  # what the waiter asked for, handed back with the answer (e.g. the HTTP outcome to render)
    deadline: float
    data: bytes = b""  # the encoded entry (writes)
    conf_change: ConfChange | None = None
    submitted: bool = False  # accepted by Raft (for reads: read_index issued)
    read_index: int = 0  # quorum read: serve once applied >= this (0 = not known yet)
    read_ctx: int = 0  # quorum reads submitted in one turn share one ReadIndex round (its context)


@dataclass
class PendingTable:
    by_id: dict[int, Pending] = field(default_factory=dict)
    next_id: int = 1

    def new_id(self) -> int:
        rid = self.next_id
        self.next_id += 1
        return rid

    def add(self, p: Pending) -> None:
        self.by_id[p.req_id] = p

    def pop(self, req_id: int) -> Pending | None:
        return self.by_id.pop(req_id, None)

    def unsubmitted(self) -> list[Pending]:
        return [p for p in self.by_id.values() if not p.submitted]

    def expired(self, now: float) -> list[Pending]:
        gone = [p for p in self.by_id.values() if p.deadline <= now]
        for p in gone:
            del self.by_id[p.req_id]
        return gone

    def reads_with_context(self, ctx: int) -> list[Pending]:
        return [p for p in self.by_id.values() if p.read_ctx == ctx]

    def reads_ready(self, applied: int) -> list[Pending]:
        ready = [p for p in self.by_id.values() if p.read_index and p.read_index <= applied]
        for p in ready:
            del self.by_id[p.req_id]
        return ready

    def conf_change_waiter(self, cc: ConfChange) -> Pending | None:
        for p in self.by_id.values():
            if p.conf_change is not None and p.conf_change.type == cc.type and p.conf_change.node_id == cc.node_id:
                del self.by_id[p.req_id]
                return p
        return None

    def take_changes(self, dropped: set[int]) -> list[Pending]:
        """Remove and return the writes and membership changes that can never complete (the disk is full):
        those not handed to Raft, and those whose entries were `dropped` (request ids) unsent."""
        gone = [p for p in self.by_id.values()
                if p.kind is not Kind.READ and (not p.submitted or p.req_id in dropped)]
        for p in gone:
            del self.by_id[p.req_id]
        return gone

    def drop_waiter(self, waiter: Any) -> None:
        for rid in [rid for rid, p in self.by_id.items() if p.waiter is waiter]:
            del self.by_id[rid]
