"""Frontend: what each complete HTTP request becomes, and how answers and watch events go back (no
sockets here: the loop owns them and calls in with connections that have input or answers).

A client request is routed by http/client_api.py into a Reply (answered at once), a watch (registered
with the store through the driver, answered as events fire), or work for the driver (a write, a quorum
read, a membership change), answered when the driver's turn returns its Answer. A peer request (POST
/raft) goes to http/peer_api.py and its messages to the driver. One request per connection at a time:
`serve` hands out the next pipelined request once the previous one is answered.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from ..http import client_api
from ..http.auth_api import NOBODY, ProposeAuth
from ..http.client_api import ClientApi, Propose, ProposeConf, QuorumRead, Reply, StartWatch, find_header
from ..http.conn import HttpRequest
from ..http.peer_api import PeerApi
from ..server.driver import Answer, MemberDriver
from ..server.requests import AUTH, Request
from ..store.errors import V2Error
from ..store.event import Event
from ..store.watcher_hub import Watcher
from .auth_gate import AuthGate
from .connections import Conn, http_date
from .member import MemberView
from .metrics import MetricsEndpoint, is_metrics_request

log = logging.getLogger("pyetcd.serving")

_INTERNAL_ERROR = Reply(500, [(b"Content-Type", b"text/plain; charset=utf-8")], b"Internal Server Error\n")
WATCH_REFUSED_LOG_S = 10.0  # at most one warning about refused watches per this many seconds


def too_many_watches(limit: int, extra: list[tuple[bytes, bytes]] | None = None, head: bool = False) -> Reply:
    """The answer to a watch beyond the watch share of the open-files budget (runtime/fdlimit.py).

    503 with etcd's HTTP-level error body ({"message": ...}, its httptypes.HTTPError, which etcd writes for
    its own 503s): etcd's v2 client library treats a 503 as "this member cannot serve now" and tries the
    next endpoint, which is what a watcher should do; an errorCode body would read as an answer about the
    key. The connection is closed (Connection: close) so its fd goes back to the requests that are not
    watches at once; Retry-After says when this member may have room again. Watches are refused rather
    than idle watchers dropped: a dropped watcher reconnects and would take the slot right back."""
    body = b'{"message":"etcdserver: too many watches (%d): try another member or later"}' % limit
    headers = [*client_api.CORS, client_api.JSON_CT, *(extra or []), (b"Retry-After", b"1"), (b"Connection", b"close")]
    return Reply(503, headers, body, head)


class Frontend:
    def __init__(self, driver: MemberDriver, view: MemberView, close: Callable[[Conn], None],
                 gate: AuthGate) -> None:
        self.driver = driver
        self.view = view
        self.gate = gate
        self.api, self.peer_api = ClientApi(view), PeerApi(view)
        self.close = close  # the loop's: tear a connection down
        self.watch_conns: dict[int, Conn] = {}
        self.watch_limit = 1 << 30  # connections that may hold a watch: connections.py sets it (fdlimit.py)
        self.watches_refused = 0
        self._refused_logged_at = -WATCH_REFUSED_LOG_S
        self.next_watcher_id = 1
        self.dirty: set[Conn] = set()  # connections with output to flush this turn
        self._fired_event: Event | None = None  # the last event fired and its body: one PUT wakes
        self._fired_body = b""  # thousands of watchers with the same bytes (encoded once, not per watcher)
        # /metrics: the loop's endpoint, and plain counters read at scrape time (runtime/metrics.py)
        self.metrics: MetricsEndpoint | None = None
        self.requests = 0  # client requests handed out
        self.watch_requests = 0
        self.peer_received: dict[int, int] = {}  # sender id -> POST /raft body bytes
        self.peer_receive_failures: dict[int, int] = {}  # sender id (X-Server-From) -> refused POST /raft

    def closed(self, conn: Conn) -> None:
        """The connection is being torn down: drop what waits on it (a request, a watch)."""
        if conn.http.busy:
            self.driver.cancel(conn)
        if conn.watcher is not None:
            self.driver.unwatch(conn.watcher)
            self.watch_conns.pop(conn.watcher.watcher_id, None)
            conn.watcher = None

    def serve(self, conn: Conn) -> None:
        """Hand out every complete request the connection holds (one at a time: each waits for the
        previous one's answer); answers that come later call this again for what was pipelined."""
        if conn.serving:
            return
        conn.serving = True
        try:
            while (req := conn.http.next_request(conn.wire())) is not None:
                self.requests += not conn.is_peer
                self._dispatch(conn, req)
        finally:
            conn.serving = False
        self.dirty.add(conn)

    def _dispatch(self, conn: Conn, req: HttpRequest) -> None:
        now_ns = time.time_ns()
        try:
            if conn.is_peer:
                reply, messages = self.peer_api.handle(req.method, req.target, req.headers, req.body)
                if messages:
                    frm = messages[0].frm
                    self.peer_received[frm] = self.peer_received.get(frm, 0) + len(req.body)
                elif reply.status >= 400 and req.method == "POST":
                    self._peer_refused(req)
                self.driver.step(messages)
                conn.http.reply(reply, self.date_header())
                return
            if self.metrics is not None and is_metrics_request(req.target):  # no auth, as etcd's
                conn.http.reply(self.metrics.reply(req.method), self.date_header())
                return
            who = NOBODY
            if self.view.auth.enabled:
                found = self.gate.identify(req.headers, lambda: self._verified(conn, req), conn)
                if found is None:
                    return  # the password is being checked; _verified routes the request again
                who = found
            outcome = self.api.handle(req.method, req.target, req.headers, req.body, now_ns, who)
        except Exception:  # a bug must cost one request, not the server
            log.exception("internal error handling %s %r", req.method, req.target)
            outcome = _INTERNAL_ERROR
        try:
            self._route(conn, outcome)
        except Exception:  # a bug must cost one request, not the server
            log.exception("internal error handling %s %r", req.method, req.target)
            if conn.http.busy:
                conn.http.reply(_INTERNAL_ERROR, self.date_header())

    def _peer_refused(self, req: HttpRequest) -> None:
        sender = find_header(req.headers, b"x-server-from")
        try:
            frm = int(sender, 16) if sender else 0
        except ValueError:
            frm = 0
        self.peer_receive_failures[frm] = self.peer_receive_failures.get(frm, 0) + 1

    def _route(self, conn: Conn, outcome: object) -> None:
        kind = type(outcome)
        if kind is Reply:
            conn.http.reply(outcome, self.date_header())  # type: ignore[arg-type]
        elif kind is Propose:
            self.driver.propose(conn, outcome, outcome.request, time.monotonic())  # type: ignore[union-attr]
        elif kind is QuorumRead:
            self.driver.read(conn, outcome, time.monotonic())
        elif kind is ProposeConf:
            self.driver.change_membership(conn, outcome, outcome.change, time.monotonic())  # type: ignore[union-attr]
        elif kind is ProposeAuth:
            self._propose_auth(conn, outcome)  # type: ignore[arg-type]
        else:
            self._start_watch(conn, outcome)  # type: ignore[arg-type]

    def _verified(self, conn: Conn, req: HttpRequest) -> None:
        """A password check ended (its verdict is cached): route the request again, then what it held up."""
        if conn.sock.fileno() < 0 or not conn.http.busy:
            return
        self._dispatch(conn, req)
        self.dirty.add(conn)
        self.serve(conn)

    def _propose_auth(self, conn: Conn, change: ProposeAuth) -> None:
        """One AUTH entry; a new password is bcrypt-hashed first, off the loop (the hash is proposed)."""
        def propose(c: ProposeAuth) -> None:
            if conn.sock.fileno() < 0 or not conn.http.busy:
                return
            req = Request(AUTH, value=c.op.encode(), time_ns=time.time_ns())
            self.driver.propose(conn, c, req, time.monotonic())

        def hashed(password_hash: str) -> None:
            if password_hash:
                propose(change.with_hash(password_hash))
            elif conn.sock.fileno() >= 0 and conn.http.busy:  # bcrypt failed: nothing is stored
                conn.http.reply(_INTERNAL_ERROR, self.date_header())
                self.dirty.add(conn)
                self.serve(conn)

        if change.password:
            self.gate.worker.hash(change.password, hashed)
        else:
            propose(change)

    def answer(self, answers: list[Answer]) -> None:
        for a in answers:
            conn: Conn = a.waiter
            if conn.sock.fileno() < 0:
                continue
            tag, result = a.tag, a.result
            if isinstance(result, V2Error) and type(tag) is not Propose:
                reply = self.api.error_reply(result)
            elif type(tag) is ProposeAuth:
                reply = self.api.render_auth_result(result)
            elif type(tag) is Propose:
                reply = self.api.render_result(tag, result)
            elif type(tag) is QuorumRead:
                reply = self.api.get_reply(tag.key, tag.recursive, tag.sorted, time.time_ns(), False)
            else:
                reply = self.api.render_conf_result(tag)
            conn.http.reply(reply, self.date_header())
            self.serve(conn)

    # ---- watches -------------------------------------------------------------------------------

    def _start_watch(self, conn: Conn, w: StartWatch) -> None:
        self.watch_requests += 1
        try:
            watcher, found = self.driver.watch(w.path, w.recursive, w.stream, w.since_index, self.next_watcher_id)
        except V2Error as e:
            conn.http.reply(self.api.error_reply(e, w.head), self.date_header())
            return
        if len(self.watch_conns) >= self.watch_limit and not watcher.removed and (w.stream or found is None):
            # it would hold its connection (one answered from the history at once would not): refuse it
            self.driver.unwatch(watcher)
            self._refuse_watch(conn, w)
            return
        self.next_watcher_id += 1
        conn.http.start_stream(200, self.api.watch_headers(self.driver.store.index), self.date_header())
        if not watcher.removed:
            conn.watcher = watcher
            self.watch_conns[watcher.watcher_id] = conn
        if found is not None:
            conn.http.send_chunk(found.to_json_bytes())
            if not w.stream:
                self._end_watch(conn)

    def _refuse_watch(self, conn: Conn, w: StartWatch) -> None:
        self.watches_refused += 1
        mono = time.monotonic()
        if mono - self._refused_logged_at >= WATCH_REFUSED_LOG_S:
            self._refused_logged_at = mono
            log.warning("refusing watches: %d open, the most the open files limit allows (%d refused so far); "
                        "raise LimitNOFILE or spread the watchers over more members", len(self.watch_conns),
                        self.watches_refused)
        extra = [(b"X-Etcd-Cluster-Id", self.view.cluster_id_bytes),
                 (b"X-Etcd-Index", b"%d" % self.driver.store.index)]
        conn.http.reply(too_many_watches(self.watch_limit, extra, w.head), self.date_header())

    def fire(self, watcher: Watcher, event: Event) -> None:
        conn = self.watch_conns.get(watcher.watcher_id)
        if conn is None:
            return
        if event is not self._fired_event:
            self._fired_event, self._fired_body = event, event.to_json_bytes()
        conn.http.send_chunk(self._fired_body)
        self.dirty.add(conn)
        if not watcher.stream:
            del self.watch_conns[watcher.watcher_id]
            self._end_watch(conn)
            self.serve(conn)
        elif conn.http.stream_overflowing(conn.wire()):
            log.warning("dropping a stream watcher on %s: client is %d bytes behind", watcher.key,
                        conn.http.backlog(conn.wire()))
            self.close(conn)

    def _end_watch(self, conn: Conn) -> None:
        conn.watcher = None
        conn.http.end_stream()

    def end_all_watches(self) -> None:
        """The store was replaced by a leader's snapshot: close every watch (etcd clears watchers on
        recovery too); clients reconnect with a waitIndex and read the missed events from history."""
        for conn in list(self.watch_conns.values()):
            self.close(conn)
        self.watch_conns.clear()

    def date_header(self) -> bytes:
        return http_date()
