"""Safety checkers, run as the simulation goes (after every event) and at the end.

- Election safety: at most one leader per term (checked after every event over all live nodes).
- Log matching: two logs with an entry of the same (index, term) hold the same entry and agree on the
  term before it, hence (by induction on index) on the whole prefix. Checked incrementally on each
  Ready's new entries against a global table, which covers every pair of nodes at once.
- Leader completeness: an entry committed in term t is in the log of every leader of a term > t. The
  commit term recorded is the term of the first node that applied it (>= the term of the leader that
  committed it, so the check never fires falsely); checked whenever a node becomes leader.
- State-machine safety: every node applies the same entry at each index, and the real v2 store it
  applies them to is then in the same state on every node: a fingerprint of the store after each raft
  index (etcd index + every node's key, value, indexes and expiry) must be the same on every node that
  reaches that index, whether by applying the entry, by replaying it after a restart or by installing a
  snapshot taken there.
- Answers: the origin answers a client only from the entry that client's request was proposed as (it
  matches them by (origin, req_id) alone, so a req_id reused across restarts would answer the wrong one).
- TTL expiry: every replica expires the same keys at the same raft index (the SYNC entry's), and a SYNC
  never expires anything before its time.
The end-of-run checks (durability, linearizability) live in the runner.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from typing import TYPE_CHECKING

from ...raft.types import Entry
from ...server.node import Applied, ServerNode
from ...server.requests import SYNC
from ...store.node import Node
from ...store.store import Store

if TYPE_CHECKING:
    from .node import ClientOp, SimNode


class SafetyViolation(AssertionError):
    pass


class Checker:
    def __init__(self) -> None:
        self.leaders: dict[int, int] = {}  # term -> leader id
        self.entries: dict[tuple[int, int], tuple[int, bytes, int]] = {}  # (index, term) -> (type, data, prev term)
        self.applied: dict[int, Entry] = {}  # index -> the entry every node must apply there
        self.commit_term: dict[int, int] = {}
        self.store_state: dict[int, tuple[bytes, int]] = {}  # raft index -> (store fingerprint, first node)
        self.expired: dict[int, tuple[tuple[str, ...], int]] = {}  # raft index of a SYNC -> keys it expired
        self.elections = 0

    def fail(self, msg: str) -> None:
        raise SafetyViolation(msg)

    def observer(self, node: SimNode) -> NodeObserver:
        """The hook the production recovery and driver call after each change of node's state machine."""
        return NodeObserver(self, node)

    def on_ready(self, node: SimNode, entries: list[Entry]) -> None:
        assert node.driver is not None
        raft = node.driver.raft
        for e in entries:
            prev = raft.log_term(e.index - 1)
            assert prev is not None
            key = (e.index, e.term)
            mine = (int(e.type), e.data, prev)
            seen = self.entries.setdefault(key, mine)
            if seen != mine:
                self.fail(f"log matching: n{node.id} has entry {key} = {mine!r}, another node has {seen!r}")

    def on_apply(self, node: SimNode, store: Store, e: Entry, applied: Applied, etcd_index_before: int) -> None:
        seen = self.applied.setdefault(e.index, e)
        if seen != e:
            self.fail(f"state-machine safety: n{node.id} applies {e!r} at {e.index}, another node applied {seen!r}")
        # While a node replays its log in recovery it has no driver yet: its durable term stands in.
        self.commit_term.setdefault(e.index, node.term if node.driver is not None else node.replay_term)
        req = applied.request
        if req is not None and req.kind == SYNC:
            self._check_expiry(node, store, e.index, req.time_ns, etcd_index_before)
        self._check_store(node, store, e.index)

    def on_answer(self, node: SimNode, op: ClientOp, applied: Applied) -> None:
        """The origin answers a client only from the entry that client's request was proposed as."""
        req = applied.request
        mine = op.request
        if req is None or mine is None or req.origin != node.id or replace(req, origin=0, req_id=0) != mine:
            self.fail(f"answers: n{node.id} answers client op #{op.op_id} ({mine}) from the applied entry "
                      f"of another request ({req}) at {applied.index}")

    def on_restore(self, node: SimNode, store: Store, index: int) -> None:
        """A node's store was replaced by a snapshot taken at raft index `index`."""
        self._check_store(node, store, index)

    def _check_store(self, node: SimNode, store: Store, index: int) -> None:
        fp = store_fingerprint(store)
        seen = self.store_state.setdefault(index, (fp, node.id))
        if seen[0] != fp:
            self.fail(f"state-machine safety: n{node.id}'s store after raft index {index} (etcd index "
                      f"{store.index}) differs from n{seen[1]}'s: {store_listing(store)}")

    def _check_expiry(self, node: SimNode, store: Store, index: int, time_ns: int, etcd_index_before: int) -> None:
        # Each expired key consumed one etcd index, in order; the history holds their events.
        gone_rev: list[str] = []
        for ev in reversed(store.history.events):
            if ev.index <= etcd_index_before:
                break
            gone_rev.append(ev.node.key)
        gone = tuple(reversed(gone_rev))
        if len(gone) != store.index - etcd_index_before:
            self.fail(f"ttl: n{node.id}'s SYNC at {index} consumed {store.index - etcd_index_before} indexes "
                      f"but recorded {len(gone)} expirations")
        seen = self.expired.setdefault(index, (gone, node.id))
        if seen[0] != gone:
            self.fail(f"ttl: n{node.id} expired {gone} at raft index {index}, n{seen[1]} expired {seen[0]}")
        for key, exp in _ttl_nodes(store.root):
            if exp <= time_ns:
                self.fail(f"ttl: n{node.id} kept {key} (expires {exp}) past the SYNC at {index} (time {time_ns})")

    def after_event(self, nodes: list[SimNode]) -> None:
        for n in nodes:
            if not n.is_leader:
                continue
            term = n.term
            prev = self.leaders.get(term)
            if prev is None:
                self.leaders[term] = n.id
                self.elections += 1
                self._check_completeness(n)
            elif prev != n.id:
                self.fail(f"election safety: n{prev} and n{n.id} are both leaders of term {term}")

    def _check_completeness(self, n: SimNode) -> None:
        assert n.driver is not None
        raft = n.driver.raft
        st = raft.status()
        for index, e in self.applied.items():
            if self.commit_term[index] >= st.term or index <= st.snap_index:
                continue
            t = raft.log_term(index)
            if t != e.term:
                self.fail(f"leader completeness: n{n.id} leads term {st.term} but has term {t} at {index}, "
                          f"where entry of term {e.term} was committed by term {self.commit_term[index]}")


class NodeObserver:
    """server/recovery.py's StateObserver for one simulated node."""

    def __init__(self, checker: Checker, node: SimNode) -> None:
        self.checker = checker
        self.node = node

    def restored(self, server: ServerNode, index: int) -> None:
        self.checker.on_restore(self.node, server.store, index)

    def applied(self, server: ServerNode, entry: Entry, applied: Applied, etcd_index_before: int) -> None:
        self.checker.on_apply(self.node, server.store, entry, applied, etcd_index_before)


def _walk(root: Node) -> list[tuple[str, bool, str | None, int, int, int]]:
    out = []
    stack = [root]
    while stack:
        n = stack.pop()
        out.append((n.path, n.children is not None, n.value, n.created_index, n.modified_index, n.expire_at_ns))
        if n.children:
            stack.extend(n.children.values())
    out.sort()
    return out


def _ttl_nodes(root: Node) -> list[tuple[str, int]]:
    return [(path, exp) for path, _, _, _, _, exp in _walk(root) if exp]


def store_listing(store: Store) -> str:
    return f"index={store.index} nodes={_walk(store.root)!r}"


def store_fingerprint(store: Store) -> bytes:
    return hashlib.blake2b(store_listing(store).encode(), digest_size=16).digest()
