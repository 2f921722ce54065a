"""A key held by one owner and kept alive with a TTL: an agent's machine key, the scheduler lock.

Timing rule (what fencing relies on): a write with `ttl` makes the store stamp the key with
"expires at receipt time + ttl", and the store deletes it only when a SYNC proposed at a later leader time
is applied. So the key cannot vanish earlier than `ttl` after the *send* time of the last write that
took effect. The owner only counts writes it saw succeed, with the time taken just before sending:
`expires_no_earlier_than = last_ok + ttl` is a safe lower bound, whatever happened to writes whose
answer was lost (those can only have pushed expiry later).

Ownership is the value: refreshes are CAS on it (prevValue), so a refresh never revives a key someone
else created, and a key that expired stays gone (refresh needs the key to exist; error 100 otherwise).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from ..client.v2 import ClientError, EtcdError
from .kv import COMPARE_FAILED, KEY_NOT_FOUND, KV, NODE_EXISTS


class LeaseLost(Exception):
    """The key is gone or belongs to someone else."""


class Lease:
    def __init__(self, kv: KV, key: str, value: str, ttl_s: int,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if ttl_s < 1:
            raise ValueError("a lease TTL is at least 1 second")
        self.kv = kv
        self.key = key
        self.value = value
        self.ttl_s = ttl_s
        self.clock = clock
        self.last_ok: float | None = None  # send time of the last write we saw succeed

    @property
    def held(self) -> bool:
        return self.last_ok is not None

    def remaining(self, now: float | None = None) -> float:
        """Seconds the key surely still exists (negative or -inf: no such guarantee)."""
        if self.last_ok is None:
            return -math.inf
        return self.last_ok + self.ttl_s - (self.clock() if now is None else now)

    def acquire(self, timeout: float) -> bool:
        """Create the key; False if it already exists. Other ClientErrors: outcome unknown."""
        sent = self.clock()
        try:
            self.kv.create(self.key, self.value, ttl=self.ttl_s, timeout=timeout)
        except EtcdError as e:
            if e.error_code == NODE_EXISTS:
                return False
            raise
        self.last_ok = sent
        return True

    def refresh(self, timeout: float) -> None:
        """Push expiry to ttl from now. LeaseLost if the key is gone or not ours; other ClientErrors
        leave `last_ok` as it was (the caller retries while `remaining()` allows)."""
        sent = self.clock()
        try:
            self.kv.set(self.key, "", prev_value=self.value, ttl=self.ttl_s, refresh=True, timeout=timeout)
        except EtcdError as e:
            if e.error_code in (KEY_NOT_FOUND, COMPARE_FAILED):
                self.last_ok = None
                raise LeaseLost(f"{self.key}: {e}") from e
            raise
        self.last_ok = sent

    def release(self, timeout: float) -> None:
        """Delete the key if it is still ours (best effort: a failure leaves it to expire)."""
        self.last_ok = None
        try:
            self.kv.delete(self.key, prev_value=self.value, timeout=timeout)
        except ClientError:
            pass
