"""The event loop: the only place with sockets, timers, signals and the wall clock.

One turn: select -> accept/read every ready socket and run complete requests through the pure client API
-> persist what the turn proposed (one fdatasync) and apply it -> answer proposers and fire watchers ->
flush output. Every connection is an h11.Connection; a connection handles one request at a time
(pipelined requests wait in h11's buffer), and a connection whose unsent output or unread input passes
its bound stops being read (or, for a watcher, is dropped) so one slow client never stalls the others.
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
from http import HTTPStatus
from typing import Any

import h11

from ..http.client_api import FORM_BYTES_MAX, ClientApi, Propose, ProposeConf, QuorumRead, Reply, StartWatch
from ..http.peer_api import PEER_BODY_BYTES_MAX, PeerApi
from ..raft.rawnode import ProposalDropped
from ..raft.types import ConfChangeType, Message
from ..server.node import Applied
from ..server.pending import Pending, PendingTable
from ..server.requests import MEMBER_ATTRS, Request
from ..store.errors import V2Error
from ..store.watcher_hub import Watcher
from .member import MemberState, TurnOutput
from .peers import LinkState, PeerLink
from .supervision import Supervisor
from .tls import HANDSHAKE_TIMEOUT_S, PLAIN_HTTP_ON_TLS_REPLY, PlainHttpOnTls, TlsRefused, TlsSession

log = logging.getLogger("pyetcd.loop")

RECV_BYTES = 256 * 1024
OUTPUT_BYTES_MAX = 64 * 1024 * 1024  # unsent bytes per connection before we stop reading it
WATCH_OUTPUT_BYTES_MAX = 8 * 1024 * 1024  # a stream watcher this far behind is dropped (etcd drops too)
PIPELINE_BYTES_MAX = 1024 * 1024  # unread pipelined input held per connection
HEADER_BYTES_MAX = 1024 * 1024 + 4096  # Go's DefaultMaxHeaderBytes
CONNECTIONS_MAX = 10_000
REQUEST_IDLE_S = 60.0  # a request whose bytes stop arriving for this long is abandoned
HOUSEKEEPING_S = 1.0
_REASONS = {s.value: s.phrase.encode() for s in HTTPStatus}
_BAD_REQUEST = (b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\n"
                b"Connection: close\r\n\r\n400 Bad Request")


@dataclass(frozen=True)
class Listener:
    """A bound listening socket: client API or peer traffic, plain or TLS (then `tls` is set)."""

    sock: socket.socket
    is_peer: bool = False
    tls: ssl.SSLContext | None = None
    allowed_cn: str = ""  # --peer-cert-allowed-cn


def _make_response(status: int, headers: list[tuple[bytes, bytes]]) -> h11.Response:
    """An h11 Response for headers we built ourselves from constant names and digit/hex values.

    h11 re-validates every header with regexes, about a quarter of a request's cost on our machines;
    `_parsed=True` (what h11 uses for headers it parsed itself) skips only that validation. If a future
    h11 drops the keyword we fall back to the validating constructor."""
    try:
        return h11.Response(status_code=status, headers=headers, reason=_REASONS.get(status, b""),
                            _parsed=True)  # type: ignore[call-arg]
    except TypeError:
        return h11.Response(status_code=status, headers=headers, reason=_REASONS.get(status, b""))


class Conn:
    __slots__ = ("sock", "h11", "out", "method", "target", "headers", "body", "waiting", "watcher",
                 "closing", "last_rx", "reading", "writing", "head", "driving", "registered", "rx_bytes", "is_peer",
                 "body_max", "tls", "addr")

    def __init__(self, sock: socket.socket, is_peer: bool = False, tls: TlsSession | None = None,
                 addr: str = "") -> None:
        self.sock = sock
        self.tls = tls  # None on a plain HTTP listener
        self.addr = addr  # the remote "host:port", for log lines
        self.is_peer = is_peer  # accepted on a peer URL: Raft traffic, not the client API
        self.body_max = PEER_BODY_BYTES_MAX if is_peer else FORM_BYTES_MAX
        self.h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=HEADER_BYTES_MAX)
        self.out = bytearray()
        self.method = ""
        self.target = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.body = bytearray()
        self.waiting = False  # a response is owed (proposal in flight or watch open)
        self.watcher: Watcher | None = None
        self.closing = False
        self.last_rx = 0.0
        self.reading = True
        self.writing = False
        self.head = False
        self.driving = False  # inside _drive: a synchronous reply must not recurse into it
        self.registered = True  # in the selector (a paused connection with nothing to send is not)
        self.rx_bytes = 0  # received since the current request began (bounds the header check)


class EventLoop:
    def __init__(self, member: MemberState, listeners: list[Listener], tick_s: float = 0.1,
                 request_timeout_s: float = 7.0, peer_dial_tls: ssl.SSLContext | None = None,
                 peer_allowed_cn: str = "", supervisor: Supervisor | None = None) -> None:
        self.member = member
        self.supervisor = supervisor or Supervisor({})  # sd_notify; a no-op outside systemd
        self.peer_dial_tls = peer_dial_tls  # context for https peer URLs
        self.peer_allowed_cn = peer_allowed_cn
        self.api = ClientApi(member)
        self.peer_api = PeerApi(member)
        self.tick_s = tick_s
        self.request_timeout_s = request_timeout_s
        self._next_tick = time.monotonic() + tick_s
        # Request ids must not repeat across restarts: an entry proposed before a crash can commit
        # afterwards and would otherwise answer a new request (etcd seeds its ids from the clock too).
        self.requests = PendingTable(next_id=time.time_ns() // 1000)
        self.links: dict[int, PeerLink] = {}
        member.links = self.links
        self._sync_links()
        self._published = False
        self._fresh_submissions = False
        self.sel = selectors.DefaultSelector()
        self.conns: dict[int, Conn] = {}
        self.watch_conns: dict[int, Conn] = {}
        self.next_watcher_id = 1
        self.dirty: set[Conn] = set()  # connections with output to flush this turn
        self.running = True
        self._date_sec = -1
        self._date = b""
        self._next_housekeeping = 0.0
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
        while self.running and not self.member.node.removed_self:
            self.run_turn(self._timeout())
        if self.member.node.removed_self:
            log.warning("this member was removed from the cluster; shutting down")
        self.shutdown()

    def _timeout(self) -> float:
        if self._fresh_submissions or self.member.raft.has_ready():
            return 0.0  # e.g. pipelined writes dispatched while answering others: no sleeping
        timeout = min(HOUSEKEEPING_S, max(0.0, self._next_tick - time.monotonic()))
        due_ns = self.member.store.next_expiry_ns()
        if due_ns:
            timeout = min(timeout, max(0.0, (due_ns - time.time_ns()) / 1e9))
        return timeout

    def run_turn(self, timeout: float) -> None:
        for key, mask in self.sel.select(timeout):
            data = key.data
            if type(data) is Conn:
                if mask & selectors.EVENT_READ:
                    self._on_readable(data)
                if mask & selectors.EVENT_WRITE and not data.closing:
                    self._flush(data)
            elif type(data) is PeerLink:
                self._on_link_event(data, mask)
            elif type(data) is Listener:
                self._accept(data)
            else:  # the signal wake-up socket
                try:
                    self._sig_r.recv(4096)
                except BlockingIOError:
                    pass
        mono = time.monotonic()
        self._tick(mono)
        self._leader_duties()
        self._submit_pending()
        out = TurnOutput()
        try:
            self.member.process_ready(out, self._send_now)
        except OSError as e:
            # After a failed fsync the page cache may have dropped our data: retrying could ack a lost
            # write. Stop instead (etcd does the same); a supervisor restarts us from what is durable.
            log.critical("WAL write/fsync failed, stopping: %s", e)
            raise SystemExit(1) from e
        if self.member.store_replaced:
            self._end_all_watches()
        self._route_messages(out.messages)
        for applied in out.applied:
            self._on_applied(applied)
        for rs in out.read_states:
            for p in self.requests.reads_with_context(int.from_bytes(rs.context, "big")):
                p.read_index = max(rs.index, 1)
        for p in self.requests.reads_ready(self.member.raft.raft.log.applied):
            self._serve_read(p)
        if out.became_leader:
            self.member.leader_start_ns = time.time_ns()
        for p in self.requests.expired(mono):
            log.warning("request %x timed out (no leader or no quorum)", p.req_id,
                        extra={"PYETCD_REQUEST_ID": f"{p.req_id:x}"})
            if type(p.waiter) is Conn and not p.waiter.closing:
                self._reply(p.waiter, self.api.timeout_reply())
        self._pump_links(mono)
        for conn in list(self.dirty):
            self._flush(conn)
        self.dirty.clear()
        self.supervisor.on_turn(self.member, mono)
        if mono >= self._next_housekeeping:
            self._next_housekeeping = mono + HOUSEKEEPING_S
            self._reap_idle(mono)

    # ---- raft plumbing -------------------------------------------------------------------------

    def _tick(self, mono: float) -> None:
        ticks = 0
        while mono >= self._next_tick:
            self._next_tick += self.tick_s
            ticks += 1
            if ticks > 10:  # we were stalled (e.g. SIGSTOP): do not replay a burst of ticks
                self._next_tick = mono + self.tick_s
                break
        for _ in range(min(ticks, 3)):
            self.member.raft.tick()

    def _leader_duties(self) -> None:
        member = self.member
        if member.is_leader:
            sync = member.node.sync_due(time.time_ns())
            if sync is not None:
                try:
                    member.raft.propose(sync.encode())
                except ProposalDropped:
                    pass
        if not self._published and member.raft.lead:
            self._publish_attributes()

    def _publish_attributes(self) -> None:
        """Tell the cluster our name and client URLs (etcd's member attribute publication)."""
        self._published = True
        me = self.member.members.by_id.get(self.member.self_id)
        urls = list(self.member.spec.client_urls)
        if me is not None and me.name == self.member.name and me.client_urls == urls:
            return
        req = Request(MEMBER_ATTRS, value=self.member.name, peer_urls=tuple(urls), origin=self.member.self_id)
        try:
            self.member.raft.propose(req.encode())
        except ProposalDropped:
            self._published = False

    def _submit_pending(self) -> None:
        """Hand this turn's requests to Raft in batches: all writes as one proposal (one append, one
        MsgApp per follower), all quorum reads under one ReadIndex round. What Raft drops (no leader
        yet, a conf change in flight) stays unsubmitted and is offered again every turn until its
        deadline."""
        self._fresh_submissions = False
        pending = self.requests.unsubmitted()
        if not pending:
            return
        raft = self.member.raft
        writes = [p for p in pending if type(p.outcome) is Propose]
        reads = [p for p in pending if type(p.outcome) is QuorumRead]
        if writes:
            try:
                raft.propose_many([p.data for p in writes])
                for p in writes:
                    p.submitted = True
            except ProposalDropped:
                pass
        if reads:
            ctx = reads[0].req_id
            try:
                raft.read_index(ctx.to_bytes(8, "big"))
                for p in reads:
                    p.submitted, p.read_ctx = True, ctx
            except ProposalDropped:
                pass
        for p in pending:
            if p.conf_change is not None:
                try:
                    raft.propose_conf_change(p.conf_change)
                    p.submitted = True
                except ProposalDropped:
                    pass

    def _serve_read(self, p: Pending) -> None:
        conn = p.waiter
        if type(conn) is Conn and not conn.closing:
            q = p.outcome
            self._reply(conn, self.api.get_reply(q.key, q.recursive, q.sorted, time.time_ns(), False))

    def _send_now(self, messages: list[Message]) -> None:
        """Queue and write peer messages at once (a leader's appends, before its own fsync)."""
        self._route_messages(messages)
        self._pump_links(time.monotonic())

    def _route_messages(self, messages: list[Message]) -> None:
        if messages:
            self._sync_links()
        for m in messages:
            link = self.links.get(m.to)
            if link is not None:
                link.enqueue(m)
                if m.entries:
                    self.member.send_appends += 1

    def _sync_links(self) -> None:
        """One link per other member, following membership changes."""
        members = self.member.members.by_id
        for pid in [pid for pid in self.links if pid not in members]:
            link = self.links.pop(pid)
            self._close_link(link)
        for pid, m in members.items():
            if pid == self.member.self_id:
                continue
            link = self.links.get(pid)
            if link is None:
                self.links[pid] = PeerLink(pid, list(m.peer_urls), self.member.self_id,
                                           self.member.cluster_id_bytes.decode(), self.peer_dial_tls,
                                           self.peer_allowed_cn)
            elif link.urls != list(m.peer_urls):
                link.urls = list(m.peer_urls)

    def _pump_links(self, mono: float) -> None:
        raft = self.member.raft
        for link in self.links.values():
            if link.timed_out(mono):
                self._close_link(link)
                link.fail(mono, "request timed out")
            sock = link.connect(mono)
            if sock is not None:
                self.sel.register(sock, selectors.EVENT_WRITE, link)
            if link.maybe_send(mono):
                self._flush_link(link)
            if link.removed:
                # A peer refused us with 410: we were removed while we could not hear about it.
                log.warning("member %x says this member was removed from the cluster; shutting down", link.peer_id)
                self.member.node.removed_self = True
                self.running = False
            if link.unreachable:
                link.unreachable = False
                raft.report_unreachable(link.peer_id)
            for ok in link.snapshot_results:
                raft.report_snapshot(link.peer_id, ok)
            link.snapshot_results.clear()

    def _on_link_event(self, link: PeerLink, mask: int) -> None:
        mono = time.monotonic()
        if link.state is LinkState.CONNECTING:
            if not link.on_connected():
                self._forget_link_socket(link)
                return
            assert link.sock is not None
            self.sel.modify(link.sock, selectors.EVENT_READ, link)
            link.maybe_send(mono)
            if link.has_output():  # the request, and on TLS the ClientHello
                self._flush_link(link)
            return
        if mask & selectors.EVENT_READ:
            sock = link.sock
            link.on_readable(mono)
            if link.sock is None and sock is not None:
                self._unregister_quietly(sock)
                return
            link.maybe_send(mono)  # the answer freed the link: send what queued meanwhile
        if mask & selectors.EVENT_WRITE or link.has_output():
            self._flush_link(link)

    def _flush_link(self, link: PeerLink) -> None:
        sock = link.sock
        if sock is None:
            return
        try:
            buf = link.wire_bytes()
        except TlsRefused as e:
            self._unregister_quietly(sock)
            link.fail(time.monotonic(), str(e))
            return
        if buf:
            try:
                sent = sock.send(buf)
                del buf[:sent]
            except (BlockingIOError, InterruptedError):
                pass
            except OSError as e:
                self._unregister_quietly(sock)
                link.fail(time.monotonic(), f"send: {e}")
                return
        events = selectors.EVENT_READ | (selectors.EVENT_WRITE if buf else 0)
        try:
            self.sel.modify(sock, events, link)
        except KeyError:
            self.sel.register(sock, events, link)

    def _forget_link_socket(self, link: PeerLink) -> None:
        for key in list(self.sel.get_map().values()):
            if key.data is link:
                self.sel.unregister(key.fileobj)

    def _close_link(self, link: PeerLink) -> None:
        if link.sock is not None:
            self._unregister_quietly(link.sock)
        link.close()

    def _unregister_quietly(self, sock: socket.socket) -> None:
        try:
            self.sel.unregister(sock)
        except (KeyError, ValueError):
            pass

    # ---- connections ---------------------------------------------------------------------------

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
            tls = None if listener.tls is None else TlsSession(listener.tls, True, mono,
                                                               allowed_cn=listener.allowed_cn)
            conn = Conn(sock, listener.is_peer, tls, f"{addr[0]}:{addr[1]}")
            conn.last_rx = mono
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
        if not data:
            self._close(conn)
            return
        conn.last_rx = time.monotonic()
        if conn.tls is not None:
            try:
                data = conn.tls.receive(data)
            except TlsRefused as e:
                self._refuse_tls(conn, e)
                return
            if conn.tls.wire:
                self._flush(conn)  # handshake replies
            if not data or conn.closing:
                return
        conn.rx_bytes += len(data)
        try:
            conn.h11.receive_data(data)
        except h11.RemoteProtocolError:
            self._protocol_error(conn, 400)
            return
        if conn.waiting:
            if len(conn.h11.trailing_data[0]) > PIPELINE_BYTES_MAX:
                self._set_reading(conn, False)  # resumed when the owed response is done
            return
        self._drive(conn)

    def _drive(self, conn: Conn) -> None:
        """Run h11 events until a request is complete and dispatched, or more bytes are needed.
        Pipelined requests answered synchronously are handled in this same loop (no recursion)."""
        conn.driving = True
        try:
            self._drive_events(conn)
        finally:
            conn.driving = False

    def _drive_events(self, conn: Conn) -> None:
        h = conn.h11
        while not conn.waiting and not conn.closing:
            if _backlog(conn) > OUTPUT_BYTES_MAX:
                self._set_reading(conn, False)  # a client not reading its answers gets no more; see _flush
                return
            try:
                event = h.next_event()
            except h11.RemoteProtocolError as e:
                self._protocol_error(conn, e.error_status_hint)
                return
            cls = type(event)
            if cls is h11.Request:
                if not self._request_acceptable(conn, event):  # type: ignore[arg-type]
                    return
                conn.method = event.method.decode("latin-1")  # type: ignore[union-attr]
                conn.target = event.target  # type: ignore[union-attr]
                conn.headers = event.headers.raw_items()  # type: ignore[union-attr]
                conn.body = bytearray()
            elif cls is h11.Data:
                if len(conn.body) <= conn.body_max:
                    conn.body += event.data  # type: ignore[union-attr]
                    if len(conn.body) > conn.body_max:
                        del conn.body[conn.body_max + 1:]  # enough to say "too large"; drop the rest
            elif cls is h11.EndOfMessage:
                self._dispatch(conn)
            elif event is h11.NEED_DATA or event is h11.PAUSED:
                return
            elif cls is h11.ConnectionClosed:
                self._close(conn)
                return

    def _request_acceptable(self, conn: Conn, event: h11.Request) -> bool:
        """Checks h11 leaves to us: Go's header size limit, HTTP/1.x only; answers 100 Continue."""
        if conn.rx_bytes > HEADER_BYTES_MAX:  # only then can a complete header block be too big
            size = len(event.target) + sum(len(k) + len(v) + 4 for k, v in event.headers.raw_items())
            if size > HEADER_BYTES_MAX:
                self._protocol_error(conn, 431)
                return False
        conn.rx_bytes = 0
        if event.http_version not in (b"1.1", b"1.0"):
            self._protocol_error(conn, 505)
            return False
        if conn.h11.they_are_waiting_for_100_continue:
            conn.out += conn.h11.send(h11.InformationalResponse(status_code=100, headers=[]))  # type: ignore[arg-type]
            self.dirty.add(conn)
        return True

    def _dispatch(self, conn: Conn) -> None:
        conn.waiting = True
        conn.head = conn.method == "HEAD"
        body = bytes(conn.body)
        conn.body = bytearray()
        now_ns = time.time_ns()
        try:
            if conn.is_peer:
                reply, messages = self.peer_api.handle(conn.method, conn.target, conn.headers, body)
                for m in messages:
                    if m.entries:
                        self.member.recv_appends += 1
                    self.member.raft.step(m)
                self._reply(conn, reply)
                return
            outcome = self.api.handle(conn.method, conn.target, conn.headers, body, now_ns)
        except Exception:  # a bug must cost one request, not the server
            log.exception("internal error handling %s %r", conn.method, conn.target)
            outcome = Reply(500, [(b"Content-Type", b"text/plain; charset=utf-8")], b"Internal Server Error\n")
        kind = type(outcome)
        if kind is Reply:
            self._reply(conn, outcome)  # type: ignore[arg-type]
        elif kind is StartWatch:
            self._start_watch(conn, outcome)  # type: ignore[arg-type]
        else:
            self._submit(conn, outcome)  # type: ignore[arg-type]

    def _submit(self, conn: Conn, outcome: Propose | QuorumRead | ProposeConf) -> None:
        """Hand a write, membership change or quorum read to Raft; its answer comes when applied."""
        rid = self.requests.new_id()
        p = Pending(rid, conn, outcome, time.monotonic() + self.request_timeout_s)
        if type(outcome) is Propose:
            req = outcome.request
            p.data = Request(req.kind, req.path, req.value, req.dir, req.prev_value, req.prev_index,
                             req.prev_exist, req.expire_at_ns, req.refresh, req.recursive, req.sorted,
                             req.time_ns, req.peer_urls, self.member.self_id, rid).encode()
        elif type(outcome) is ProposeConf:
            p.conf_change = outcome.change
        self.requests.add(p)
        self._fresh_submissions = True  # proposed in _submit_pending, batched with this turn's others

    # ---- responses -----------------------------------------------------------------------------

    def _date_header(self) -> bytes:
        now = int(time.time())
        if now != self._date_sec:
            self._date_sec = now
            self._date = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(now)).encode()
        return self._date

    def _reply(self, conn: Conn, reply: Reply) -> None:
        h = conn.h11
        headers = reply.headers
        headers.append((b"Date", self._date_header()))
        if reply.status != 204 and not reply.no_length:
            headers.append((b"Content-Length", b"%d" % len(reply.body)))
        try:
            out = h.send(_make_response(reply.status, headers))
            if reply.body and not conn.head:
                out += h.send(h11.Data(data=reply.body))  # type: ignore[operator]
            out += h.send(h11.EndOfMessage())  # type: ignore[operator]
        except h11.LocalProtocolError:
            log.exception("cannot send response")
            self._close(conn)
            return
        conn.out += out  # type: ignore[arg-type]
        self._response_done(conn)

    def _response_done(self, conn: Conn) -> None:
        conn.waiting = False
        conn.watcher = None
        self.dirty.add(conn)
        h = conn.h11
        if h.our_state is h11.MUST_CLOSE or h.their_state is h11.MUST_CLOSE:
            conn.closing = True
            return
        if h.our_state is h11.DONE and h.their_state is h11.DONE:
            h.start_next_cycle()
            if not conn.reading:
                self._set_reading(conn, True)
            if not conn.driving:
                self._drive(conn)
        # else: the client is still sending a body we did not wait for; h11 reads and discards it

    def _protocol_error(self, conn: Conn, status: int) -> None:
        if status == 431:
            conn.out += (b"HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Type: text/plain; "
                         b"charset=utf-8\r\nConnection: close\r\n\r\n431 Request Header Fields Too Large")
        elif status == 505:
            text = b"505 HTTP Version Not Supported: unsupported protocol version"
            conn.out += (b"HTTP/1.1 " + text + b"\r\nContent-Type: text/plain; charset=utf-8\r\n"
                         b"Connection: close\r\n\r\n" + text)
        else:
            conn.out += _BAD_REQUEST
        conn.closing = True
        self.dirty.add(conn)

    def _on_applied(self, applied: Applied) -> None:
        req = applied.request
        if req is not None and req.origin == self.member.self_id and req.req_id:
            p = self.requests.pop(req.req_id)
            if p is not None and type(p.waiter) is Conn and not p.waiter.closing:
                self._reply(p.waiter, self.api.render_result(p.outcome, applied.result))
        cc = applied.conf_change
        if cc is not None:
            self._sync_links()
            p = self.requests.conf_change_waiter(cc)
            if p is not None and type(p.waiter) is Conn and not p.waiter.closing:
                self._reply(p.waiter, self.api.render_conf_result(p.outcome))
            if cc.type is ConfChangeType.REMOVE_NODE and cc.node_id == self.member.self_id:
                self.running = False
        for watcher, event in applied.fired:
            self._fire(watcher, event)

    # ---- watches -------------------------------------------------------------------------------

    def _start_watch(self, conn: Conn, w: StartWatch) -> None:
        store = self.member.store
        try:
            watcher, found = store.watch(w.path, w.recursive, w.stream, w.since_index, self.next_watcher_id)
        except V2Error as e:
            self._reply(conn, self.api.error_reply(e, w.head))
            return
        self.next_watcher_id += 1
        headers = self.api.watch_headers(store.index)
        headers.append((b"Date", self._date_header()))
        conn.out += conn.h11.send(_make_response(200, headers))  # type: ignore[arg-type]
        self.dirty.add(conn)
        if not watcher.removed:
            conn.watcher = watcher
            self.watch_conns[watcher.watcher_id] = conn
        if found is not None:
            conn.out += conn.h11.send(h11.Data(data=found.to_json_bytes()))  # type: ignore[arg-type]
            if not w.stream:
                self._end_watch(conn)

    def _fire(self, watcher: Watcher, event: Any) -> None:
        conn = self.watch_conns.get(watcher.watcher_id)
        if conn is None:
            return
        conn.out += conn.h11.send(h11.Data(data=event.to_json_bytes()))  # type: ignore[arg-type]
        self.dirty.add(conn)
        if not watcher.stream:
            del self.watch_conns[watcher.watcher_id]
            self._end_watch(conn)
        elif _backlog(conn) > WATCH_OUTPUT_BYTES_MAX:
            log.warning("dropping a stream watcher on %s: client is %d bytes behind", watcher.key, _backlog(conn))
            self._close(conn)

    def _end_all_watches(self) -> None:
        """The store was replaced by a leader's snapshot: close every watch (etcd clears watchers on
        recovery too); clients reconnect with a waitIndex and read the missed events from history."""
        self.member.store_replaced = False
        for conn in list(self.watch_conns.values()):
            self._close(conn)
        self.watch_conns.clear()

    def _end_watch(self, conn: Conn) -> None:
        conn.out += conn.h11.send(h11.EndOfMessage())  # type: ignore[arg-type]
        self._response_done(conn)

    # ---- output and teardown -------------------------------------------------------------------

    def _flush(self, conn: Conn) -> None:
        buf = conn.out
        if conn.tls is not None:
            if conn.out and conn.tls.established:
                try:
                    conn.tls.send(conn.out)
                except TlsRefused as e:
                    self._refuse_tls(conn, e)
                    return
                conn.out.clear()
            buf = conn.tls.wire
        if buf:
            try:
                sent = conn.sock.send(buf)
                del buf[:sent]
            except (BlockingIOError, InterruptedError):
                pass
            except OSError:
                self._close(conn)
                return
        if buf:
            if not conn.writing:
                conn.writing = True
                self._modify(conn)
            if len(buf) > OUTPUT_BYTES_MAX and conn.reading:
                self._set_reading(conn, False)
        else:
            if conn.closing:
                self._close(conn)
                return
            if conn.writing:
                conn.writing = False
                self._modify(conn)
        if not conn.reading and _backlog(conn) <= OUTPUT_BYTES_MAX // 2 and not conn.waiting:
            self._set_reading(conn, True)  # the client caught up: serve what it pipelined meanwhile
            if not conn.driving:
                self._drive(conn)

    def _refuse_tls(self, conn: Conn, why: TlsRefused) -> None:
        """A failed handshake or an unacceptable certificate: say why in the log (etcd logs "rejected
        connection"), send what TLS owes the other side (its alert), close."""
        kind = "peer" if conn.is_peer else "client"
        log.warning("rejected %s connection from %s: %s", kind, conn.addr, why)
        try:
            if isinstance(why, PlainHttpOnTls):
                conn.sock.send(PLAIN_HTTP_ON_TLS_REPLY)
            elif conn.tls is not None and conn.tls.wire:
                conn.sock.send(conn.tls.wire)
        except OSError:
            pass
        self._close(conn)

    def _set_reading(self, conn: Conn, on: bool) -> None:
        conn.reading = on
        self._modify(conn)

    def _modify(self, conn: Conn) -> None:
        events = (selectors.EVENT_READ if conn.reading else 0) | (selectors.EVENT_WRITE if conn.writing else 0)
        if conn.sock.fileno() < 0:
            return
        if not events:
            if conn.registered:
                self.sel.unregister(conn.sock)
                conn.registered = False
        elif conn.registered:
            self.sel.modify(conn.sock, events, conn)
        else:
            self.sel.register(conn.sock, events, conn)
            conn.registered = True

    def _close(self, conn: Conn) -> None:
        fd = conn.sock.fileno()
        if fd < 0:
            return
        if conn.waiting:
            self.requests.drop_waiter(conn)
        if conn.watcher is not None:
            self.member.store.hub.remove(conn.watcher)
            self.watch_conns.pop(conn.watcher.watcher_id, None)
            conn.watcher = None
        if conn.registered:
            self.sel.unregister(conn.sock)
        self.conns.pop(fd, None)
        conn.closing = True
        conn.sock.close()

    def _reap_idle(self, mono: float) -> None:
        """Abandon requests whose bytes stopped arriving (slowloris); idle keep-alive and watches stay."""
        for conn in list(self.conns.values()):
            if conn.tls is not None and not conn.tls.established and mono - conn.tls.started_at > HANDSHAKE_TIMEOUT_S:
                log.warning("rejected %s connection from %s: TLS handshake timed out",
                            "peer" if conn.is_peer else "client", conn.addr)
                self._close(conn)
                continue
            if conn.waiting or mono - conn.last_rx < REQUEST_IDLE_S:
                continue
            their = conn.h11.their_state
            if their is h11.SEND_BODY or (their is h11.IDLE and conn.h11.trailing_data[0]):
                self._close(conn)

    def shutdown(self) -> None:
        self.supervisor.stopping()
        for lsock in self.listeners:
            self._unregister_quietly(lsock)
            lsock.close()
        self._hand_over_leadership()
        out = TurnOutput()
        self.member.process_ready(out)
        for applied in out.applied:
            self._on_applied(applied)
        for conn in list(self.conns.values()):
            self._flush(conn)
            self._close(conn)
        for link in self.links.values():
            self._close_link(link)
        self.member.close()
        log.info("stopped")

    def _hand_over_leadership(self) -> None:
        """A leader stopping gracefully hands over to its most up-to-date follower first, so the
        cluster does not wait an election timeout (etcd does the same)."""
        raft = self.member.raft.raft
        if not self.member.is_leader or len(raft.prs) < 2:
            return
        target = max((pid for pid in raft.prs if pid != raft.id), key=lambda pid: raft.prs[pid].match)
        self.member.raft.transfer_leadership(target)
        deadline = time.monotonic() + min(2.0, 10 * self.tick_s)
        self.running = True
        while time.monotonic() < deadline and self.member.is_leader:
            self.run_turn(min(self.tick_s, 0.05))
        self.running = False


def _backlog(conn: Conn) -> int:
    """Bytes owed to the client: plaintext not yet encrypted plus ciphertext not yet sent."""
    return len(conn.out) + (len(conn.tls.wire) if conn.tls is not None else 0)
