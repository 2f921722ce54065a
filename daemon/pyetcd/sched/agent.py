"""`pyetcd-sched agent`: announce this machine, run the units assigned to it, report their state.

One thread, one loop (the death signal of child processes is tied to the thread that forked them, and a
single loop makes every deadline easy to see). Each turn:
  1. keep the machine lease: refresh every ttl/4; error 100/101 means this incarnation was declared dead:
     fence, then register again under a new machine id;
  2. if the lease is not *safe* (no successful refresh sent within fence_after * ttl), fence: kill every
     unit (SIGTERM, SIGKILL after kill_grace) and start nothing until a refresh succeeds again;
  3. otherwise reconcile: start assigned units that are not running (restart policy, restart delay),
     stop units no longer ours, and on a "stop" mark stop the unit, then delete its status and (CAS on
     prevIndex) its assignment;
  4. reap exits; write each unit's state to <prefix>/status/<unit> (TTL) and refresh it;
  5. wait for the next change of <prefix>/assign (a Mirror), for at most poll_s and never past the next
     deadline. Every request's timeout is capped at the time left before the fence deadline, so no
     blocking call can delay fencing.
Why fencing at fence_after * ttl is enough: see the package docstring ("Safety").
SIGTERM/SIGINT drain: stop every unit (keeping the lease alive meanwhile), then delete the machine key,
so the scheduler moves the units at once.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ..client.v2 import ClientError, EtcdError
from .kv import CONFLICTS, KEY_NOT_FOUND, KV
from .layout import Assignment, Layout, MachineInfo, Status, UnitSpec, check_name
from .lease import Lease, LeaseLost
from .mirror import Mirror
from .runner import Runner, RunnerError

log = logging.getLogger("pyetcd.sched.agent")


@dataclass(frozen=True)
class AgentConfig:
    name: str
    ttl_s: int = 10  # machine key TTL
    fence_after: float = 0.5  # fraction of the TTL without a successful refresh after which units are killed
    kill_grace_s: float | None = None  # SIGTERM -> SIGKILL when fencing (default ttl/5)
    stop_timeout_s: float = 10.0  # SIGTERM -> SIGKILL for ordinary stops
    status_ttl_s: int | None = None  # default: the machine TTL
    restart_delay_s: float = 1.0
    poll_s: float = 0.5  # longest wait for a change (exits are noticed this often)

    @property
    def grace_s(self) -> float:
        return self.kill_grace_s if self.kill_grace_s is not None else self.ttl_s / 5

    @property
    def status_ttl(self) -> int:
        return self.status_ttl_s or self.ttl_s

    def validate(self) -> AgentConfig:
        check_name(self.name, "machine")
        if self.ttl_s < 2:
            raise ValueError("--ttl must be at least 2 seconds")
        if not 0.1 <= self.fence_after <= 0.8:
            raise ValueError("--fence-after must be between 0.1 and 0.8 (a fraction of the TTL)")
        # Units must be dead before the machine key can expire, with a margin for scheduling delays.
        margin = self.ttl_s * (1 - self.fence_after) - self.grace_s
        if margin < 0.15 * self.ttl_s:
            raise ValueError(f"--kill-grace {self.grace_s}s leaves too little of the TTL after fencing "
                             f"(fence at {self.fence_after * self.ttl_s:.1f}s of {self.ttl_s}s)")
        return self


@dataclass
class _Unit:
    """What this agent knows about one unit it holds."""

    spec: UnitSpec
    status: Status
    pid: int | None = None
    start_at: float | None = 0.0  # when to (re)start it; None: not again
    stopping: bool = False
    status_dirty: bool = True  # the status key does not show `status` yet
    status_at: float = 0.0  # when the status key was last written or refreshed
    status_written: bool = False


@dataclass
class Agent:
    kv: KV
    layout: Layout
    config: AgentConfig
    runner: Runner
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    machine_id: str = ""
    units: dict[str, _Unit] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.config.validate()
        self.info = MachineInfo(self.config.name, socket.gethostname(), os.getpid())
        self.lease: Lease | None = None
        self.mirror = Mirror(self.kv, self.layout.assign_dir)
        self.next_refresh = 0.0
        self.draining = False
        self._drain_kill_at = 0.0
        self._last_error = ""
        self._stopping: Callable[[], bool] = lambda: False
        self._busy = False
        self.status_keys: set[str] = set()  # units whose status key we wrote and did not delete

    # -- timing ------------------------------------------------------------------------------------

    @property
    def refresh_every(self) -> float:
        return self.config.ttl_s / 4

    def fence_deadline(self) -> float:
        """Until when units may run: fence_after * ttl after the last refresh we saw succeed."""
        if self.lease is None or self.lease.last_ok is None:
            return -1.0
        return self.lease.last_ok + self.config.fence_after * self.config.ttl_s

    def safe(self, now: float) -> bool:
        return now < self.fence_deadline()

    def io_timeout(self) -> float:
        """No request may block past the fence deadline (when there is one to keep); read the clock
        afresh for every request, as earlier requests of the same turn took time."""
        left = self.fence_deadline() - self.clock()
        cap = self.config.ttl_s / 4
        return min(cap, max(0.1, left)) if left > 0 else cap

    # -- lifecycle ---------------------------------------------------------------------------------

    def run(self, stopping: Callable[[], bool]) -> int:
        self._stopping = stopping
        self.runner.prepare()
        if self.lease is None and not self.register():
            return 0
        while True:
            if stopping() and not self.draining:
                self.draining = True
                self._drain_kill_at = self.clock() + self.config.stop_timeout_s
                log.info("stopping: draining %d unit(s)", len(self.runner.running()))
            self.step()
            if (self.draining and not self.runner.running()) or self.lease is None:
                break
        self.shutdown()
        return 0

    def register(self) -> bool:
        """Create a machine key under a new incarnation id; False if told to stop first."""
        while not self._stopping():
            machine_id = f"{self.config.name}.{secrets.token_hex(4)}"
            lease = Lease(self.kv, self.layout.machine(machine_id), self.info.to_json(), self.config.ttl_s,
                          self.clock)
            try:
                created = lease.acquire(timeout=self.config.ttl_s / 4)
            except ClientError as e:
                self._warn(f"cannot register: {e}")
                self.sleep(0.5)
                continue
            if not created:
                continue  # an earlier try of ours whose answer was lost: let it expire, take a new id
            self.machine_id, self.lease = machine_id, lease
            self.mirror = Mirror(self.kv, self.layout.assign_dir)
            self.units.clear()
            self.status_keys.clear()  # the old incarnation's reports expire on their own
            assert lease.last_ok is not None
            self.next_refresh = lease.last_ok + self.refresh_every
            log.info("registered as %s (ttl %ss)", machine_id, self.config.ttl_s)
            return True
        return False

    def shutdown(self) -> None:
        # Our status keys are ours to delete only while the machine key surely exists (nobody else
        # can hold these units yet); otherwise they expire on their own.
        while self.status_keys and self.lease is not None and self.lease.remaining() > 0:
            unit = self.status_keys.pop()
            try:
                self.kv.delete(self.layout.status(unit), timeout=self.io_timeout())
            except ClientError:
                pass
        if self.lease is not None:
            self.lease.release(timeout=self.config.ttl_s / 4)
        log.info("stopped; %s released", self.machine_id)

    def step(self) -> None:
        self._keep_lease(self.clock())
        if self.safe(self.clock()):
            self._reconcile(self.clock())
        else:
            self.fence("no successful refresh of the machine key")
        self._reap(self.clock())
        if self.safe(self.clock()):
            self._report(self.clock())
        self._wait(self.clock())

    # -- 1. the machine lease ----------------------------------------------------------------------

    def _keep_lease(self, now: float) -> None:
        if self.lease is None or now < self.next_refresh:
            return
        try:
            self.lease.refresh(timeout=self.io_timeout())
        except LeaseLost:
            log.warning("machine key %s is gone: this incarnation was declared dead", self.machine_id)
            self.fence("machine key lost")
            self.units.clear()  # everything held by the dead incarnation is someone else's now
            self.status_keys.clear()
            if self.draining or not self.register():
                self.lease = None
            return
        except ClientError as e:
            self._warn(f"refresh failed: {e}")
            self.next_refresh = now + 0.2
            return
        if self._last_error:
            log.info("store reachable again")
            self._last_error = ""
        assert self.lease.last_ok is not None
        self.next_refresh = self.lease.last_ok + self.refresh_every

    def fence(self, why: str) -> None:
        if not self.runner.running():
            return
        log.warning("fencing (%s): killing %d unit(s)", why, len(self.runner.running()))
        now = self.clock()
        for unit, code in self.runner.kill_all(self.config.grace_s):
            self._ended(unit, code, now, fenced=True)

    # -- 3. units ----------------------------------------------------------------------------------

    def mine(self) -> dict[str, tuple[Assignment, int]]:
        out = {}
        for unit, entry in self.layout.children(self.mirror.entries, self.layout.assign_dir).items():
            try:
                a = Assignment.from_json(entry.value)
            except (ValueError, KeyError, TypeError):
                continue
            if a.machine == self.machine_id:
                out[unit] = (a, entry.modified_index)
        return out

    def _reconcile(self, now: float) -> None:
        mine = {} if self.draining else self.mine()
        running = self.runner.running()
        for unit in list(self.units):
            if unit in mine:
                continue
            u = self.units[unit]
            if unit in running:
                self._stop(unit, u, now)
            else:
                del self.units[unit]  # not ours any more; whoever holds it now writes its status
        for unit, (a, index) in sorted(mine.items()):
            if self.clock() >= self.next_refresh:
                return  # the lease comes first; the rest waits for the next turn
            u = self.units.get(unit)
            if a.stop:
                if unit in running:
                    assert u is not None
                    self._stop(unit, u, now)
                else:
                    self._hand_back(unit, index)
                continue
            if u is None:
                u = self.units[unit] = _Unit(a.spec, self._status("starting"))
            if unit not in running and u.start_at is not None and now >= u.start_at and self.safe(self.clock()):
                self._start(unit, u, now)

    def _start(self, unit: str, u: _Unit, now: float) -> None:
        env = dict(os.environ, SCHED_UNIT=unit, SCHED_MACHINE=self.machine_id, SCHED_MACHINE_NAME=self.config.name)
        self._set_status(u, self._status("starting"))
        self._write_status(unit, u, now)
        if not self.safe(self.clock()):
            return  # the write took us to the fence deadline: not now
        try:
            u.pid = self.runner.start(unit, u.spec.command, env)
        except RunnerError as e:
            log.warning("%s: cannot start: %s", unit, e)
            self._set_status(u, self._status("failed", error=str(e)))
            u.start_at = now + max(self.config.restart_delay_s, 1.0) if u.spec.restart != "no" else None
            return
        u.start_at = None
        log.info("%s: started (pid %s)", unit, u.pid)
        self._set_status(u, self._status("running", pid=u.pid))

    def _stop(self, unit: str, u: _Unit, now: float) -> None:
        if u.stopping:
            if self.draining:
                self.runner.stop(unit, max(0.0, self._drain_kill_at - now))
            return
        u.stopping = True
        grace = max(0.0, self._drain_kill_at - now) if self.draining else self.config.stop_timeout_s
        log.info("%s: stopping", unit)
        self.runner.stop(unit, grace)

    def _hand_back(self, unit: str, index: int) -> None:
        """The unit is stopped: drop its status, then give the assignment back (CAS on its index)."""
        u = self.units.get(unit)
        try:
            if unit in self.status_keys:
                try:
                    self.kv.delete(self.layout.status(unit), timeout=self.io_timeout())
                except EtcdError as e:
                    if e.error_code != KEY_NOT_FOUND:
                        raise
                self.status_keys.discard(unit)
                if u is not None:
                    u.status_written = False
            self.kv.delete(self.layout.assign(unit), prev_index=index, timeout=self.io_timeout())
        except EtcdError as e:
            if e.error_code not in CONFLICTS:
                self._warn(f"{unit}: cannot give the assignment back: {e}")
                return
        except ClientError as e:
            self._warn(f"{unit}: cannot give the assignment back: {e}")
            return
        self.units.pop(unit, None)
        log.info("%s: stopped and handed back", unit)

    # -- 4. exits and status -----------------------------------------------------------------------

    def _reap(self, now: float) -> None:
        for unit, code in self.runner.poll():
            self._ended(unit, code, now)
            self._busy = True  # a hand-back or a restart may be due: do not sleep before the next turn

    def _ended(self, unit: str, code: int, now: float, fenced: bool = False) -> None:
        u = self.units.get(unit)
        if u is None:
            return
        state = "exited" if code == 0 else "failed"
        self._set_status(u, self._status(state, code=code))
        u.pid = None
        if fenced:
            u.start_at = now  # again as soon as the lease is safe
            log.info("%s: killed by the fence (status %s)", unit, code)
        elif u.stopping:
            u.start_at = None  # reconcile hands it back or forgets it
            log.info("%s: stopped (status %s)", unit, code)
        else:
            again = u.spec.restart == "always" or (u.spec.restart == "on-failure" and code != 0)
            u.start_at = now + self.config.restart_delay_s if again else None
            log.info("%s: exited with status %s%s", unit, code, ", restarting" if again else "")
        u.stopping = False

    def _status(self, state: str, pid: int | None = None, code: int | None = None,
                error: str | None = None) -> Status:
        return Status(self.machine_id, self.config.name, state, pid, code, error, time.time())

    @staticmethod
    def _set_status(u: _Unit, status: Status) -> None:
        u.status = status
        u.status_dirty = True

    def _report(self, now: float) -> None:
        refresh_every = self.config.status_ttl / 3
        for unit, u in sorted(self.units.items()):
            if self.clock() >= self.next_refresh:
                return  # the lease comes first
            if u.status_dirty:
                ok = self._write_status(unit, u, now)
            elif u.status_written and now - u.status_at >= refresh_every:
                ok = self._refresh_status(unit, u, now)
            else:
                continue
            if not ok:
                return  # the store is unhappy: try again next turn

    def _write_status(self, unit: str, u: _Unit, now: float) -> bool:
        try:
            self.kv.set(self.layout.status(unit), u.status.to_json(), ttl=self.config.status_ttl,
                        timeout=self.io_timeout())
        except ClientError as e:
            self._warn(f"{unit}: cannot write status: {e}")
            return False
        u.status_dirty, u.status_written, u.status_at = False, True, now
        self.status_keys.add(unit)
        return True

    def _refresh_status(self, unit: str, u: _Unit, now: float) -> bool:
        try:
            self.kv.set(self.layout.status(unit), "", refresh=True, prev_exist=True, ttl=self.config.status_ttl,
                        timeout=self.io_timeout())
        except EtcdError as e:
            if e.error_code != KEY_NOT_FOUND:
                self._warn(f"{unit}: cannot refresh status: {e}")
                return False
            u.status_dirty = True  # it expired meanwhile: write it again
            return self._write_status(unit, u, now)
        except ClientError as e:
            self._warn(f"{unit}: cannot refresh status: {e}")
            return False
        u.status_at = now
        return True

    # -- 5. waiting --------------------------------------------------------------------------------

    def _wait(self, now: float) -> None:
        deadlines = [now + (0.0 if self._busy else self.config.poll_s), self.next_refresh]
        self._busy = False
        if self.runner.running():
            deadlines.append(self.fence_deadline())
        deadlines += [u.start_at for u in self.units.values() if u.start_at is not None]
        wait = max(0.02, min(deadlines) - now)
        self.mirror.poll_or_pause(wait, self.io_timeout(), self._warn, self.sleep)

    def _warn(self, text: str) -> None:
        if text != self._last_error:
            log.warning("%s", text)
        self._last_error = text
