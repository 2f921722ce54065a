"""Simulated clients: each runs one v2 request at a time against a random member and records a history.

The requests are what the HTTP layer hands the loop for: PUT value (set), PUT prevValue=x (compareAndSwap),
PUT prevExist=false (create), DELETE, and GET quorum=true (ReadIndex, then `store.get`). Their results are
the store's Event or V2Error (errorCode 100 key not found, 101 compare failed, 105 key exists; 300 is the
member's own request timeout). Writes put unique values ("v<op id>"), so a read names the write it saw.
CAS compares against a value the client saw or some client wrote. A request to a member that is down is
refused at once and left out of the history; one without an answer before `op_timeout_ms` (or answered
with the member's timeout) is indeterminate: it may still take effect later. History times are a
strictly increasing stamp, so invoke/complete order is exact.

TTL keys (under /ttl, when the seed enables them) are written with a 1-2 s TTL and expire only through the
leader's SYNC entries; they are not part of the linearizability check (expiry happens at a time no
client observes), but the checkers verify every replica expires the same keys at the same raft index.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ...server.driver import NO_SPACE
from ...server.requests import DELETE, PUT, Request
from ...store.errors import V2Error
from ...store.event import Event
from .linearizability import OK, Kind, Op
from .node import ClientOp, Result

if TYPE_CHECKING:
    from .runner import Cluster

DEFINITE_ERRORS = (100, 101, 105)  # the request was applied and failed: it changed nothing
KINDS = {"put": Kind.WRITE, "cas": Kind.CAS, "create": Kind.CREATE, "delete": Kind.DELETE, "read": Kind.READ}


@dataclass
class Record:
    op_id: int
    client: int
    kind: str
    path: str
    value: str | None
    expected: str | None
    invoke: int
    invoke_ms: int
    node: int
    complete: int | None = None
    complete_ms: int | None = None
    outcome: int | None = None  # OK (0) or the V2Error code
    timed_out: bool = False
    raft_index: int = 0  # where an acknowledged write was applied
    request: Request | None = None  # the Request it was applied as (with its origin and req_id)

    @property
    def ok(self) -> bool:
        return self.complete is not None and self.outcome == OK

    def to_op(self) -> Op:
        return Op(self.op_id, self.path, KINDS[self.kind], self.invoke, self.complete, self.value, self.expected,
                  self.outcome if self.complete is not None else None)


class Workload:
    def __init__(self, cluster: Cluster, clients: int, keys: tuple[str, ...], op_timeout_ms: int = 800,
                 think_ms_max: int = 30, ttl_keys: tuple[str, ...] = ()) -> None:
        self.cluster = cluster
        self.world = cluster.world
        self.rng = self.world.rng("workload")
        self.clients = clients
        self.keys = keys
        self.ttl_keys = ttl_keys
        self.op_timeout_ms = op_timeout_ms
        self.think_ms_max = think_ms_max
        self.history: dict[int, Record] = {}
        self.seen: dict[int, dict[str, str | None]] = {c: {} for c in range(clients)}
        self.written: dict[str, list[str]] = {k: [] for k in keys}
        self.running = False
        self.in_flight = 0
        self.next_op_id = 1
        self.completed = 0
        self.dropped = 0
        self.ttl_writes = 0

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
        op_id = self.next_op_id
        self.next_op_id += 1
        now_ns = node.now_ns()  # the member's clock, as its HTTP layer stamps the Request
        roll = self.rng.random()
        if self.ttl_keys and roll < 0.06:
            self._ttl_put(client, node.id, op_id, now_ns)
            return
        key = self.rng.choice(self.keys)
        value: str | None = f"v{op_id}"
        expected: str | None = None
        req: Request | None
        if roll < 0.35:
            kind, req = "put", Request(PUT, key, value=f"v{op_id}", time_ns=now_ns)
        elif roll < 0.55:
            choices = [self.seen[client].get(key)]
            if self.written[key]:
                choices.append(self.rng.choice(self.written[key]))
            expected = self.rng.choice(choices)
            if expected is None:
                kind, req = "create", Request(PUT, key, value=f"v{op_id}", prev_exist=False, time_ns=now_ns)
            else:
                kind, req = "cas", Request(PUT, key, value=f"v{op_id}", prev_value=expected, time_ns=now_ns)
        elif roll < 0.62:
            kind, req, value = "delete", Request(DELETE, key, time_ns=now_ns), None
        else:
            kind, req, value = "read", None, None
        if value is not None:
            self.written[key].append(value)
        op = ClientOp(op_id, kind, key, req, self._done)
        rec = Record(op_id, client, kind, key, value, expected, self.world.stamp(), self.world.now_ms, node.id)
        self._send(rec, op, node.id)

    def _ttl_put(self, client: int, node_id: int, op_id: int, now_ns: int) -> None:
        key = self.rng.choice(self.ttl_keys)
        ttl_s = self.rng.randint(1, 2)
        req = Request(PUT, key, value=f"v{op_id}", expire_at_ns=now_ns + ttl_s * 1_000_000_000, time_ns=now_ns)
        op = ClientOp(op_id, "ttl", key, req, self._done)
        rec = Record(op_id, client, "ttl", key, f"v{op_id}", None, self.world.stamp(), self.world.now_ms, node_id)
        self.ttl_writes += 1
        self._send(rec, op, node_id)

    def _send(self, rec: Record, op: ClientOp, node_id: int) -> None:
        self.history[rec.op_id] = rec
        self.in_flight += 1
        if not self.cluster.nodes[node_id].submit(op):
            # Refused: it never entered the log, so it is not part of the history at all.
            del self.history[rec.op_id]
            self.dropped += 1
            self._finish(rec)
            return
        self.world.after(self.op_timeout_ms, self._timeout, rec.op_id)

    def _finish(self, rec: Record) -> None:
        self.in_flight -= 1
        self.world.after(self.rng.randint(1, self.think_ms_max), self._next, rec.client)

    def _done(self, op: ClientOp, res: Result) -> None:
        rec = self.history.get(op.op_id)
        if rec is None or rec.complete is not None or rec.timed_out:
            return  # answered after the client gave up: stays indeterminate
        if isinstance(res, V2Error) and res.cause == NO_SPACE:
            # The member's disk is full and the driver says the write can never commit: like a refused
            # connection it leaves the history (were it applied after all, a read of its unique value
            # would make the history non-linearizable, and the check would say so).
            del self.history[rec.op_id]
            self.dropped += 1
            self._finish(rec)
            return
        if isinstance(res, V2Error) and res.code not in DEFINITE_ERRORS:
            if res.code == 300:  # the member's request timeout: the request may still commit
                rec.timed_out = True
                self._finish(rec)
                return
            # Anything else is a wrong answer: keep it, the linearizability check reports it.
        rec.complete = self.world.stamp()
        rec.complete_ms = self.world.now_ms
        rec.outcome = res.code if isinstance(res, V2Error) else OK
        if op.kind == "read":
            rec.value = res.node.value if isinstance(res, Event) else None
            self.seen[rec.client][rec.path] = rec.value
        elif op.kind != "ttl" and rec.outcome == OK:
            self.seen[rec.client][rec.path] = rec.value
        self.completed += 1
        self.world.trace(f"client {rec.client}: #{op.op_id} {op.kind} {op.path} -> {rec.outcome} value={rec.value!r}")
        self._finish(rec)

    def _timeout(self, op_id: int) -> None:
        rec = self.history.get(op_id)
        if rec is None or rec.complete is not None or rec.timed_out:
            return
        rec.timed_out = True
        self._finish(rec)

    def acked_writes(self) -> list[Record]:
        return [r for r in self.history.values() if r.kind != "read" and r.ok]

    def ops(self) -> list[Op]:
        return [r.to_op() for r in self.history.values() if r.kind != "ttl"]
