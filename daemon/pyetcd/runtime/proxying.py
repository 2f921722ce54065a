"""The proxy's front: client requests relayed to the members, and the members list kept fresh.

A client request (one at a time per connection, as on a member) becomes a Relay: it tries the director's
available endpoints in order on pooled keep-alive connections (runtime/upstream.py) and passes the first
answer back as it arrives (headers, then each body part: watches stream through, never buffered whole).
An endpoint that cannot be dialled, written or read before its answer starts is held out (the director's
failure wait) and the next one is tried with the same request; a pooled connection that turns out stale
(closed before any answer) is retried once on a fresh connection to the same member. When every endpoint
failed the client gets etcd's 502; with none available, etcd's 503. An answer cut off midway closes the
client's connection (it cannot be retried: part of it was sent). A client that stops reading pauses the
member's side until it catches up.

Watches (wait=true, long-poll or stream) hold a client connection and a member connection each for as
long as they last: beyond the watch share of the open-files budget (fdlimit.py; a proxy counts two fds
per connection) they get the member's 503 (serving.too_many_watches), so writes and reads keep room.

A MembersRefresh asks the peers' `GET /members` in turn, as etcd's proxy does every refresh interval,
for the members' client URLs (the endpoints) and peer URLs (kept in DATA_DIR/proxy/cluster).
"""

from __future__ import annotations

import logging
import selectors
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

import h11

from ..http.client_api import Reply
from ..http.conn import HttpRequest
from ..proxy import forwarding
from ..proxy.director import Director, Endpoint
from ..server.metrics import FAILED_GETTING_RESPONSE, FAILED_SENDING_REQUEST, ZERO_ENDPOINTS, ProxyMetrics
from .connections import Conn, http_date
from .metrics import MetricsEndpoint, is_metrics_request
from .serving import too_many_watches
from .upstream import Pool, UpstreamConn, UpstreamFailed

log = logging.getLogger("pyetcd.proxy")

PAUSE_BYTES = 1024 * 1024  # a client this far behind pauses the member's side of its answer
RESUME_BYTES = 256 * 1024
MEMBERS_BYTES_MAX = 4 * 1024 * 1024
MEMBERS_TIMEOUT_S = 5.0
_RW = selectors.EVENT_READ | selectors.EVENT_WRITE


@dataclass(frozen=True)
class Timeouts:
    """etcd's --proxy-dial-timeout, --proxy-write-timeout, --proxy-read-timeout in seconds (0: none)."""

    dial_s: float = 1.0
    write_s: float = 5.0
    read_s: float = 0.0


class Relay:
    """One client request on its way through a member."""

    __slots__ = ("client", "req", "headers", "endpoints", "index", "fresh", "upstream", "streaming", "started",
                 "watch")

    def __init__(self, client: Conn, req: HttpRequest, endpoints: list[Endpoint]) -> None:
        self.client, self.req, self.endpoints = client, req, endpoints
        self.headers = forwarding.upstream_headers(req.headers, req.body, req.method, client.addr.rpartition(":")[0],
                                                   b"")  # without a Host if the client sent none: see _attempt
        self.index = 0  # the endpoint being tried
        self.fresh = False  # the next try must dial (the pooled connection was stale)
        self.upstream: UpstreamConn | None = None
        self.streaming = False  # the answer's head went to the client: no retry any more
        self.started = 0.0  # monotonic, for etcd_proxy_handling_duration_seconds
        self.watch = False  # a watch: counted in the front's `watches` while it lasts


class ProxyFrontend:
    def __init__(self, sel: selectors.BaseSelector, director: Director, tls_context: ssl.SSLContext | None,
                 peer_tls_context: ssl.SSLContext | None, readonly: bool, timeouts: Timeouts) -> None:
        self.sel = sel
        self.director = director
        self.tls_context = tls_context  # towards the members' client URLs
        self.peer_tls_context = peer_tls_context  # towards their peer URLs (GET /members)
        self.readonly = readonly
        self.timeouts = timeouts
        self.close_client: Callable[[Conn], None] = lambda conn: None  # the loop's: tear a client down
        self.pool = Pool(sel)
        self.dirty: set[Conn] = set()
        self.timed: set[UpstreamConn] = set()  # connections with a dial/write/read deadline
        self.paused: set[Relay] = set()
        self.metrics = ProxyMetrics()  # etcd_proxy_*, read at scrape time (runtime/metrics.py)
        self.metrics_endpoint: MetricsEndpoint | None = None  # the loop's GET /metrics
        self.watch_limit = 1 << 30  # relayed watches allowed at once: connections.py sets it (fdlimit.py)
        self.watches = 0  # relayed watches under way
        self.watches_refused = 0

    # ---- client side (connections.py calls these) ----------------------------------------------

    def serve(self, conn: Conn) -> None:
        """Hand out the connection's complete requests, one at a time: each waits for the previous answer
        (relayed answers call this again when they end)."""
        if conn.serving:
            return  # an answer given while handing out requests: the loop below goes on
        conn.serving = True
        try:
            while conn.relay is None and (req := conn.http.next_request(conn.wire())) is not None:
                reply = self._own_answer(req)
                if reply is not None:
                    conn.http.reply(reply, http_date())
                else:
                    self._start(conn, req)
        finally:
            conn.serving = False
        self.dirty.add(conn)

    def closed(self, conn: Conn) -> None:
        relay: Relay | None = conn.relay
        conn.relay = None
        if relay is not None:
            self._ended(relay)
        if relay is not None and relay.upstream is not None:
            self._drop(relay.upstream)  # mid-answer: it cannot be reused
            relay.upstream = None
        self.paused.discard(relay)  # type: ignore[arg-type]

    def _own_answer(self, req: HttpRequest) -> Reply | None:
        """What the proxy answers itself: /metrics, readonly refusals, its config, no endpoints."""
        if self.metrics_endpoint is not None and is_metrics_request(req.target):  # etcd's mux, before readonly
            return self.metrics_endpoint.reply(req.method)
        if self.readonly and req.method != "GET":
            return forwarding.readonly_refused(req.method)
        if req.target.split(b"?", 1)[0] == forwarding.CONFIG_PATH:
            return forwarding.config(req.method, [e.url for e in self.director.available(time.monotonic())])
        if not self.director.available(time.monotonic()):
            self.metrics.incoming(req.method)
            self.metrics.drop(req.method, ZERO_ENDPOINTS)
            log.warning("httpproxy: zero endpoints currently available")
            return forwarding.zero_endpoints()
        return None

    def _start(self, conn: Conn, req: HttpRequest) -> None:
        now = time.monotonic()
        relay = Relay(conn, req, self.director.available(now))
        relay.started = now
        self.metrics.incoming(req.method)
        if is_watch(req):
            if self.watches >= self.watch_limit:
                self.watches_refused += 1
                if self.watches_refused % 1000 == 1:
                    log.warning("proxy: refusing watches: %d under way, the most the open files limit allows "
                                "(%d refused so far)", self.watches, self.watches_refused)
                conn.http.reply(too_many_watches(self.watch_limit, head=req.method == "HEAD"), http_date())
                return
            relay.watch = True
            self.watches += 1
        conn.relay = relay
        self._attempt(relay, now)

    def _ended(self, relay: Relay) -> None:
        """The relay is over (answered, failed or its client gone): its watch slot, if any, is free."""
        if relay.watch:
            relay.watch = False
            self.watches -= 1

    def _attempt(self, relay: Relay, now: float) -> None:
        req = relay.req
        while relay.index < len(relay.endpoints):
            ep = relay.endpoints[relay.index]
            up = None if relay.fresh else self.pool.take(ep)
            relay.fresh = False
            if up is None:
                try:
                    up = UpstreamConn(ep, self.tls_context, now)
                except UpstreamFailed as e:
                    self._endpoint_failed(relay, str(e), now)
                    continue
                except OSError as e:  # EMFILE/ENFILE: no socket for any member (not the member's fault)
                    log.warning("proxy: no connection to %s: %s", ep.url, e)
                    self.metrics.drop(req.method, FAILED_SENDING_REQUEST)
                    self._finish(relay, forwarding.no_response(relay.index + 1))
                    return
            up.owner = relay
            relay.upstream = up
            headers = relay.headers
            if not any(n.lower() == b"host" for n, _ in headers):
                headers = [(b"Host", f"{ep.host}:{ep.port}".encode()), *headers]
            up.send_request(req.method.encode(), req.target, headers, req.body)
            self._arm(up, now)
            if up.connected:
                self._on_writable(up, now)
            else:
                up.watch(self.sel, _RW)
            return
        self.metrics.drop(req.method, FAILED_GETTING_RESPONSE)
        self._finish(relay, forwarding.no_response(len(relay.endpoints)))
        log.warning("httpproxy: unable to get response from %d endpoint(s)", len(relay.endpoints))

    def _endpoint_failed(self, relay: Relay, why: str, now: float) -> None:
        ep = relay.endpoints[relay.index]
        log.warning("proxy: failed to direct request to %s: %s", ep.url, why)
        self.metrics.drop(relay.req.method, FAILED_SENDING_REQUEST)
        self.director.failed(ep, now)
        relay.index += 1

    def _finish(self, relay: Relay, reply: Reply) -> None:
        conn = relay.client
        conn.relay = None
        self._ended(relay)
        conn.http.reply(reply, http_date())
        self.serve(conn)

    # ---- member side (the loop calls these) ----------------------------------------------------

    def on_upstream(self, up: UpstreamConn, mask: int) -> None:
        now = time.monotonic()
        owner = up.owner
        try:
            if mask & selectors.EVENT_WRITE:
                self._on_writable(up, now)
            if mask & selectors.EVENT_READ and up.owner is owner:
                events = up.on_readable()
                if type(owner) is Relay:
                    self._relay_events(owner, up, events, now)
                elif owner is not None:
                    owner.on_events(up, events)
                if up.owner is owner and owner is not None:
                    self._rearm(up, now)
        except UpstreamFailed as e:
            self._upstream_failed(up, str(e), now)

    def _on_writable(self, up: UpstreamConn, now: float) -> None:
        was_connected = up.connected
        up.on_writable()
        if up.connected and not was_connected:
            self._arm(up, now)
        self._rearm(up, now)

    def _arm(self, up: UpstreamConn, now: float) -> None:
        """Deadline for what the connection waits for: the dial, then writing the request."""
        t = self.timeouts
        limit = (t.dial_s if not up.connected else t.write_s) if up.wants_write() else t.read_s
        up.deadline = now + limit if limit else 0.0
        if up.deadline:
            self.timed.add(up)
        else:
            self.timed.discard(up)

    def _rearm(self, up: UpstreamConn, now: float) -> None:
        writing = up.wants_write()
        if not writing and up.deadline and (self.timeouts.read_s or not up.connected):
            self._arm(up, now)  # the request is out: from now on only the read timeout (if any) applies
        elif not writing and up.deadline:
            up.deadline = 0.0
            self.timed.discard(up)
        relay = up.owner
        reading = not (type(relay) is Relay and relay in self.paused)
        up.watch(self.sel, (selectors.EVENT_READ if reading else 0) | (selectors.EVENT_WRITE if writing else 0))

    def _relay_events(self, relay: Relay, up: UpstreamConn, events: list[Any], now: float) -> None:
        client = relay.client
        http = client.http
        for event in events:
            kind = type(event)
            if kind is h11.Data:
                http.send_chunk(event.data)
                if http.backlog(client.wire()) > PAUSE_BYTES:
                    self.paused.add(relay)
            elif kind is h11.Response:
                relay.streaming = True
                self.metrics.answered(relay.req.method, event.status_code, now - relay.started)
                http.start_stream(event.status_code, forwarding.downstream_headers(event.headers.raw_items()))
            elif kind is h11.EndOfMessage:
                self.timed.discard(up)
                relay.upstream = None
                if up.reusable():
                    self.pool.give_back(up)
                else:
                    self._drop(up)
                http.end_stream()
                client.relay = None
                self._ended(relay)
                self.paused.discard(relay)
                self.serve(client)
                return
        if self.timeouts.read_s and events:
            self._arm(up, now)
        self.dirty.add(client)

    def _upstream_failed(self, up: UpstreamConn, why: str, now: float) -> None:
        owner = up.owner
        self._drop(up)
        if type(owner) is not Relay:
            if owner is not None:
                owner.on_failure(up, why)
            return
        relay: Relay = owner
        relay.upstream = None
        if relay.streaming:  # part of the answer went out: the client must see it cut off
            log.warning("proxy: answer from %s cut off: %s", up.endpoint.url, why)
            self.close_client(relay.client)
            return
        if up.reused and not up.received:
            relay.fresh = True  # a keep-alive connection the member had closed: dial it again
        else:
            self._endpoint_failed(relay, why, now)
        self._attempt(relay, now)

    def _drop(self, up: UpstreamConn) -> None:
        self.timed.discard(up)
        up.close(self.sel)

    # ---- housekeeping --------------------------------------------------------------------------

    def check_deadlines(self, now: float) -> None:
        for up in [u for u in self.timed if u.deadline and now >= u.deadline]:
            what = "dial" if not up.connected else "write" if up.wants_write() else "read"
            self._upstream_failed(up, f"{what} to {up.endpoint.url}: i/o timeout", now)

    def resume_paused(self) -> None:
        """Clients that caught up get the rest of their answers read from the members again."""
        for relay in [r for r in self.paused if r.client.http.backlog(r.client.wire()) < RESUME_BYTES]:
            self.paused.discard(relay)
            if relay.upstream is not None:
                self._rearm(relay.upstream, time.monotonic())

    def start_exchange(self, endpoint: Endpoint, owner: Any, method: bytes, target: bytes) -> UpstreamConn:
        """A request of the proxy's own (the members refresh) on a fresh connection; UpstreamFailed."""
        try:
            up = UpstreamConn(endpoint, self.peer_tls_context, time.monotonic())
        except OSError as e:  # EMFILE/ENFILE
            raise UpstreamFailed(f"dial {endpoint.url}: {e}") from None
        up.owner = owner
        up.send_request(method, target, [(b"Host", f"{endpoint.host}:{endpoint.port}".encode())], b"")
        up.watch(self.sel, _RW)
        return up

    def shutdown(self) -> None:
        for up in list(self.timed):
            self._drop(up)
        self.pool.close_all()


def is_watch(req: HttpRequest) -> bool:
    """A keys request asking to wait (etcd parses `wait` with strconv.ParseBool)."""
    path, _, query = req.target.partition(b"?")
    if req.method not in ("GET", "HEAD") or not query or not path.startswith(b"/v2/keys"):
        return False
    return any(k == "wait" and v in ("1", "t", "T", "true", "TRUE", "True")
               for k, v in parse_qsl(query.decode("latin-1"), keep_blank_values=True))


class MembersRefresh:
    """One refresh: `GET /members` from each peer URL in turn until one answers (etcd's
    GetClusterFromRemotePeers). `done(clients, peers)` gets the result; both empty when no peer answered."""

    def __init__(self, front: ProxyFrontend, peer_urls: list[str],
                 done: Callable[[list[str], list[str]], None]) -> None:
        self.front = front
        self.peer_urls = list(peer_urls)
        self.done = done
        self.index = -1
        self.status = 0
        self.cluster_id = b""
        self.body = bytearray()
        self.up: UpstreamConn | None = None
        self.deadline = 0.0
        self.finished = False
        self._next()

    def _next(self) -> None:
        while True:
            self.index += 1
            if self.index >= len(self.peer_urls):
                log.warning("proxy: could not get cluster response from %s", ",".join(self.peer_urls) or "no peers")
                self._end([], [])
                return
            url = self.peer_urls[self.index]
            self.status, self.cluster_id, self.body = 0, b"", bytearray()
            try:
                self.up = self.front.start_exchange(Endpoint.parse(url), self, b"GET", b"/members")
            except (UpstreamFailed, ValueError) as e:
                log.warning("proxy: could not get cluster response from %s: %s", url, e)
                continue
            self.deadline = time.monotonic() + self.front.timeouts.dial_s + MEMBERS_TIMEOUT_S
            return

    def on_events(self, up: UpstreamConn, events: list[Any]) -> None:
        for event in events:
            kind = type(event)
            if kind is h11.Response:
                self.status = event.status_code
                self.cluster_id = dict((n.lower(), v) for n, v in event.headers.raw_items()).get(
                    b"x-etcd-cluster-id", b"")
            elif kind is h11.Data:
                self.body += event.data
                if len(self.body) > MEMBERS_BYTES_MAX:
                    raise UpstreamFailed("GET /members answer too large")
            elif kind is h11.EndOfMessage:
                self.front._drop(up)
                self.up = None
                self._answered()
                return

    def _answered(self) -> None:
        url = self.peer_urls[self.index]
        if self.status != 200 or not self.cluster_id:
            log.warning("proxy: could not get cluster response from %s: status %d%s", url, self.status,
                        "" if self.cluster_id else ", no X-Etcd-Cluster-Id")
            self._next()
            return
        try:
            clients, peers = forwarding.cluster_urls(bytes(self.body))
        except ValueError as e:
            log.warning("proxy: could not unmarshal cluster response from %s: %s", url, e)
            self._next()
            return
        self._end(clients, peers)

    def on_failure(self, up: UpstreamConn, why: str) -> None:
        self.up = None
        log.warning("proxy: could not get cluster response from %s: %s", self.peer_urls[self.index], why)
        self._next()

    def check_deadline(self, now: float) -> None:
        if self.up is not None and now >= self.deadline:
            up, self.up = self.up, None
            self.front._drop(up)
            self.on_failure(up, "i/o timeout")

    def _end(self, clients: list[str], peers: list[str]) -> None:
        self.finished = True
        self.done(clients, peers)
