"""The tests' own kit (tests/support/kit.py): processes with a log, wait_for, and a forwarder built from
TcpListener and pump."""

from __future__ import annotations

import signal
import socket
import sys
import threading
from pathlib import Path

from tests.support.kit import Child, TcpListener, clean_env, head_fields, pump, read_head, wait_for


def test_wait_for_polls_counts_start_up_errors_as_false_and_gives_up() -> None:
    calls: list[int] = []

    def ready() -> bool:
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionRefusedError
        return True

    assert wait_for(ready, 5.0, 0.001) and len(calls) == 3
    assert not wait_for(lambda: False, 0.05, 0.01)


def test_child_logs_its_output_and_stops_by_pid(tmp_path: Path) -> None:
    quick = Child(tmp_path / "quick.log")
    quick.launch([sys.executable, "-c", "import os; print('hello', os.environ.get('ETCD_X'))"],
                 banner="==== banner\n")
    assert quick.proc is not None and quick.proc.wait(10) == 0
    assert quick.log() == "==== banner\nhello None\n" and quick.log_tail(5) == "None\n"
    assert quick.stop() == 0 and quick.proc is None and quick.stop() is None
    slow = Child(tmp_path / "slow.log")
    slow.launch([sys.executable, "-c", "import time; time.sleep(60)"])
    assert slow.alive
    slow.signal(signal.SIGSTOP)
    assert slow.stop() == -signal.SIGTERM  # resumed first, so the SIGTERM lands at once
    assert not slow.alive


def test_clean_env_drops_prefixes_and_adds() -> None:
    env = clean_env("PATH", add={"X_KIT": "1"})
    assert "PATH" not in env and env["X_KIT"] == "1"


class Upper(TcpListener):
    """Forwards to `target`, upper-casing what the client sends and dropping what comes back once `mute`."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.mute = threading.Event()
        super().__init__(name="upper")

    def serve(self, conn: socket.socket) -> None:
        head = read_head(conn, self.stopping)
        assert head_fields(head) == ("GO / X", {"a": "b c", "d": ""})
        with socket.create_connection(("127.0.0.1", self.target), 2.0) as upstream:
            upstream.sendall(head)
            pump(conn, upstream, self.stopping, send=self._send)

    def _send(self, dst: socket.socket | None, data: bytes) -> bool:
        assert dst is not None
        if dst.getpeername()[1] == self.target:
            dst.sendall(data.upper())
        elif not self.mute.is_set():
            dst.sendall(data)
        return True


def test_a_forwarder_from_the_kit() -> None:
    echo = socket.create_server(("127.0.0.1", 0))
    port = echo.getsockname()[1]

    def serve_echo() -> None:
        conn, _ = echo.accept()
        with conn:
            while data := conn.recv(65536):
                conn.sendall(data)

    threading.Thread(target=serve_echo, daemon=True).start()
    with Upper(port) as fwd, socket.create_connection(("127.0.0.1", fwd.port), 5.0) as client:
        head = b"GO / X\r\nA: b c\r\nd:\r\n\r\n"
        client.sendall(head)
        got = b""
        while len(got) < len(head):
            got += client.recv(100)
        assert got == head  # the head went through as it was
        client.sendall(b"abc")
        assert client.recv(100) == b"ABC"
        fwd.mute.set()
        client.sendall(b"def")
        client.settimeout(0.3)
        try:
            assert client.recv(100) == b""
        except TimeoutError:
            pass  # swallowed
        assert fwd.accepted == 1
    assert not any(t.is_alive() for t in fwd.threads)  # close() ended every thread
    echo.close()
