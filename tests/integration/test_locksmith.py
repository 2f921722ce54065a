"""The locksmith-compatible reboot lock with real processes: pyetcd-locksmithctl / pyetcd-locksmithd
against a 3-member pyetcd cluster and against Debian's etcd 3.4 (`--enable-v2`).

Reboots are simulated. Each agent's `-reboot-command` is a script that logs `start <id> <time>` to a
shared log, removes the host's reboot-needed flag and leaves a `rebooting` marker; the harness then does
what a shutdown does (SIGTERM to the agent, which keeps its slot), waits REBOOT_DELAY_S ("the host is
down") and starts the agent again with the same ID ("the host is back"), whose post-boot task releases
the slot. A reboot ends at the restarted agent's `Releasing the reboot lock ... (the host is back)` line,
which the agent logs *before* its compare-and-swap, so each logged reboot lies inside the time its host
held the lock: more than `max` overlapping logged reboots would prove the lock broken.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import pytest
from pyetcd.client.v2 import EtcdError, KeysClient
from pyetcd.locksmith.lockclient import LockClient
from pyetcd.locksmith.semaphore import Semaphore, semaphore_key

from tests.cluster.conftest import Cluster
from tests.support import kit
from tests.support.servers import Server, etcd_available, etcd_server, free_port, pyetcd_server

CTL = [sys.executable, "-m", "pyetcd.locksmith.ctl"]
AGENT = [sys.executable, "-m", "pyetcd.locksmith.agent"]
REBOOT_DELAY_S = 0.3
# Short timers: the daemon's defaults are seconds to minutes.
FAST = ["-trigger-interval", "20ms", "-check-interval", "50ms", "-unlock-delay", "100ms", "-unlock-backoff-max",
        "1s", "-lock-backoff", "50ms", "-lock-backoff-max", "400ms", "-broadcast=false", "-login-delay", "0",
        "-reboot-timeout", "60s", "-config-file="]
DEFAULT_KEY = semaphore_key("")
ID = "69d27b356a94476da859461d3a3bc6fd"

FAKE_REBOOT = """#!/bin/sh
# fake-reboot <holder id> <host dir> <shared log>: the reboot "starts"; the harness takes the host down.
printf 'start %s %s\\n' "$1" "$(date +%s.%N)" >> "$3"
rm -f "$2/reboot-needed"
: > "$2/rebooting"
"""


def clean_env(**extra: str) -> dict[str, str]:
    """The caller's environment without settings that would leak into the commands under test."""
    return kit.clean_env("LOCKSMITH", "REBOOT_", "ETCD", add=extra)


def ctl(endpoints: list[str], *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    argv = [*CTL, *(["-endpoint", ",".join(endpoints)] if endpoints else []), *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, env=env or clean_env(),
                          stdin=subprocess.DEVNULL)


def stored(url: str, key: str = DEFAULT_KEY) -> str:
    """The semaphore value exactly as the server stores it."""
    return str(KeysClient([url]).get(key).node["value"])


def read_sem(urls: list[str], group: str = "") -> Semaphore:
    return LockClient(KeysClient(urls, timeout=3.0), group).get()[0]


def history(url: str, key: str) -> list[Semaphore]:
    """Every version the key ever had, replayed from the v2 watch history."""
    keys = KeysClient([url])
    node = keys.get(key, quorum=True).node
    index, last = int(node["createdIndex"]), int(node["modifiedIndex"])
    out = []
    while index <= last:
        ev = keys.get(key, wait=True, wait_index=index, timeout=5.0).node
        out.append(Semaphore.loads(ev["value"]))
        index = int(ev["modifiedIndex"]) + 1
    return out


# -- backends ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pyetcd3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = Cluster(tmp_path_factory.mktemp("lsm-cluster"), 3)
    c.base.mkdir(parents=True, exist_ok=True)
    try:
        c.start()
        yield c
    finally:
        c.stop_all()


@pytest.fixture(scope="module")
def etcd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    if not etcd_available():
        pytest.skip("Debian's etcd is not installed (make etcd)")
    srv = etcd_server(tmp_path_factory.mktemp("lsm-etcd"))
    try:
        yield srv.start()
    finally:
        srv.stop()


def urls(c: Cluster) -> list[str]:
    return [m.url for m in c.members]


# -- the simulated hosts ----------------------------------------------------------------------------


@dataclass
class Host(kit.LoggedProcess):
    hid: str
    dir: Path
    argv: list[str]
    proc: subprocess.Popen[bytes] | None = None
    down_since: float = 0.0
    reboots: int = 0
    exit_codes: list[int | None] = field(default_factory=list)
    held_when_down: list[bool] = field(default_factory=list)

    @property
    def log_path(self) -> Path:
        return self.dir / "agent.log"

    def start(self) -> None:
        self.launch(self.argv, clean_env(), banner=f"==== boot {self.reboots + 1}\n")


def make_hosts(base: Path, n: int, endpoints: list[str], group: str, shared_log: Path,
               extra: list[str] | None = None) -> list[Host]:
    script = base / "fake-reboot"
    script.write_text(FAKE_REBOOT)
    script.chmod(0o755)
    hosts = []
    for i in range(n):
        hid = uuid.uuid4().hex  # like a machine ID
        d = base / f"host{i}"
        d.mkdir()
        (d / "reboot-needed").touch()
        flag = str(d / "reboot-needed")
        # Half the hosts see the flag as the trigger file, half through -reboot-needed-command.
        detect = ["-reboot-detector", "file", "-trigger-file", flag] if i % 2 == 0 else \
            ["-trigger-file=", "-reboot-needed-command", f"test -e {shlex.quote(flag)}"]
        reboot = " ".join(shlex.quote(str(p)) for p in (script, hid, d, shared_log))
        argv = [*AGENT, "-endpoint", ",".join(endpoints), "-group", group, "-id", hid,
                "-reboot-strategy", "etcd-lock", "-state-file", str(d / "state"), "-reboot-command", reboot,
                *detect, *FAST, *(extra or [])]
        hosts.append(Host(hid, d, argv))
    return hosts


def drive(hosts: list[Host], sem: Callable[[], Semaphore], timeout_s: float = 45.0) -> None:
    """Run the hosts until each has rebooted once, is back, and no slot is held."""
    for h in hosts:
        h.start()
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            now = time.monotonic()
            for h in hosts:
                if h.proc is not None and (h.dir / "rebooting").exists():
                    h.exit_codes.append(h.stop())  # the shutdown's SIGTERM
                    h.held_when_down.append(h.hid in sem().holder_list)
                    (h.dir / "rebooting").unlink()
                    h.reboots += 1
                    h.down_since = now
                elif h.proc is None and now - h.down_since >= REBOOT_DELAY_S:
                    h.start()  # the host is back
                elif h.proc is not None and h.proc.poll() is not None:
                    raise AssertionError(f"agent {h.hid} exited with {h.proc.returncode}:\n{h.log()}")
            if all(h.reboots and h.proc is not None for h in hosts) and not sem().holder_list:
                return
            if now > deadline:
                logs = "\n".join(f"---- {h.hid}\n{h.log()[-3000:]}" for h in hosts)
                raise AssertionError(f"not every host rebooted within {timeout_s}s: {sem()}\n{logs}")
            time.sleep(0.02)
    finally:
        for h in hosts:
            h.stop()


_RELEASE = re.compile(r"^(\S+) INFO locksmithd: Releasing the reboot lock of (\w+) \(the host is back\)$", re.M)


def reboot_intervals(hosts: list[Host], shared_log: Path) -> dict[str, tuple[float, float]]:
    """Add each host's `end` line (from its restarted agent's log) to the shared log; per host (start, end)."""
    with open(shared_log, "a") as f:
        for h in hosts:
            after_boot = h.log().rsplit("==== boot", 1)[1]
            found = _RELEASE.search(after_boot)
            assert found and found.group(2) == h.hid, f"{h.hid} did not release after its reboot:\n{after_boot}"
            t = datetime.strptime(found.group(1), "%Y-%m-%dT%H:%M:%S.%f").timestamp()
            f.write(f"end {h.hid} {t:.6f}\n")
    starts: dict[str, list[float]] = {}
    ends: dict[str, list[float]] = {}
    for line in shared_log.read_text().splitlines():
        kind, hid, t = line.split()
        (starts if kind == "start" else ends).setdefault(hid, []).append(float(t))
    out = {}
    for h in hosts:
        assert len(starts.get(h.hid, [])) == 1 and len(ends.get(h.hid, [])) == 1, shared_log.read_text()
        out[h.hid] = (starts[h.hid][0], ends[h.hid][0])
        assert out[h.hid][0] < out[h.hid][1]
    return out


def max_overlap(intervals: list[tuple[float, float]]) -> int:
    events = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals])  # an end sorts first
    running = peak = 0
    for _, delta in events:
        running += delta
        peak = max(peak, running)
    return peak


def check_history(versions: list[Semaphore], max_holders: int) -> int:
    """Every stored version is consistent and within max; the largest number of holders seen."""
    for v in versions:
        holders = v.holder_list
        assert holders == sorted(set(holders)), v
        assert v.semaphore == v.max - len(holders), v
        if v.max == max_holders:
            assert len(holders) <= max_holders, f"{len(holders)} holders with max {max_holders}: {v}"
    return max(len(v.holder_list) for v in versions)


def contend(base: Path, endpoints: list[str], watch_url: str, n: int, max_holders: int, group: str) -> None:
    if max_holders != 1:
        r = ctl(endpoints, "-group", group, "set-max", str(max_holders))
        assert r.returncode == 0 and r.stdout == f"Old-Max: 1\nMax: {max_holders}\n", r
    shared_log = base / "reboots.log"
    hosts = make_hosts(base, n, endpoints, group, shared_log)
    started = time.monotonic()
    drive(hosts, lambda: read_sem(endpoints, group))
    elapsed = time.monotonic() - started

    intervals = reboot_intervals(hosts, shared_log)
    assert max_overlap(list(intervals.values())) <= max_holders, shared_log.read_text()
    for h in hosts:
        assert h.exit_codes == [0], (h.hid, h.exit_codes)  # SIGTERM: exit 0 at once...
        assert h.held_when_down == [True], h.hid  # ...keeping the slot while the host is down
        assert not (h.dir / "reboot-needed").exists()
    peak = check_history(history(watch_url, semaphore_key(group)), max_holders)
    assert peak == max_holders, f"never {max_holders} hosts rebooting at once (peak {peak})"
    final = stored(watch_url, semaphore_key(group))
    assert final == f'{{"semaphore":{max_holders},"max":{max_holders},"holders":[]}}'
    print(f"{n} hosts, max {max_holders}: all rebooted in {elapsed:.1f}s")


# -- the daemons contending ---------------------------------------------------------------------------


def test_five_agents_max_one_on_pyetcd_cluster(pyetcd3: Cluster, tmp_path: Path) -> None:
    contend(tmp_path, urls(pyetcd3), pyetcd3.members[0].url, 5, 1, "")


def test_five_agents_max_two_in_a_group_on_pyetcd_cluster(pyetcd3: Cluster, tmp_path: Path) -> None:
    contend(tmp_path, urls(pyetcd3), pyetcd3.members[1].url, 5, 2, "rack 2/b")


def test_three_agents_max_two_on_debian_etcd(etcd: Server, tmp_path: Path) -> None:
    contend(tmp_path, [etcd.url], etcd.url, 3, 2, "")


# -- locksmithctl's bytes, on pyetcd and on etcd ------------------------------------------------------

CTL_SCRIPT: list[tuple[list[str], int, str, str | None]] = [
    # (args, exit status, stdout or stderr, stored value afterwards; None: as before)
    (["status"], 0, "Available: 1\nMax: 1\n", '{"semaphore":1,"max":1,"holders":null}'),
    (["lock", ID], 0, "", '{"semaphore":0,"max":1,"holders":["69d27b356a94476da859461d3a3bc6fd"]}'),
    (["lock", "0b"], 1, "Error locking: semaphore is at 0\n", None),
    (["set-max", "3"], 0, "Old-Max: 1\nMax: 3\n", '{"semaphore":2,"max":3,"holders":["69d27b356a94476da859461d3a3bc6fd"]}'),
    (["lock", "0b"], 0, "", '{"semaphore":1,"max":3,"holders":["0b","69d27b356a94476da859461d3a3bc6fd"]}'),
    (["lock", "0b"], 1, "Error locking: holder exists\n", None),
    (["lock", "z<&>"], 0, "", '{"semaphore":0,"max":3,"holders":["0b","69d27b356a94476da859461d3a3bc6fd",'
                              '"z\\u003c\\u0026\\u003e"]}'),
    (["set-max", "1"], 0, "Old-Max: 3\nMax: 1\n", '{"semaphore":-2,"max":1,"holders":["0b",'
                                                  '"69d27b356a94476da859461d3a3bc6fd","z\\u003c\\u0026\\u003e"]}'),
    (["status"], 0, "Available: -2\nMax: 1\n\nMACHINE ID\n0b\n69d27b356a94476da859461d3a3bc6fd\nz<&>\n", None),
    (["unlock", "nobody"], 1, "Error unlocking: holder does not exist\n", None),
    (["unlock", "z<&>"], 0, "", '{"semaphore":-1,"max":1,"holders":["0b","69d27b356a94476da859461d3a3bc6fd"]}'),
    (["unlock", ID], 0, "", '{"semaphore":0,"max":1,"holders":["0b"]}'),
    (["unlock", "0b"], 0, "", '{"semaphore":1,"max":1,"holders":[]}'),
    (["set-max"], 1, "New maximum value must be set.\n", None),
    (["set-max", "two"], 1, "Invalid maximum value: two\n", None),
    (["set-max", "-1"], 1, "Invalid maximum value: -1 (must be 0 or more)\n", None),
    (["set-max", "0"], 0, "Old-Max: 1\nMax: 0\n", '{"semaphore":0,"max":0,"holders":[]}'),
    (["lock", "a"], 1, "Error locking: semaphore is at 0\n", None),
]


def run_ctl_script(url: str) -> list[tuple[int, str, str, str]]:
    seen = []
    value = ""
    for args, rc, text, after in CTL_SCRIPT:
        r = ctl([url], *args)
        value = stored(url)
        seen.append((r.returncode, r.stdout, r.stderr, value))
        assert r.returncode == rc, (args, r)
        assert (r.stdout if rc == 0 else r.stderr) == text, (args, r)
        if after is not None:
            assert value == after, (args, value)
    return seen


def test_ctl_writes_the_same_bytes_to_pyetcd_and_etcd(tmp_path: Path) -> None:
    if not etcd_available():
        pytest.skip("Debian's etcd is not installed (make etcd)")
    # Fresh stores: the default key must not exist yet.
    srv, ref = pyetcd_server(tmp_path, "ctl").start(), etcd_server(tmp_path, "ctl-ref").start()
    try:
        with ThreadPoolExecutor(2) as pool:  # the same script on both stores, side by side
            on_pyetcd, on_etcd = pool.map(run_ctl_script, [srv.url, ref.url])
        assert on_pyetcd == on_etcd
        # A group's key is escaped the same way on both stores.
        for url in (srv.url, ref.url):
            assert ctl([url], "-group", "a b/c~é", "lock", "x").returncode == 0
            node = KeysClient([url]).get("coreos.com/updateengine/rebootlock/groups", recursive=True).node
            assert [n["key"] for n in node["nodes"]] == ["/coreos.com/updateengine/rebootlock/groups/a+b%2Fc~%C3%A9"]
            assert stored(url, semaphore_key("a b/c~é")) == '{"semaphore":0,"max":1,"holders":["x"]}'
    finally:
        srv.stop()
        ref.stop()


def test_compare_and_swap_on_modified_index(pyetcd3: Cluster, etcd: Server) -> None:
    """The spec's observed sequence: create, CAS at the created index, a stale CAS -> 101 [9 != 10]."""
    causes = []
    for url in (pyetcd3.members[2].url, etcd.url):
        client = LockClient(KeysClient([url]), "cas-check")
        assert client.init() is True and client.init() is False
        sem, index = client.get()
        new_index = client.cas(sem.lock(ID), index)
        with pytest.raises(EtcdError) as err:
            client.cas(sem.lock("stale"), index)
        assert (err.value.error_code, err.value.status, err.value.message) == (101, 412, "Compare failed")
        causes.append(err.value.cause == f"[{index} != {new_index}]")
        assert stored(url, client.key) == '{"semaphore":0,"max":1,"holders":["69d27b356a94476da859461d3a3bc6fd"]}'
    assert causes == [True, True]


def test_unknown_fields_are_kept(etcd: Server) -> None:
    key = semaphore_key("extra")
    KeysClient([etcd.url]).set(key, '{"semaphore":2,"max":2,"holders":null,"owner":"ops"}')
    assert ctl([etcd.url], "-group", "extra", "lock", "h").returncode == 0
    assert stored(etcd.url, key) == '{"semaphore":1,"max":2,"holders":["h"],"owner":"ops"}'


# -- durability -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["sigterm", "sigkill"])
def test_cluster_stopped_mid_lock_keeps_the_holder(tmp_path: Path, how: str) -> None:
    c = Cluster(tmp_path / "c", 3)
    c.base.mkdir(parents=True)
    try:
        c.start()
        eps = urls(c)
        assert ctl(eps, "lock", ID).returncode == 0
        for m in c.members:
            if how == "sigterm":
                assert m.stop() is not None
            else:
                m.kill9()
        for m in c.members:
            c.launch(m)
        c.wait_leader(20.0)
        r = ctl(list(reversed(eps)), "status")
        assert r.returncode == 0 and r.stdout.endswith(f"MACHINE ID\n{ID}\n"), r
        assert ctl(eps, "unlock", ID).returncode == 0
        for m in c.members:  # every member has it, once caught up
            deadline = time.monotonic() + 10
            while stored(m.url) != '{"semaphore":1,"max":1,"holders":[]}':
                assert time.monotonic() < deadline, (m.name, stored(m.url))
                time.sleep(0.05)
    finally:
        c.stop_all()


# -- the daemon's other paths (one pyetcd) --------------------------------------------------------------


def agent_argv(url: str, hid: str, d: Path, *extra: str) -> list[str]:
    return [*AGENT, "-endpoint", url, "-id", hid, "-state-file", str(d / "state"), "-reboot-detector", "file",
            "-trigger-file", str(d / "reboot-needed"), *FAST, *extra]


def wait_log(h: Host, text: str, timeout_s: float = 15.0) -> None:
    """Wait for `text` in what the agent's current run has logged."""
    deadline = time.monotonic() + timeout_s
    while text not in h.log().rsplit("==== boot", 1)[-1]:
        if h.proc is not None and h.proc.poll() is not None:
            raise AssertionError(f"agent exited ({h.proc.returncode}) before {text!r}:\n{h.log()}")
        assert time.monotonic() < deadline, f"no {text!r} within {timeout_s}s:\n{h.log()}"
        time.sleep(0.02)


def test_refused_reboot_releases_the_slot_and_retries(server: Server, tmp_path: Path) -> None:
    (tmp_path / "reboot-needed").touch()
    reboot = (f"if [ ! -e {tmp_path}/tried ]; then : > {tmp_path}/tried; echo 'blocked by an inhibitor' >&2; "
              f"exit 1; fi; : > {tmp_path}/rebooting")
    h = Host("host-a", tmp_path, agent_argv(server.url, "host-a", tmp_path, "-reboot-strategy", "etcd-lock",
                                            "-reboot-command", reboot))
    try:
        h.start()
        wait_log(h, "Rebooting")
        wait_log(h, "Releasing the reboot lock of host-a (the reboot failed)")
        deadline = time.monotonic() + 10
        while not (tmp_path / "rebooting").exists():
            assert time.monotonic() < deadline, h.log()
            time.sleep(0.02)
        assert "Reboot failed: reboot command" in h.log() and "blocked by an inhibitor" in h.log()
        deadline = time.monotonic() + 5
        while "STATE=rebooting" not in (tmp_path / "state").read_text():
            assert time.monotonic() < deadline
            time.sleep(0.02)
        assert read_sem([server.url]).holder_list == ["host-a"]
        assert h.stop() == 0  # the shutdown: exit 0, the slot stays taken
        assert read_sem([server.url]).holder_list == ["host-a"]
        # Back after the reboot, no reboot needed any more: the slot is released.
        (tmp_path / "reboot-needed").unlink()
        h.argv = agent_argv(server.url, "host-a", tmp_path, "-reboot-strategy", "etcd-lock", "-reboot-command",
                            "exit 1")
        h.start()
        wait_log(h, "Released the reboot lock")
        assert stored(server.url) == '{"semaphore":1,"max":1,"holders":[]}'
        versions = [v.holder_list for v in history(server.url, DEFAULT_KEY)]
        assert versions == [[], ["host-a"], [], ["host-a"], []]  # lock, release, lock, (reboot), release
    finally:
        h.stop()


def test_missed_window_releases_the_lock(server: Server, tmp_path: Path) -> None:
    """The window is re-checked after the lock is taken: it closed meanwhile, so the slot goes back."""
    assert ctl([server.url], "lock", "blocker").returncode == 0
    (tmp_path / "reboot-needed").touch()
    now = time.time()
    start = now - now % 60  # this minute, local time (the offset from UTC is whole minutes)
    length_s = now - start + 4.0  # the window closes 4 s from now
    h = Host("late", tmp_path, agent_argv(
        server.url, "late", tmp_path, "-reboot-strategy", "etcd-lock", "-reboot-command", f": > {tmp_path}/rebooting",
        "-reboot-window-start", time.strftime("%H:%M", time.localtime(start)),
        "-reboot-window-length", f"{int(length_s * 1000)}ms"))
    try:
        h.start()
        wait_log(h, "Failed to acquire lock: semaphore is at 0")
        time.sleep(max(0.0, start + length_s + 0.2 - time.time()))
        assert ctl([server.url], "unlock", "blocker").returncode == 0
        wait_log(h, "The reboot window passed while waiting for the lock")
        wait_log(h, "Waiting for the reboot window: it opens at")
        assert not (tmp_path / "rebooting").exists()
        assert stored(server.url) == '{"semaphore":1,"max":1,"holders":[]}'
        assert ["late"] in [v.holder_list for v in history(server.url, DEFAULT_KEY)]
    finally:
        h.stop()


def test_reboot_strategy_from_config_file_never_touches_the_store(server: Server, tmp_path: Path) -> None:
    conf = tmp_path / "locksmith.conf"
    conf.write_text(f"# as /etc/coreos/update.conf\nREBOOT_STRATEGY=reboot\nLOCKSMITHD_ENDPOINT={server.url}\n")
    argv = [*AGENT, "-id", "r1", "-state-file", str(tmp_path / "state"), "-reboot-detector", "file",
            "-trigger-file", str(tmp_path / "need"), "-reboot-command", f": > {tmp_path}/rebooting", *FAST,
            "-config-file", str(conf)]
    h = Host("r1", tmp_path, argv)
    try:
        h.start()
        wait_log(h, "strategy reboot, holder ID r1")
        # locksmithctl send-need-reboot is the manual trigger.
        r = ctl([], "-trigger-file", str(tmp_path / "need"), "send-need-reboot")
        assert r.returncode == 0, r
        wait_log(h, "Rebooting")
        deadline = time.monotonic() + 5
        while not (tmp_path / "rebooting").exists():
            assert time.monotonic() < deadline, h.log()
            time.sleep(0.02)
        with pytest.raises(EtcdError) as err:
            KeysClient([server.url]).get(DEFAULT_KEY)
        assert err.value.error_code == 100
    finally:
        h.stop()


@pytest.mark.parametrize(("env", "args", "rc", "message"), [
    ({"REBOOT_STRATEGY": "off"}, [], 0, 'Reboot strategy is "off" - locksmithd is exiting.'),
    ({"REBOOT_STRATEGY": "best-effort"}, [], 1, "unknown strategy: best-effort"),
    ({"REBOOT_WINDOW_START": "Thu 04:00"}, [], 1,
     "Either both or neither $REBOOT_WINDOW_START and $REBOOT_WINDOW_LENGTH must be set"),
    ({"LOCKSMITHD_REBOOT_WINDOW_START": "4:00", "LOCKSMITHD_REBOOT_WINDOW_LENGTH": "1d"}, [], 1,
     "Error parsing reboot window: "),
    ({}, ["-no-such-flag"], 2, "flag provided but not defined: -no-such-flag"),
])
def test_agent_start_up_outcomes(tmp_path: Path, env: dict[str, str], args: list[str], rc: int, message: str) -> None:
    argv = [*AGENT, "-id", "x", "-state-file", str(tmp_path / "state"), "-config-file=", *args]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=30, env=clean_env(**env))
    assert r.returncode == rc, r
    assert message in r.stderr, r.stderr


def test_a_second_agent_on_the_host_refuses_to_run(server: Server, tmp_path: Path) -> None:
    h = Host("one", tmp_path, agent_argv(server.url, "one", tmp_path, "-reboot-strategy", "etcd-lock"))
    try:
        h.start()
        wait_log(h, "Waiting for a reboot to be needed")
        r = subprocess.run(h.argv, capture_output=True, text=True, timeout=30, env=clean_env())
        assert r.returncode == 1 and "another pyetcd-locksmithd is running" in r.stderr, r
    finally:
        h.stop()


# -- the CLI's settings -------------------------------------------------------------------------------


def test_ctl_environment_and_flag_precedence(server: Server) -> None:
    env = clean_env(LOCKSMITHCTL_ENDPOINT=f"http://127.0.0.1:{free_port()},{server.url}",
                    LOCKSMITHCTL_GROUP="from-env")
    assert ctl([], "lock", "e1", env=env).returncode == 0  # the dead first endpoint is skipped
    assert stored(server.url, semaphore_key("from-env")) == '{"semaphore":0,"max":1,"holders":["e1"]}'
    assert ctl([], "--group=flag", "lock", "f1", env=env).returncode == 0  # a flag beats the variable
    assert read_sem([server.url], "flag").holder_list == ["f1"]
    r = ctl([f"http://127.0.0.1:{free_port()}"], "status")
    assert r.returncode == 1 and r.stderr.startswith("Error initializing etcd client: "), r
    r = ctl([server.url], "frobnicate")
    assert r.returncode == 2 and "Unknown command 'frobnicate'" in r.stderr
    r = ctl([], "-version")
    assert r.returncode == 0 and r.stdout.startswith("pyetcd-locksmithctl version ")
    r = ctl([], "help", "set-max")
    assert r.returncode == 0 and "set-max N" in r.stdout


def test_ctl_lock_defaults_to_this_machine_id(server: Server) -> None:
    try:
        own = Path("/etc/machine-id").read_text().strip()
    except OSError:
        own = ""
    if not own:
        pytest.skip("this host has no /etc/machine-id")
    assert ctl([server.url], "lock").returncode == 0
    assert read_sem([server.url]).holder_list == [own]
    assert ctl([server.url], "unlock").returncode == 0


@pytest.mark.skipif(os.geteuid() != 0, reason="`reboot` needs root")
def test_ctl_reboot_locks_and_unlocks_when_the_reboot_fails(server: Server, tmp_path: Path) -> None:
    if not Path("/etc/machine-id").exists():
        pytest.skip("this host has no /etc/machine-id")
    own = Path("/etc/machine-id").read_text().strip()
    # Never the real reboot: always a command.
    r = ctl([server.url], "-reboot-command", "echo nope >&2; exit 1", "reboot")
    assert r.returncode == 1 and "Error rebooting" in r.stderr and "the lock was released" in r.stderr, r
    assert read_sem([server.url]).holder_list == []
    r = ctl([server.url], "-reboot-command", f": > {tmp_path}/rebooted", "reboot")
    assert r.returncode == 0 and (tmp_path / "rebooted").exists(), r
    assert read_sem([server.url]).holder_list == [own]


def test_ctl_over_tls_with_client_certificates(tmp_path: Path) -> None:
    from pyetcd.ops.certs import create_ca, issue

    ca = create_ca(tmp_path)
    srv_cert = issue(tmp_path, ca, "server", "server", ["127.0.0.1", "localhost"])
    cli = issue(tmp_path, ca, "client", "client", common_name="root")
    procs = []
    try:
        for mutual in (True, False):
            port = free_port()
            url = f"https://127.0.0.1:{port}"
            argv = [str(Path(sys.executable).parent / "pyetcd"), "--name", "tls", "--data-dir",
                    str(tmp_path / f"tls{mutual}.etcd"), "--listen-client-urls", url, "--advertise-client-urls", url,
                    "--cert-file", str(srv_cert.cert), "--key-file", str(srv_cert.key),
                    "--trusted-ca-file", str(ca.cert), *(["--client-cert-auth"] if mutual else [])]
            procs.append(subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                          env=clean_env()))
            full = ["-etcd-cafile", str(ca.cert), "-etcd-certfile", str(cli.cert), "-etcd-keyfile", str(cli.key)]
            deadline = time.monotonic() + 20
            while (r := ctl([url], *full, "status")).returncode != 0:
                assert time.monotonic() < deadline, r
                time.sleep(0.1)
            assert r.stdout == "Available: 1\nMax: 1\n"
            env = clean_env(LOCKSMITHCTL_ETCD_CAFILE=str(ca.cert))  # CA only: server-only TLS
            r = ctl([url], "lock", "t1", env=env)
            assert r.returncode == (1 if mutual else 0), r
            assert ctl([url], "status").returncode == 1  # no CA: the server is not trusted
    finally:
        for p in procs:
            p.terminate()
            p.wait(10)


def test_real_locksmithctl_interop(server: Server) -> None:
    binary = shutil.which("locksmithctl")
    if binary is None:
        pytest.skip("CoreOS locksmith is not installed: it is not packaged for Debian (apt-cache policy locksmith "
                    "has no candidate) nor on PyPI, so its wire format is checked against the spec's fixtures")
    assert ctl([server.url], "lock", ID).returncode == 0
    r = subprocess.run([binary, "-endpoint", server.url, "status"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and ID in r.stdout, r
    r = subprocess.run([binary, "-endpoint", server.url, "unlock", ID], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r
    assert stored(server.url) == '{"semaphore":1,"max":1,"holders":[]}'
