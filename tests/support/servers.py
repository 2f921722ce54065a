"""Real server processes for tests and benchmarks: pyetcd from .venv and Debian's etcd 3.4.

Each server gets a private data dir and free loopback ports; it is stopped by PID only.
"""

from __future__ import annotations

import http.client
import shutil
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.kit import LoggedProcess

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
class Server(LoggedProcess):
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
        """Start it (without the caller's ETCD* variables: a test sees only its flags) and wait until it is
        healthy. RuntimeError if it exits (`proc` then holds its exit status) or is not healthy in time."""
        self.log_path = self.data_dir.parent / f"{self.data_dir.name}.log"
        self.launch(self.argv)
        try:
            self.wait_ready(self.healthy, self.kind, wait_s)
        except RuntimeError:
            if self.alive:
                self.stop()
            raise
        return self

    def healthy(self) -> bool:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=1)
            conn.request("GET", "/health")
            ok = conn.getresponse().status == 200
            conn.close()
            return ok
        except OSError:
            return False


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
