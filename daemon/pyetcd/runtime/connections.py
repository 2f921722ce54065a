"""Connections: the accepted sockets (plain or TLS) that carry HTTP, on the loop's selector.

Reading decrypts TLS and feeds http/conn.py's ServerConn; flushing encrypts and sends what it owes, and
chooses what the selector waits for: reading stops while the client does not read its answers (output
backpressure) or pipelines too much, and resumes (serving what it pipelined) once it catches up. Stalled
TLS handshakes and abandoned requests (slowloris) are dropped by `reap_idle`.

Accepting follows the open-files limit (fdlimit.py has the numbers): peers are accepted while any of the
total budget is left; clients up to their share. A client arriving at its share first makes room by
closing the connection that has been idle longest (a keep-alive connection between requests, idle for
at least EVICT_IDLE_S; never a watch, never one with a request or an answer under way). When nothing can
go, the listener is paused and the newcomer waits in the kernel's backlog (as it would at etcd's fd
limit) until a connection closes, or the next housekeeping second finds one idle long enough: a PUT
that arrives then is delayed, not refused. Accepting and closing instead would turn a moment's
shortage into an error for the write that wakes the watchers.

EMFILE/ENFILE (or ENOBUFS/ENOMEM) from accept() means the budget was wrong about what is free: the
listener is paused too, until a connection closes or ACCEPT_BACKOFF_S passes (never a busy loop on a
listener that stays readable). Pausing keeps the listener registered but waits for EVENT_WRITE, which a
listening TCP socket never reports on Linux: the loop's shutdown unregisters listeners as it always did.
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
from .fdlimit import ConnectionBudget, raise_soft_limit, soft_limit
from .tls import HANDSHAKE_TIMEOUT_S, PLAIN_HTTP_ON_TLS_REPLY, PlainHttpOnTls, TlsRefused, TlsSession

log = logging.getLogger("pyetcd.loop")

# One recv per readiness. Not larger: CPython allocates the whole size first, and 256 KiB goes to mmap
# and back on every call (measured: 17-21 us per small recv vs 2.6 us at 64 KiB, more than a GET's
# routing and JSON together); a bigger body just takes more turns.
RECV_BYTES = 64 * 1024
EVICT_IDLE_S = 1.0  # a keep-alive connection idle this long may be closed for a newcomer at the budget
SCAN_S = 0.1  # looking for idle connections to close: at most this often
ACCEPT_BACKOFF_S = 1.0  # after EMFILE on accept: retry at the latest then (or as soon as a connection closes)
_ACCEPT_ERRORS = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)
_RESOURCE_LOG_S = 10.0  # at most one warning about running out per this many seconds


@dataclass(frozen=True)
class Listener:
    """A bound listening socket: client API or peer traffic, plain or TLS (then `tls` is set)."""

    sock: socket.socket
    is_peer: bool = False
    tls: ssl.SSLContext | None = None
    allowed_cn: str = ""  # --peer-cert-allowed-cn


class Conn:
    """An accepted socket, its HTTP/1.1 state machine, and its TLS session if any."""

    __slots__ = ("sock", "http", "tls", "addr", "is_peer", "watcher", "relay", "events", "serving", "auth_memo",
                 "sent_s")

    def __init__(self, sock: socket.socket, http: ServerConn, tls: TlsSession | None, addr: str, is_peer: bool):
        self.sock, self.http, self.tls, self.addr, self.is_peer = sock, http, tls, addr, is_peer
        self.watcher: Any = None  # a member's watch streaming to this connection (serving.py)
        self.relay: Any = None  # a proxy's exchange with a member for this connection (proxying.py)
        self.auth_memo: Any = None  # the last verified credentials on this connection (auth_gate.py)
        self.events = selectors.EVENT_READ  # what the selector watches for (0: unregistered)
        self.serving = False  # inside _serve: an answer must not recurse into it
        self.sent_s = http.last_rx_s  # monotonic: when bytes last went out (with last_rx_s: idle since)

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
    watch_limit: int  # connections that may hold a watch; set from the budget (fdlimit.py)

    def serve(self, conn: Conn) -> None: ...

    def closed(self, conn: Conn) -> None: ...


class Connections:
    def __init__(self, sel: selectors.BaseSelector, front: Front, peers: bool = True, fds_per_conn: int = 1) -> None:
        """`peers`: a member (a peer listener, a peer share); `fds_per_conn`: fds one client connection
        may hold (a proxy's: its own and the member's). Raises the open-files limit and logs the budget."""
        self.sel = sel
        self.front = front
        self.dirty = front.dirty
        self.conns: dict[int, Conn] = {}
        self.clients = 0  # client connections among `conns` (the rest are peers')
        self._peers, self._fds_per_conn = peers, fds_per_conn
        soft, hard = raise_soft_limit()
        self.budget = ConnectionBudget.for_limit(soft, peers, fds_per_conn)
        front.watch_limit = self.budget.watches
        log.info("%s (hard limit %d)", self.budget.describe(), hard)
        # paused listeners: fd -> (listener, monotonic time to retry at; 0.0: when a connection closes)
        self.paused: dict[int, tuple[Listener, float]] = {}
        self._idle: list[Conn] = []  # eviction candidates, the longest idle last (see _make_room)
        self._warned_at = -_RESOURCE_LOG_S
        self._scanned_at = -SCAN_S

    def accept(self, listener: Listener) -> None:
        budget = self.budget
        for turn in range(256):
            # At the budget: only the first round knows someone is waiting (the listener was readable);
            # later rounds leave it to the next select rather than pause a listener nobody waits on.
            if listener.is_peer:
                if len(self.conns) >= budget.total:
                    if not turn:
                        self._pause(listener, 0.0, "connections at the limit (%d): peers wait", budget.total)
                    return
            elif self.clients >= budget.clients and (turn or not self._make_room()):
                if not turn:
                    self._pause(listener, time.monotonic() + EVICT_IDLE_S,
                                "client connections at the limit (%d) and none idle: new ones wait", budget.clients)
                return
            try:
                sock, addr = listener.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:
                if e.errno in _ACCEPT_ERRORS:
                    self._pause(listener, time.monotonic() + ACCEPT_BACKOFF_S, "accept: %s (%d connections open)",
                                e, len(self.conns))
                    return
                raise
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            mono = time.monotonic()
            tls = None if listener.tls is None else TlsSession(listener.tls, True, mono, allowed_cn=listener.allowed_cn)
            body_max = PEER_BODY_BYTES_MAX if listener.is_peer else FORM_BYTES_MAX
            conn = Conn(sock, ServerConn(body_max, mono), tls, f"{addr[0]}:{addr[1]}", listener.is_peer)
            self.conns[sock.fileno()] = conn
            self.clients += not listener.is_peer
            self.sel.register(sock, selectors.EVENT_READ, conn)

    # ---- the budget --------------------------------------------------------------------------------

    def _pause(self, listener: Listener, retry_at: float, why: str, *args: object) -> None:
        """Stop accepting on `listener` until a connection closes (or `retry_at`, if set, passes)."""
        fd = listener.sock.fileno()
        if fd not in self.paused:
            # EVENT_WRITE: a listening socket never reports it, so the listener rests without leaving
            # the selector (the loop unregisters it at shutdown either way)
            self.sel.modify(listener.sock, selectors.EVENT_WRITE, listener)
        self.paused[fd] = (listener, retry_at)
        mono = time.monotonic()
        if mono - self._warned_at >= _RESOURCE_LOG_S:
            self._warned_at = mono
            log.warning(why, *args)

    def _resume(self, mono: float, freed: bool) -> None:
        """Listen again where a connection closed (`freed`) or the retry time came."""
        for fd, (listener, retry_at) in list(self.paused.items()):
            if freed or (retry_at and mono >= retry_at):
                del self.paused[fd]
                if listener.sock.fileno() >= 0:
                    self.sel.modify(listener.sock, selectors.EVENT_READ, listener)

    def _make_room(self) -> bool:
        """Close the client connection idle longest (at least EVICT_IDLE_S) for a newcomer; False if none.
        Candidates come from one scan, rechecked when used: a scan per accept would cost O(connections),
        so an empty list is refilled at most every SCAN_S."""
        mono = time.monotonic()
        if not self._idle and mono - self._scanned_at >= SCAN_S:
            self._scanned_at = mono
            self._idle = [c for c in self.conns.values() if self._evictable(c, mono)]
            self._idle.sort(key=lambda c: max(c.http.last_rx_s, c.sent_s), reverse=True)
        while self._idle:
            conn = self._idle.pop()
            if self._evictable(conn, mono):
                self.close(conn)
                return True
        return False

    @staticmethod
    def _evictable(conn: Conn, mono: float) -> bool:
        http = conn.http
        return (not conn.is_peer and conn.watcher is None and conn.relay is None and not http.busy
                and not http.out and not conn.wire() and not conn.serving and conn.sock.fileno() >= 0
                and mono - max(http.last_rx_s, conn.sent_s) >= EVICT_IDLE_S)

    def refresh_budget(self) -> None:
        """Follow the soft open-files limit (`prlimit --pid` on a live process)."""
        soft = soft_limit()
        if soft != self.budget.limit:
            self.budget = ConnectionBudget.for_limit(soft, self._peers, self._fds_per_conn)
            self.front.watch_limit = self.budget.watches
            log.info("%s", self.budget.describe())
            if self.paused:
                self._resume(0.0, True)  # a higher limit may have room for those waiting

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
            conn.sent_s = time.monotonic()
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
        if self.conns.pop(fd, None) is not None:
            self.clients -= not conn.is_peer
        conn.sock.close()
        if self.paused:
            self._resume(0.0, True)

    def reap_idle(self, mono: float) -> None:
        """Drop stalled TLS handshakes and abandoned requests (slowloris); idle keep-alive and watches stay.
        Then follow the open-files limit, and retry paused listeners whose time came."""
        for conn in list(self.conns.values()):
            if conn.tls is not None and not conn.tls.established and mono - conn.tls.started_at > HANDSHAKE_TIMEOUT_S:
                log.warning("rejected %s connection from %s: TLS handshake timed out",
                            "peer" if conn.is_peer else "client", conn.addr)
                self.close(conn)
            elif conn.http.should_abandon(mono):
                self.close(conn)
        self.refresh_budget()
        self._idle.clear()  # a fresh scan next time: who is idle longest has changed
        self._scanned_at = -SCAN_S
        if self.paused:
            self._resume(mono, False)
