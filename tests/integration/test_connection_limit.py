"""The connection budget follows the open-files limit (issue 15): a real pyetcd started under
`prlimit --nofile=300:300` (runtime/fdlimit.py: 236 connections, 204 for clients, 140 of them watches).

A fleet of watchers fills the watch share: the next watch gets a clean 503, while a PUT on a new
connection still gets in (closing the longest idle keep-alive connection if it must) and wakes every
watcher; the peer listener keeps accepting; idle connections that take every slot never make the loop
spin, and once they go the member answers at once.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pyetcd.runtime.fdlimit import ConnectionBudget

from tests.cluster.conftest import Cluster, StartProxy
from tests.support.kit import wait_for
from tests.support.servers import Server, free_port

from ._http import PeerClosed, RawConn, build_request, request

LIMIT = 300
BUDGET = ConnectionBudget.for_limit(LIMIT)
PRLIMIT = ["prlimit", f"--nofile={LIMIT}:{LIMIT}", "--"]


def _fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def _tcp() -> list[tuple[int, int, str]]:
    """(local port, remote port, inode) of every IPv4 TCP socket."""
    with open("/proc/net/tcp") as f:
        rows = [line.split() for line in f.readlines()[1:]]
    return [(int(r[1].rsplit(":", 1)[1], 16), int(r[2].rsplit(":", 1)[1], 16), r[9]) for r in rows]


def _inodes(pid: int) -> set[str]:
    found = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if link.startswith("socket:["):
            found.add(link[8:-1])
    return found


def _accepted(pid: int, socks: list[socket.socket] | set[int]) -> int:
    """How many of `socks` (or client ports) the process has accepted (holds the other end of)."""
    ours = socks if isinstance(socks, set) else {s.getsockname()[1] for s in socks}
    held = _inodes(pid)
    return sum(1 for _, remote, inode in _tcp() if remote in ours and inode in held)


def _dialled(pid: int, port: int) -> set[int]:
    """The local ports of the process's connections to `port`."""
    held = _inodes(pid)
    return {local for local, remote, inode in _tcp() if remote == port and inode in held}


def _cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def _raw(port: int, n: int) -> list[socket.socket]:
    return [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(n)]


@pytest.fixture
def limited(tmp_path: Path) -> Iterator[tuple[Server, int]]:
    """A single member under a 300-fd limit, with its own peer listener: (server, peer port)."""
    port, peer = free_port(), free_port()
    c, p = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{peer}"
    argv = [*PRLIMIT, str(Path(sys.executable).parent / "pyetcd"), "--name", "lim",
            "--data-dir", str(tmp_path / "lim.pyetcd"), "--listen-client-urls", c, "--advertise-client-urls", c,
            "--listen-peer-urls", p, "--initial-advertise-peer-urls", p, "--initial-cluster", f"lim={p}"]
    srv = Server("pyetcd", port, tmp_path / "lim.pyetcd", argv)
    srv.start()
    try:
        yield srv, peer
    finally:
        srv.stop()


def _open_watchers(port: int, n: int, key: str) -> list[tuple[RawConn, bool]]:
    """n watchers on `key`, half long-poll and half streams; each has its 200 head read."""
    watchers = []
    for i in range(n):
        stream = i % 2 == 1
        c = RawConn(port, timeout=10)
        c.send(build_request("GET", f"/v2/keys{key}?wait=true" + ("&stream=true" if stream else "")))
        watchers.append((c, stream))
    for c, _ in watchers:
        head = c.read_head()
        assert head.status == 200 and head.chunked
    return watchers


def _all_woken(watchers: list[tuple[RawConn, bool]], key: str, value: str) -> None:
    for c, stream in watchers:
        event = json.loads(c.read_chunk())
        assert event["action"] == "set" and event["node"]["key"] == key and event["node"]["value"] == value
        if not stream:
            assert c.read_chunk() == b""  # the long poll's answer ends


def _refused_watch(port: int, key: str) -> None:
    c = RawConn(port, timeout=5)
    try:
        c.send(build_request("GET", f"/v2/keys{key}?wait=true"))
        r = c.read_response()
        assert r.status == 503, r.body
        assert r.header("Connection") == "close" and r.header("Retry-After") == "1"
        assert "too many watches" in r.json()["message"]
        assert c.closed_by_peer()  # its fd goes straight back
    finally:
        c.close()


def test_watchers_at_the_limit_never_lock_out_the_put(limited: tuple[Server, int]) -> None:
    srv, peer = limited
    assert f"open files limit {LIMIT}: up to {BUDGET.total} connections, {BUDGET.clients} of them for clients " \
           f"of which {BUDGET.watches} may hold watches" in srv.log()
    watchers = _open_watchers(srv.port, BUDGET.watches, "/fleet")

    # (a) the next watch gets etcd's 503 at once, on a connection from the reserve
    _refused_watch(srv.port, "/fleet")

    # every client slot taken: the watchers and idle connections that never send a byte
    idle = _raw(srv.port, BUDGET.clients - BUDGET.watches)
    assert wait_for(lambda: _accepted(srv.pid, idle) == len(idle), 5)

    # (c) the peer listener still accepts
    with RawConn(peer, timeout=5) as p:
        r = p.call("GET", "/members")
        assert r.status == 200 and r.json()

    # (b) a PUT on a new connection gets in (the longest idle connection makes room for it) and wakes
    # every watcher
    t0 = time.monotonic()
    r = request(srv.port, "PUT", "/v2/keys/fleet", form={"value": "woken"}, timeout=5)
    assert r.status == 201
    assert time.monotonic() - t0 < 4  # waited at most for an idle connection to count as idle (1 s)
    _all_woken(watchers, "/fleet", "woken")
    closed = 0
    for s in idle:
        s.settimeout(0.0)
        try:
            closed += s.recv(1) == b""
        except BlockingIOError:
            pass
        s.close()
    assert closed >= 1  # the one that made room, oldest first; the watchers were never touched
    for c, _ in watchers:
        c.close()
    metrics = request(srv.port, "GET", "/metrics", timeout=5).body.decode()
    assert "\npyetcd_watches_refused_total 1.0\n" in metrics  # the one refused in (a)


def test_idle_connections_taking_every_fd_do_not_spin_the_loop(limited: tuple[Server, int]) -> None:
    srv, _ = limited
    held = _raw(srv.port, BUDGET.clients)
    assert wait_for(lambda: _accepted(srv.pid, held) == len(held), 5)
    waiting = _raw(srv.port, 20)  # beyond the budget: in the backlog until the oldest idle ones make room
    # the loop has met them: it paused the listener, or already closed idle connections for them
    assert wait_for(lambda: "client connections at the limit" in srv.log() or _accepted(srv.pid, waiting), 5)
    cpu0, t0 = _cpu_s(srv.pid), time.monotonic()
    time.sleep(1.0)  # a measurement window: how much CPU the member burns while every slot is taken
    cpu = _cpu_s(srv.pid) - cpu0
    assert cpu < 0.15 * (time.monotonic() - t0), f"the loop spins: {cpu:.2f} s CPU in 1 s"  # before: 0.47 s
    assert _fds(srv.pid) <= LIMIT
    assert _accepted(srv.pid, held + waiting) <= BUDGET.clients
    for s in held + waiting:
        s.close()
    t1 = time.monotonic()
    assert request(srv.port, "PUT", "/v2/keys/after", form={"value": "1"}, timeout=5).status == 201
    assert time.monotonic() - t1 < 1
    assert srv.healthy()


class _LimitedFirst(Cluster):
    """m1 runs under the 300-fd limit."""

    def argv(self, m):  # type: ignore[no-untyped-def]
        argv = super().argv(m)
        return [*PRLIMIT, *argv] if m.name == "m1" else argv


def test_a_member_full_of_watchers_still_takes_its_peers(tmp_path: Path) -> None:
    c = _LimitedFirst(tmp_path / "c", 3)
    c.base.mkdir(parents=True)
    try:
        c.start()
        m1, m2, m3 = c.by_name("m1"), c.by_name("m2"), c.by_name("m3")
        watchers = _open_watchers(m1.client_port, BUDGET.watches, "/peerwake")
        _refused_watch(m1.client_port, "/peerwake")
        idle = _raw(m1.client_port, BUDGET.clients - BUDGET.watches)
        assert wait_for(lambda: _accepted(m1.pid, idle) == len(idle), 5)
        # m2 and m3 come back in turn: whoever leads then, m1 must accept a new peer connection (from the
        # leader's new process, or its followers' answers) though every client slot is taken
        for m in (m2, m3):
            m.kill9()
            c.restart(m)
        assert wait_for(lambda: _accepted(m1.pid, _dialled(m2.pid, m1.peer_port) | _dialled(m3.pid, m1.peer_port)), 5)
        r = request(m2.client_port, "PUT", "/v2/keys/peerwake", form={"value": "via-m2"}, timeout=8)
        assert r.status == 201
        _all_woken(watchers, "/peerwake", "via-m2")
        for w, _ in watchers:
            w.close()
        for s in idle:
            s.close()
    except (PeerClosed, AssertionError):
        print(c.logs(4000))
        raise
    finally:
        c.stop_all()


def test_a_proxy_refuses_watches_beyond_its_share_and_still_relays_the_put(tmp_path: Path) -> None:
    c = Cluster(tmp_path / "c", 1)
    c.base.mkdir(parents=True)
    proxies = StartProxy(tmp_path)
    try:
        c.start()
        p = proxies(c)
        # the budget follows a live change of the limit (a proxy holds 2 fds per relayed connection)
        subprocess.run(["prlimit", "--pid", str(p.proc.pid), f"--nofile={LIMIT}:{LIMIT}"], check=True)
        share = ConnectionBudget.for_limit(LIMIT, peers=False, fds_per_conn=2)
        assert wait_for(lambda: f"open files limit {LIMIT}: up to {share.total} connections" in p.proc.log(), 5)
        watchers = _open_watchers(p.port, share.watches, "/proxied")
        _refused_watch(p.port, "/proxied")
        assert request(p.port, "PUT", "/v2/keys/proxied", form={"value": "relayed"}, timeout=5).status == 201
        _all_woken(watchers, "/proxied", "relayed")
        _open_watchers(p.port, 1, "/proxied")  # the long polls that ended gave their slots back
        for w, _ in watchers:
            w.close()
    finally:
        proxies.stop_all()
        c.stop_all()
