"""What the leader knows about each follower's log (etcd-raft's tracker.Progress), and quorum math.

States: PROBE (one append in flight until the follower answers; back off on rejects), REPLICATE
(pipelined appends, bounded by `inflight_max` unacknowledged messages), SNAPSHOT (waiting for a snapshot
to land; no appends). Invariant: match < next.
"""

from __future__ import annotations

from collections import deque
from enum import IntEnum


class ProgressState(IntEnum):
    PROBE = 0
    REPLICATE = 1
    SNAPSHOT = 2


class Progress:
    __slots__ = ("match", "next", "state", "probe_sent", "pending_snapshot", "recent_active", "inflight",
                 "inflight_max")

    def __init__(self, next_index: int, inflight_max: int) -> None:
        self.match = 0
        self.next = next_index
        self.state = ProgressState.PROBE
        self.probe_sent = False
        self.pending_snapshot = 0
        self.recent_active = False
        self.inflight: deque[int] = deque()  # last index of each unacknowledged append (REPLICATE)
        self.inflight_max = inflight_max

    def become_probe(self) -> None:
        if self.state is ProgressState.SNAPSHOT:
            self.next = max(self.match + 1, self.pending_snapshot + 1)
        else:
            self.next = self.match + 1
        self.state = ProgressState.PROBE
        self.probe_sent = False
        self.pending_snapshot = 0
        self.inflight.clear()

    def become_replicate(self) -> None:
        self.state = ProgressState.REPLICATE
        self.next = self.match + 1
        self.probe_sent = False
        self.pending_snapshot = 0
        self.inflight.clear()

    def become_snapshot(self, snapshot_index: int) -> None:
        self.state = ProgressState.SNAPSHOT
        self.pending_snapshot = snapshot_index
        self.probe_sent = False
        self.inflight.clear()

    def maybe_update(self, index: int) -> bool:
        """An ack up to index. True if match advanced."""
        updated = index > self.match
        if updated:
            self.match = index
            self.probe_sent = False
        self.next = max(self.next, index + 1)
        while self.inflight and self.inflight[0] <= index:
            self.inflight.popleft()
        return updated

    def sent_entries(self, last_index: int) -> None:
        if self.state is ProgressState.REPLICATE:
            if last_index >= self.next:
                self.next = last_index + 1
                self.inflight.append(last_index)
        elif self.state is ProgressState.PROBE:
            self.probe_sent = True

    def maybe_decr_to(self, rejected: int, hint: int) -> bool:
        """A reject of the append at `rejected`; False if it is stale."""
        if self.state is ProgressState.REPLICATE:
            if rejected <= self.match:
                return False
            self.next = self.match + 1
            return True
        if self.next - 1 != rejected:
            return False
        self.next = max(min(rejected, hint + 1), 1)
        self.probe_sent = False
        return True

    def is_paused(self) -> bool:
        if self.state is ProgressState.PROBE:
            return self.probe_sent
        if self.state is ProgressState.REPLICATE:
            return len(self.inflight) >= self.inflight_max
        return True


def quorum(voters: int) -> int:
    return voters // 2 + 1


def committed_index(matches: list[int]) -> int:
    """The highest index a quorum of voters has (matches: one per voter)."""
    ordered = sorted(matches, reverse=True)
    return ordered[quorum(len(ordered)) - 1]
