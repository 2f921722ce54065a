"""`pyetcdctl backup`: an offline copy of a pyetcd data dir that starts as a new one-member cluster.

Theory of operation. etcdctl backup copies the newest snapshot and the WAL, drops membership entries and
gives the copy a new member ID and cluster ID; the copy must then be started with --force-new-cluster to
forget the old members. pyetcd does the same work at backup time instead, so the copy needs no special
start:
1. Read the source without writing to it (a torn WAL tail is skipped, not truncated, and leftover
   snapshot temp files are left alone), then recover it with the member's own recovery
   (server/recovery.py): the newest snapshot, the WAL after it, the committed prefix applied, giving the
   v2 store (keys, TTLs, the etcd index and the event history) as of the last committed entry.
2. Replace the membership by the local member alone (its name and URLs kept) under a new random member
   ID; the cluster ID is derived from it, as for any new cluster.
3. Write a new data dir: member/snap/<term>-<index>.snap holding that state, member/wal with one segment
   holding only a hard state (term, no vote, commit = the snapshot index), and member/identity with the
   new IDs. `pyetcd --data-dir <backup>` recovers it as a one-voter cluster and elects itself at once.
The backup dir's snap and WAL dirs must be empty (etcdctl's rule).
"""

from __future__ import annotations

import random
import secrets
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..raft.core import RaftConfig
from ..raft.types import Entry, EntryType
from ..server.durable import ReadOnlyStorage
from ..server.members import Member, MemberRegistry, cluster_id, id_hex
from ..server.node import Applied, ServerNode
from ..server.recovery import ClusterSpec, recover
from ..server.requests import MEMBER_ATTRS
from ..storage import snap, wal_codec
from ..storage.files import loaded_from
from ..storage.identity import identity_path, read_identity, write_identity
from ..storage.snap import SnapDir
from ..storage.snap import Snapshot as SnapFile
from ..storage.wal import Wal, WalCorrupt

_REPLAY_ID = 1  # the member id the offline replay runs as (it never talks to anyone)
_SNAP_HEAD = struct.Struct("<IQ")  # crc32, length: storage/snap.py's file header after the magic


class BackupError(Exception):
    """The backup cannot be made; str() says why in etcdctl's words where it has them."""


@dataclass(frozen=True)
class BackupResult:
    member_id: int
    cluster_id: int
    raft_index: int
    raft_term: int
    etcd_index: int


def _go_list(names: list[str]) -> str:
    return "[" + " ".join(f'"{n}"' for n in names) + "]"


def _read_newest_snapshot(snap_dir: Path) -> SnapFile | None:
    if not snap_dir.is_dir():
        raise BackupError(f"open {snap_dir}: no such file or directory")
    found = []
    for p in snap_dir.glob("*.snap"):
        try:
            term_hex, index_hex = p.stem.split("-")
            found.append((int(index_hex, 16), int(term_hex, 16), p))
        except ValueError:
            continue
    if not found:
        return None
    index, term, path = max(found)
    raw = path.read_bytes()
    head = len(snap.MAGIC) + _SNAP_HEAD.size
    if len(raw) < head or not raw.startswith(snap.MAGIC):
        raise BackupError(f"{path}: not a pyetcd snapshot")
    crc, length = _SNAP_HEAD.unpack_from(raw, len(snap.MAGIC))
    data = raw[head:]
    if len(data) != length or zlib.crc32(data) != crc:
        raise BackupError(f"{path}: snapshot checksum mismatch")
    return SnapFile(term, index, data)


def _read_wal(wal_dir: Path) -> list[wal_codec.Record]:
    if not wal_dir.is_dir():
        raise BackupError(f"open {wal_dir}: no such file or directory")
    segments = sorted(p for p in wal_dir.glob("*.wal") if len(p.stem.split("-")) == 2)
    if not segments:
        raise BackupError("wal: file not found")
    records: list[wal_codec.Record] = []
    for i, seg in enumerate(segments):
        try:
            decoded = wal_codec.decode(seg.read_bytes())
        except wal_codec.CorruptRecord as e:
            raise BackupError(f"{seg}: {e} (not a pyetcd WAL, or damaged)") from e
        if decoded.torn and i != len(segments) - 1:
            raise BackupError(f"{seg}: truncated at offset {decoded.valid_bytes} but it is not the last segment")
        records.extend(decoded.records)
    return records


def _require_empty(path: Path, what: str) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise BackupError(f"failed creating backup {what} dir {path}: {e.strerror or e}") from e
    names = sorted(p.name for p in path.iterdir())
    if names:
        raise BackupError(f'failed creating backup {what} dir {path}: expected "{path}" to be empty, got '
                          f"{_go_list(names)}")


def _new_member_id(old: set[int]) -> int:
    while True:
        mid = secrets.randbits(64)
        if mid and mid not in old:
            return mid


def backup(data_dir: Path, backup_dir: Path, *, wal_dir: Path | None = None, backup_wal_dir: Path | None = None,
           log: Callable[[str], None] = lambda _: None) -> BackupResult:
    src_snap = data_dir / "member" / "snap"
    src_wal = wal_dir or data_dir / "member" / "wal"
    dest_snap = backup_dir / "member" / "snap"
    dest_wal = backup_wal_dir or backup_dir / "member" / "wal"
    _require_empty(dest_snap, "snapshot")
    _require_empty(dest_wal, "wal")

    snap_file = _read_newest_snapshot(src_snap)
    try:
        loaded = loaded_from(snap_file, _read_wal(src_wal), src_wal)
    except WalCorrupt as e:
        raise BackupError(str(e).removesuffix("; refusing to start")) from e
    # The member's own recovery, over what was read (nothing is written to the source).
    spec = ClusterSpec("backup", _REPLAY_ID, [], False, [], 10, 1)
    rec = recover(ReadOnlyStorage(loaded), spec, RaftConfig(_REPLAY_ID), random.Random(0), _Skipped(log))
    node, commit = rec.node, rec.hard_state.commit
    if commit == 0:
        raise BackupError(f"{data_dir}: nothing committed yet, nothing to back up")

    local = _local_member(data_dir, node.members)
    new_id = _new_member_id(set(node.members.by_id) | node.members.removed)
    node.members.by_id = {new_id: Member(new_id, local.name, list(local.peer_urls), list(local.client_urls))}
    node.members.removed = set()
    new_cluster = cluster_id([new_id])
    term = rec.raft.log_term(commit) or 1

    SnapDir(dest_snap).save(SnapFile(term, commit, node.snapshot_data((new_id,))))
    wal, _ = Wal.open(dest_wal, commit + 1)
    wal.append(wal_codec.encode_hard_state(term, 0, commit))
    wal.close()
    write_identity(backup_dir, new_cluster, new_id)
    return BackupResult(new_id, new_cluster, commit, term, node.store.index)


class _Skipped:
    """Says, as etcdctl backup does, which replayed entries carry membership (pyetcd applies them all the
    same: it keeps no membership in the store to strip later, and the members are replaced below)."""

    def __init__(self, log: Callable[[str], None]) -> None:
        self.log = log

    def restored(self, node: ServerNode, index: int) -> None:
        pass

    def applied(self, node: ServerNode, entry: Entry, applied: Applied, etcd_index_before: int) -> None:
        if entry.type is EntryType.CONF_CHANGE:
            self.log("ignoring EntryConfChange raft entry")
        elif applied.request is not None and applied.request.kind == MEMBER_ATTRS:
            self.log(f"ignoring member attribute update on /0/members/{id_hex(applied.request.origin)}/attributes")


def _local_member(data_dir: Path, members: MemberRegistry) -> Member:
    """The member whose data dir this is (member/identity names it); a lone member otherwise."""
    try:
        known = read_identity(data_dir)
    except ValueError as e:
        raise BackupError(f"{identity_path(data_dir)}: unreadable") from e
    if known is not None and known[1] in members.by_id:
        return members.by_id[known[1]]
    if len(members.by_id) == 1:
        return next(iter(members.by_id.values()))
    raise BackupError(f"{data_dir}: cannot tell which of the {len(members.by_id)} members this data dir belongs to")
