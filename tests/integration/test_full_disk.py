"""A full disk loses nothing: real pyetcd processes whose data dir is a small tmpfs that fills up.

* One member: the write that finds no room gets etcd's 500 errorCode 300 "etcdserver: no space", reads
  and watches from history go on, the log and systemd's STATUS= say "disk full", writes resume by
  themselves once space is freed, and after kill -9 + restart every acknowledged write is there, nothing
  refused is, and the WAL reopens without a torn record.
* Three members, one of them on a full disk: as a follower it refuses writes sent to it but keeps its
  place (same leader, same term) and catches up once space is freed; as the leader it steps down, the
  others go on, and no acknowledged write is lost.
* fsync EIO (the PYETCD_FAULT_FSYNC_EIO_AFTER test fault point): the member stops with a CRITICAL log;
  restarted without the fault, every acknowledged write is there.

Every data dir is its own tmpfs (needs root: skipped otherwise); logs are written outside them.
"""

from __future__ import annotations

import json
import os
import re
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.cluster.conftest import ELECTION_MS, Cluster, Member
from tests.integration._http import RawConn, Resp, build_request, request
from tests.support.kit import clean_env, wait_for
from tests.support.servers import Server, pyetcd_server
from tests.support.tmpfs import MountTmpfs, fill, mount_tmpfs

__all__ = ["mount_tmpfs"]  # the fixture, used by name

NO_SPACE = "etcdserver: no space"
VALUE = "v" * 1000  # ~1 KiB per entry: a few writes use up a page's slack
CLIENT_ERRORS = (OSError, ValueError)
PAGE = os.sysconf("SC_PAGE_SIZE")


# ---- helpers ---------------------------------------------------------------------------------------


def put(port: int, key: str, value: str, timeout: float = 10.0) -> Resp:
    return request(port, "PUT", f"/v2/keys{key}", form={"value": value}, timeout=timeout)


def get(port: int, key: str, timeout: float = 5.0) -> Resp:
    return request(port, "GET", f"/v2/keys{key}", timeout=timeout)


def is_no_space(r: Resp) -> bool:
    """etcd's answer to a write while the disk is full: 500 {"errorCode":300,...,"cause":"etcdserver: no space"}."""
    if r.status != 500:
        return False
    body = r.json()
    return body.get("errorCode") == 300 and body.get("message") == "Raft Internal Error" and body.get("cause") == NO_SPACE


def value_of(port: int, key: str) -> str | None:
    r = get(port, key)
    if r.status == 404:
        return None
    assert r.status == 200, (key, r.status, r.body[:200])
    return str(r.json()["node"]["value"])


class Notifications:
    """A NOTIFY_SOCKET (the datagram socket systemd gives a service) and everything sent to it."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(0.1)
        self.messages: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="notify", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.messages.append(self.sock.recv(65536).decode())
            except TimeoutError:
                continue
            except OSError:
                return

    def statuses(self) -> list[str]:
        return [line[len("STATUS="):] for m in list(self.messages) for line in m.split("\n") if line.startswith("STATUS=")]

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


@pytest.fixture
def notifications(tmp_path: Path) -> Iterator[Notifications]:
    n = Notifications(tmp_path / "notify.sock")
    yield n
    n.close()


def start(srv: Server, env: dict[str, str] | None = None, wait_s: float = 20.0) -> None:
    """Server.start with an environment of our choosing (NOTIFY_SOCKET, a fault point)."""
    srv.log_path = srv.data_dir.parent / f"{srv.data_dir.name}.log"  # outside the tmpfs: it must not fill up
    srv.launch(srv.argv, env=env if env is not None else clean_env("ETCD", "NOTIFY_", "WATCHDOG_"))
    srv.wait_ready(srv.healthy, srv.kind, wait_s)


@dataclass
class Writes:
    """What a test's writes got: acknowledged (key -> value), refused with "no space", and no definite
    answer (anything else: the write may or may not have happened)."""

    acked: dict[str, str] = field(default_factory=dict)
    refused: set[str] = field(default_factory=set)
    other: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def attempt(self, port: int, key: str, value: str = VALUE, timeout: float = 10.0) -> Resp | None:
        try:
            r = put(port, key, value, timeout)
        except CLIENT_ERRORS as e:
            with self.lock:
                self.other.append(f"{key}: {e!r}")
            return None
        with self.lock:
            if r.status in (200, 201):
                self.acked[key] = value
            elif is_no_space(r):
                self.refused.add(key)
            else:
                self.other.append(f"{key}: {r.status} {r.body[:200]!r}")
        return r


FULL_LOG = "disk full, writes are refused until space is freed"
RESUMED_LOG = "the disk has room again: writes resume"


def assert_still_full(log: str) -> None:
    """One disk-full episode, not over yet: the member never thought the disk had room while it was full
    (a write that fits in the slack of a file's last page is no sign of room)."""
    assert log.count(FULL_LOG) == 1 and RESUMED_LOG not in log, log[-3000:]


# ---- one member --------------------------------------------------------------------------------------


def test_single_member_full_disk_refuses_writes_resumes_and_loses_nothing(
        tmp_path: Path, mount_tmpfs: MountTmpfs, notifications: Notifications) -> None:
    srv = pyetcd_server(tmp_path, name="full", extra=["--snapshot-count", "16"])
    mount_tmpfs("2m", at=srv.data_dir)
    env = clean_env("ETCD", "NOTIFY_", "WATCHDOG_", add={"NOTIFY_SOCKET": notifications.path})
    start(srv, env)
    try:
        writes = Writes()
        for i in range(20):
            r = writes.attempt(srv.port, f"/before/{i}")
            assert r is not None and r.status == 201, r
        first_index = int(get(srv.port, "/before/0").json()["node"]["modifiedIndex"])

        # Fill the tmpfs but for 32 pages (a few writes, a snapshot or two, one that no longer fits), then
        # write until a write is refused.
        filler = fill(srv.data_dir, leave=32 * PAGE)
        refused_at, refused_time = None, 0.0
        for i in range(300):
            r = writes.attempt(srv.port, f"/full/{i}")
            assert r is not None and (r.status == 201 or is_no_space(r)), (r, writes.other)
            if r.status != 201:
                refused_at, refused_time = i, time.monotonic()
                break
        assert refused_at is not None, "300 writes of 1 KiB fit in 32 pages?"
        # while full, more writes are refused the same way (never acknowledged, never a different error)
        for i in range(refused_at + 1, refused_at + 6):
            r = writes.attempt(srv.port, f"/full/{i}")
            assert r is not None and is_no_space(r), r

        # Reads go on: every acknowledged write, and a watch answered from the event history.
        for key, value in writes.acked.items():
            assert value_of(srv.port, key) == value
        r = request(srv.port, "GET", f"/v2/keys/before/0?wait=true&waitIndex={first_index}", timeout=5)
        assert r.status == 200, r
        assert r.json()["node"]["key"] == "/before/0" and r.json()["node"]["modifiedIndex"] == first_index
        r = request(srv.port, "GET", f"/v2/keys/before?wait=true&recursive=true&waitIndex={first_index + 1}", timeout=5)
        assert r.status == 200 and r.json()["node"]["key"] == "/before/1", r
        assert FULL_LOG in srv.log()
        assert wait_for(lambda: any(s.startswith("disk full") for s in notifications.statuses()), 5), \
            notifications.statuses()

        # It stays that way (each retry, once per second, finds no room) until space is freed.
        while time.monotonic() < refused_time + 2.5:
            r = writes.attempt(srv.port, f"/full/{refused_at + 100}")
            assert r is not None and is_no_space(r), r
            time.sleep(0.1)
        assert_still_full(srv.log())
        assert all(s.startswith("disk full") for s in notifications.statuses()[-1:]), notifications.statuses()

        # A watch waiting for the future, placed while full (its head says it is in place) ...
        watch = RawConn(srv.port, timeout=15)
        watch.send(build_request("GET", "/v2/keys/after?wait=true&recursive=true"))
        assert watch.read_head(5).status == 200

        # Space comes back: writes resume without a restart.
        filler.unlink()
        freed = time.monotonic()
        resumed = None
        for i in range(200):
            r = writes.attempt(srv.port, f"/after/{i}")
            assert r is None or r.status == 201 or is_no_space(r), r
            if r is not None and r.status == 201:
                resumed = time.monotonic() - freed
                break
            time.sleep(0.05)
        assert resumed is not None and resumed < 5.0, (resumed, srv.log_tail())
        # ... is woken by the first write after it (no write before it was acknowledged)
        event = json.loads(watch.read_chunk(5))
        watch.close()
        first_after = min((k for k in writes.acked if k.startswith("/after/")), key=lambda k: int(k.split("/")[-1]))
        assert (event["action"], event["node"]["key"]) == ("set", first_after), event
        assert RESUMED_LOG in srv.log()
        assert wait_for(lambda: not notifications.statuses()[-1].startswith("disk full"), 5), notifications.statuses()
        for i in range(5):
            r = writes.attempt(srv.port, f"/after/more/{i}")
            assert r is not None and r.status == 201, r

        # kill -9 and restart on the same data dir (the tmpfs stays mounted).
        srv.kill9()
        log_before = len(srv.log())
        start(srv)
        restart_log = srv.log()[log_before:]
        assert "torn last record" not in restart_log, restart_log
        assert "Traceback" not in srv.log()
        lost = {k: v for k, v in writes.acked.items() if value_of(srv.port, k) != v}
        assert not lost, f"{len(lost)} acknowledged writes lost: {sorted(lost)[:5]}"
        present = [k for k in writes.refused if value_of(srv.port, k) is not None]
        assert not present, f"refused writes are there: {present}"
        assert not writes.other, writes.other
    finally:
        srv.stop()


# ---- three members, one on a full disk -------------------------------------------------------------


@pytest.fixture
def cluster(tmp_path: Path, mount_tmpfs: MountTmpfs) -> Iterator[Cluster]:
    """Three members, each data dir its own small tmpfs (so any one of them can be made full)."""
    c = Cluster(tmp_path / "c", 3)
    c.base.mkdir(parents=True)
    for m in c.members:
        mount_tmpfs("8m", at=m.data_dir)
    try:
        c.start()
        yield c
    finally:
        c.stop_all()


def raft_term(m: Member) -> int:
    return int(get(m.client_port, "/").header("X-Raft-Term") or 0)


def role(c: Cluster, m: Member) -> tuple[str, str]:
    """(state, leader id) as the member reports them."""
    st = c.stats_self(m) or {}
    return str(st.get("state")), str(st.get("leaderInfo", {}).get("leader"))


class Writer:
    """One thread per target writing unique keys under `prefix` (one at a time), recording every answer.
    A write in flight when a disk fills may wait for its deadline, so the targets do not wait on each other."""

    def __init__(self, targets: list[Member], prefix: str, writes: Writes, max_writes: int = 2000) -> None:
        self.prefix, self.writes, self.max_writes = prefix, writes, max_writes
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(m,), name=f"writer-{m.name}", daemon=True)
                        for m in targets]

    def __enter__(self) -> Writer:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        for t in self.threads:
            t.join(15)
        assert not any(t.is_alive() for t in self.threads)

    def _run(self, m: Member) -> None:
        for i in range(self.max_writes):
            if self.stopping.is_set():
                return
            r = self.writes.attempt(m.client_port, f"{self.prefix}/{m.name}/{i}", timeout=10.0)
            if r is None or r.status != 201:
                time.sleep(0.02)

    def acked_via(self, m: Member) -> int:
        with self.writes.lock:
            return sum(1 for k in self.writes.acked if k.startswith(f"{self.prefix}/{m.name}/"))


def check_all_members(c: Cluster, writes: Writes, timeout_s: float = 15.0) -> None:
    """Every acknowledged write is on every member (once caught up), and no refused one is anywhere."""
    for m in c.members:
        def has_all(m: Member = m) -> bool:
            return all(value_of(m.client_port, k) == v for k, v in writes.acked.items())
        assert wait_for(has_all, timeout_s, 0.2), f"{m.name} lacks acknowledged writes:\n{c.logs()}"
        present = [k for k in writes.refused if value_of(m.client_port, k) is not None]
        assert not present, f"writes refused with 'no space' are on {m.name}: {present}\n{c.logs()}"


def test_full_follower_refuses_writes_keeps_its_place_and_catches_up(cluster: Cluster) -> None:
    c = cluster
    lead = c.wait_leader()
    full, other = [m for m in c.members if m is not lead]
    writes = Writes()
    for i in range(5):
        r = writes.attempt(lead.client_port, f"/before/{i}")
        assert r is not None and r.status == 201, r
    assert wait_for(lambda: value_of(full.client_port, "/before/4") == VALUE, 5)
    term = raft_term(lead)

    filler = fill(full.data_dir)
    # Writes through the leader go on (the other follower makes the quorum); the full one finds out.
    for i in range(300):
        r = writes.attempt(lead.client_port, f"/lead/{i}")
        assert r is not None and r.status == 201, (r, c.logs())
        if FULL_LOG in full.log():
            break
    assert FULL_LOG in full.log(), c.logs()

    # Writes sent to the full follower are refused; through the others they succeed.
    for i in range(5):
        r = writes.attempt(full.client_port, f"/full/{i}")
        assert r is not None and is_no_space(r), (r, c.logs())
        for m in (lead, other):
            r = writes.attempt(m.client_port, f"/{m.name}/{i}")
            assert r is not None and r.status == 201, (r, c.logs())
    # It keeps its place for a few election timeouts: a follower of the same leader in the same term,
    # answering reads.
    deadline = time.monotonic() + 4 * ELECTION_MS / 1000
    while time.monotonic() < deadline:
        assert role(c, full) == ("StateFollower", lead.id_hex), (role(c, full), c.logs())
        assert role(c, lead)[0] == "StateLeader"
        assert raft_term(full) == raft_term(lead) == term, c.logs()
        assert value_of(full.client_port, "/before/4") == VALUE
        time.sleep(0.1)

    assert_still_full(full.log())

    # Space comes back: it catches up by itself.
    filler.unlink()
    last = f"/lead/after-{int(time.monotonic())}"
    r = writes.attempt(lead.client_port, last, value="latest")
    assert r is not None and r.status == 201, r
    assert wait_for(lambda: value_of(full.client_port, last) == "latest", 10, 0.1), c.logs()
    assert c.agreed_leader() is lead and raft_term(lead) == term
    check_all_members(c, writes)
    assert not writes.other, writes.other
    assert "Traceback" not in c.logs(100000)


def test_full_leader_steps_down_and_no_acknowledged_write_is_lost(cluster: Cluster) -> None:
    c = cluster
    lead = c.wait_leader()
    writes = Writes()
    with Writer(c.members, "/w", writes) as w:
        assert wait_for(lambda: len(writes.acked) >= 30, 10), (writes, c.logs())
        filler = fill(lead.data_dir)
        t0 = time.monotonic()
        new = c.wait_leader(6 * ELECTION_MS / 1000, not_=lead)
        assert FULL_LOG in lead.log(), c.logs()
        # the cluster keeps accepting writes, through the new leader above all, while the disk stays full
        # for a few of the old leader's retries
        n = w.acked_via(new)
        assert wait_for(lambda: w.acked_via(new) >= n + 10 and time.monotonic() > t0 + 2.5, 10), \
            (writes.other, c.logs())
        r = writes.attempt(new.client_port, "/direct", value="to-the-new-leader")
        assert r is not None and r.status == 201, r
        assert role(c, lead) == ("StateFollower", new.id_hex), c.logs()
        assert_still_full(lead.log())

    filler.unlink()
    check_all_members(c, writes)
    assert "Traceback" not in c.logs(100000)
    # Only a write in flight when the disk filled (one per writer) may lack a definite answer ("request
    # timed out": it may have committed through the others).
    assert len(writes.other) <= len(c.members), writes.other


# ---- fsync EIO -------------------------------------------------------------------------------------

FSYNCS_ALLOWED = 12  # start-up takes a few (bootstrap, election, publication); then one per write batch


def test_fsync_eio_stops_the_member_and_a_restart_loses_no_acknowledged_write(tmp_path: Path) -> None:
    srv = pyetcd_server(tmp_path, name="eio")
    start(srv, clean_env("ETCD", "NOTIFY_", "WATCHDOG_", add={"PYETCD_FAULT_FSYNC_EIO_AFTER": str(FSYNCS_ALLOWED)}))
    try:
        assert "TEST FAULT POINT ARMED" in srv.log()
        writes = Writes()
        for i in range(FSYNCS_ALLOWED + 5):
            r = writes.attempt(srv.port, f"/eio/{i}", timeout=5.0)
            if r is None or r.status != 201:
                break
        assert srv.proc is not None
        rc = srv.proc.wait(10)
        assert rc != 0, srv.log_tail()
        assert 0 < len(writes.acked) < FSYNCS_ALLOWED, (writes, srv.log_tail())
        assert len(writes.other) == 1, writes.other  # the write whose fsync failed: no answer at all
        assert re.search(r"CRITICAL [\w.]*loop: WAL write/fsync failed, stopping", srv.log()), srv.log_tail()
        assert "Traceback" not in srv.log(), srv.log_tail()

        # A supervisor restarts it, without the fault: every acknowledged write is there.
        srv.proc = None
        log_before = len(srv.log())
        start(srv)
        assert "torn last record" not in srv.log()[log_before:]
        lost = {k: v for k, v in writes.acked.items() if value_of(srv.port, k) != v}
        assert not lost, f"acknowledged writes lost: {sorted(lost)}"
        r = writes.attempt(srv.port, "/eio/after-restart")
        assert r is not None and r.status == 201, r
    finally:
        srv.stop()
