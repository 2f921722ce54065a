"""The tests' kit: child processes with a log file, waiting for a condition, and TCP forwarding on loopback.

* LoggedProcess: mixed into a test's process record (a dataclass holding `proc` and `log_path`): start
  with stdout and stderr appended to the log, signal, stop and kill by PID only, read the log.
* wait_for: poll a condition; errors of servers still starting count as "not yet".
* TcpListener, read_head, head_fields, pump: a loopback listener serving each connection on its own
  thread, and the pieces a forwarder is made of (the cluster's relays, the sched test's blackhole, the
  client tests' CONNECT proxy). Every wait is bounded; close() ends every thread.
"""

from __future__ import annotations

import os
import selectors
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from signal import SIGCONT, SIGKILL, SIGTERM
from types import TracebackType
from typing import Self

# ---- processes -------------------------------------------------------------------------------------


def clean_env(*drop: str, add: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment without variables starting with one of `drop` (default: ETCD, which
    both pyetcd and etcd read), plus `add`."""
    prefixes = drop or ("ETCD",)
    return {**{k: v for k, v in os.environ.items() if not k.startswith(prefixes)}, **(add or {})}


def terminate(proc: subprocess.Popen[bytes], sig: int = SIGTERM, timeout_s: float = 10.0) -> int:
    """Send `sig` (after a SIGCONT, should the process be stopped), wait up to timeout_s, then SIGKILL; the
    exit status."""
    if proc.poll() is None:
        if sig != SIGKILL:
            proc.send_signal(SIGCONT)
        proc.send_signal(sig)
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
    return int(proc.returncode)


class LoggedProcess:
    """A child process whose output goes to `log_path`; the class mixing this in provides both attributes."""

    proc: subprocess.Popen[bytes] | None
    log_path: Path

    def launch(self, argv: list[str], env: Mapping[str, str] | None = None, banner: str = "") -> None:
        """Start `argv` (stdin from /dev/null), after writing `banner` to the log."""
        with open(self.log_path, "ab") as log:
            if banner:
                log.write(banner.encode())
                log.flush()
            self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         env=clean_env() if env is None else dict(env))

    def wait_ready(self, ready: Callable[[], bool], what: str, wait_s: float) -> None:
        """Poll `ready` until true; RuntimeError with the log's tail if the process exits first or time
        runs out."""
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"{what} exited with {self.proc.returncode}: {self.log_tail()}")
            if ready():
                return
            time.sleep(0.05)
        raise RuntimeError(f"{what} not ready within {wait_s}s: {self.log_tail()}")

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def signal(self, sig: int) -> None:
        assert self.alive, f"{self.log_path.name}: the process is not running"
        os.kill(self.pid, sig)

    def stop(self, sig: int = SIGTERM, timeout_s: float = 10.0) -> int | None:
        """`terminate` it; its exit status (None if it was never started)."""
        if self.proc is None:
            return None
        rc, self.proc = terminate(self.proc, sig, timeout_s), None
        return rc

    def kill9(self) -> None:
        self.stop(SIGKILL)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, n: int = 3000) -> str:
        try:
            return self.log_path.read_bytes()[-n:].decode(errors="replace")
        except OSError:
            return ""


@dataclass
class Child(LoggedProcess):
    """A LoggedProcess on its own."""

    log_path: Path
    proc: subprocess.Popen[bytes] | None = None


# ---- waiting ---------------------------------------------------------------------------------------

STARTING_ERRORS = (OSError, ValueError, KeyError)  # refused, reset, TLS not up, a body not there yet


def wait_for(pred: Callable[[], bool], timeout_s: float, interval: float = 0.05) -> bool:
    """Poll `pred` until it is true, and once more at the deadline: whether it became true. STARTING_ERRORS
    raised by `pred` count as false."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if pred():
                return True
        except STARTING_ERRORS:
            pass
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


# ---- TCP on loopback -------------------------------------------------------------------------------


class TcpListener:
    """Accepts on 127.0.0.1:`port` (0: any free one) and serves each connection with `serve(conn)` on a
    thread of its own; the connection is closed when `serve` returns, an OSError ending it quietly.
    close() sets `stopping` (every serve loop watches it) and joins the threads."""

    def __init__(self, port: int = 0, name: str = "tcp") -> None:
        self.name = name
        self.stopping = threading.Event()
        self.accepted = 0
        self.lsock = socket.socket()
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", port))
        self.lsock.listen(64)
        self.lsock.settimeout(0.1)
        self.port = int(self.lsock.getsockname()[1])
        self.threads = [threading.Thread(target=self._accept_loop, name=name, daemon=True)]
        self.threads[0].start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def serve(self, conn: socket.socket) -> None:
        raise NotImplementedError

    def close(self) -> None:
        self.stopping.set()
        for t in list(self.threads):
            t.join(2.0)
        self.lsock.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def _accept_loop(self) -> None:
        while not self.stopping.is_set():
            try:
                conn, _ = self.lsock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.accepted += 1
            t = threading.Thread(target=self._serve_one, args=(conn,), name=f"{self.name}-conn", daemon=True)
            t.start()
            self.threads = [x for x in self.threads if x.is_alive()] + [t]

    def _serve_one(self, conn: socket.socket) -> None:
        try:
            self.serve(conn)
        except OSError:
            pass
        finally:
            conn.close()


def read_head(sock: socket.socket, stopping: threading.Event, timeout_s: float = 2.0, limit: int = 65536) -> bytes:
    """Read until the end of a request head (bounded by timeout_s and limit): all bytes read, which may go
    past the head. OSError if the peer closes first or `stopping` is set."""
    buf = b""
    deadline = time.monotonic() + timeout_s
    sock.settimeout(0.1)
    while b"\r\n\r\n" not in buf and len(buf) < limit and time.monotonic() < deadline:
        if stopping.is_set():
            raise OSError("closing")
        try:
            data = sock.recv(65536)
        except TimeoutError:
            continue
        if not data:
            raise OSError("closed before a request head")
        buf += data
    return buf


def head_fields(buf: bytes) -> tuple[str, dict[str, str]]:
    """(the request line, {lower-case header name: value}) of the head at the start of `buf`."""
    lines = buf.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
    return lines[0], {name.strip().lower(): value.strip() for name, _, value in
                      (line.partition(":") for line in lines[1:])}


Send = Callable[[socket.socket | None, bytes], bool]


def pump(a: socket.socket, b: socket.socket | None, stopping: threading.Event, *, send: Send | None = None,
         still_open: Callable[[], bool] | None = None, tick: float = 0.05) -> None:
    """Copy bytes between `a` and `b` both ways until a side closes, `stopping` is set or `still_open()`
    (asked every tick) turns false. `send(destination, chunk)` delivers each chunk and may return False
    to end the connection (default: sendall). With `b` None, what `a` sends goes to send(None, chunk)."""
    ends = [s for s in (a, b) if s is not None]
    other = {a: b, b: a} if b is not None else {a: None}
    for s in ends:
        s.settimeout(2.0)  # bounds sendall; recv runs only once the selector reports data
    with selectors.DefaultSelector() as sel:
        for s in ends:
            sel.register(s, selectors.EVENT_READ)
        while not stopping.is_set():
            if still_open is not None and not still_open():
                return
            for key, _ in sel.select(tick):
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                data = sock.recv(262144)
                if not data:
                    return
                dst = other[sock]
                if send is not None:
                    if not send(dst, data):
                        return
                elif dst is not None:
                    dst.sendall(data)
