"""RaftLog: the replicated log of one node, compacted behind a snapshot.

Layout: entries hold indexes (snap_index, last_index]; `entries[i].index == snap_index + 1 + i`.
Invariants (asserted where they can break):
    snap_index <= applied <= committed <= last_index
    snap_index <= stable_index <= last_index   (entries up to stable_index are on disk)
A conflicting append truncates the tail, pulling stable_index back; the runtime's WAL replay does the
same when it reads an entry whose index is not past the last one.
"""

from __future__ import annotations

from .types import Entry, Snapshot


class RaftLog:
    def __init__(self, snap_index: int = 0, snap_term: int = 0) -> None:
        self.snap_index = snap_index
        self.snap_term = snap_term
        self.entries: list[Entry] = []
        self.committed = snap_index
        self.applied = snap_index
        self.stable_index = snap_index
        self.snapshot: Snapshot | None = None  # newest snapshot, for followers too far behind
        self.pending_snapshot: Snapshot | None = None  # received from the leader, not yet persisted

    # ---- queries -------------------------------------------------------------------------------

    @property
    def first_index(self) -> int:
        return self.snap_index + 1

    @property
    def last_index(self) -> int:
        return self.snap_index + len(self.entries)

    @property
    def last_term(self) -> int:
        return self.entries[-1].term if self.entries else self.snap_term

    def term(self, index: int) -> int | None:
        """Term of the entry at index; None if compacted away or not there yet."""
        if index == self.snap_index:
            return self.snap_term
        if index < self.snap_index or index > self.last_index:
            return None
        return self.entries[index - self.snap_index - 1].term

    def match_term(self, index: int, term: int) -> bool:
        return self.term(index) == term

    def is_up_to_date(self, last_index: int, term: int) -> bool:
        """Raft §5.4.1: a candidate's log at least as up to date as ours."""
        return term > self.last_term or (term == self.last_term and last_index >= self.last_index)

    def slice(self, lo: int, hi: int, max_entries: int | None = None) -> list[Entry]:
        """Entries [lo, hi); lo must be > snap_index."""
        assert lo > self.snap_index, (lo, self.snap_index)
        hi = min(hi, self.last_index + 1)
        if max_entries is not None:
            hi = min(hi, lo + max_entries)
        return self.entries[lo - self.snap_index - 1:hi - self.snap_index - 1]

    def unstable_entries(self) -> list[Entry]:
        return self.entries[self.stable_index - self.snap_index:]

    def next_committed(self) -> list[Entry]:
        """Committed entries not yet applied. Only persisted ones: we apply nothing we could lose."""
        if self.pending_snapshot is not None:
            # Fix: after restore() applied < snap_index, and slice() would assert; the snapshot is
            # applied first (advance() moves applied to its index), entries after it come next time.
            return []
        hi = min(self.committed, self.stable_index)
        if hi <= self.applied:
            return []
        return self.slice(self.applied + 1, hi + 1)

    # ---- changes -------------------------------------------------------------------------------

    def append(self, entries: list[Entry] | tuple[Entry, ...]) -> int:
        if not entries:
            return self.last_index
        first = entries[0].index
        assert first > self.committed, f"cannot overwrite committed entry {first} (committed {self.committed})"
        if first <= self.last_index:
            del self.entries[first - self.snap_index - 1:]
            self.stable_index = min(self.stable_index, first - 1)
        assert first == self.last_index + 1, (first, self.last_index)
        self.entries.extend(entries)
        return self.last_index

    def maybe_append(self, index: int, log_term: int, committed: int, entries: tuple[Entry, ...]
                     ) -> int | None:
        """A leader's MsgApp: entries follow (index, log_term). Returns the last new index, or None when
        our log does not contain (index, log_term) and the leader must back off."""
        if not self.match_term(index, log_term):
            return None
        last_new = index + len(entries)
        conflict = self._find_conflict(entries)
        if conflict:
            assert conflict > self.committed, f"entry {conflict} conflicts with committed {self.committed}"
            self.append(entries[conflict - index - 1:])
        self.commit_to(min(committed, last_new))
        return last_new

    def _find_conflict(self, entries: tuple[Entry, ...]) -> int:
        """First index whose term differs from ours, or the first new index; 0 if all present."""
        for e in entries:
            if not self.match_term(e.index, e.term):
                return e.index
        return 0

    def commit_to(self, index: int) -> None:
        if index > self.committed:
            assert index <= self.last_index, f"commit {index} beyond last index {self.last_index}"
            self.committed = index

    def maybe_commit(self, index: int, term: int) -> bool:
        """Leader: commit `index` if a quorum has it and it is from the current term (Raft §5.4.2)."""
        if index > self.committed and self.term(index) == term:
            self.commit_to(index)
            return True
        return False

    def stable_to(self, index: int, term: int) -> None:
        """Entries up to index (with that term, i.e. not since truncated) reached the disk."""
        if self.term(index) == term and index > self.stable_index:
            self.stable_index = index

    def applied_to(self, index: int) -> None:
        assert self.applied <= index <= self.committed, (self.applied, index, self.committed)
        self.applied = index

    def restore(self, snap: Snapshot) -> None:
        """Replace the whole log by a snapshot from the leader."""
        self.snap_index = self.committed = self.stable_index = snap.meta.index
        self.snap_term = snap.meta.term
        self.entries = []
        self.snapshot = snap

    def compact(self, snap: Snapshot, keep_entries: int) -> None:
        """The application saved `snap`; drop entries before it except `keep_entries` of them, so a
        slightly lagging follower can still catch up from the log instead of a snapshot."""
        assert snap.meta.index <= self.applied, (snap.meta.index, self.applied)
        self.snapshot = snap
        new_first = max(self.snap_index, snap.meta.index - keep_entries)
        if new_first <= self.snap_index:
            return
        term = self.term(new_first)
        assert term is not None
        del self.entries[:new_first - self.snap_index]
        self.snap_index, self.snap_term = new_first, term
