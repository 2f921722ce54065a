"""ProcessRunner with real processes: groups, stops, escalation, and the death signal on kill -9."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pyetcd.sched.runner import ProcessRunner, RunnerError

PY = [sys.executable, "-I", "-S", "-c"]


def wait_ended(r: ProcessRunner, timeout: float = 10.0) -> list[tuple[str, int]]:
    deadline = time.monotonic() + timeout
    out: list[tuple[str, int]] = []
    while r.running() and time.monotonic() < deadline:
        out += r.poll()
        time.sleep(0.02)
    return out


def wait_ready(path: Path, timeout: float = 10.0) -> str:
    """The handshake with a unit: it writes `path` (then renames it into place) once it is ready."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"no {path.name} within {timeout}s"
        time.sleep(0.02)
    return path.read_text()


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def test_exit_status_and_env() -> None:
    r = ProcessRunner()
    r.start("ok", PY + ["import os,sys; sys.exit(0 if os.environ['X'] == 'y' else 5)"], dict(os.environ, X="y"))
    r.start("bad", PY + ["raise SystemExit(3)"], dict(os.environ))
    assert sorted(wait_ended(r)) == [("bad", 3), ("ok", 0)]
    with pytest.raises(RunnerError):
        r.start("missing", ["/nonexistent/binary"], {})


def test_stop_escalates_and_takes_the_whole_group(tmp_path: Path) -> None:
    pidfile = tmp_path / "grandchild"
    script = (f"import os,pathlib,signal,subprocess,time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
              f"p = subprocess.Popen(['sleep', '60']); pathlib.Path({str(pidfile)!r} + '.tmp').write_text(str(p.pid)); "
              f"os.rename({str(pidfile)!r} + '.tmp', {str(pidfile)!r}); "
              f"time.sleep(60)")
    r = ProcessRunner()
    r.start("stubborn", PY + [script], dict(os.environ))
    grandchild = int(wait_ready(pidfile))
    t0 = time.monotonic()
    r.stop("stubborn", 0.3)
    ended = wait_ended(r)
    assert ended == [("stubborn", -signal.SIGKILL)]
    assert time.monotonic() - t0 >= 0.3
    deadline = time.monotonic() + 5
    while alive(grandchild) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not alive(grandchild), "the unit's child survived its stop"


def test_kill_all_waits_for_everything(tmp_path: Path) -> None:
    ready = tmp_path / "rude-ready"
    r = ProcessRunner()
    r.start("polite", PY + ["import time; time.sleep(60)"], dict(os.environ))
    # "rude" says it is ready only once SIGTERM is ignored (written aside, then renamed: never seen half-done).
    r.start("rude", PY + [f"import os,pathlib,signal,time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
                          f"pathlib.Path({str(ready)!r} + '.tmp').write_text('ignoring SIGTERM'); "
                          f"os.rename({str(ready)!r} + '.tmp', {str(ready)!r}); time.sleep(60)"],
            dict(os.environ))
    assert wait_ready(ready) == "ignoring SIGTERM"
    ended = dict(r.kill_all(0.5))
    assert r.running() == set()
    assert ended == {"polite": -signal.SIGTERM, "rude": -signal.SIGKILL}


@pytest.mark.parametrize("sig", ["SIGKILL", "SIGTERM"])
def test_units_die_with_a_killed_agent(sig: str) -> None:
    # A stand-in agent starts a unit, prints its pid, and waits to be killed with SIGKILL.
    agent_code = (f"import os,signal,sys,time; from pyetcd.sched.runner import ProcessRunner; "
                  f"r = ProcessRunner(signal.{sig}); "
                  f"print(r.start('u', ['sleep', '60'], dict(os.environ)), flush=True); time.sleep(60)")
    agent = subprocess.Popen([sys.executable, "-c", agent_code], stdout=subprocess.PIPE, text=True)
    try:
        assert agent.stdout is not None
        unit_pid = int(agent.stdout.readline())
        assert alive(unit_pid)
        agent.kill()
        agent.wait(10)
        deadline = time.monotonic() + 5
        while alive(unit_pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not alive(unit_pid), "the unit outlived its agent"
    finally:
        if agent.poll() is None:
            agent.kill()
            agent.wait(10)
