"""`pyetcd-sched scheduler`: keep every desired unit assigned to one live machine.

Several may run; one leads, holding <prefix>/leader (created with prevExist=false and a TTL, refreshed
every ttl/3 by CAS on its own id). The others mirror the keyspace too and try to take the lock as soon as
their mirror shows it gone (expired, or released by a leader that stops cleanly), and every ttl/2 anyway.
The lock only saves work: correctness comes from the writes, each conditioned on the version it was
computed from (create with prevExist=false, CAS/CAD on prevIndex), so two schedulers acting at once
can make each other's writes fail but can never place one unit twice.

Loop: mirror all of <prefix> (one watch, so desired work, assignments and machines are always one
consistent state); when leading and the mirror has applied our last write, compute the plan (placement.py)
and execute it; a write that loses a race forces a full re-read before the next plan.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass

from ..client.v2 import ClientError, EtcdError
from .kv import CONFLICTS, KV, modified_index
from .layout import Layout
from .lease import Lease, LeaseLost
from .mirror import Mirror
from .placement import Action, Assign, Drop, MarkStop, Move, View, plan

log = logging.getLogger("pyetcd.sched.scheduler")


@dataclass(frozen=True)
class SchedulerConfig:
    ttl_s: int = 10  # leader lock TTL
    poll_s: float = 0.5
    io_timeout_s: float = 3.0

    def validate(self) -> SchedulerConfig:
        if self.ttl_s < 2:
            raise ValueError("--ttl must be at least 2 seconds")
        return self


class Scheduler:
    def __init__(self, kv: KV, layout: Layout, config: SchedulerConfig, ident: str | None = None,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> None:
        self.kv = kv
        self.sleep = sleep
        self.layout = layout
        self.config = config.validate()
        self.clock = clock
        self.id = ident or f"{socket.gethostname()}.{os.getpid()}.{secrets.token_hex(3)}"
        self.lease = Lease(kv, layout.leader, self.id, config.ttl_s, clock)
        self.mirror = Mirror(kv, layout.root)
        self.next_lease_op = 0.0  # next refresh (leading) or next try (following)
        self.wait_index = 0  # plan only once the mirror shows our last write
        self._last_try = -1.0
        self._last_error = ""

    def leading(self, now: float | None = None) -> bool:
        return self.lease.remaining(now) > 0

    def run(self, stopping: Callable[[], bool]) -> int:
        while not stopping():
            self.step()
        if self.lease.held:
            self.lease.release(timeout=self.config.io_timeout_s)
            log.info("released the leader lock")
        return 0

    def step(self) -> None:
        self._lead(self.clock())
        if self.leading() and self.mirror.caught_up(self.wait_index):
            self._act()
        self._wait(self.clock())

    # -- the leader lock ---------------------------------------------------------------------------

    def _lead(self, now: float) -> None:
        timeout = min(self.config.io_timeout_s, self.config.ttl_s / 3)
        if self.lease.held:
            if now < self.next_lease_op:
                return
            try:
                self.lease.refresh(timeout=timeout)
            except LeaseLost as e:
                log.warning("lost the leader lock: %s", e)
                self.next_lease_op = now
                return
            except ClientError as e:
                self._warn(f"cannot refresh the leader lock: {e}")
                self.next_lease_op = now + 0.2
                if not self.leading(now):
                    log.warning("leader lock may have expired: following")
                    self.lease.last_ok = None
                return
            assert self.lease.last_ok is not None
            self.next_lease_op = self.lease.last_ok + self.config.ttl_s / 3
            return
        # Try when the mirror shows the lock gone (at most every 0.2 s: the mirror may lag), else now and then.
        lock_gone = self.mirror.synced and self.layout.leader not in self.mirror.entries
        if now < self.next_lease_op and not (lock_gone and now >= self._last_try + 0.2):
            return
        self._last_try = now
        self.next_lease_op = now + self.config.ttl_s / 2
        try:
            if not self.lease.acquire(timeout=timeout):
                return
        except ClientError as e:
            self._warn(f"cannot take the leader lock: {e}")
            return
        assert self.lease.last_ok is not None
        self.next_lease_op = self.lease.last_ok + self.config.ttl_s / 3
        self.wait_index = 0
        log.info("leading as %s", self.id)

    # -- placing units -----------------------------------------------------------------------------

    def _act(self) -> None:
        for action in plan(View.from_entries(self.layout, self.mirror.entries)):
            if not self.leading():
                return
            try:
                index = self.execute(action)
            except EtcdError as e:
                if e.error_code not in CONFLICTS:
                    self._warn(f"{describe(action)}: {e}")
                    return
                log.info("%s: lost a race (%s); re-reading", describe(action), e)
                self.mirror.invalidate()
                return
            except ClientError as e:
                self._warn(f"{describe(action)}: {e}")
                return
            log.info("%s", describe(action))
            self.wait_index = max(self.wait_index, index)

    def execute(self, action: Action) -> int:
        """One conditional write; the index it created."""
        timeout = self.config.io_timeout_s
        key = self.layout.assign(action.unit)
        if isinstance(action, Assign):
            return modified_index(self.kv.create(key, action.assignment.to_json(), timeout=timeout))
        if isinstance(action, (Move, MarkStop)):
            return modified_index(self.kv.set(key, action.assignment.to_json(), prev_index=action.prev_index,
                                              timeout=timeout))
        assert isinstance(action, Drop)
        return modified_index(self.kv.delete(key, prev_index=action.prev_index, timeout=timeout))

    # -- waiting -----------------------------------------------------------------------------------

    def _wait(self, now: float) -> None:
        wait = max(0.02, min(self.config.poll_s, self.next_lease_op - now))
        if not self.mirror.poll_or_pause(wait, self.config.io_timeout_s, self._warn, self.sleep):
            return
        if self._last_error and self.mirror.synced:
            self._last_error = ""

    def _warn(self, text: str) -> None:
        if text != self._last_error:
            log.warning("%s", text)
        self._last_error = text


def describe(action: Action) -> str:
    if isinstance(action, Assign):
        return f"assign {action.unit} -> {action.assignment.machine}"
    if isinstance(action, Move):
        return f"move {action.unit} -> {action.assignment.machine} (its machine is gone)"
    if isinstance(action, MarkStop):
        return f"stop {action.unit} on {action.assignment.machine}"
    return f"drop {action.unit}"
