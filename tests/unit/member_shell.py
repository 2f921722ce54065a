"""A tiny in-test shell around MemberDriver: what runtime/loop.py and testing/sim/node.py do, by hand.

One `Shell` is one member: recover over a SimDisk, then turns driven with explicit clocks (`now` in
monotonic seconds; the wall clock is EPOCH_NS + now). A turn is `begin` (next_turn: answers delivered,
send_now sent) and `complete` (write the Persist to the disk, sync it, then persisted() or, on DiskFull,
persist_failed(); then the Output's messages, answers and snapshot job are handled), so a test can look
between the two. `Net` moves messages between shells' outboxes and drivers; nothing is delivered unless a
test asks. No sockets, no threads, no sleeping, no randomness beyond seeded election jitter.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from pyetcd.raft.core import RaftConfig
from pyetcd.raft.types import Message, MsgType, Snapshot, Status
from pyetcd.server.driver import Answer, DriverConfig, MemberDriver, Output, SnapshotJob, Turn
from pyetcd.server.members import Member
from pyetcd.server.recovery import ClusterSpec, Recovered, recover
from pyetcd.server.requests import DELETE, PUT, Request
from pyetcd.storage.errors import DiskFull
from pyetcd.store.errors import V2Error
from pyetcd.store.event import Event
from pyetcd.testing.sim.disk import SimDisk

EPOCH_NS = 1_700_000_000 * 1_000_000_000
REQUEST_ID_START = 1000
TIMEOUT_S = 5.0


def wall_ns(now_s: float) -> int:
    return EPOCH_NS + round(now_s * 1_000_000_000)


def member(i: int) -> Member:
    return Member(i, f"n{i}", [f"http://n{i}:2380"], [f"http://n{i}:2379"])


def put(path: str, value: str) -> Request:
    return Request(PUT, path, value=value)


def delete(path: str) -> Request:
    return Request(DELETE, path)


@dataclass(frozen=True)
class Waiter:
    """Who a request's answer goes to (the loop's connection, the simulator's client op)."""

    name: str


class Shell:
    def __init__(self, node_id: int, voters: tuple[int, ...] | None = None, *, disk: SimDisk | None = None,
                 state_new: bool = True, snapshot_count: int = 10_000, keep_entries: int = 5000,
                 timeout_s: float = TIMEOUT_S, seed: int = 0) -> None:
        self.id = node_id
        self.voters = voters if voters is not None else (node_id,)
        self.disk = disk if disk is not None else SimDisk()
        self.state_new = state_new
        self.snapshot_count = snapshot_count
        self.keep_entries = keep_entries
        self.timeout_s = timeout_s
        self.seed = seed
        self.outbox: list[Message] = []  # sent, not yet delivered by Net
        self.sent: list[Message] = []  # everything this member ever sent, in order
        self.answers: list[Answer] = []  # everything answered, in order
        self.jobs: list[SnapshotJob] = []
        self.job_data: dict[int, bytes] = {}  # id(job) -> what its build() returned when it was handed out
        self.turns: list[Turn] = []  # every turn taken, in order
        self.save_snapshots = True  # False: a test saves (or fails) the jobs itself
        self.starts = 0
        self.start()

    def start(self) -> Recovered:
        """Recover over the disk (a restart when it already holds a log) and run a new driver."""
        spec = ClusterSpec(f"n{self.id}", self.id, [member(v) for v in self.voters], self.state_new,
                           [f"http://n{self.id}:2379"], 10, 1)
        cfg = RaftConfig(self.id, election_ticks=10, heartbeat_ticks=1)
        self.starts += 1
        rec = recover(self.disk, spec, cfg, random.Random(self.seed * 1000 + self.id * 10 + self.starts))
        self.recovered = rec
        dcfg = DriverConfig(spec.name, spec.client_urls, self.snapshot_count, self.timeout_s,
                            REQUEST_ID_START + 100_000 * (self.starts - 1), self.keep_entries)
        self.driver = MemberDriver(rec.node, rec.raft, rec.snap_index, dcfg)
        self.outbox = []
        return rec

    # ---- views ---------------------------------------------------------------------------------

    def status(self) -> Status:
        return self.driver.status()

    def value(self, path: str) -> str | None:
        try:
            return self.driver.store.get(path, False, False, EPOCH_NS).node.value
        except V2Error:
            return None

    def answer_for(self, waiter: Waiter) -> list[Answer]:
        return [a for a in self.answers if a.waiter == waiter]

    # ---- turns ---------------------------------------------------------------------------------

    def begin(self, now: float) -> Turn | None:
        turn = self.driver.next_turn(now, wall_ns(now))
        if turn is None:
            return None
        self.turns.append(turn)
        self.answers.extend(turn.answers)
        self._send(turn.send_now)
        return turn

    def complete(self, turn: Turn) -> Output:
        d = self.driver
        p = turn.persist
        if p is None or turn.refused:
            out = d.persisted(turn)
        else:
            self.disk.write(p.snapshot, p.entries, p.hard_state)
            try:
                if p.must_sync:
                    self.disk.sync()
            except DiskFull:
                out = d.persist_failed(turn)
            else:
                out = d.persisted(turn)
        self.handle(out)
        return out

    def turn(self, now: float) -> tuple[Turn, Output] | None:
        turn = self.begin(now)
        if turn is None:
            return None
        return turn, self.complete(turn)

    def run(self, now: float, limit: int = 50) -> int:
        """Turns until the driver has nothing to do at `now`; returns how many ran."""
        for n in range(limit):
            if self.turn(now) is None:
                return n
        raise AssertionError(f"n{self.id}: still turning after {limit} turns")

    def handle(self, out: Output) -> None:
        self._send(out.messages)
        self.answers.extend(out.answers)
        job = out.snapshot
        if job is not None:
            self.jobs.append(job)
            self.job_data[id(job)] = job.build()  # at once, as a forked child would
            if self.save_snapshots:
                self.save(job)

    def save(self, job: SnapshotJob) -> bool:
        data = self.job_data.pop(id(job))
        try:
            self.disk.save_snapshot(Snapshot(job.meta, data), job.hard_state, job.last_index)
        except DiskFull:
            self.driver.snapshot_failed(job)
            return False
        self.driver.snapshot_saved(job, data)
        return True

    def write(self, waiter: Waiter, request: Request, now: float) -> None:
        self.driver.propose(waiter, waiter, request, now)

    def _send(self, messages: list[Message]) -> None:
        self.outbox.extend(messages)
        self.sent.extend(messages)


class Net:
    """Delivers what shells sent, except over blocked links (dropped, like a partition)."""

    def __init__(self, *shells: Shell) -> None:
        self.shells = {s.id: s for s in shells}
        self.blocked: set[tuple[int, int]] = set()

    def __getitem__(self, i: int) -> Shell:
        return self.shells[i]

    def isolate(self, i: int) -> None:
        for j in self.shells:
            if j != i:
                self.blocked |= {(i, j), (j, i)}

    def heal(self) -> None:
        self.blocked.clear()

    def deliver(self, only: set[MsgType] | None = None) -> int:
        """Deliver every queued message (of these types, if given); returns how many left outboxes."""
        moved = 0
        for s in self.shells.values():
            keep: list[Message] = []
            for m in s.outbox:
                if only is not None and m.type not in only:
                    keep.append(m)
                    continue
                moved += 1
                if (m.frm, m.to) not in self.blocked and m.to in self.shells:
                    self.shells[m.to].driver.step([m])
            s.outbox = keep
        return moved

    def settle(self, now: float, limit: int = 200) -> None:
        for _ in range(limit):
            turned = sum(s.run(now) for s in self.shells.values())
            if not self.deliver() and not turned:
                return
        raise AssertionError("the members did not settle")

    def tick(self, now: float, n: int = 1, only: tuple[int, ...] | None = None) -> None:
        for _ in range(n):
            for i, s in self.shells.items():
                if only is None or i in only:
                    s.driver.tick()
            self.settle(now)

    def elect(self, i: int, now: float) -> Shell:
        self.shells[i].driver.raft.campaign()
        self.settle(now)
        assert [j for j, s in self.shells.items() if s.driver.raft.is_leader] == [i]
        return self.shells[i]


def cluster(n: int = 3, **kw: object) -> Net:
    ids = tuple(range(1, n + 1))
    return Net(*(Shell(i, ids, **kw) for i in ids))  # type: ignore[arg-type]


def event(answer: Answer) -> Event:
    assert isinstance(answer.result, Event), answer.result
    return answer.result


def error(answer: Answer) -> V2Error:
    assert isinstance(answer.result, V2Error), answer.result
    return answer.result
