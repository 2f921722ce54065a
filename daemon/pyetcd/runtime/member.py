"""A member's durable state: recovery from snapshot + WAL, persisting each turn, snapshots.

This is the I/O half of ServerNode: it owns the WAL and snapshot files. `persist()` is the group commit:
all entries proposed during a loop turn are appended and made durable by one fdatasync, and only then
handed back to the node to be applied and answered.
"""

from __future__ import annotations

import logging
from pathlib import Path

from ..server.members import Member, MemberRegistry, id_hex, member_id
from ..server.node import Applied, Entry, ServerNode
from ..server.stats import self_stats
from ..storage import wal_codec
from ..storage.snap import SnapDir, Snapshot
from ..storage.wal import Wal
from ..store import codec
from ..store.store import Store

log = logging.getLogger("pyetcd.member")


class MemberState:
    """Implements http.status.ServerView for the client API."""

    def __init__(self, name: str, data_dir: Path, peer_urls: tuple[str, ...], client_urls: tuple[str, ...],
                 cluster_token: str, snapshot_count: int, start_ns: int) -> None:
        self.name = name
        self.snapshot_count = snapshot_count
        self.start_ns = start_ns
        self.self_id = member_id(peer_urls, cluster_token)
        self.leader_id = self.self_id
        self.members = MemberRegistry([Member(self.self_id, name, list(peer_urls), list(client_urls))])
        self.cluster_id_bytes = id_hex(self.members.cluster_id).encode()
        member_dir = data_dir / "member"
        self.snaps = SnapDir(member_dir / "snap")
        snap = self.snaps.load_newest()
        store = codec.decode_store(snap.data) if snap else Store()
        self.node = ServerNode(store, self.members, self.self_id)
        self.snap_index = snap.index if snap else 0
        last_term = snap.term if snap else 0
        self.node.applied_index = self.node.commit_index = self.node.last_index = self.snap_index
        self.wal, records = Wal.open(member_dir / "wal", self.snap_index + 1)
        replayed = 0
        for rec in records:
            if rec.rtype == wal_codec.ENTRY:
                term, index, data = rec.entry()
                last_term = max(last_term, term)
                if index > self.snap_index:
                    self.node.replay(Entry(term, index, data))
                    replayed += 1
            elif rec.rtype == wal_codec.HARD_STATE:
                last_term = max(last_term, rec.hard_state()[0])
        log.info("recovered: snapshot index %d, %d WAL entries replayed, etcd index %d, raft index %d",
                 self.snap_index, replayed, store.index, self.node.applied_index)
        # A restart is a new term, as a fresh election would make it; record it before serving.
        self.node.start_term(last_term + 1)
        self.wal.append(wal_codec.encode_hard_state(self.node.term, self.self_id, self.node.commit_index))
        self.persist()
        self.leader_start_ns = start_ns

    # ---- ServerView ----------------------------------------------------------------------------

    @property
    def store(self) -> Store:
        return self.node.store

    @property
    def commit_index(self) -> int:
        return self.node.commit_index

    @property
    def term(self) -> int:
        return self.node.term

    @property
    def healthy(self) -> bool:
        return True

    def self_stats(self, now_ns: int) -> dict[str, object]:
        return self_stats(self.name, self.self_id, "StateLeader", self.start_ns, self.leader_id,
                          self.leader_start_ns, now_ns)

    # ---- persistence ---------------------------------------------------------------------------

    def persist(self) -> list[Applied]:
        """Group commit: append this turn's entries, one fdatasync, then apply them."""
        entries = self.node.take_unstable()
        if not entries:
            return []
        for e in entries:
            self.wal.append(wal_codec.encode_entry(e.term, e.index, e.data))
        self.wal.sync()
        applied = self.node.on_persisted(entries[-1].index)
        if self.node.applied_index - self.snap_index >= self.snapshot_count:
            self.snapshot()
        return applied

    def snapshot(self) -> None:
        index = self.node.applied_index
        path = self.snaps.save(Snapshot(self.node.term, index, codec.encode_store(self.node.store)))
        self.wal.cut(index + 1)
        released = self.wal.release_before(index + 1)
        self.snap_index = index
        log.info("snapshot at raft index %d saved to %s; %d WAL segment(s) released", index, path, released)

    def close(self) -> None:
        self.wal.close()
