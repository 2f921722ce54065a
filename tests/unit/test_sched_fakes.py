"""Fakes for the pyetcd-sched unit tests (no tests here): a clock, a KV over pyetcd's own pure store,
and a runner that records what runs.

StoreKV applies requests with the same code a member applies committed entries with
(server.apply.apply_request), so indexes, errors, TTLs, refreshes and the 1000-event history behave as
on a real member. Time is a FakeClock; keys expire when a test calls `expire()`. `down_until` makes the
KV unreachable: each request then "hangs" for part of its timeout (the clock moves) and fails.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from pyetcd.client.v2 import ClusterError, EtcdError, RequestTimeout, Response
from pyetcd.server.apply import apply_request
from pyetcd.server.requests import DELETE, PUT, Request
from pyetcd.store.errors import V2Error
from pyetcd.store.store import Store

BASE_NS = 1_700_000_000 * 10**9  # the fake clock's 0.0 as wall time for the store


class FakeClock:
    def __init__(self, t: float = 0.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, dt: float) -> None:
        assert dt >= 0
        self.t += dt


class StoreKV:
    def __init__(self, clock: FakeClock, store: Store | None = None, rng: random.Random | None = None,
                 max_hang: float | None = None) -> None:
        self.clock = clock
        self.store = store if store is not None else Store()
        self.rng = rng or random.Random(0)
        self.max_hang = max_hang  # cap on how long a failing request takes (None: up to its timeout)
        self.down_until = -1.0
        self.timeouts: list[tuple[float, float | None]] = []  # (clock at the call, timeout given)
        self.requests: list[tuple[str, str]] = []  # (operation, key)

    def now_ns(self) -> int:
        return BASE_NS + int(self.clock() * 1e9)

    def expire(self) -> None:
        self.store.expire(self.now_ns())

    def _gate(self, timeout: float | None, what: str, key: str) -> None:
        self.requests.append((what, key))
        self.timeouts.append((self.clock(), timeout))
        if self.clock() < self.down_until:
            hang = timeout or 1.0
            self.clock.advance(self.rng.uniform(0, hang if self.max_hang is None else min(hang, self.max_hang)))
            if self.rng.random() < 0.5:
                raise RequestTimeout(f"{what} {key}: timed out")
            raise ClusterError([("fake", OSError("connection refused"))])

    def _apply(self, req: Request) -> Response:
        result = apply_request(self.store, req)
        if isinstance(result, V2Error):
            raise EtcdError(result.http_status, result.code, result.message, result.cause, result.index)
        assert result is not None
        return Response(201 if result.is_created() else 200, {}, result.to_json_obj(), self.store.index)

    def _expire_at(self, ttl: int | None) -> int:
        return self.now_ns() + ttl * 10**9 if ttl is not None else 0

    def create(self, key: str, value: str, *, ttl: int | None = None, timeout: float | None = None) -> Response:
        self._gate(timeout, "create", key)
        return self._apply(Request(PUT, key, value, prev_exist=False, expire_at_ns=self._expire_at(ttl),
                                   time_ns=self.now_ns()))

    def set(self, key: str, value: str = "", *, timeout: float | None = None, prev_value: str | None = None,
            prev_index: int | None = None, prev_exist: bool | None = None, ttl: int | None = None,
            refresh: bool = False) -> Response:
        self._gate(timeout, "set", key)
        return self._apply(Request(PUT, key, value, prev_value=prev_value or "", prev_index=prev_index or 0,
                                   prev_exist=prev_exist, expire_at_ns=self._expire_at(ttl), refresh=refresh,
                                   time_ns=self.now_ns()))

    def delete(self, key: str, *, timeout: float | None = None, prev_value: str | None = None,
               prev_index: int | None = None, recursive: bool = False) -> Response:
        self._gate(timeout, "delete", key)
        return self._apply(Request(DELETE, key, prev_value=prev_value or "", prev_index=prev_index or 0,
                                   recursive=recursive, time_ns=self.now_ns()))

    def read(self, key: str, *, recursive: bool = False, quorum: bool = True, timeout: float | None = None) -> Response:
        self._gate(timeout, "read", key)
        try:
            ev = self.store.get(key, recursive, True, self.now_ns())
        except V2Error as e:
            raise EtcdError(e.http_status, e.code, e.message, e.cause, e.index) from e
        return Response(200, {}, ev.to_json_obj(), self.store.index)

    def watch(self, key: str, wait_index: int, timeout: float, recursive: bool = True) -> Response:
        self._gate(timeout, "watch", key)
        try:
            ev = self.store.history.scan(key, recursive, wait_index)
        except V2Error as e:
            raise EtcdError(e.http_status, e.code, e.message, e.cause, self.store.index) from e
        if ev is None:
            raise RequestTimeout("no event")  # a real watch would block; the caller's loop moves time
        return Response(200, {}, ev.to_json_obj(), self.store.index)


@dataclass
class FakeRunner:
    """Units "run" from start() until they are stopped (after `stop_delay` of fake time) or killed."""

    clock: FakeClock
    stop_delay: float = 0.0
    running_units: dict[str, int] = field(default_factory=dict)  # unit -> pid
    stopping: dict[str, float] = field(default_factory=dict)  # unit -> when it ends
    exits: list[tuple[str, int]] = field(default_factory=list)  # queued for poll()
    started: list[str] = field(default_factory=list)
    kills: int = 0
    alive: bool = True  # False: the "machine" is dead (nothing runs, nothing starts)
    _pid: int = 1000

    def prepare(self) -> None:
        pass

    def start(self, unit: str, command: Any, env: dict[str, str]) -> int | None:
        assert self.alive
        assert unit not in self.running_units, f"{unit} started twice on one machine"
        self._pid += 1
        self.running_units[unit] = self._pid
        self.started.append(unit)
        return self._pid

    def stop(self, unit: str, grace_s: float) -> None:
        if unit in self.running_units and unit not in self.stopping:
            self.stopping[unit] = self.clock() + min(self.stop_delay, grace_s)

    def poll(self) -> list[tuple[str, int]]:
        for unit, at in list(self.stopping.items()):
            if self.clock() >= at:
                self._end(unit, 0)
        out, self.exits = self.exits, []
        return out

    def _end(self, unit: str, code: int) -> None:
        self.running_units.pop(unit, None)
        self.stopping.pop(unit, None)
        self.exits.append((unit, code))

    def exit(self, unit: str, code: int) -> None:
        """The unit's process ends by itself."""
        self._end(unit, code)

    def running(self) -> set[str]:
        return set(self.running_units)

    def kill_all(self, grace_s: float) -> list[tuple[str, int]]:
        self.kills += 1
        self.clock.advance(min(self.stop_delay, grace_s))  # the wait is real time passing
        for unit in list(self.running_units):
            self._end(unit, -15)
        out, self.exits = self.exits, []
        return out

    def die(self) -> None:
        """kill -9 of the agent: the death signal ends every unit at once."""
        self.alive = False
        for unit in list(self.running_units):
            self._end(unit, -9)
