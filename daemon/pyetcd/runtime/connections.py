"""Connections: the accepted sockets (plain or TLS) that carry HTTP, on the loop's selector.

Reading decrypts TLS and feeds http/conn.py's ServerConn; flushing encrypts and sends what it owes, and
chooses what the selector waits for: reading stops while the client does not read its answers (output
backpressure) or pipelines too much, and resumes (serving what it pipelined) once it catches up. Stalled
TLS handshakes and abandoned requests (slowloris) are dropped by `reap_idle`.
"""

from __future__ import annotations

import errno
import logging
import selectors
import socket
import ssl
import time
from dataclasses import dataclass
from typing import Any, Protocol

from ..http.client_api import FORM_BYTES_MAX
from ..http.conn import ServerConn
from ..http.peer_api import PEER_BODY_BYTES_MAX
from .tls import HANDSHAKE_TIMEOUT_S, PLAIN_HTTP_ON_TLS_REPLY, PlainHttpOnTls, TlsRefused, TlsSession

log = logging.getLogger("pyetcd.loop")

# One recv per readiness. Not larger: CPython allocates the whole size first, and 256 KiB goes to mmap
# and back on every call (measured: 17-21 us per small recv vs 2.6 us at 64 KiB, more than a GET's
# routing and JSON together); a bigger body just takes more turns.
RECV_BYTES = 64 * 1024
CONNECTIONS_MAX = 10_000


@dataclass(frozen=True)
class Listener:
    """A bound listening socket: client API or peer traffic, plain or TLS (then `tls` is set)."""

    sock: socket.socket
    is_peer: bool = False
    tls: ssl.SSLContext | None = None
    allowed_cn: str = ""  # --peer-cert-allowed-cn


class Conn:
    """An accepted socket, its HTTP/1.1 state machine, and its TLS session if any."""

    __slots__ = ("sock", "http", "tls", "addr", "is_peer", "watcher", "relay", "events", "serving", "auth_memo")

    def __init__(self, sock: socket.socket, http: ServerConn, tls: TlsSession | None, addr: str, is_peer: bool):
        self.sock, self.http, self.tls, self.addr, self.is_peer = sock, http, tls, addr, is_peer
        self.watcher: Any = None  # a member's watch streaming to this connection (serving.py)
        self.relay: Any = None  # a proxy's exchange with a member for this connection (proxying.py)
        self.auth_memo: Any = None  # the last verified credentials on this connection (auth_gate.py)
        self.events = selectors.EVENT_READ  # what the selector watches for (0: unregistered)
        self.serving = False  # inside _serve: an answer must not recurse into it

    def wire(self) -> int:
        return len(self.tls.wire) if self.tls is not None else 0


_date: list[Any] = [-1, b""]  # (second, its Date header value): one strftime per second


def http_date() -> bytes:
    """The Date header value for now."""
    now = int(time.time())
    if now != _date[0]:
        _date[0] = now
        _date[1] = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(now)).encode()
    return _date[1]  # type: ignore[no-any-return]


class Front(Protocol):
    """What serves the connections: the member's (serving.py) or the proxy's (proxying.py)."""

    dirty: set[Conn]

    def serve(self, conn: Conn) -> None: ...

    def closed(self, conn: Conn) -> None: ...


class Connections:
    def __init__(self, sel: selectors.BaseSelector, front: Front) -> None:
        self.sel = sel
        self.front = front
        self.dirty = front.dirty
        self.conns: dict[int, Conn] = {}

    def accept(self, listener: Listener) -> None:
        for _ in range(256):
            try:
                sock, addr = listener.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:
                if e.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    log.warning("accept: %s", e)
                    return
                raise
            if len(self.conns) >= CONNECTIONS_MAX:
                sock.close()
                continue
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            mono = time.monotonic()
            tls = None if listener.tls is None else TlsSession(listener.tls, True, mono, allowed_cn=listener.allowed_cn)
            body_max = PEER_BODY_BYTES_MAX if listener.is_peer else FORM_BYTES_MAX
            conn = Conn(sock, ServerConn(body_max, mono), tls, f"{addr[0]}:{addr[1]}", listener.is_peer)
            self.conns[sock.fileno()] = conn
            self.sel.register(sock, selectors.EVENT_READ, conn)

    def on_readable(self, conn: Conn) -> None:
        try:
            data = conn.sock.recv(RECV_BYTES)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self.close(conn)
            return
        mono = time.monotonic()
        if data and conn.tls is not None:
            try:
                data = conn.tls.receive(data)
            except TlsRefused as e:
                self._refuse_tls(conn, e)
                return
            if conn.tls.wire:
                self.dirty.add(conn)  # handshake replies
            if not data:
                conn.http.touch(mono)
                return
        conn.http.receive(data, mono)
        if conn.http.closed:
            self.close(conn)
            return
        self.front.serve(conn)

    def flush(self, conn: Conn) -> None:
        if conn.sock.fileno() < 0:
            return
        http, buf = conn.http, conn.http.out
        if conn.tls is not None:
            if buf and conn.tls.established:
                try:
                    conn.tls.send(buf)
                except TlsRefused as e:
                    self._refuse_tls(conn, e)
                    return
                buf.clear()
            buf = conn.tls.wire
        if buf:
            try:
                del buf[:conn.sock.send(buf)]
            except (BlockingIOError, InterruptedError):
                pass
            except OSError:
                self.close(conn)
                return
        if http.closed or (http.closing and not buf and not http.out):
            self.close(conn)
            return
        reading = http.wants_read(conn.wire()) and not http.closing
        if reading and not conn.events & selectors.EVENT_READ and not http.busy:
            self.front.serve(conn)  # the client caught up: serve what it pipelined meanwhile
        self._watch(conn, (selectors.EVENT_READ if reading else 0) | (selectors.EVENT_WRITE if buf else 0))

    def _watch(self, conn: Conn, events: int) -> None:
        if events == conn.events:
            return
        if not events:
            self.sel.unregister(conn.sock)
        elif not conn.events:
            self.sel.register(conn.sock, events, conn)
        else:
            self.sel.modify(conn.sock, events, conn)
        conn.events = events

    def _refuse_tls(self, conn: Conn, why: TlsRefused) -> None:
        """A failed handshake or an unacceptable certificate: say why in the log (etcd logs "rejected
        connection"), send what TLS owes the other side (its alert), close."""
        log.warning("rejected %s connection from %s: %s", "peer" if conn.is_peer else "client", conn.addr, why)
        try:
            if isinstance(why, PlainHttpOnTls):
                conn.sock.send(PLAIN_HTTP_ON_TLS_REPLY)
            elif conn.tls is not None and conn.tls.wire:
                conn.sock.send(conn.tls.wire)
        except OSError:
            pass
        self.close(conn)

    def close(self, conn: Conn) -> None:
        fd = conn.sock.fileno()
        if fd < 0:
            return
        self.front.closed(conn)
        if conn.events:
            self.sel.unregister(conn.sock)
            conn.events = 0
        self.conns.pop(fd, None)
        conn.sock.close()

    def reap_idle(self, mono: float) -> None:
        """Drop stalled TLS handshakes and abandoned requests (slowloris); idle keep-alive and watches stay."""
        for conn in list(self.conns.values()):
            if conn.tls is not None and not conn.tls.established and mono - conn.tls.started_at > HANDSHAKE_TIMEOUT_S:
                log.warning("rejected %s connection from %s: TLS handshake timed out",
                            "peer" if conn.is_peer else "client", conn.addr)
                self.close(conn)
            elif conn.http.should_abandon(mono):
                self.close(conn)
