"""The daemon's side of systemd, over the real protocols: sd_notify datagrams and journald's native socket.

A real pyetcd process gets NOTIFY_SOCKET (a datagram socket this test binds) and WATCHDOG_USEC, as
systemd would give it; we read what it says. journald: in a private mount namespace with a tmpfs on
/run, a small journald stand-in binds /run/systemd/journal/socket and decodes the native protocol
(KEY=value lines, or KEY\\n<le64 length><value>\\n), so the structured fields are checked end to end.
The real systemd and journald are exercised by `make e2e`.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.support.kit import clean_env
from tests.support.servers import PYETCD_BIN, free_port


def _collect(sock: socket.socket, until: float, stop_when: str | None = None) -> list[str]:
    out: list[str] = []
    while time.monotonic() < until:
        sock.settimeout(max(0.01, until - time.monotonic()))
        try:
            out.append(sock.recv(65536).decode())
        except TimeoutError:
            break
        if stop_when and stop_when in out[-1]:
            break
    return out


def test_ready_status_watchdog_and_stopping(tmp_path: Path) -> None:
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    port = free_port()
    env = clean_env("ETCD", "NOTIFY_", "WATCHDOG_", add={"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "400000"})  # 0.2 s pings
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen([str(PYETCD_BIN), "--name", "sd", "--data-dir", str(tmp_path / "sd"),
                             "--listen-client-urls", url, "--advertise-client-urls", url],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        first = _collect(sock, time.monotonic() + 15, stop_when="READY=1")
        ready = [m for m in first if "READY=1" in m]
        assert ready, first
        assert "STATUS=leader, term" in ready[0], ready
        assert any(m.startswith("STATUS=recovering data") for m in first), first
        pings = [m for m in _collect(sock, time.monotonic() + 1.0) if m == "WATCHDOG=1"]
        assert 3 <= len(pings) <= 8, pings  # every ~0.2 s

        # A stopped loop stops pinging (so systemd's watchdog fires); resumed, it pings again.
        proc.send_signal(signal.SIGSTOP)
        _collect(sock, time.monotonic() + 0.3)  # drain what was in flight
        assert _collect(sock, time.monotonic() + 1.0) == []
        proc.send_signal(signal.SIGCONT)
        assert "WATCHDOG=1" in _collect(sock, time.monotonic() + 1.0)

        proc.send_signal(signal.SIGTERM)
        last = _collect(sock, time.monotonic() + 10, stop_when="STOPPING=1")
        assert any(m.startswith("STOPPING=1") for m in last), last
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        sock.close()


def test_watchdog_pid_of_another_process_is_ignored(tmp_path: Path) -> None:
    """WATCHDOG_PID names the process systemd watches; a child that inherited the variables stays quiet."""
    from pyetcd.runtime.supervision import Supervisor

    sup = Supervisor({"NOTIFY_SOCKET": str(tmp_path / "x"), "WATCHDOG_USEC": "1000000", "WATCHDOG_PID": "1"})
    assert sup.watchdog_interval_s == 0
    sup = Supervisor({"NOTIFY_SOCKET": str(tmp_path / "x"), "WATCHDOG_USEC": "1000000",
                      "WATCHDOG_PID": str(os.getpid())})
    assert sup.watchdog_interval_s == 0.5


FAKE_JOURNALD = textwrap.dedent('''
    import json, os, socket, struct, subprocess, sys, time
    os.makedirs("/run/systemd/journal", exist_ok=True)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind("/run/systemd/journal/socket")
    log = open(sys.argv[1], "wb")
    st = os.fstat(log.fileno())
    env = dict(os.environ, JOURNAL_STREAM=f"{st.st_dev}:{st.st_ino}")  # stderr "is" the journal
    child = subprocess.Popen(sys.argv[3:], stdout=log, stderr=log, env=env)
    entries, deadline = [], time.monotonic() + float(sys.argv[2])
    s.settimeout(0.2)
    while time.monotonic() < deadline:
        try:
            data = s.recv(1 << 20)
        except TimeoutError:
            continue
        fields, i = {}, 0
        while i < len(data):
            nl = data.index(b"\\n", i)
            line = data[i:nl]
            if b"=" in line:
                k, v = line.split(b"=", 1)
                i = nl + 1
            else:
                (n,) = struct.unpack("<Q", data[nl + 1:nl + 9])
                k, v = line, data[nl + 9:nl + 9 + n]
                i = nl + 9 + n + 1
            fields[k.decode()] = v.decode(errors="replace")
        entries.append(fields)
    child.terminate()
    child.wait(10)
    print(json.dumps(entries))
''')


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("unshare") is None, reason="needs root and unshare")
def test_journald_gets_structured_fields(tmp_path: Path) -> None:
    pytest.importorskip("systemd.journal")
    script = tmp_path / "fake_journald.py"
    script.write_text(FAKE_JOURNALD)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = clean_env("ETCD", "NOTIFY_", "WATCHDOG_", "JOURNAL_")
    cmd = ["unshare", "--mount", "--propagation", "private", "sh", "-c",
           'mount -t tmpfs tmpfs /run && exec "$@"', "sh", sys.executable, str(script), str(tmp_path / "stderr"),
           "4", str(PYETCD_BIN), "--name", "jn", "--data-dir", str(tmp_path / "jn"),
           "--listen-client-urls", url, "--advertise-client-urls", url]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    entries = json.loads(out.stdout)
    ready = [e for e in entries if "ready to serve client requests" in e.get("MESSAGE", "")]
    assert ready, entries[:5]
    e = ready[0]
    assert e["SYSLOG_IDENTIFIER"] == "pyetcd" and e["PYETCD_MEMBER"] == "jn"
    assert e["PYETCD_MEMBER_ID"] and e["PYETCD_TERM"] and e["PYETCD_ROLE"] in ("leader", "follower", "candidate")
    assert e["PRIORITY"] == "6"  # info
    assert (tmp_path / "stderr").read_text() == ""  # nothing duplicated on stderr


def test_a_vanished_advertised_address_is_logged_and_in_status(tmp_path: Path) -> None:
    """A member in its own network namespace advertises 10.0.0.5 (on a veth); the address is deleted and
    added back while it runs: its log and STATUS= follow, from netlink events (no polling)."""
    ns = f"pyetcd-sup-{os.getpid()}"
    made = subprocess.run(["ip", "netns", "add", ns], capture_output=True, text=True)
    if made.returncode != 0:
        pytest.skip(f"cannot create a network namespace: {made.stderr.strip()}")
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    log_path = tmp_path / "member.log"
    proc = None
    try:
        for args in (["link", "set", "lo", "up"], ["link", "add", "d0", "type", "veth", "peer", "name", "p0"],
                     ["link", "set", "d0", "up"], ["link", "set", "p0", "up"], ["addr", "add", "10.0.0.5/24", "dev", "d0"]):
            subprocess.run(["ip", "-n", ns, *args], check=True, capture_output=True, timeout=10)
        env = clean_env("ETCD", "NOTIFY_", "WATCHDOG_", add={"NOTIFY_SOCKET": path})
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(["ip", "netns", "exec", ns, str(PYETCD_BIN), "--name", "$hostname",
                                     "--data-dir", str(tmp_path / "m.etcd"),
                                     "--listen-client-urls", "http://127.0.0.1:2379",
                                     "--advertise-client-urls", "http://$private_ipv4:2379",
                                     "--initial-advertise-peer-urls", "http://10.0.0.5:2380",
                                     "--advertise-interface", "d0"], env=env, stdout=log, stderr=subprocess.STDOUT)
        first = _collect(sock, time.monotonic() + 20, stop_when="READY=1")
        assert any("READY=1" in m for m in first), (first, log_path.read_text())
        subprocess.run(["ip", "-n", ns, "addr", "del", "10.0.0.5/24", "dev", "d0"], check=True, timeout=10)
        gone = _collect(sock, time.monotonic() + 10, stop_when="is missing")
        assert any("advertised address 10.0.0.5 is missing" in m for m in gone), gone
        subprocess.run(["ip", "-n", ns, "addr", "add", "10.0.0.5/24", "dev", "d0"], check=True, timeout=10)
        back = _collect(sock, time.monotonic() + 10, stop_when="STATUS=leader")
        assert back and "missing" not in back[-1], back
        log = log_path.read_text()
        assert "advertised address 10.0.0.5 was removed from d0" in log, log
        assert "advertised address 10.0.0.5 is back (on d0)" in log, log
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(10)
        sock.close()
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
