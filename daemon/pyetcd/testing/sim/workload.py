"""Simulated clients: each runs one request at a time against a random member and records a history.

Writes put unique values ("v<op id>"), so a read names the write it saw. CAS compares against a value the
client saw or wrote (or "absent"). Reads are linearizable ReadIndex reads. A request the node refuses at
once (down, or no leader to forward to) never entered the log and is left out of the history; one that
got no answer before `op_timeout_ms` is indeterminate (it may still commit later). History times are a
strictly increasing stamp, so invoke/complete order is exact.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from .linearizability import Kind, Op
from .node import ClientOp

if TYPE_CHECKING:
    from .runner import Cluster


@dataclass
class Record:
    op_id: int
    client: int
    kind: str
    key: str
    value: str | None
    expected: str | None
    invoke: int
    invoke_ms: int
    node: int
    complete: int | None = None
    complete_ms: int | None = None
    ok: bool | None = None
    timed_out: bool = False

    def to_op(self) -> Op:
        kind = {"put": Kind.WRITE, "cas": Kind.CAS, "read": Kind.READ}[self.kind]
        return Op(self.op_id, self.key, kind, self.invoke, self.complete, self.value, self.expected,
                  self.ok if self.complete is not None else None)


class Workload:
    def __init__(self, cluster: Cluster, clients: int, keys: tuple[str, ...], op_timeout_ms: int = 800,
                 think_ms_max: int = 30) -> None:
        self.cluster = cluster
        self.world = cluster.world
        self.rng = self.world.rng("workload")
        self.clients = clients
        self.keys = keys
        self.op_timeout_ms = op_timeout_ms
        self.think_ms_max = think_ms_max
        self.history: dict[int, Record] = {}
        self.seen: dict[int, dict[str, str | None]] = {c: {} for c in range(clients)}
        self.running = False
        self.in_flight = 0
        self.next_op_id = 1
        self.completed = 0
        self.dropped = 0

    def start(self) -> None:
        self.running = True
        for c in range(self.clients):
            self.world.after(self.rng.randint(0, self.think_ms_max), self._next, c)

    def stop(self) -> None:
        self.running = False

    def _next(self, client: int) -> None:
        if not self.running:
            return
        node_ids = self.cluster.client_targets()
        if not node_ids:
            self.world.after(50, self._next, client)
            return
        node = self.cluster.nodes[self.rng.choice(node_ids)]
        key = self.rng.choice(self.keys)
        op_id = self.next_op_id
        self.next_op_id += 1
        roll = self.rng.random()
        if roll < 0.4:
            op = ClientOp(op_id, "put", key, value=f"v{op_id}")
        elif roll < 0.65:
            written = [r.value for r in self.history.values() if r.key == key and r.kind != "read"]
            choices: list[str | None] = [None, self.seen[client].get(key)]
            if written:
                choices.append(self.rng.choice(written))
            op = ClientOp(op_id, "cas", key, value=f"v{op_id}", expected=self.rng.choice(choices))
        else:
            op = ClientOp(op_id, "read", key)
        op.on_done = self._done
        op.on_dropped = self._dropped
        rec = Record(op_id, client, op.kind, key, op.value, op.expected, self.world.stamp(), self.world.now_ms,
                     node.id)
        self.history[op_id] = rec
        self.in_flight += 1
        if not node.submit(op):
            self._dropped(op)
            return
        self.world.after(self.op_timeout_ms, self._timeout, op_id)

    def _finish(self, rec: Record) -> None:
        self.in_flight -= 1
        self.world.after(self.rng.randint(1, self.think_ms_max), self._next, rec.client)

    def _done(self, op: ClientOp, ok: bool, value: str | None) -> None:
        rec = self.history.get(op.op_id)
        if rec is None or rec.complete is not None or rec.timed_out:
            return  # answered after the client gave up: stays indeterminate
        rec.complete = self.world.stamp()
        rec.complete_ms = self.world.now_ms
        rec.ok = ok
        if op.kind == "read":
            rec.value = value
            self.seen[rec.client][rec.key] = value
        elif ok:
            self.seen[rec.client][rec.key] = op.value
        self.completed += 1
        self.world.trace(f"client {rec.client}: #{op.op_id} {op.kind} {op.key} -> ok={ok} value={rec.value!r}")
        self._finish(rec)

    def _dropped(self, op: ClientOp) -> None:
        rec = self.history.get(op.op_id)
        if rec is None or rec.complete is not None:
            return
        # Refused: it never entered the log, so it is not part of the history at all.
        del self.history[op.op_id]
        self.dropped += 1
        if not rec.timed_out:  # a paused node may refuse after the client already gave up
            self._finish(rec)

    def _timeout(self, op_id: int) -> None:
        rec = self.history.get(op_id)
        if rec is None or rec.complete is not None or rec.timed_out:
            return
        rec.timed_out = True
        self._finish(rec)

    def acked_writes(self) -> list[Record]:
        return [r for r in self.history.values()
                if r.complete is not None and r.kind != "read" and r.ok]

    def ops(self) -> list[Op]:
        return [r.to_op() for r in self.history.values()]
