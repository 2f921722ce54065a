"""Real server processes for tests and benchmarks: pyetcd from .venv and Debian's etcd 3.4.

Each server gets a private data dir and free loopback ports; it is stopped by PID only.
"""

from __future__ import annotations

import http.client
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PYETCD_BIN = Path(sys.executable).parent / "pyetcd"


_HANDED_OUT: set[int] = set()


def free_port() -> int:
    """A free loopback port never handed out before in this process: the kernel may give a port just
    freed to the next bind(0), and two members of one cluster must not share one."""
    for _ in range(1000):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port
    raise RuntimeError("no fresh loopback port found")


@dataclass
class Server:
    """A running server process with its client endpoint."""

    kind: str
    port: int
    data_dir: Path
    argv: list[str]
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path = field(default_factory=Path)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, wait_s: float = 20.0) -> Server:
        self.log_path = self.data_dir.parent / f"{self.data_dir.name}.log"
        log = open(self.log_path, "ab")
        # Both servers read ETCD_* variables; keep the caller's out so a test sees only its flags.
        env = {k: v for k, v in os.environ.items() if not k.startswith("ETCD")}
        self.proc = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
        log.close()
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.kind} exited with {self.proc.returncode}: {self.log_tail()}")
            if self.healthy():
                return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"{self.kind} did not become healthy in {wait_s}s: {self.log_tail()}")

    def healthy(self) -> bool:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=1)
            conn.request("GET", "/health")
            ok = conn.getresponse().status == 200
            conn.close()
            return ok
        except OSError:
            return False

    def log_tail(self, n: int = 3000) -> str:
        try:
            return self.log_path.read_bytes()[-n:].decode(errors="replace")
        except OSError:
            return ""

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 10.0) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        rc = self.proc.returncode
        self.proc = None
        return rc

    def kill9(self) -> None:
        self.stop(signal.SIGKILL)


def pyetcd_server(base: Path, name: str = "default", port: int | None = None, extra: list[str] | None = None) -> Server:
    port = port or free_port()
    data_dir = base / f"{name}.pyetcd"
    url = f"http://127.0.0.1:{port}"
    argv = [str(PYETCD_BIN), "--name", name, "--data-dir", str(data_dir),
            "--listen-client-urls", url, "--advertise-client-urls", url, *(extra or [])]
    return Server("pyetcd", port, data_dir, argv)


def etcd_available() -> bool:
    return shutil.which("etcd") is not None


def etcd_server(base: Path, name: str = "ref", extra: list[str] | None = None) -> Server:
    port, peer = free_port(), free_port()
    data_dir = base / f"{name}.etcd"
    c, p = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{peer}"
    argv = [shutil.which("etcd") or "etcd", "--name", name, "--data-dir", str(data_dir), "--enable-v2=true",
            "--listen-client-urls", c, "--advertise-client-urls", c,
            "--listen-peer-urls", p, "--initial-advertise-peer-urls", p,
            "--initial-cluster", f"{name}={p}", *(extra or [])]
    return Server("etcd", port, data_dir, argv)
