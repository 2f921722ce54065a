"""Running units as child processes of the agent.

* Each unit is started in a new session, so it is its own process group: signals go to the whole group
  (the unit's own children too), and a terminal's ^C to the agent does not reach it.
* Stops never block: `stop()` sends SIGTERM and `poll()` sends SIGKILL to the group once the grace period
  is over. Only `kill_all()` (fencing, shutdown) waits, and never longer than its grace plus the
  SIGKILL's delivery.
* When the main process ends, whatever is left of its group is SIGKILLed before the main process is
  reaped (`waitid(WNOWAIT)` first: until it is reaped its pid, hence the group id, cannot be reused).
* If the agent dies (kill -9 included), the kernel sends each unit's main process the death signal
  (prctl PR_SET_PDEATHSIG, set between fork and exec; SIGKILL unless configured). Linux ties it to the
  *thread* that forked, so the agent starts units from its main thread only. It reaches the main process,
  not its children: a unit that forks should exec, or pass the signal on (or use the systemd runner,
  whose cgroup holds everything). Without prctl (not Linux) there is no death signal.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

log = logging.getLogger("pyetcd.sched.runner")

PR_SET_PDEATHSIG = 1


def _load_prctl() -> Callable[..., int] | None:
    """libc's prctl, loaded in the parent: the child, between fork and exec, only calls it."""
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True).prctl  # type: ignore[no-any-return]
    except (OSError, AttributeError):
        return None


_prctl = _load_prctl()


class RunnerError(Exception):
    """A unit could not be started."""


class Runner(Protocol):
    def prepare(self) -> None:
        """Called once before the first unit starts (the systemd runner stops leftovers)."""

    def start(self, unit: str, command: Sequence[str], env: dict[str, str]) -> int | None:
        """Start a unit; its main pid when known. RunnerError if it cannot be started."""

    def stop(self, unit: str, grace_s: float) -> None:
        """SIGTERM now, SIGKILL after grace_s (sent by a later poll()); does not wait."""

    def poll(self) -> list[tuple[str, int]]:
        """(unit, exit status) of units that ended since the last call; negative: killed by that signal."""

    def running(self) -> set[str]:
        """Units started and not yet reported ended."""

    def kill_all(self, grace_s: float) -> list[tuple[str, int]]:
        """Stop everything and wait for it (SIGTERM, then SIGKILL after grace_s)."""


def death_signal_setter(sig: int, parent_pid: int) -> Callable[[], None]:
    """A preexec_fn: the child gets `sig` when the agent dies."""

    def preexec() -> None:
        if _prctl is None:
            return
        _prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0)
        if os.getppid() != parent_pid:  # the agent died before prctl took effect
            os.kill(os.getpid(), sig)

    return preexec


@dataclass
class _Child:
    popen: subprocess.Popen[bytes]
    kill_at: float | None = None  # set once stopping


class ProcessRunner:
    def __init__(self, death_signal: int = signal.SIGKILL, clock: Callable[[], float] = time.monotonic) -> None:
        self.death_signal = death_signal
        self.clock = clock
        self._children: dict[str, _Child] = {}
        if _prctl is None:
            log.warning("prctl is not available: units will outlive a killed agent")

    def prepare(self) -> None:
        pass

    def start(self, unit: str, command: Sequence[str], env: dict[str, str]) -> int | None:
        assert unit not in self._children, f"{unit} already running"
        try:
            popen = subprocess.Popen(list(command), env=env, stdin=subprocess.DEVNULL, start_new_session=True,
                                     preexec_fn=death_signal_setter(self.death_signal, os.getpid()))
        except (OSError, subprocess.SubprocessError, ValueError) as e:
            raise RunnerError(str(e)) from e
        self._children[unit] = _Child(popen)
        return popen.pid

    def stop(self, unit: str, grace_s: float) -> None:
        child = self._children.get(unit)
        if child is None or child.kill_at is not None:
            return
        child.kill_at = self.clock() + grace_s
        _signal_group(child.popen.pid, signal.SIGTERM)

    def poll(self) -> list[tuple[str, int]]:
        ended = []
        now = self.clock()
        for unit, child in list(self._children.items()):
            if _has_exited(child.popen.pid):
                ended.append((unit, self._reap(unit, child)))
            elif child.kill_at is not None and now >= child.kill_at:
                _signal_group(child.popen.pid, signal.SIGKILL)
        return ended

    def running(self) -> set[str]:
        return set(self._children)

    def kill_all(self, grace_s: float) -> list[tuple[str, int]]:
        for unit in list(self._children):
            self.stop(unit, 0.0)
        deadline = self.clock() + grace_s
        ended = self.poll_until_empty(deadline)
        for child in self._children.values():
            _signal_group(child.popen.pid, signal.SIGKILL)
        return ended + self.poll_until_empty(self.clock() + 10.0)

    def poll_until_empty(self, deadline: float) -> list[tuple[str, int]]:
        ended: list[tuple[str, int]] = []
        while True:
            for unit, child in list(self._children.items()):
                if _has_exited(child.popen.pid):
                    ended.append((unit, self._reap(unit, child)))
            if not self._children or self.clock() >= deadline:
                return ended
            time.sleep(0.02)

    def _reap(self, unit: str, child: _Child) -> int:
        _signal_group(child.popen.pid, signal.SIGKILL)  # leftovers of the unit; the pid is not reaped yet
        del self._children[unit]
        return child.popen.wait()


def _has_exited(pid: int) -> bool:
    try:
        return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass
