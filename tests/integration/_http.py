"""A small blocking HTTP/1.x client for integration tests: raw bytes out, parsed responses in.

It deliberately does not use http.client so tests can pipeline, send malformed bytes, send bodies
chunked or byte by byte, and read a watch's head before its body arrives.
"""

from __future__ import annotations

import json
import socket
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from tests.support.kit import wait_for

wait_until = wait_for  # the name some tests import from here

DEFAULT_TIMEOUT = 10.0
FORM_CT = "application/x-www-form-urlencoded"


class PeerClosed(ConnectionError):
    """The server closed the connection before a complete response arrived."""


@dataclass
class Resp:
    status: int
    reason: str
    version: str
    headers: list[tuple[str, str]]
    body: bytes = b""
    chunked: bool = False
    chunks: list[bytes] = field(default_factory=list)

    def header(self, name: str) -> str | None:
        name = name.lower()
        found = None
        for k, v in self.headers:
            if k.lower() == name:
                found = v
        return found

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def etcd_index(self) -> int:
        value = self.header("X-Etcd-Index")
        assert value is not None, f"no X-Etcd-Index in {self.headers}"
        return int(value)


def build_request(method: str, target: str, form: dict[str, str] | None = None, body: bytes | None = None,
                  headers: list[tuple[str, str]] | None = None, version: str = "HTTP/1.1",
                  close: bool = False) -> bytes:
    hdrs = [("Host", "127.0.0.1")]
    if form is not None:
        body = urlencode(form).encode()
        hdrs.append(("Content-Type", FORM_CT))
    hdrs.extend(headers or [])
    if body is not None and not any(k.lower() == "transfer-encoding" for k, _ in hdrs):
        hdrs.append(("Content-Length", str(len(body))))
    if close:
        hdrs.append(("Connection", "close"))
    head = f"{method} {target} {version}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in hdrs) + "\r\n"
    return head.encode("latin-1") + (body or b"")


class RawConn:
    """One client connection with a buffered response parser (responses are read in order)."""

    def __init__(self, port: int, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.timeout = timeout
        self.buf = bytearray()
        self.eof = False

    def __enter__(self) -> RawConn:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.sock.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _fill(self, deadline: float) -> None:
        if self.eof:
            raise PeerClosed("connection closed by server")
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("timed out waiting for the server")
        self.sock.settimeout(remaining)
        try:
            data = self.sock.recv(1 << 20)
        except TimeoutError:
            raise TimeoutError("timed out waiting for the server") from None
        except ConnectionResetError:
            data = b""
        if not data:
            self.eof = True
            raise PeerClosed("connection closed by server")
        self.buf += data

    def _line(self, deadline: float) -> bytes:
        while True:
            i = self.buf.find(b"\r\n")
            if i >= 0:
                line = bytes(self.buf[:i])
                del self.buf[:i + 2]
                return line
            self._fill(deadline)

    def _exact(self, n: int, deadline: float) -> bytes:
        while len(self.buf) < n:
            self._fill(deadline)
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def read_head(self, timeout: float | None = None) -> Resp:
        deadline = time.monotonic() + (timeout or self.timeout)
        status_line = self._line(deadline).decode("latin-1")
        version, status, *reason = status_line.split(" ", 2)
        headers = []
        while True:
            line = self._line(deadline)
            if not line:
                break
            k, _, v = line.decode("latin-1").partition(":")
            headers.append((k.strip(), v.strip()))
        resp = Resp(int(status), reason[0] if reason else "", version, headers)
        resp.chunked = (resp.header("Transfer-Encoding") or "").lower() == "chunked"
        return resp

    def read_body(self, resp: Resp, head_request: bool = False, timeout: float | None = None) -> Resp:
        deadline = time.monotonic() + (timeout or self.timeout)
        if head_request or resp.status in (204, 304) or 100 <= resp.status < 200:
            return resp
        if resp.chunked:
            while True:
                size = int(self._line(deadline).split(b";")[0], 16)
                if size == 0:
                    while self._line(deadline):  # trailers
                        pass
                    break
                chunk = self._exact(size, deadline)
                resp.chunks.append(chunk)
                self._exact(2, deadline)
            resp.body = b"".join(resp.chunks)
        elif resp.header("Content-Length") is not None:
            resp.body = self._exact(int(resp.header("Content-Length") or 0), deadline)
        else:  # close-delimited
            try:
                while True:
                    self._fill(deadline)
            except PeerClosed:
                pass
            resp.body = bytes(self.buf)
            self.buf.clear()
        return resp

    def read_chunk(self, timeout: float | None = None) -> bytes:
        """One chunk of a chunked body (b"" for the last one)."""
        deadline = time.monotonic() + (timeout or self.timeout)
        size = int(self._line(deadline).split(b";")[0], 16)
        if size == 0:
            self._line(deadline)
            return b""
        chunk = self._exact(size, deadline)
        self._exact(2, deadline)
        return chunk

    def read_response(self, head_request: bool = False, timeout: float | None = None) -> Resp:
        resp = self.read_head(timeout)
        return self.read_body(resp, head_request, timeout)

    def call(self, method: str, target: str, form: dict[str, str] | None = None, body: bytes | None = None,
             headers: list[tuple[str, str]] | None = None, timeout: float | None = None) -> Resp:
        self.send(build_request(method, target, form, body, headers))
        return self.read_response(method == "HEAD", timeout)

    def closed_by_peer(self, timeout: float = 5.0) -> bool:
        """True when the server closes the connection (after any pending bytes) within timeout."""
        deadline = time.monotonic() + timeout
        try:
            while True:
                self._fill(deadline)
        except PeerClosed:
            return True
        except TimeoutError:
            return False


def request(port: int, method: str, target: str, form: dict[str, str] | None = None, body: bytes | None = None,
            headers: list[tuple[str, str]] | None = None, timeout: float = DEFAULT_TIMEOUT) -> Resp:
    """One request on a fresh connection."""
    with RawConn(port, timeout) as c:
        return c.call(method, target, form, body, headers)


def raw_exchange(port: int, data: bytes, timeout: float = 5.0) -> bytes:
    """Send raw bytes, half-close nothing, and read until the server closes (or timeout)."""
    with RawConn(port, timeout) as c:
        try:
            c.send(data)
        except (BrokenPipeError, ConnectionResetError):
            pass
        c.closed_by_peer(timeout)
        return bytes(c.buf)


def recv_head(sock: socket.socket, timeout: float = 5.0) -> bytes:
    """Read a response head off a plain socket, byte by byte: nothing past the head is taken.

    The handshake for a long-poll: the server sends a watch's head once the watch is in place.
    """
    deadline = time.monotonic() + timeout
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"no complete response head within {timeout}s: {head!r}")
        sock.settimeout(remaining)
        byte = sock.recv(1)
        if not byte:
            raise PeerClosed(f"closed before the end of the head: {head!r}")
        head += byte
    return head


def answered(sock: socket.socket, timeout: float = 5.0) -> bool:
    """The server has started answering on `sock` (peeked at: the kernel keeps the bytes unread)."""
    sock.settimeout(timeout)
    try:
        return sock.recv(1, socket.MSG_PEEK) != b""
    except TimeoutError:
        return False


def strip_ttl(obj: Any) -> Any:
    """Drop the time-dependent `ttl` fields (remaining seconds) from a node tree; keep `expiration`."""
    if isinstance(obj, dict):
        return {k: strip_ttl(v) for k, v in obj.items() if k != "ttl"}
    if isinstance(obj, list):
        return [strip_ttl(v) for v in obj]
    return obj


def dump(port: int, key: str = "/") -> tuple[int, Any]:
    """(X-Etcd-Index, node tree without ttl) of a recursive sorted GET."""
    r = request(port, "GET", f"/v2/keys{key}?recursive=true&sorted=true")
    assert r.status == 200, (r.status, r.body[:300])
    return r.etcd_index, strip_ttl(r.json()["node"])


def dump_when(port: int, index: int, key: str = "/", timeout_s: float = 10.0) -> tuple[int, Any]:
    """dump() once the store index has reached `index`: a restarted member republishes its attributes (one
    etcd index, as etcd at every start) just after it finds its leader, so compare after that."""
    deadline = time.monotonic() + timeout_s
    while True:
        got = dump(port, key)
        if got[0] >= index or time.monotonic() > deadline:
            return got
        time.sleep(0.02)


def flatten(node: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """key -> node (without children) for every node of a recursive GET."""
    out: dict[str, dict[str, Any]] = {}
    stack = [node]
    while stack:
        n = stack.pop()
        if "key" in n:
            out[n["key"]] = {k: v for k, v in n.items() if k != "nodes"}
        stack.extend(n.get("nodes", []))
    return out


def rss_kib(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of a process in KiB."""
    vals = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                k, v = line.split(":", 1)
                vals[k] = int(v.split()[0])
    return vals["VmRSS"], vals["VmHWM"]
