"""SimNet: a lossy, duplicating, reordering network with symmetric and one-way partitions.

Each message gets an independent delay (so messages reorder), may be dropped, and may be delivered twice
(except forwarded proposals, see `send`).
`blocked` holds directed pairs (frm, to) that cannot talk; a symmetric partition blocks both directions.
The sender of a snapshot learns whether it arrived (etcd's transport reports snapshot status the same
way), otherwise its Progress would wait in SNAPSHOT state forever.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ...raft.types import Message, MsgType
from .world import World


@dataclass
class NetProfile:
    delay_ms_min: int = 1
    delay_ms_max: int = 8
    slow_prob: float = 0.02  # a message takes up to slow_delay_ms instead (a burst of reordering)
    slow_delay_ms: int = 60
    drop_prob: float = 0.02
    dup_prob: float = 0.02


class SimNet:
    def __init__(self, world: World, profile: NetProfile) -> None:
        self.world = world
        self.rng = world.rng("net")
        self.profile = profile
        self.blocked: set[tuple[int, int]] = set()
        self.faults_enabled = True
        self.deliver: Callable[[Message], None] = lambda m: None
        self.snapshot_status: Callable[[int, int, bool], None] = lambda frm, to, ok: None
        self.sent = 0
        self.dropped = 0

    # ---- partitions ----------------------------------------------------------------------------

    def partition(self, side_a: list[int], side_b: list[int]) -> None:
        for a in side_a:
            for b in side_b:
                self.blocked.add((a, b))
                self.blocked.add((b, a))

    def block_one_way(self, frm: int, to: int) -> None:
        self.blocked.add((frm, to))

    def heal(self) -> None:
        self.blocked.clear()

    # ---- sending -------------------------------------------------------------------------------

    def send(self, m: Message) -> None:
        self.sent += 1
        p = self.profile
        if (m.frm, m.to) in self.blocked or (self.faults_enabled and self.rng.random() < p.drop_prob):
            self.dropped += 1
            if m.type is MsgType.SNAP:
                self.world.after(self._delay(), self.snapshot_status, m.frm, m.to, False)
            return
        dup = self.faults_enabled and self.rng.random() < p.dup_prob
        # A forwarded proposal (PROP) is never duplicated: the runtime's transport sends each message at
        # most once (runtime/peers.py drops a failed batch, it never resends), and a Raft proposal is not
        # idempotent: delivered twice, the leader appends it twice and every replica applies the client's
        # write twice (found by the simulator: a PUT re-applied after later writes resurrects its value).
        # Every other message must survive duplication and still may be duplicated.
        copies = 2 if dup and m.type is not MsgType.PROP else 1
        for _ in range(copies):
            self.world.after(self._delay(), self._arrive, m)

    def _delay(self) -> int:
        p = self.profile
        if self.faults_enabled and self.rng.random() < p.slow_prob:
            return self.rng.randint(p.delay_ms_min, p.slow_delay_ms)
        return self.rng.randint(p.delay_ms_min, p.delay_ms_max)

    def _arrive(self, m: Message) -> None:
        # A partition that started while the message was in flight also cuts it.
        if (m.frm, m.to) in self.blocked:
            self.dropped += 1
            if m.type is MsgType.SNAP:
                self.snapshot_status(m.frm, m.to, False)
            return
        self.deliver(m)
        if m.type is MsgType.SNAP:
            self.snapshot_status(m.frm, m.to, True)
