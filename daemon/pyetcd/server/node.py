"""ServerNode: what one member does, minus the I/O (sans-IO, like h11).

Theory of operation (single member): a client mutation becomes a Request, which `propose` turns into the
next log entry and queues as unstable. The runtime persists unstable entries (WAL append + one fsync per
loop turn) and then calls `on_persisted`; only then are the entries applied to the store, in log order,
and only then are clients answered. With one member, persisted == committed. The Raft issue replaces the
log bookkeeping here with a RawNode; the runtime contract (take_unstable -> persist -> on_persisted) stays.

Invariant: applied_index <= commit_index <= last_index, and entries (commit_index, last_index] are exactly
the unstable ones.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..store.event import Event
from ..store.store import Store
from ..store.watcher_hub import Watcher
from .apply import Result, apply_request
from .members import MemberRegistry
from .requests import MEMBER_UPDATE, NOOP, SYNC, Request

SYNC_INTERVAL_NS = 500_000_000  # as etcd: the leader proposes a SYNC about every 500 ms when one is due


@dataclass(frozen=True, slots=True)
class Entry:
    term: int
    index: int
    data: bytes


@dataclass(slots=True)
class Applied:
    index: int
    request: Request
    result: Result
    fired: list[tuple[Watcher, Event]]


@dataclass
class ServerNode:
    store: Store
    members: MemberRegistry
    self_id: int
    term: int = 1
    last_index: int = 0
    commit_index: int = 0
    applied_index: int = 0
    unstable: list[Entry] = field(default_factory=list)
    _pending: dict[int, Request] = field(default_factory=dict)
    _last_sync_ns: int = 0
    _sync_in_flight: bool = False

    def start_term(self, term: int) -> None:
        """A (re)started member begins a new term with a no-op entry, as a newly elected leader does."""
        self.term = term
        self.propose(Request(NOOP))

    def propose(self, req: Request) -> int:
        self.last_index += 1
        self.unstable.append(Entry(self.term, self.last_index, req.encode()))
        self._pending[self.last_index] = req
        if req.kind == SYNC:
            self._sync_in_flight = True
        return self.last_index

    def take_unstable(self) -> list[Entry]:
        entries, self.unstable = self.unstable, []
        return entries

    def on_persisted(self, index: int) -> list[Applied]:
        """Entries up to `index` are durable: commit and apply them."""
        self.commit_index = max(self.commit_index, index)
        out = []
        while self.applied_index < self.commit_index:
            idx = self.applied_index + 1
            req = self._pending.pop(idx)
            out.append(self._apply(idx, req))
        return out

    def replay(self, entry: Entry) -> None:
        """Re-apply an entry read back from the WAL at start-up (no watchers exist yet)."""
        if entry.index <= self.applied_index:
            return
        assert entry.index == self.applied_index + 1, (entry.index, self.applied_index)
        self.term = max(self.term, entry.term)
        self.last_index = self.commit_index = entry.index
        self._apply(entry.index, Request.decode(entry.data))

    def _apply(self, index: int, req: Request) -> Applied:
        if req.kind == SYNC:
            self._sync_in_flight = False
            self._last_sync_ns = max(self._last_sync_ns, req.time_ns)
        if req.kind == MEMBER_UPDATE:
            member = self.members.by_id.get(req.prev_index)
            if member is not None:
                member.peer_urls = list(req.peer_urls)
            self.store.internal_event(req.time_ns)
        result = apply_request(self.store, req)
        self.applied_index = index
        return Applied(index, req, result, self.store.hub.drain())

    def sync_due(self, now_ns: int) -> Request | None:
        """A SYNC to propose now, if a TTL is due; its time never goes backwards."""
        if self._sync_in_flight:
            return None
        due = self.store.next_expiry_ns()
        if not due or due > now_ns:
            return None
        return Request(SYNC, time_ns=max(now_ns, self._last_sync_ns))
