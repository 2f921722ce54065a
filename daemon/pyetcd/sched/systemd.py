"""Running units as transient systemd services (`systemd-run --unit=...`), for agents run by systemd.

* A unit U becomes `<unit prefix>U.service` (default pyetcd-sched-U.service), with KillMode=control-group:
  stopping it ends every process it started, which a process group cannot promise.
* Fencing needs the units to die with the agent, and transient services do not. So each one gets
  `BindsTo=` and `After=` the agent's own service (detected from /proc/self/cgroup, or --systemd-bind-to):
  when the agent's service stops or dies, systemd stops the units too. On start, the agent stops
  leftovers of an earlier run (a new agent incarnation holds no assignment, so none may run).
* Exits: a unit that ended cleanly is garbage-collected (not-found or inactive: status 0); a failed one
  stays loaded with its ExecMainStatus until `reset-failed`, which the runner runs once it has read it.
* Stops never block: `systemctl kill --signal=SIGTERM`, then SIGKILL from a later poll() after the grace.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from .runner import RunnerError

Run = Callable[..., subprocess.CompletedProcess[str]]
_ENDED = ("inactive", "failed")
_SIGNALLED = ("killed", "dumped")  # ExecMainCode names; "exited" carries an exit status


def detect_own_unit(cgroup_file: str = "/proc/self/cgroup") -> str | None:
    """The .service this process runs in, if any (the last such component of its cgroup path)."""
    try:
        text = Path(cgroup_file).read_text()
    except OSError:
        return None
    for line in text.splitlines():
        path = line.rpartition(":")[2]
        for part in reversed(path.split("/")):
            if part.endswith(".service"):
                return part
    return None


def parse_show(text: str) -> dict[str, dict[str, str]]:
    """`systemctl show -p Id,...` for several units: {Id: {property: value}} (blocks split by blank lines)."""
    out: dict[str, dict[str, str]] = {}
    for block in text.split("\n\n"):
        props = dict(line.split("=", 1) for line in block.splitlines() if "=" in line)
        if "Id" in props:
            out[props["Id"]] = props
    return out


class SystemdRunner:
    def __init__(self, *, unit_prefix: str = "pyetcd-sched-", user: bool = False, bind_to: str | None = None,
                 run: Run = subprocess.run, clock: Callable[[], float] = time.monotonic) -> None:
        self.unit_prefix = unit_prefix
        self.user = user
        self.bind_to = bind_to
        self._run = run
        self.clock = clock
        self._units: dict[str, float | None] = {}  # unit -> SIGKILL deadline once stopping

    def service(self, unit: str) -> str:
        return f"{self.unit_prefix}{unit}.service"

    def _cmd(self, tool: str, *args: str, check: bool = False) -> subprocess.CompletedProcess[str]:
        argv = [tool, *(["--user"] if self.user else []), *args]
        try:
            result = self._run(argv, capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.SubprocessError) as e:
            raise RunnerError(f"{' '.join(argv)}: {e}") from e
        if check and result.returncode != 0:
            raise RunnerError(f"{' '.join(argv)}: {result.stderr.strip() or result.returncode}")
        return result

    def prepare(self) -> None:
        self._cmd("systemctl", "stop", f"{self.unit_prefix}*.service")
        self._cmd("systemctl", "reset-failed", f"{self.unit_prefix}*.service")

    def start(self, unit: str, command: Sequence[str], env: dict[str, str]) -> int | None:
        name = self.service(unit)
        self._cmd("systemctl", "reset-failed", name)  # a failed earlier run would block the name
        props = ["KillMode=control-group"]
        if self.bind_to:
            props += [f"BindsTo={self.bind_to}", f"After={self.bind_to}"]
        argv = [f"--unit={name}", "--quiet", *(f"--property={p}" for p in props),
                *(f"--setenv={k}={v}" for k, v in sorted(env.items())), "--", *command]
        self._cmd("systemd-run", *argv, check=True)
        self._units[unit] = None
        pid = self._show([unit]).get(name, {}).get("MainPID", "0")
        return int(pid) if pid.isdigit() and int(pid) > 0 else None

    def stop(self, unit: str, grace_s: float) -> None:
        if unit not in self._units or self._units[unit] is not None:
            return
        self._units[unit] = self.clock() + grace_s
        self._cmd("systemctl", "kill", "--signal=SIGTERM", self.service(unit))

    def _show(self, units: Sequence[str]) -> dict[str, dict[str, str]]:
        if not units:
            return {}
        result = self._cmd("systemctl", "show", "--property=Id,LoadState,ActiveState,MainPID,ExecMainCode,"
                           "ExecMainStatus", *(self.service(u) for u in units))
        return parse_show(result.stdout)

    def poll(self) -> list[tuple[str, int]]:
        return self._poll(escalate=True)

    def _poll(self, escalate: bool) -> list[tuple[str, int]]:
        units = list(self._units)
        shown = self._show(units)
        ended = []
        now = self.clock()
        for unit in units:
            props = shown.get(self.service(unit), {"LoadState": "not-found"})
            if props.get("LoadState") == "not-found" or props.get("ActiveState") in _ENDED:
                ended.append((unit, _status(props)))
                del self._units[unit]
                if props.get("ActiveState") == "failed":
                    self._cmd("systemctl", "reset-failed", self.service(unit))
            elif escalate and (kill_at := self._units[unit]) is not None and now >= kill_at:
                self._cmd("systemctl", "kill", "--signal=SIGKILL", self.service(unit))
        return ended

    def running(self) -> set[str]:
        return set(self._units)

    def kill_all(self, grace_s: float) -> list[tuple[str, int]]:
        for unit in list(self._units):
            self.stop(unit, 0.0)
        deadline = self.clock() + grace_s
        ended = self.poll_until_empty(deadline, escalate=False)
        if self._units:
            self._cmd("systemctl", "kill", "--signal=SIGKILL", *(self.service(u) for u in self._units))
        return ended + self.poll_until_empty(self.clock() + 10.0, escalate=True)

    def poll_until_empty(self, deadline: float, escalate: bool) -> list[tuple[str, int]]:
        ended: list[tuple[str, int]] = []
        while self._units:
            ended += self._poll(escalate)
            if self.clock() >= deadline:
                break
            time.sleep(0.05)
        return ended


def _status(props: dict[str, str]) -> int:
    raw = props.get("ExecMainStatus", "0")
    code = int(raw) if raw.lstrip("-").isdigit() else 0
    return -code if props.get("ExecMainCode") in _SIGNALLED else code
