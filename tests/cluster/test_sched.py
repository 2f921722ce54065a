"""pyetcd-sched on a real 3-member pyetcd cluster: three agents and two schedulers as processes on loopback.

Every unit runs tests' UNIT_SCRIPT, which appends "start <unit> <machine id> <pid> <monotonic time>" to a
shared log when it starts and "stop ..." when it gets SIGTERM (agents here use --death-signal TERM, so a
unit of a kill -9'd agent records its stop too). From that log the test checks the promise: a unit's runs
never overlap in time, and in the end every desired unit runs exactly once.

Scenario: 20 units get placed and run; kill -9 an agent, and the pyetcd leader half a second later: the
agent's units run elsewhere within the TTL plus a few seconds; kill -9 the leading scheduler and the
pyetcd leader again: the other scheduler takes over, and places new units and removes old ones.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pyetcd.client.connection import ConnectionOptions
from pyetcd.client.v2 import ClientError
from pyetcd.sched import cli
from pyetcd.sched.kv import KV
from pyetcd.sched.layout import Layout

from tests.cluster.conftest import Cluster, MakeCluster, WriteLoad
from tests.support.kit import Child, TcpListener, clean_env, pump, wait_for

MACHINE_TTL = 3
LEADER_TTL = 3
MOVE_BOUND_S = MACHINE_TTL + 8.0  # TTL, then a SYNC, the scheduler's watch, the agent's watch; a new leader

UNIT_SCRIPT = """\
import os, signal, sys, time
log, unit, machine = sys.argv[1], os.environ["SCHED_UNIT"], os.environ["SCHED_MACHINE"]

def note(word):
    with open(log, "a") as f:  # one short append per line: lines from many processes do not mix
        f.write(f"{word} {unit} {machine} {os.getpid()} {time.monotonic():.6f}\\n")

def on_term(signum, frame):
    note("stop")
    os._exit(0)

signal.signal(signal.SIGTERM, on_term)
note("start")
while True:
    time.sleep(3600)
"""


@dataclass
class Run:
    unit: str
    machine: str  # machine id: "<name>.<random>"
    pid: int
    start: float
    stop: float | None = None

    @property
    def name(self) -> str:
        return self.machine.rsplit(".", 1)[0]


def read_runs(log: Path) -> list[Run]:
    runs: dict[int, Run] = {}
    text = log.read_text() if log.exists() else ""
    for line in text.splitlines():
        word, unit, machine, pid, t = line.split()
        if word == "start":
            runs[int(pid)] = Run(unit, machine, int(pid), float(t))
        elif int(pid) in runs:
            runs[int(pid)].stop = float(t)
    return list(runs.values())


def overlaps(runs: list[Run]) -> list[tuple[Run, Run]]:
    """Pairs of runs of one unit whose [start, stop] intervals meet (an open run lasts for ever)."""
    out = []
    by_unit: dict[str, list[Run]] = {}
    for r in runs:
        by_unit.setdefault(r.unit, []).append(r)
    for rs in by_unit.values():
        rs.sort(key=lambda r: r.start)
        for i, a in enumerate(rs):
            for b in rs[i + 1:]:
                if b.start <= (a.stop if a.stop is not None else float("inf")):
                    out.append((a, b))
    return out


def open_runs(runs: list[Run]) -> dict[str, list[Run]]:
    out: dict[str, list[Run]] = {}
    for r in runs:
        if r.stop is None:
            out.setdefault(r.unit, []).append(r)
    return out


def pid_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


class Sched:
    """The agents and schedulers of one test, started as processes; all stopped by PID at teardown."""

    def __init__(self, base: Path, cluster: Cluster) -> None:
        self.base = base
        self.cluster = cluster
        self.endpoints = ",".join(m.url for m in cluster.members)
        self.script = base / "unit.py"
        self.script.write_text(UNIT_SCRIPT)
        self.unit_log = base / "units.log"
        self.procs: dict[str, Child] = {}
        self.env = clean_env("ETCD", "PYETCD_SCHED")

    def _spawn(self, name: str, *args: str, endpoints: str | None = None) -> None:
        self.procs[name] = child = Child(self.base / f"{name}.log")
        child.launch([sys.executable, "-m", "pyetcd.sched.cli", args[0], "--endpoints", endpoints or self.endpoints,
                      *args[1:]], self.env)

    def agent(self, name: str, endpoints: str | None = None) -> None:
        self._spawn(name, "agent", "--name", name, "--ttl", str(MACHINE_TTL), "--death-signal", "TERM",
                    "--status-ttl", str(2 * MACHINE_TTL), "--restart-delay", "0.5", "--stop-timeout", "5", endpoints=endpoints)

    def scheduler(self, name: str) -> None:
        self._spawn(name, "scheduler", "--ttl", str(LEADER_TTL), "--id", name)

    def command(self) -> list[str]:
        return [sys.executable, "-I", "-S", str(self.script), str(self.unit_log)]

    def cli(self, *args: str) -> int:
        return cli.main([args[0], "--endpoints", self.endpoints, *args[1:]])  # before any "--"

    def kill9(self, name: str) -> None:
        self.procs[name].kill9()

    def snapshot(self) -> dict[str, Any] | None:
        try:
            return cli.snapshot(KV(ConnectionOptions(tuple(self.endpoints.split(",")), request_timeout_s=3.0)),
                                Layout())
        except (ClientError, ValueError):
            return None

    def runs(self) -> list[Run]:
        return read_runs(self.unit_log)

    def log_of(self, name: str) -> str:
        return self.procs[name].log()

    def logs(self) -> str:
        return "\n".join(f"---- {n} ----\n{p.log_tail(4000)}" for n, p in self.procs.items())

    def close(self) -> None:
        for p in self.procs.values():  # agents drain (their units log "stop"), schedulers release the lock
            if p.alive:
                p.signal(signal.SIGTERM)
        for p in self.procs.values():
            p.stop(timeout_s=15)
        for r in self.runs():  # belt and braces: no unit process of ours may outlive the test
            if r.stop is None and pid_alive(r.pid):
                try:
                    with open(f"/proc/{r.pid}/cmdline", "rb") as f:
                        ours = str(self.script).encode() in f.read()
                    if ours:
                        os.kill(r.pid, signal.SIGKILL)
                except OSError:
                    pass


@pytest.fixture
def sched(make_cluster: MakeCluster, tmp_path: Path) -> Iterator[Sched]:
    s = Sched(tmp_path, make_cluster(3))
    yield s
    s.close()


def machines_up(s: Sched, n: int) -> bool:
    snap = s.snapshot()
    return snap is not None and len(snap["machines"]) == n


def units_running(s: Sched, units: set[str]) -> bool:
    """Each of `units` has exactly one open run in the log and status "running" (of that machine)."""
    snap = s.snapshot()
    if snap is None:
        return False
    opened = open_runs(s.runs())
    for u in units:
        info = snap["units"].get(u)
        if info is None or info["state"] != "running" or len(opened.get(u, [])) != 1:
            return False
        if opened[u][0].machine != info["machine"]:
            return False
    return True


def test_place_fail_over_and_never_run_twice(sched: Sched) -> None:
    s, c = sched, sched.cluster
    for name in ("a1", "a2", "a3"):
        s.agent(name)
    for name in ("s1", "s2"):
        s.scheduler(name)
    assert wait_for(lambda: machines_up(s, 3), 20, 0.2), f"agents did not register\n{s.logs()}"
    units = {f"u{i:02d}" for i in range(20)}
    t_submit = time.monotonic()
    # One submit through the real command line, the rest in-process (the same main()).
    subprocess.run([sys.executable, "-m", "pyetcd.sched.cli", "submit", "u00", "--endpoints", s.endpoints, "--",
                    *s.command()], check=True, env=s.env, timeout=30)
    for u in sorted(units - {"u00"}):
        assert s.cli("submit", u, "--", *s.command()) == 0
    assert wait_for(lambda: units_running(s, units), 40, 0.3), f"not all placed and running\n{s.logs()}"
    print(f"20 units placed and running {time.monotonic() - t_submit:.1f}s after the first submit")
    snap = s.snapshot()
    assert snap is not None
    per_machine: dict[str, set[str]] = {}
    for u, info in snap["units"].items():
        per_machine.setdefault(info["machine_name"], set()).add(u)
    assert set(per_machine) == {"a1", "a2", "a3"} and all(len(v) >= 5 for v in per_machine.values()), per_machine
    ls = subprocess.run([sys.executable, "-m", "pyetcd.sched.cli", "ls", "--endpoints", s.endpoints],
                        capture_output=True, text=True, env=s.env, timeout=30)
    assert ls.returncode == 0 and all(f"{u} " in ls.stdout for u in units) and "running" in ls.stdout, ls.stdout

    # -- kill -9 an agent, then the pyetcd leader -------------------------------------------------
    victim = max(per_machine, key=lambda m: len(per_machine[m]))
    moved = per_machine[victim]
    t_kill = time.monotonic()
    s.kill9(victim)
    time.sleep(0.5)
    lead = c.wait_leader()
    lead.kill9()

    def moved_elsewhere() -> bool:
        opened = open_runs(s.runs())
        return all(len(opened.get(u, [])) == 1 and opened[u][0].name != victim for u in moved)

    assert wait_for(moved_elsewhere, MOVE_BOUND_S + 10, 0.2), f"units of {victim} not moved\n{s.logs()}"
    took = time.monotonic() - t_kill
    print(f"{len(moved)} units of {victim} running elsewhere {took:.1f}s after its kill -9 (TTL {MACHINE_TTL}s)")
    assert took < MOVE_BOUND_S, f"moving took {took:.1f}s"
    # The dead agent's units died with it (the death signal), each recording its stop.
    dead_runs = [r for r in s.runs() if r.name == victim]
    assert dead_runs and all(r.stop is not None and not pid_alive(r.pid) for r in dead_runs)
    assert all(r.stop is not None and r.stop < t_kill + MACHINE_TTL for r in dead_runs)
    c.restart(lead)
    assert wait_for(lambda: units_running(s, units), 30, 0.3), f"not all running after the move\n{s.logs()}"

    # -- kill -9 the leading scheduler, and the pyetcd leader -------------------------------------
    snap = s.snapshot()
    assert snap is not None and snap["leader"] in ("s1", "s2")
    old, new = snap["leader"], ({"s1", "s2"} - {snap["leader"]}).pop()
    t_kill = time.monotonic()
    s.kill9(old)
    lead = c.wait_leader()
    lead.kill9()

    def new_leader() -> bool:
        sn = s.snapshot()
        return sn is not None and sn["leader"] == new

    assert wait_for(new_leader, LEADER_TTL + 15, 0.2), f"{new} did not take over\n{s.logs()}"
    print(f"scheduler {new} took over {time.monotonic() - t_kill:.1f}s after {old}'s kill -9")
    # The new leader places new work and removes old work (the stop-then-hand-back handshake).
    for u in ("n1", "n2"):
        assert s.cli("submit", u, "--", *s.command()) == 0
    for u in ("u01", "u02"):
        assert s.cli("rm", u) == 0
    units = (units | {"n1", "n2"}) - {"u01", "u02"}
    assert wait_for(lambda: units_running(s, units), 30, 0.3), f"new work not running\n{s.logs()}"
    opened = open_runs(s.runs())
    assert wait_for(lambda: not ({"u01", "u02"} & set(open_runs(s.runs()))), 15, 0.2), opened
    c.restart(lead)

    # -- the end: every desired unit runs once; drain; nothing ever ran twice at once ------------
    assert wait_for(lambda: units_running(s, units), 30, 0.3)
    snap = s.snapshot()
    assert snap is not None and set(snap["units"]) == units
    s.close()
    runs = s.runs()
    assert not open_runs(runs), "a unit still runs after every agent stopped"
    assert not any(pid_alive(r.pid) for r in runs)
    bad = overlaps(runs)
    assert not bad, f"a unit ran twice at once: {bad[:3]}"
    print(f"{len(runs)} runs of {len({r.unit for r in runs})} units, none overlapping")


class Blackhole(TcpListener):
    """A TCP forwarder to one member that can be made to swallow everything: connections are accepted and
    requests read, but nothing is answered, so clients hang until their own timeouts (the nastiest way
    to lose the store)."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.cut = threading.Event()
        super().__init__(name="blackhole")

    def serve(self, client: socket.socket) -> None:
        upstream = None if self.cut.is_set() else socket.create_connection(("127.0.0.1", self.target_port), 1.0)
        try:
            pump(client, upstream, self.stopping, send=self._send)
        finally:
            if upstream is not None:
                upstream.close()

    def _send(self, dst: socket.socket | None, data: bytes) -> bool:
        if dst is not None and not self.cut.is_set():
            dst.sendall(data)
        return True  # while cut, swallowed


def test_cut_off_agent_fences_itself_and_a_stalled_scheduler_rereads(sched: Sched) -> None:
    s, c = sched, sched.cluster
    holes = [Blackhole(m.client_port) for m in c.members]
    try:
        s.agent("a1", endpoints=",".join(h.url for h in holes))
        s.agent("a2")
        s.agent("a3")
        s.scheduler("s1")
        assert wait_for(lambda: (s.snapshot() or {}).get("leader") == "s1", 15, 0.2), s.logs()
        s.scheduler("s2")
        assert wait_for(lambda: machines_up(s, 3), 20, 0.2), f"agents did not register\n{s.logs()}"
        units = {f"u{i}" for i in range(9)}
        for u in sorted(units):
            assert s.cli("submit", u, "--", *s.command()) == 0
        assert wait_for(lambda: units_running(s, units), 40, 0.3), f"not all running\n{s.logs()}"

        # Freeze the follower scheduler while 1000+ other writes go by: its watch index falls out of the
        # history, so when it wakes up its next watch gets 401 and it must re-read everything.
        assert wait_for(lambda: "watching from there" in s.log_of("s2"), 15, 0.1), s.log_of("s2")
        s.procs["s2"].signal(signal.SIGSTOP)
        with WriteLoad(lambda: c.alive, prefix="/noise", threads=4) as load:
            assert wait_for(lambda: load.count() >= 1100, 60, 0.2), "noise writes too slow"
        s.procs["s2"].signal(signal.SIGCONT)
        assert wait_for(lambda: "history cleared" in s.log_of("s2"), 15, 0.2), s.log_of("s2")
        s.kill9("s1")
        assert wait_for(lambda: (s.snapshot() or {}).get("leader") == "s2", LEADER_TTL + 10, 0.2), s.logs()

        # Cut a1 off the store: requests hang. It must kill its units before its key can expire, and
        # s2 (running on a re-read mirror) moves them.
        snap = s.snapshot()
        assert snap is not None
        cut_units = {u for u, info in snap["units"].items() if info["machine_name"] == "a1"}
        assert cut_units
        t_cut = time.monotonic()
        for h in holes:
            h.cut.set()

        def moved() -> bool:
            opened = open_runs(s.runs())
            return all(len(opened.get(u, [])) == 1 and opened[u][0].name != "a1" for u in cut_units)

        assert wait_for(moved, MOVE_BOUND_S + 10, 0.2), f"units of a1 not moved\n{s.logs()}"
        print(f"{len(cut_units)} units of the cut-off a1 running elsewhere {time.monotonic() - t_cut:.1f}s later")
        assert "fencing" in s.log_of("a1")
        runs = s.runs()
        a1_runs = [r for r in runs if r.name == "a1" and r.unit in cut_units]
        first_elsewhere = min(r.start for r in runs if r.unit in cut_units and r.name != "a1" and r.start > t_cut)
        assert all(r.stop is not None and r.stop < first_elsewhere for r in a1_runs)
        last_stop = max(r.stop for r in a1_runs if r.stop is not None)
        print(f"a1 fenced its units {first_elsewhere - last_stop:.1f}s before they first started elsewhere")

        # Back on the network, a1 learns it was declared dead and comes back as a new incarnation.
        for h in holes:
            h.cut.clear()
        assert wait_for(lambda: s.log_of("a1").count("registered as a1.") == 2, 20, 0.2), s.log_of("a1")
        assert wait_for(lambda: units_running(s, units), 30, 0.3)
    finally:
        s.close()
        for h in holes:
            h.close()
    bad = overlaps(s.runs())
    assert not bad, f"a unit ran twice at once: {bad[:3]}"
