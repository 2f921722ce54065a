"""ServerNode: what a member does with committed Raft entries, minus the I/O (sans-IO).

Theory of operation: a client write becomes a Request carrying (origin member, request id) and is
proposed to Raft; every member applies committed entries in log order to its store, and only the
origin member answers the client (`Applied.request.origin`). Conf-change entries update the member
registry and the Raft voter set when applied. A SYNC entry (the leader's clock) expires TTLs, so every
replica expires the same keys at the same index. The store never reads a clock.

Snapshots hold the store, the member registry, the voter set and the auth state (server/auth.py), so
a member restored from one is whole.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from ..raft.rawnode import RawNode
from ..raft.types import ConfChange, ConfChangeType, Entry, EntryType
from ..store import codec
from ..store.event import Event
from ..store.store import Store
from ..store.watcher_hub import Watcher
from .apply import Result, apply_request
from .auth import AuthOp, AuthState
from .members import Member, MemberRegistry
from .requests import AUTH, MEMBER_ATTRS, SYNC, Request

SYNC_RETRY_NS = 500_000_000
PROPOSED_HERE_MAX = 65_536


@dataclass(slots=True)
class Applied:
    index: int
    request: Request | None  # None for no-op and conf-change entries
    result: Result
    fired: list[tuple[Watcher, Event]]
    conf_change: ConfChange | None = None


@dataclass
class ServerNode:
    store: Store
    members: MemberRegistry
    self_id: int
    raft: RawNode | None = None  # set once recovery has built it
    _last_sync_ns: int = 0
    _sync_proposed_ns: int = 0  # when our last SYNC was proposed (0: none outstanding)
    applied_index: int = 0
    removed_self: bool = False
    auth: AuthState = field(default_factory=AuthState)

    # Requests this member proposed, by their encoded bytes: applying one of them skips decoding it
    # again (decode(encode(r)) == r; 3-4 us of a PUT). Bounded: proposals that never commit (a lost
    # leadership) are forgotten when it fills up, and then decoded like anyone else's.
    _proposed_here: dict[bytes, Request] = field(default_factory=dict)

    def proposed_here(self, data: bytes, request: Request) -> None:
        if len(self._proposed_here) >= PROPOSED_HERE_MAX:
            self._proposed_here.clear()
        self._proposed_here[data] = request

    # ---- applying ------------------------------------------------------------------------------

    def apply(self, entry: Entry) -> Applied:
        if entry.index == 1:
            # Nothing precedes the log's first entry, so the member registry is empty here on every
            # replica. A member joining with an empty log was seeded with the members it was told
            # (--initial-cluster) only to reach its peers; were they kept, the bootstrap ADD_NODE
            # entries would be skipped as duplicates on it alone, without consuming their etcd index,
            # and its store would diverge from everyone else's (found by the simulator).
            self.members.by_id.clear()
            self.members.removed.clear()
        self.applied_index = entry.index
        if entry.type is EntryType.CONF_CHANGE:
            return self._apply_conf_change(entry)
        if not entry.data:
            return Applied(entry.index, None, None, [])  # a new leader's empty entry
        req = self._proposed_here.pop(entry.data, None) or Request.decode(entry.data)
        if req.kind == SYNC:
            self._last_sync_ns = max(self._last_sync_ns, req.time_ns)
            self._sync_proposed_ns = 0
        if req.kind == MEMBER_ATTRS:
            member = self.members.by_id.get(req.origin)
            if member is not None:
                member.name = req.value
                member.client_urls = list(req.peer_urls)
            self.store.internal_event(req.time_ns)
            return Applied(entry.index, req, None, [])
        if req.kind == AUTH:
            outcome, writes = self.auth.apply(AuthOp.decode(req.value))
            for _ in range(writes):  # the store writes etcd makes for this change (see server/auth.py)
                self.store.internal_event(req.time_ns)
            return Applied(entry.index, req, outcome, [])
        result = apply_request(self.store, req)
        return Applied(entry.index, req, result, self.store.hub.drain())

    def _apply_conf_change(self, entry: Entry) -> Applied:
        cc = ConfChange.decode(entry.data)
        reg = self.members
        if cc.type is ConfChangeType.ADD_NODE:
            if cc.node_id not in reg.by_id and cc.node_id not in reg.removed:
                reg.by_id[cc.node_id] = Member.decode(cc.context)
                self.store.internal_event(0)
        elif cc.type is ConfChangeType.REMOVE_NODE:
            if reg.by_id.pop(cc.node_id, None) is not None:
                reg.removed.add(cc.node_id)
                self.store.internal_event(0)
            if cc.node_id == self.self_id:
                self.removed_self = True
        elif cc.type is ConfChangeType.UPDATE_NODE:
            member = reg.by_id.get(cc.node_id)
            if member is not None:
                member.peer_urls = json.loads(cc.context)
                self.store.internal_event(0)
        if self.raft is not None and cc.type is not ConfChangeType.UPDATE_NODE:
            self.raft.apply_conf_change(cc)
        return Applied(entry.index, None, None, [], cc)

    # ---- leader duties -------------------------------------------------------------------------

    def sync_due(self, now_ns: int) -> Request | None:
        """On the leader: a SYNC to propose now, if a TTL is due; its time never goes backwards."""
        if self._sync_proposed_ns and now_ns - self._sync_proposed_ns < SYNC_RETRY_NS:
            return None  # one outstanding at a time; retried if it was lost (e.g. leader change)
        due = self.store.next_expiry_ns()
        if not due or due > now_ns:
            return None
        self._sync_proposed_ns = now_ns
        return Request(SYNC, time_ns=max(now_ns, self._last_sync_ns))

    # ---- snapshots -----------------------------------------------------------------------------

    def snapshot_data(self, voters: tuple[int, ...]) -> bytes:
        store = codec.encode_store(self.store)
        meta = json.dumps({"members": self.members.encode(), "voters": list(voters),
                           "last_sync_ns": self._last_sync_ns, "auth": self.auth.encode()}).encode()
        return len(meta).to_bytes(8, "big") + meta + store

    def restore(self, data: bytes) -> tuple[int, ...]:
        """Replace the state by a snapshot's; returns its voter set."""
        n = int.from_bytes(data[:8], "big")
        meta = json.loads(data[8:8 + n])
        self.store = codec.decode_store(memoryview(data)[8 + n:])  # no copy of the store's bytes
        self.members.by_id = MemberRegistry.decode(meta["members"]).by_id
        self.members.removed = set(meta["members"][-1])
        self._last_sync_ns = meta["last_sync_ns"]
        self.auth = AuthState.decode(meta.get("auth"))  # older snapshots have none: auth off, nobody
        return tuple(meta["voters"])
