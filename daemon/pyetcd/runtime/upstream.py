"""A proxy's connections to the members: non-blocking, keep-alive HTTP/1.1 client connections (h11), TLS
through a MemoryBIO session as everywhere in the loop, and a pool of idle ones per endpoint.

An UpstreamConn carries one exchange at a time for its `owner` (a relayed client request or a members
refresh, see proxying.py); the loop calls `on_writable`/`on_readable` from its selector and the owner
gets h11 events. A connection whose exchange ended cleanly on both sides goes back to the pool (at most
IDLE_PER_ENDPOINT_MAX per endpoint, as etcd's proxy keeps 128); anything else is closed.
"""

from __future__ import annotations

import errno
import ipaddress
import selectors
import socket
import ssl
from typing import Any

import h11

from ..http.client_api import Headers
from ..http.conn import trusted_request
from ..proxy.director import Endpoint
from .tls import TlsRefused, TlsSession

# One recv per readiness. Not larger: CPython allocates the whole size first, and 256 KiB goes to mmap
# and back on every call (measured: 17-21 us per small recv vs 2.6 us at 64 KiB, more than a GET's
# routing and JSON together); a bigger body just takes more turns.
RECV_BYTES = 64 * 1024
IDLE_PER_ENDPOINT_MAX = 128


class UpstreamFailed(Exception):
    """The connection failed (connect, TLS, reset, EOF, a malformed answer); str() says how."""


def _address(host: str, port: int) -> tuple[int, tuple[str, int]]:
    if host == "localhost":
        host = "127.0.0.1"
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:  # a DNS name: resolved here, blocking (members are normally named by address)
        family, _, _, _, addr = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        return family, (addr[0], port)
    return (socket.AF_INET6 if ip.version == 6 else socket.AF_INET), (str(ip), port)


class UpstreamConn:
    __slots__ = ("endpoint", "sock", "tls", "h", "out", "connected", "reused", "events", "owner", "deadline",
                 "received")

    def __init__(self, endpoint: Endpoint, tls_context: ssl.SSLContext | None, now: float) -> None:
        """Start a non-blocking connect; UpstreamFailed if it fails at once."""
        self.endpoint = endpoint
        try:
            family, addr = _address(endpoint.host, endpoint.port)
        except OSError as e:
            raise UpstreamFailed(f"resolve {endpoint.host}: {e}") from None
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        err = sock.connect_ex(addr)
        if err not in (0, errno.EINPROGRESS):
            sock.close()
            raise UpstreamFailed(f"dial tcp {addr[0]}:{addr[1]}: {errno.errorcode.get(err, err)}")
        self.sock = sock
        self.tls: TlsSession | None = None
        if endpoint.scheme == "https":
            self.tls = TlsSession(tls_context or ssl.create_default_context(), False, now,
                                  server_hostname=endpoint.host)
        self.h = h11.Connection(h11.CLIENT)
        self.out = bytearray()  # plaintext not yet handed to TLS / the socket
        self.connected = False
        self.reused = False  # came from the pool: a failure before any answer may be a stale connection
        self.events = 0  # what the selector watches (0: unregistered)
        self.owner: Any = None
        self.deadline = 0.0  # dial or write deadline (0: none)
        self.received = False  # any byte of the current answer arrived

    # ---- requests ------------------------------------------------------------------------------

    def send_request(self, method: bytes, target: bytes, headers: Headers, body: bytes) -> None:
        h = self.h
        self.received = False
        out = h.send(trusted_request(method, target, headers))
        if body:
            out += h.send(h11.Data(data=body))  # type: ignore[arg-type]
        out += h.send(h11.EndOfMessage())  # type: ignore[arg-type]
        self.out += out

    def wire(self) -> bytearray:
        """Bytes to write to the socket (ciphertext on TLS); the caller deletes what it sent."""
        if self.tls is None:
            return self.out
        if self.out and self.tls.established:
            self.tls.send(self.out)
            self.out.clear()
        return self.tls.wire

    def wants_write(self) -> bool:
        return not self.connected or bool(self.wire())

    # ---- socket events (called by the loop) ----------------------------------------------------

    def on_writable(self) -> None:
        if not self.connected:
            err = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                raise UpstreamFailed(f"dial {self.endpoint.url}: {errno.errorcode.get(err, err)}")
            self.connected = True
            if self.tls is not None:
                self.tls.start()
        buf = self.wire()
        if buf:
            try:
                del buf[:self.sock.send(buf)]
            except (BlockingIOError, InterruptedError):
                pass
            except OSError as e:
                raise UpstreamFailed(f"write to {self.endpoint.url}: {e.strerror or e}") from None

    def on_readable(self) -> list[Any]:
        """h11 events that arrived (a Response, Data, EndOfMessage); UpstreamFailed on EOF/errors."""
        try:
            data = self.sock.recv(RECV_BYTES)
        except (BlockingIOError, InterruptedError):
            return []
        except OSError as e:
            raise UpstreamFailed(f"read from {self.endpoint.url}: {e.strerror or e}") from None
        if data and self.tls is not None:
            try:
                data = self.tls.receive(data)
            except TlsRefused as e:
                raise UpstreamFailed(f"{self.endpoint.url}: {e}") from None
            if not data:
                return []  # handshake progress; the loop writes what TLS owes
        if data:
            self.received = True
        events: list[Any] = []
        h = self.h
        try:
            h.receive_data(data)
            while True:
                event = h.next_event()
                if event is h11.NEED_DATA or event is h11.PAUSED:
                    break
                if type(event) is h11.ConnectionClosed:
                    raise UpstreamFailed(f"{self.endpoint.url} closed the connection")
                events.append(event)
        except h11.RemoteProtocolError as e:
            raise UpstreamFailed(f"{self.endpoint.url}: malformed answer: {e}") from None
        return events

    def reusable(self) -> bool:
        """After the answer's end: ready for another exchange (then moved to its next cycle)."""
        h = self.h
        if h.our_state is h11.DONE and h.their_state is h11.DONE:
            h.start_next_cycle()
            return True
        return False

    def close(self, sel: selectors.BaseSelector) -> None:
        if self.events:
            sel.unregister(self.sock)
            self.events = 0
        self.sock.close()
        self.owner = None

    def watch(self, sel: selectors.BaseSelector, events: int) -> None:
        if events == self.events:
            return
        if not events:
            sel.unregister(self.sock)
        elif not self.events:
            sel.register(self.sock, events, self)
        else:
            sel.modify(self.sock, events, self)
        self.events = events


class Pool:
    """Idle keep-alive connections per endpoint URL (not watched by the selector while idle: a member
    that closes one is noticed when it is next used, and the request is retried on a fresh one)."""

    def __init__(self, sel: selectors.BaseSelector) -> None:
        self.sel = sel
        self.idle: dict[str, list[UpstreamConn]] = {}

    def take(self, endpoint: Endpoint) -> UpstreamConn | None:
        conns = self.idle.get(endpoint.url)
        if not conns:
            return None
        conn = conns.pop()
        conn.endpoint = endpoint  # the refreshed Endpoint object carries the failure state
        conn.reused = True
        return conn

    def give_back(self, conn: UpstreamConn) -> None:
        conn.owner = None
        conn.watch(self.sel, 0)
        conns = self.idle.setdefault(conn.endpoint.url, [])
        if len(conns) >= IDLE_PER_ENDPOINT_MAX:
            conn.close(self.sel)
        else:
            conns.append(conn)

    def close_all(self) -> None:
        for conns in self.idle.values():
            for conn in conns:
                conn.close(self.sel)
        self.idle.clear()
