"""Linearizability of a v2 key history: each key is a register (absent = None) with the v2 operations
the simulated clients use, checked against the outcomes the real store reported (an Event, or a V2Error's
errorCode):

- READ (quorum GET): ok with the value read, or 100 (key not found) = the key was absent;
- WRITE (PUT value): always ok, the key holds the value;
- CAS (PUT prevValue=expected): ok iff the key held `expected`; 101 (compare failed) = it held something
  else; 100 = it was absent;
- CREATE (PUT prevExist=false): ok iff the key was absent; 105 (key exists) = it was present;
- DELETE: ok iff the key was present (it becomes absent); 100 = it was absent.

Theory of operation: Wing & Gong's search, with Lowe's memoization (the WGL algorithm as used by Knossos
and Porcupine). Keys are independent objects, so a history is linearizable iff each key's sub-history is
(locality, Herlihy & Wing); each key is checked alone. For one key, a search state is (set of ops already
linearized, register value). From a state, an op may be linearized next only if it was invoked before
every not-yet-linearized *completed* op returned (otherwise that op would have to precede it). The search
succeeds once every completed op is linearized.

Indeterminate ops (the client timed out: the op may or may not have taken effect) have no return time:
they never constrain others, and they may be linearized at any point after their invocation, or never.
An indeterminate read is dropped (it has no effect); an indeterminate update is only ever linearized where it
succeeds (a failed one changes nothing: it is indistinguishable from one that never happened).

Values are opaque; `None` is "key absent". Ops are identified by `op_id` for the failure report.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

INF = float("inf")


class Kind(Enum):
    READ = "read"
    WRITE = "write"
    CAS = "cas"
    CREATE = "create"
    DELETE = "delete"


OK = 0  # outcome of a successful op; otherwise the V2Error code
KEY_NOT_FOUND = 100
TEST_FAILED = 101
NODE_EXIST = 105


@dataclass(frozen=True, slots=True)
class Op:
    op_id: int
    key: str
    kind: Kind
    invoke: float
    complete: float | None  # None: indeterminate (timed out, or still pending at the end)
    value: str | None = None  # WRITE/CAS/CREATE: the value written; READ: the value read (None: absent)
    expected: str | None = None  # CAS: the value compared against
    outcome: int | None = None  # OK or the V2Error code; None when indeterminate


@dataclass(frozen=True, slots=True)
class Result:
    ok: bool
    key: str = ""
    explored: int = 0
    message: str = ""


def _step(op: Op, state: str | None) -> tuple[bool, str | None]:
    """Can `op`, with its reported outcome, take effect on `state`, and what is the state after it?"""
    k = op.kind
    if k is Kind.READ:
        return state == op.value, state
    # What the real store does to `state`: (outcome, next state).
    if k is Kind.WRITE:
        out, nxt = OK, op.value
    elif k is Kind.CAS:
        if state is None:
            out, nxt = KEY_NOT_FOUND, state
        elif state == op.expected:
            out, nxt = OK, op.value
        else:
            out, nxt = TEST_FAILED, state
    elif k is Kind.CREATE:
        out, nxt = (OK, op.value) if state is None else (NODE_EXIST, state)
    else:  # DELETE
        out, nxt = (OK, None) if state is not None else (KEY_NOT_FOUND, state)
    if op.complete is None:
        return out == OK, nxt  # indeterminate: only where it succeeds (a failure changes nothing)
    return out == op.outcome, nxt


def check_key(ops: list[Op], initial: str | None = None, max_states: int = 2_000_000) -> Result:
    """WGL search for one key. `max_states` bounds the work: hitting it is reported as a failure."""
    key = ops[0].key if ops else ""
    # Indeterminate reads have no effect and no constraint: drop them.
    hist = sorted((o for o in ops if not (o.kind is Kind.READ and o.complete is None)),
                  key=lambda o: (o.invoke, o.op_id))
    n = len(hist)
    done = [o.complete if o.complete is not None else INF for o in hist]
    required = 0
    for i, o in enumerate(hist):
        if o.complete is not None:
            required |= 1 << i
    seen: set[tuple[int, str | None]] = set()
    stack: list[tuple[int, str | None]] = [(0, initial)]
    best = 0
    while stack:
        mask, state = stack.pop()
        if mask & required == required:
            return Result(True, key, len(seen))
        if (mask, state) in seen:
            continue
        seen.add((mask, state))
        if len(seen) > max_states:
            return Result(False, key, len(seen), f"key {key!r}: search gave up after {max_states} states")
        best = max(best, bin(mask & required).count("1"))
        # The earliest return among completed ops not yet linearized bounds who may go next.
        horizon = INF
        for i in range(n):
            if not mask >> i & 1 and done[i] < horizon:
                horizon = done[i]
        for i in range(n):
            if mask >> i & 1:
                continue
            o = hist[i]
            if o.invoke > horizon:
                break  # sorted by invoke: nobody later may go next either
            legal, nxt = _step(o, state)
            if legal:
                stack.append((mask | 1 << i, nxt))
    first_stuck = _describe(hist, required)
    return Result(False, key, len(seen),
                  f"key {key!r}: not linearizable ({n} ops, at most {best} completed ops linearized); "
                  f"{first_stuck}")


def _describe(hist: list[Op], required: int) -> str:
    shown = [o for o in hist][:12]
    return "ops: " + "; ".join(
        f"#{o.op_id} {o.kind.value}({o.expected!r}->{o.value!r}) = {o.outcome} [{o.invoke},{o.complete}]"
        if o.kind is Kind.CAS else
        f"#{o.op_id} {o.kind.value}({o.value!r}) = {o.outcome} [{o.invoke},{o.complete}]" for o in shown)


def check(ops: list[Op]) -> Result:
    """Check a multi-key history; the first non-linearizable key fails it."""
    by_key: dict[str, list[Op]] = {}
    for o in ops:
        by_key.setdefault(o.key, []).append(o)
    explored = 0
    for key in sorted(by_key):
        r = check_key(by_key[key])
        explored += r.explored
        if not r.ok:
            return r
    return Result(True, "", explored)
