"""A tiny deterministic key-value state machine the simulated cluster replicates.

Commands (JSON in entry data): {"id": op_id, "op": "put", "key", "value"} and
{"id", "op": "cas", "key", "expected", "value"}. `expected` None means "key absent".
A command whose op id was already applied is a duplicate (a forwarded proposal the network delivered
twice) and changes nothing: like a client session table, the dedup set is part of the state, so it
survives snapshots.
"""

from __future__ import annotations

import json
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Outcome:
    op_id: int
    ok: bool  # put: True; cas: whether it swapped
    duplicate: bool = False


def encode_put(op_id: int, key: str, value: str) -> bytes:
    return json.dumps({"id": op_id, "op": "put", "key": key, "value": value}).encode()


def encode_cas(op_id: int, key: str, expected: str | None, value: str) -> bytes:
    return json.dumps({"id": op_id, "op": "cas", "key": key, "expected": expected, "value": value}).encode()


class KvMachine:
    def __init__(self) -> None:
        self.data: dict[str, str] = {}
        self.applied_ops: set[int] = set()
        self.index = 0

    def apply(self, index: int, payload: bytes) -> Outcome | None:
        assert index == self.index + 1, ("applied out of order", self.index, index)
        self.index = index
        if not payload:
            return None  # a leader's empty entry
        cmd = json.loads(payload)
        op_id = cmd["id"]
        if op_id in self.applied_ops:
            return Outcome(op_id, False, duplicate=True)
        self.applied_ops.add(op_id)
        if cmd["op"] == "put":
            self.data[cmd["key"]] = cmd["value"]
            return Outcome(op_id, True)
        if self.data.get(cmd["key"]) == cmd["expected"]:
            self.data[cmd["key"]] = cmd["value"]
            return Outcome(op_id, True)
        return Outcome(op_id, False)

    def skip(self, index: int) -> None:
        """A non-command entry (conf change) at index."""
        assert index == self.index + 1, ("applied out of order", self.index, index)
        self.index = index

    def encode(self) -> bytes:
        return json.dumps({"index": self.index, "data": self.data, "ops": sorted(self.applied_ops)},
                          sort_keys=True).encode()

    @staticmethod
    def decode(raw: bytes) -> KvMachine:
        d = json.loads(raw)
        kv = KvMachine()
        kv.index = d["index"]
        kv.data = dict(d["data"])
        kv.applied_ops = set(d["ops"])
        return kv
