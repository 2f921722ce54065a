"""pyetcd-locksmithd's timing, driven by a fake clock: nothing here sleeps.

The agent's waits (reboot detectors' intervals, the reboot window, the lock retry backoff, the retry after
a refused reboot) all go through its Clock; the fake one moves its wall and monotonic time together when the
agent sleeps and records every sleep. The semaphore is an in-memory LockClient stand-in whose `wait_change`
takes fake time too (it returns early when another holder's scheduled release comes first).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from pyetcd.client.v2 import EtcdError
from pyetcd.locksmith import agent
from pyetcd.locksmith.lockclient import Connection
from pyetcd.locksmith.reboot import RebootError
from pyetcd.locksmith.semaphore import Semaphore
from pyetcd.locksmith.window import Window

REBOOT_TIMEOUT = 7 * 86400.0
HOST = "host-a"


class FakeClock:
    def __init__(self, wall: float) -> None:
        self.wall = wall
        self.mono = 1000.0
        self.sleeps: list[float] = []

    def time(self) -> float:
        return self.wall

    def monotonic(self) -> float:
        return self.mono

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0, seconds
        assert len(self.sleeps) < 100_000, "the agent sleeps for ever"
        self.sleeps.append(seconds)
        self.advance(seconds)

    def advance(self, seconds: float) -> None:
        self.wall += seconds
        self.mono += seconds


@dataclass
class FakeLock:
    """One group's semaphore in memory. `blocker` holds the only slot until the wall time `release_at`."""

    clock: FakeClock
    release_at: float | None = None
    sem: Semaphore = field(default_factory=Semaphore)
    index: int = 1
    history: list[tuple[float, str]] = field(default_factory=list)  # (wall time, "lock"/"unlock"/...)
    watches: list[tuple[float, float]] = field(default_factory=list)  # (wall time, timeout)
    last_etcd_index: int | None = None

    def __post_init__(self) -> None:
        if self.release_at is not None:
            self.sem = Semaphore().lock("blocker")

    def _blocker_leaves(self) -> None:
        if self.release_at is not None and self.clock.time() >= self.release_at:
            self.history.append((self.release_at, "blocker unlocks"))
            self.sem, self.index, self.release_at = self.sem.unlock("blocker"), self.index + 1, None

    def get(self) -> tuple[Semaphore, int]:
        self._blocker_leaves()
        self.last_etcd_index = self.index
        return self.sem, self.index

    def cas(self, sem: Semaphore, index: int) -> int:
        if index != self.index:
            raise EtcdError(412, 101, "Compare failed", f"[{index} != {self.index}]", self.index)
        action = "lock" if HOST in sem.holder_list and HOST not in self.sem.holder_list else "unlock"
        self.sem, self.index = sem, self.index + 1
        self.history.append((self.clock.time(), action))
        return self.index

    def wait_change(self, index: int, timeout: float) -> bool:
        """A v2 watch in fake time: returns at the blocker's release if that comes within `timeout`."""
        self.watches.append((self.clock.time(), timeout))
        if self.release_at is not None and self.release_at - self.clock.time() <= timeout:
            self.clock.advance(max(0.0, self.release_at - self.clock.time()))
            return True
        self.clock.advance(timeout)
        return False


@dataclass
class FakeRebooter:
    clock: FakeClock
    refuse: int = 0  # refuse this many reboots first
    calls: list[float] = field(default_factory=list)

    def reboot(self) -> None:
        self.calls.append(self.clock.time())
        if len(self.calls) <= self.refuse:
            raise RebootError("blocked by an inhibitor")


@dataclass
class Detector:
    """Says a reboot is needed from the wall time `from_t` on; counts its checks."""

    clock: FakeClock
    from_t: float = float("-inf")
    cheap: bool = True
    name: str = "fake"
    checks: list[float] = field(default_factory=list)

    def reboot_needed(self) -> bool:
        self.checks.append(self.clock.time())
        return self.clock.time() >= self.from_t


def local(*args: int) -> float:
    return datetime(*args).timestamp()  # type: ignore[arg-type]


def make(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clock: FakeClock, lock: FakeLock | None = None,
         **kw: Any) -> tuple[agent.Agent, FakeRebooter, FakeLock]:
    lock = lock or FakeLock(clock)
    rebooter = FakeRebooter(clock, kw.pop("refuse", 0))
    monkeypatch.setattr(agent.LockClient, "connect", staticmethod(lambda conn, group="": lock))
    s = agent.Settings(
        strategy="etcd-lock", holder=HOST, conn=Connection(endpoints=["http://127.0.0.1:1"]), group="",
        window=None, detectors=[Detector(clock)], rebooter=rebooter, state_file=tmp_path / "state",
        check_interval=300.0, trigger_interval=1.0, unlock_delay=1e6, unlock_backoff_max=300.0,
        lock_backoff=5.0, lock_backoff_max=30.0, cas_retries=5, watch=False, recheck_window=True,
        broadcast=False, login_delay=0.0, reboot_timeout=REBOOT_TIMEOUT)
    for k, v in kw.items():
        setattr(s, k, v)
    return agent.Agent(s, clock), rebooter, lock


def run(a: agent.Agent, clock: FakeClock) -> None:
    """The agent's whole flow: it ends by sleeping out the reboot timeout (the host did not go down)."""
    assert a.run() == 1
    assert clock.sleeps[-1] == REBOOT_TIMEOUT
    clock.sleeps.pop()


def test_the_system_clock_is_the_default() -> None:
    a = agent.Agent(None)  # type: ignore[arg-type]
    assert isinstance(a.clock, agent.SystemClock)


def test_waits_for_the_reboot_window_in_steps_of_at_most_a_minute(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FakeClock(local(2031, 1, 15, 1, 0, 30))
    opens = local(2031, 1, 15, 3, 0)
    a, rebooter, lock = make(tmp_path, monkeypatch, clock, window=Window.parse("03:00", "1h"))
    run(a, clock)
    assert sum(clock.sleeps) == opens - local(2031, 1, 15, 1, 0, 30) == 7170
    assert clock.sleeps == [60.0] * 119 + [30.0]  # re-evaluated every minute: the wall clock may be stepped
    assert lock.history == [(opens, "lock")]  # the slot is taken only once the window is open
    assert rebooter.calls == [opens]


def test_inside_the_window_there_is_no_wait(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    t0 = local(2031, 1, 15, 3, 59, 59)
    clock = FakeClock(t0)
    a, rebooter, _ = make(tmp_path, monkeypatch, clock, window=Window.parse("03:00", "1h"))
    run(a, clock)
    assert clock.sleeps == [] and rebooter.calls == [t0]


def test_lock_retries_back_off_doubling_up_to_the_maximum(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "pyetcd.locksmithd")
    clock = FakeClock(local(2031, 1, 15, 12, 0))
    t0 = clock.time()
    lock = FakeLock(clock, release_at=t0 + 100)
    a, rebooter, _ = make(tmp_path, monkeypatch, clock, lock)
    run(a, clock)
    # -lock-backoff 5s: from twice that, doubling, capped at -lock-backoff-max 30s; tries at 0, 10, 30, 60, 90, 120.
    assert clock.sleeps == [10.0, 20.0, 30.0, 30.0, 30.0]
    assert [m for m in caplog.messages if m.startswith("Failed to acquire lock")] == [
        f"Failed to acquire lock: semaphore is at 0. Retrying in {d}." for d in ("10s", "20s", "30s", "30s", "30s")]
    assert lock.history == [(t0 + 100, "blocker unlocks"), (t0 + 120, "lock")]
    assert rebooter.calls == [t0 + 120]


def test_a_watched_semaphore_cuts_the_backoff_short(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FakeClock(local(2031, 1, 15, 12, 0))
    t0 = clock.time()
    lock = FakeLock(clock, release_at=t0 + 25)
    a, rebooter, _ = make(tmp_path, monkeypatch, clock, lock, watch=True)
    run(a, clock)
    # The first backoff (10 s) is spent watching in vain; the second ends at the release, 15 s into its 20 s.
    assert lock.watches == [(t0, 10.0), (t0 + 10, 20.0)]
    assert clock.sleeps == [0.0]  # what was left of the first backoff after the watch timed out
    assert lock.history == [(t0 + 25, "blocker unlocks"), (t0 + 25, "lock")]
    assert rebooter.calls == [t0 + 25]


def test_a_window_missed_while_waiting_for_the_lock_waits_for_the_next(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    t0 = local(2031, 1, 15, 3, 0)
    clock = FakeClock(t0)
    lock = FakeLock(clock, release_at=t0 + 100)  # the window closes at t0 + 60
    a, rebooter, _ = make(tmp_path, monkeypatch, clock, lock, window=Window.parse("03:00", "1m"))
    run(a, clock)
    tomorrow = local(2031, 1, 16, 3, 0)
    assert lock.history == [(t0 + 100, "blocker unlocks"), (t0 + 120, "lock"), (t0 + 120, "unlock"),
                            (tomorrow, "lock")]
    assert clock.sleeps[:5] == [10.0, 20.0, 30.0, 30.0, 30.0]
    assert max(clock.sleeps[5:]) == 60.0 and sum(clock.sleeps[5:]) == tomorrow - (t0 + 120)
    assert rebooter.calls == [tomorrow]


def test_a_refused_reboot_releases_the_slot_and_retries_after_the_backoff(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FakeClock(local(2031, 1, 15, 12, 0))
    t0 = clock.time()
    a, rebooter, lock = make(tmp_path, monkeypatch, clock, refuse=2)
    run(a, clock)
    assert clock.sleeps == [10.0, 20.0]  # twice -lock-backoff, doubling
    assert rebooter.calls == [t0, t0 + 10, t0 + 30]
    assert [what for _, what in lock.history] == ["lock", "unlock", "lock", "unlock", "lock"]


def test_slow_detectors_run_every_check_interval_cheap_ones_every_trigger_interval(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FakeClock(local(2031, 1, 15, 12, 0))
    t0 = clock.time()
    cheap = Detector(clock, from_t=float("inf"), name="file")
    slow = Detector(clock, from_t=t0 + 450, cheap=False, name="command")
    a, rebooter, _ = make(tmp_path, monkeypatch, clock, detectors=[cheap, slow])
    run(a, clock)
    assert slow.checks == [t0, t0 + 300, t0 + 600]
    assert cheap.checks == [t0 + i for i in range(601)]
    assert clock.sleeps == [1.0] * 600
    assert rebooter.calls == [t0 + 600]
