"""Raft vocabulary: entries, messages, hard state, snapshots, Ready. Frozen, slotted, no I/O.

Names follow etcd-io/raft on purpose so that its documentation and the Raft paper map onto this code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum
from typing import Protocol

NONE = 0  # "no node": no leader known, no vote cast


class MsgType(IntEnum):
    HUP = 0  # local: the election timer fired, start a (pre-)campaign
    BEAT = 1  # local: the heartbeat timer fired on the leader
    PROP = 2  # a proposal: local, or forwarded from a follower to the leader
    APP = 3
    APP_RESP = 4
    VOTE = 5
    VOTE_RESP = 6
    PRE_VOTE = 7
    PRE_VOTE_RESP = 8
    SNAP = 9
    HEARTBEAT = 10
    HEARTBEAT_RESP = 11
    UNREACHABLE = 12  # local: the transport could not reach `frm`
    SNAP_STATUS = 13  # local: sending a snapshot to `frm` finished (reject = failed)
    CHECK_QUORUM = 14  # local: leader checks it heard from a quorum in the last election timeout
    TRANSFER_LEADER = 15  # ask the leader to hand leadership to `frm`
    TIMEOUT_NOW = 16  # leader to transferee: campaign now, skipping the timeout and PreVote
    READ_INDEX = 17
    READ_INDEX_RESP = 18


LOCAL_MSGS = frozenset({MsgType.HUP, MsgType.BEAT, MsgType.UNREACHABLE, MsgType.SNAP_STATUS,
                        MsgType.CHECK_QUORUM})
RESPONSE_MSGS = frozenset({MsgType.APP_RESP, MsgType.VOTE_RESP, MsgType.PRE_VOTE_RESP,
                           MsgType.HEARTBEAT_RESP, MsgType.READ_INDEX_RESP, MsgType.UNREACHABLE,
                           MsgType.SNAP_STATUS})


class EntryType(IntEnum):
    NORMAL = 0
    CONF_CHANGE = 1


class ConfChangeType(IntEnum):
    ADD_NODE = 0
    REMOVE_NODE = 1
    UPDATE_NODE = 2


class Role(IntEnum):
    FOLLOWER = 0
    PRE_CANDIDATE = 1
    CANDIDATE = 2
    LEADER = 3


@dataclass(frozen=True, slots=True)
class Entry:
    term: int
    index: int
    type: EntryType = EntryType.NORMAL
    data: bytes = b""


@dataclass(frozen=True, slots=True)
class HardState:
    term: int = 0
    vote: int = NONE
    commit: int = 0


@dataclass(frozen=True, slots=True)
class ConfState:
    voters: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class SnapshotMeta:
    index: int
    term: int
    conf: ConfState


class SnapshotSource(Protocol):
    """A snapshot's bytes kept outside memory (the member's own snapshot file), read only when a follower
    needs them: a leader keeps its newest snapshot for MsgSnap, and most are never sent."""

    def read(self) -> bytes: ...


@dataclass(frozen=True, slots=True)
class Snapshot:
    meta: SnapshotMeta
    body: bytes | SnapshotSource  # the bytes, or where to read them

    @property
    def data(self) -> bytes:
        """The snapshot's bytes (read from its source each time when not held in memory)."""
        body = self.body
        return body if isinstance(body, bytes) else body.read()


@dataclass(frozen=True, slots=True)
class ConfChange:
    type: ConfChangeType
    node_id: int
    context: bytes = b""

    def encode(self) -> bytes:
        return bytes((self.type,)) + self.node_id.to_bytes(8, "big") + self.context

    @staticmethod
    def decode(data: bytes) -> ConfChange:
        return ConfChange(ConfChangeType(data[0]), int.from_bytes(data[1:9], "big"), data[9:])


@dataclass(frozen=True, slots=True)
class Message:
    type: MsgType
    to: int
    frm: int
    term: int = 0
    log_term: int = 0
    index: int = 0
    entries: tuple[Entry, ...] = ()
    commit: int = 0
    reject: bool = False
    reject_hint: int = 0
    context: bytes = b""
    snapshot: Snapshot | None = None


@dataclass(frozen=True, slots=True)
class SoftState:
    lead: int
    role: Role


@dataclass(frozen=True, slots=True)
class Status:
    """A node's Raft view for everyone outside raft/ (etcd-raft's Status): read it, never Raft's fields."""

    id: int
    term: int
    vote: int
    lead: int
    role: Role
    commit: int
    applied: int
    last_index: int
    snap_index: int
    voters: tuple[int, ...]
    match: tuple[tuple[int, int], ...]  # (peer, highest index known replicated there); a leader's view
    disk_full: bool  # persisting failed: the node neither campaigns nor leads until a write succeeds


@dataclass(frozen=True, slots=True)
class ReadState:
    """A linearizable read may be served once the local applied index reaches `index`."""

    index: int
    context: bytes


@dataclass(slots=True)
class Ready:
    """What the node must do now, in this order: persist hard_state/entries/snapshot (one fsync when
    must_sync), then send messages, then apply snapshot and committed_entries, then call advance()."""

    soft_state: SoftState | None = None
    hard_state: HardState | None = None
    entries: list[Entry] = field(default_factory=list)
    snapshot: Snapshot | None = None
    committed_entries: list[Entry] = field(default_factory=list)
    messages: list[Message] = field(default_factory=list)
    read_states: list[ReadState] = field(default_factory=list)
    # fsync needed: new entries, a snapshot, or a changed term/vote. A commit index that moved alone
    # need not be durable (it is recomputed after a restart), so it rides along with the next fsync.
    must_sync: bool = False

    def is_empty(self) -> bool:
        return not (self.soft_state or self.hard_state or self.entries or self.snapshot
                    or self.committed_entries or self.messages or self.read_states)
