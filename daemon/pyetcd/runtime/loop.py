"""The event loop: the shell around the member driver. The only place with sockets, the selector, timers,
signals, the fsync calls and the watchdog; every decision is made by sans-IO parts it feeds:
server/driver.py (the member), http/conn.py (each HTTP/1.1 connection), http/client_api.py and
http/peer_api.py (routing), runtime/transport.py (peer links).

One turn: select -> accept, read (decrypting TLS) and hand complete requests to the APIs and the driver
-> tick -> while the driver has a turn: write what it asks to persist and fsync it (one fdatasync: the
group commit), report the outcome, send, answer, fire watches, save snapshots -> flush every connection
with output -> watchdog and status. A full disk (DiskFull) is the driver's to handle; any other error
from the disk stops the member (after a failed fsync the page cache may have dropped our data: retrying
could ack a lost write; etcd stops too, and a supervisor restarts us from what is durable).
"""

from __future__ import annotations

import errno
import logging
import selectors
import signal
import socket
import ssl
import time
from dataclasses import dataclass
from typing import Any

from ..http.client_api import FORM_BYTES_MAX
from ..http.conn import ServerConn
from ..http.peer_api import PEER_BODY_BYTES_MAX
from ..server.driver import READIES_PER_TURN_MAX, MemberDriver, Output
from ..server.durable import Storage
from ..storage.errors import DiskFull
from .member import MemberView
from .peers import PeerLink
from .serving import Conn, Frontend
from .supervision import Supervisor
from .tls import HANDSHAKE_TIMEOUT_S, PLAIN_HTTP_ON_TLS_REPLY, PlainHttpOnTls, TlsRefused, TlsSession
from .transport import PeerTransport

log = logging.getLogger("pyetcd.loop")

RECV_BYTES = 256 * 1024
CONNECTIONS_MAX = 10_000
HOUSEKEEPING_S = 1.0


@dataclass(frozen=True)
class Listener:
    """A bound listening socket: client API or peer traffic, plain or TLS (then `tls` is set)."""

    sock: socket.socket
    is_peer: bool = False
    tls: ssl.SSLContext | None = None
    allowed_cn: str = ""  # --peer-cert-allowed-cn


class EventLoop:
    def __init__(self, driver: MemberDriver, view: MemberView, storage: Storage, listeners: list[Listener],
                 tick_s: float = 0.1, peer_dial_tls: ssl.SSLContext | None = None, peer_allowed_cn: str = "",
                 supervisor: Supervisor | None = None) -> None:
        self.driver, self.view, self.storage = driver, view, storage
        self.supervisor = supervisor or Supervisor({})  # sd_notify; a no-op outside systemd
        self.front = Frontend(driver, view, self._close)
        self.tick_s = tick_s
        self._next_tick = time.monotonic() + tick_s
        self.sel = selectors.DefaultSelector()
        self.transport = PeerTransport(self.sel, view.self_id, view.cluster_id_bytes.decode(), peer_dial_tls,
                                       peer_allowed_cn)
        view.links = self.transport.links
        self.transport.sync(driver.members)
        self.conns: dict[int, Conn] = {}
        self.dirty = self.front.dirty
        self.running = True
        self._next_housekeeping = 0.0
        self._disk_full_logged = False
        for listener in listeners:
            listener.sock.setblocking(False)
            self.sel.register(listener.sock, selectors.EVENT_READ, listener)
        self.listeners = [listener.sock for listener in listeners]
        self._sig_r, self._sig_w = socket.socketpair()
        self._sig_r.setblocking(False)
        self._sig_w.setblocking(False)
        self.sel.register(self._sig_r, selectors.EVENT_READ, "signal")
        signal.set_wakeup_fd(self._sig_w.fileno(), warn_on_full_buffer=False)
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._on_signal)

    def _on_signal(self, signum: int, frame: Any) -> None:
        log.info("received %s, shutting down", signal.Signals(signum).name)
        self.running = False

    # ---- the loop ------------------------------------------------------------------------------

    def run(self) -> None:
        while self.running:
            self.run_turn(self._timeout())
        self.shutdown()

    def _timeout(self) -> float:
        if self.driver.has_work():
            return 0.0  # e.g. pipelined writes offered while answering others: no sleeping
        timeout = min(HOUSEKEEPING_S, max(0.0, self._next_tick - time.monotonic()))
        due_ns = self.driver.store.next_expiry_ns()
        if due_ns:
            timeout = min(timeout, max(0.0, (due_ns - time.time_ns()) / 1e9))
        return timeout

    def run_turn(self, timeout: float) -> None:
        for key, mask in self.sel.select(timeout):
            data = key.data
            if type(data) is Conn:
                if mask & selectors.EVENT_READ:
                    self._on_readable(data)
                if mask & selectors.EVENT_WRITE:
                    self._flush(data)
            elif type(data) is PeerLink:
                self.transport.on_event(data, mask)
            elif type(data) is Listener:
                self._accept(data)
            else:  # the signal wake-up socket
                try:
                    self._sig_r.recv(4096)
                except BlockingIOError:
                    pass
        mono = time.monotonic()
        self._tick(mono)
        self._run_driver(mono)
        self._pump_transport(mono)
        for conn in list(self.dirty):
            self._flush(conn)
        self.dirty.clear()
        self.supervisor.on_turn(self.view, mono)
        if mono >= self._next_housekeeping:
            self._next_housekeeping = mono + HOUSEKEEPING_S
            self._reap_idle(mono)

    def _tick(self, mono: float) -> None:
        ticks = 0
        while mono >= self._next_tick:
            self._next_tick += self.tick_s
            ticks += 1
            if ticks > 10:  # we were stalled (e.g. SIGSTOP): do not replay a burst of ticks
                self._next_tick = mono + self.tick_s
                break
        for _ in range(min(ticks, 3)):
            self.driver.tick()

    # ---- the driver's turns --------------------------------------------------------------------

    def _run_driver(self, mono: float) -> None:
        driver = self.driver
        for _ in range(READIES_PER_TURN_MAX):
            turn = driver.next_turn(mono, time.time_ns())
            if turn is None:
                break
            self.front.answer(turn.answers)
            if turn.send_now:  # a leader's appends go out before its own fsync
                self.transport.send(turn.send_now)
                self._pump_transport(mono)
            p = turn.persist
            if p is None or turn.refused:
                self._handle(driver.persisted(turn))
                continue
            try:
                self.storage.write(p.snapshot, p.entries, p.hard_state)
                if p.must_sync:
                    self.storage.sync()
            except DiskFull as e:
                if not self._disk_full_logged:
                    self._disk_full_logged = True
                    log.error("disk full, writes are refused until space is freed (nothing unsaved was "
                              "acknowledged; reads, watches and heartbeats go on): %s", e)
                self._handle(driver.persist_failed(turn))
                continue
            except OSError as e:
                log.critical("WAL write/fsync failed, stopping: %s", e)
                raise SystemExit(1) from e
            if self._disk_full_logged and not driver.disk_full:
                self._disk_full_logged = False
                log.warning("the disk has room again: writes resume")
            self._handle(driver.persisted(turn))

    def _handle(self, out: Output) -> None:
        self.transport.send(out.messages)
        if out.store_replaced:
            self.front.end_all_watches()
        if out.store_replaced or any(a.conf_change is not None for a in out.applied):
            self.transport.sync(self.driver.members)
        self.front.answer(out.answers)
        for watcher, event in out.fired:
            self.front.fire(watcher, event)
        job = out.snapshot
        if job is not None:
            try:
                self.storage.save_snapshot(job.snapshot, job.hard_state, job.last_index)
            except DiskFull as e:
                log.warning("no room for a snapshot at raft index %d (retried later): %s", job.snapshot.meta.index, e)
                self.driver.snapshot_failed(job)
            except OSError as e:
                log.critical("snapshot write failed, stopping: %s", e)
                raise SystemExit(1) from e
            else:
                self.driver.snapshot_saved(job)
        if out.removed_self:
            log.warning("this member was removed from the cluster; shutting down")
            self.running = False

    def _pump_transport(self, mono: float) -> None:
        reports = self.transport.pump(mono)
        for peer in reports.unreachable:
            self.driver.report_unreachable(peer)
        for peer, ok in reports.snapshots:
            self.driver.report_snapshot(peer, ok)
        if reports.removed_by and self.running:
            log.warning("member %x says this member was removed from the cluster; shutting down", reports.removed_by)
            self.running = False

    # ---- sockets -------------------------------------------------------------------------------

    def _accept(self, listener: Listener) -> None:
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

    def _on_readable(self, conn: Conn) -> None:
        try:
            data = conn.sock.recv(RECV_BYTES)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._close(conn)
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
            self._close(conn)
            return
        self.front.serve(conn)

    def _flush(self, conn: Conn) -> None:
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
                self._close(conn)
                return
        if http.closed or (http.closing and not buf and not http.out):
            self._close(conn)
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
        self._close(conn)

    def _close(self, conn: Conn) -> None:
        fd = conn.sock.fileno()
        if fd < 0:
            return
        if conn.http.busy:
            self.driver.cancel(conn)
        if conn.watcher is not None:
            self.driver.unwatch(conn.watcher)
            self.front.watch_conns.pop(conn.watcher.watcher_id, None)
            conn.watcher = None
        if conn.events:
            self.sel.unregister(conn.sock)
            conn.events = 0
        self.conns.pop(fd, None)
        conn.sock.close()

    def _reap_idle(self, mono: float) -> None:
        """Drop stalled TLS handshakes and abandoned requests (slowloris); idle keep-alive and watches stay."""
        for conn in list(self.conns.values()):
            if conn.tls is not None and not conn.tls.established and mono - conn.tls.started_at > HANDSHAKE_TIMEOUT_S:
                log.warning("rejected %s connection from %s: TLS handshake timed out",
                            "peer" if conn.is_peer else "client", conn.addr)
                self._close(conn)
            elif conn.http.should_abandon(mono):
                self._close(conn)

    # ---- stopping ------------------------------------------------------------------------------

    def shutdown(self) -> None:
        self.supervisor.stopping()
        for lsock in self.listeners:
            self.sel.unregister(lsock)
            lsock.close()
        if self.driver.hand_over_leadership():
            deadline = time.monotonic() + min(2.0, 10 * self.tick_s)
            while time.monotonic() < deadline and self.driver.raft.is_leader:
                self.run_turn(min(self.tick_s, 0.05))
        self._run_driver(time.monotonic())
        for conn in list(self.conns.values()):
            self._flush(conn)
            self._close(conn)
        self.transport.close()
        self.storage.close()
        log.info("stopped")
