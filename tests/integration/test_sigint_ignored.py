"""The long-running tools stop on SIGINT even when started with SIGINT ignored.

A background job of a non-interactive shell (`sh -c 'tool &'`), nohup and some supervisors start a process
with SIGINT ignored, and CPython then never installs its KeyboardInterrupt handler. Go programs turn SIGINT
back on when they call signal.Notify for it; each of these tools installs its own SIGINT handling
explicitly for the same reason. Each test starts the tool with SIGINT ignored (the child's preexec sets
SIG_IGN), waits until it is provably running its main loop (past the point where it installs its
handlers), sends SIGINT and expects a prompt stop with the tool's usual exit status.
(pyetcdctl's watch, exec-watch and cluster-health --forever: tests/differential/test_etcdctl.py, beside
etcdctl under the same condition.)
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support import kit
from tests.support.servers import PYETCD_BIN, Server, free_port, pyetcd_server

from ._http import request

STOP_WITHIN_S = 5.0


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


class Tool:
    """A process started with SIGINT ignored, its stdout and stderr collected line by line."""

    def __init__(self, argv: list[str]) -> None:
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, env=kit.clean_env("ETCD", "PYETCD"),
                                     preexec_fn=_ignore_sigint)
        self.lines: list[str] = []
        assert self.proc.stdout is not None
        out = self.proc.stdout
        self.reader = threading.Thread(
            target=lambda: self.lines.extend(line.decode(errors="replace") for line in iter(out.readline, b"")),
            daemon=True)
        self.reader.start()

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def wait_until(self, ready: Callable[[], bool], what: str, timeout_s: float = 20.0) -> None:
        deadline = time.monotonic() + timeout_s
        while not ready():
            assert self.proc.poll() is None, f"exited ({self.proc.returncode}) before {what}:\n{self.output}"
            assert time.monotonic() < deadline, f"not {what} within {timeout_s}s:\n{self.output}"
            time.sleep(0.02)

    def wait_log(self, text: str) -> None:
        self.wait_until(lambda: text in self.output, f"logging {text!r}")

    def sigint(self) -> int:
        """SIGINT it; its exit status once it stopped (it must, within STOP_WITHIN_S)."""
        self.proc.send_signal(signal.SIGINT)
        try:
            rc = self.proc.wait(STOP_WITHIN_S)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"still running {STOP_WITHIN_S}s after SIGINT:\n{self.output}") from None
        self.reader.join(5)
        return rc

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture
def tools() -> Iterator[Callable[[list[str]], Tool]]:
    started: list[Tool] = []

    def start(argv: list[str]) -> Tool:
        t = Tool(argv)
        started.append(t)
        return t

    yield start
    for t in started:
        t.kill()


def _sigint_disposition(pid: int) -> str:
    """'ignored', 'caught' or 'default', from /proc/<pid>/status."""
    fields = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            fields[key] = value.strip()
    bit = 1 << (signal.SIGINT - 1)
    if int(fields["SigIgn"], 16) & bit:
        return "ignored"
    return "caught" if int(fields["SigCgt"], 16) & bit else "default"


def test_the_child_really_starts_with_sigint_ignored(tools: Callable[[list[str]], Tool]) -> None:
    """Control for the tests below: a plain Python child started this way keeps SIGINT ignored."""
    t = tools([sys.executable, "-c", "import time; print('up', flush=True); time.sleep(60)"])
    t.wait_log("up")
    assert _sigint_disposition(t.proc.pid) == "ignored"


def test_pyetcd_daemon_serving(tools: Callable[[list[str]], Tool], tmp_path: Path) -> None:
    srv = pyetcd_server(tmp_path)
    t = tools(srv.argv)
    t.wait_until(lambda: _answers(srv), "serving")  # the event loop runs: its handlers are installed
    assert _sigint_disposition(t.proc.pid) == "caught"
    assert t.sigint() == 0
    assert "received SIGINT, shutting down" in t.output


def _answers(srv: Server) -> bool:
    try:
        return request(srv.port, "GET", "/version", timeout=1).status == 200
    except OSError:
        return False


def test_pyetcd_daemon_waiting_in_discovery(tools: Callable[[list[str]], Tool], tmp_path: Path) -> None:
    """Before its event loop runs (here: waiting on a discovery URL that never answers), SIGINT ends the
    daemon at once, as it ends etcd before its handlers are in place."""
    with socket.create_server(("127.0.0.1", 0)) as hole:
        hole.settimeout(20)
        port = free_port()
        t = tools([str(PYETCD_BIN), "--name", "d1", "--data-dir", str(tmp_path / "d1.etcd"),
                   "--listen-client-urls", f"http://127.0.0.1:{port}",
                   "--advertise-client-urls", f"http://127.0.0.1:{port}",
                   "--listen-peer-urls", f"http://127.0.0.1:{free_port()}",
                   "--discovery", f"http://127.0.0.1:{hole.getsockname()[1]}/token"])
        conn, _ = hole.accept()  # the daemon is in discovery, waiting for an answer that never comes
        with conn:
            assert _sigint_disposition(t.proc.pid) == "default"
            assert t.sigint() == -signal.SIGINT
    assert "Traceback" not in t.output


def test_discovery_service(tools: Callable[[list[str]], Tool], make_server: Callable[..., Server]) -> None:
    backing = make_server().start()
    port = free_port()
    t = tools([str(PYETCD_BIN), "discovery-service", "--addr", f"127.0.0.1:{port}", "--etcd", backing.url,
               "--host", f"http://127.0.0.1:{port}"])
    t.wait_log("discovery serving on")
    assert t.sigint() == 0
    assert "discovery service stopping" in t.output


def test_locksmithd(tools: Callable[[list[str]], Tool], tmp_path: Path) -> None:
    t = tools([sys.executable, "-m", "pyetcd.locksmith.agent", "-id", "host-a", "-reboot-strategy", "reboot",
               "-reboot-detector", "file", "-trigger-file", str(tmp_path / "reboot-needed"),
               "-state-file", str(tmp_path / "state"), "-trigger-interval", "20ms", "-config-file="])
    t.wait_log("Waiting for a reboot to be needed")
    assert t.sigint() == 0
    assert "Received SIGINT, exiting." in t.output


@pytest.mark.parametrize("role", ["agent", "scheduler"])
def test_sched(tools: Callable[[list[str]], Tool], make_server: Callable[..., Server], role: str) -> None:
    store = make_server().start()
    argv = [sys.executable, "-m", "pyetcd.sched.cli", role, "--endpoints", store.url]
    if role == "agent":
        t = tools([*argv, "--name", "m1", "--ttl", "4"])
        t.wait_log("registered as")
    else:
        t = tools([*argv, "--ttl", "4", "--id", "s1"])
        t.wait_log("leading as s1")
    assert t.sigint() == 0
    assert ("stopped; " if role == "agent" else "released the leader lock") in t.output
