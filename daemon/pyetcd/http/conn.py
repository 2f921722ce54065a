"""One server-side HTTP/1.1 connection as a pure state machine: bytes in, requests out; replies in, bytes out.

No sockets, clocks or TLS here: the event loop (the shell) reads the socket, decrypts, and feeds the
plaintext to `receive` with the current monotonic time; it sends a prefix of `out` and deletes what it
sent; it passes the Date header value and, on TLS, how much ciphertext is still unsent (`wire_bytes`) so
backpressure counts everything the client owes us a read of. The shell drives requests like this:

    conn.receive(data, now_s)              # b"" is EOF: conn.closed
    while (req := conn.next_request(wire_bytes)) is not None:
        ...                                 # answer now with conn.reply(...), or later (proposal, watch)
    # the same `while` loop again after a later reply/end_stream (pipelined requests wait) and after
    # sending output while `wants_read` was False (backpressure lifts below half of OUTPUT_BYTES_MAX)

A connection handles one request at a time: once `next_request` hands one out the connection is `busy`
until its response (or watch stream) is complete; pipelined requests wait in h11's buffer meanwhile.
`closed` means tear down now; `closing` means close once the output is flushed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from http import HTTPStatus

import h11

from .client_api import Headers, Reply

log = logging.getLogger("pyetcd.http")

OUTPUT_BYTES_MAX = 64 * 1024 * 1024  # unsent bytes per connection before we stop reading it
WATCH_OUTPUT_BYTES_MAX = 8 * 1024 * 1024  # a stream watcher this far behind is dropped (etcd drops too)
PIPELINE_BYTES_MAX = 1024 * 1024  # unread pipelined input held per connection
HEADER_BYTES_MAX = 1024 * 1024 + 4096  # Go's DefaultMaxHeaderBytes
REQUEST_IDLE_S = 60.0  # a request whose bytes stop arriving for this long is abandoned

_REASONS = {s.value: s.phrase.encode() for s in HTTPStatus}
# What Go's net/http itself answers (no handler ran), then it closes the connection.
_BAD_REQUEST = (b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\n"
                b"Connection: close\r\n\r\n400 Bad Request")
_HEADERS_TOO_LARGE = (b"HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Type: text/plain; "
                      b"charset=utf-8\r\nConnection: close\r\n\r\n431 Request Header Fields Too Large")
_VERSION_TEXT = b"505 HTTP Version Not Supported: unsupported protocol version"
_VERSION_NOT_SUPPORTED = (b"HTTP/1.1 " + _VERSION_TEXT + b"\r\nContent-Type: text/plain; charset=utf-8\r\n"
                          b"Connection: close\r\n\r\n" + _VERSION_TEXT)


def _h11_takes_parsed() -> bool:
    """Whether this h11 still has the private `_parsed=True` keyword, takes a ready-made Headers as it is,
    and builds the same event (names, raw names and values) either way."""
    sample = [(b"Content-Type", b"text/plain"), (b"Content-Length", b"2")]
    try:
        from h11._headers import Headers as H11Headers

        fast = h11.Response(status_code=200, headers=sample, reason=b"OK", _parsed=True)  # type: ignore[call-arg]
        made = h11.Response(status_code=200, headers=H11Headers([(k, k.lower(), v) for k, v in sample]),
                            reason=b"OK", _parsed=True)  # type: ignore[call-arg]
    except (TypeError, ImportError):
        return False
    slow = h11.Response(status_code=200, headers=sample, reason=b"OK")
    return bool(fast == slow and made == slow and made.headers.raw_items() == slow.headers.raw_items())


# The one use of a private h11 keyword, measured (h11 0.16, CPython 3.11): the validating constructor costs
# ~9 us more per 10-header reply (3.6 -> 12.4 us), 17-22% of parsing a request and sending its reply
# through h11 (GET 39 -> 49 us, PUT 46 -> 55 us).
SKIP_HEADER_VALIDATION = _h11_takes_parsed()
if SKIP_HEADER_VALIDATION:
    from h11._headers import Headers as H11Headers
_LOWER_NAMES: dict[bytes, bytes] = {}  # header name -> lowercased (our few names; bounded below)
_LOWER_NAMES_MAX = 256


def _ready_headers(headers: Headers) -> H11Headers | None:
    """h11's own Headers for our (name, value) pairs, names lowercased once per name: h11 takes it as it
    is (its normalisation costs ~2.6 of the ~4.4 us of a 10-header reply's Response). None, for h11 to
    check them, when a Transfer-Encoding or a second Content-Length is among them."""
    items = []
    lower = _LOWER_NAMES
    lengths = 0
    for name, value in headers:
        low = lower.get(name)
        if low is None:
            low = name.lower()
            if low == b"transfer-encoding":
                return None
            if len(lower) < _LOWER_NAMES_MAX:
                lower[name] = low
        if low == b"content-length":
            lengths += 1
            if lengths > 1:
                return None
        items.append((name, low, value))
    return H11Headers(items)


def _h11_buffer_visible() -> bool:
    """Whether this h11 keeps its unread bytes and EOF where `_nothing_to_read` looks (private names)."""
    c = h11.Connection(h11.SERVER)
    try:
        empty = not c._receive_buffer and not c._receive_buffer_closed
        c.receive_data(b"G")
        fed = bool(c._receive_buffer)
    except AttributeError:
        return False
    return empty and fed and c.next_event() is h11.NEED_DATA


# After each answer the loop asks for a pipelined request, and all but never is there one: h11's
# next_event() then costs ~1.4 us to say NEED_DATA; this private look costs ~0.2 us.
PEEK_RECEIVE_BUFFER = _h11_buffer_visible()


def _nothing_to_read(h: h11.Connection) -> bool:
    """No request has begun and no byte or EOF is waiting: next_event() could only say NEED_DATA."""
    return (PEEK_RECEIVE_BUFFER and h.their_state is h11.IDLE and not h._receive_buffer  # type: ignore[attr-defined]
            and not h._receive_buffer_closed)  # type: ignore[attr-defined]


def trusted_response(status: int, headers: Headers) -> h11.Response:
    """An h11 Response for headers we built ourselves from constant names and digit/hex/date values.

    h11 re-validates every header with regexes; `_parsed=True` (what h11 uses for headers its own parser
    produced) skips only that validation. It is private: when this h11 lacks it (SKIP_HEADER_VALIDATION
    is False) the public, validating constructor is used; both produce the same bytes (tested)."""
    reason = _REASONS.get(status, b"")
    if SKIP_HEADER_VALIDATION:
        ready = _ready_headers(headers)
        return h11.Response(status_code=status, headers=headers if ready is None else ready,  # type: ignore[arg-type]
                            reason=reason, _parsed=True)  # type: ignore[call-arg]
    return h11.Response(status_code=status, headers=headers, reason=reason)


def trusted_request(method: bytes, target: bytes, headers: Headers) -> h11.Request:
    """An h11 Request from parts h11's own parser accepted (a proxied client request) plus headers we
    built; skips the same re-validation as `trusted_response`, under the same condition."""
    if SKIP_HEADER_VALIDATION:
        return h11.Request(method=method, target=target, headers=headers, _parsed=True)  # type: ignore[call-arg]
    return h11.Request(method=method, target=target, headers=headers)


@dataclass(slots=True)
class HttpRequest:
    """A complete request: method as text ("GET"), raw target, raw header items, body (at most
    body_bytes_max + 1 bytes: longer means "too large", the rest was dropped)."""

    method: str
    target: bytes
    headers: Headers
    body: bytes


class ServerConn:
    """The HTTP/1.1 side of one accepted connection (h11 underneath). See the module docstring."""

    __slots__ = ("_h", "out", "closed", "closing", "last_rx_s", "body_bytes_max", "_busy", "_head",
                 "_paused", "_rx_bytes", "_method", "_target", "_headers", "_body")

    def __init__(self, body_bytes_max: int, now_s: float) -> None:
        self._h = h11.Connection(h11.SERVER, max_incomplete_event_size=HEADER_BYTES_MAX)
        self.out = bytearray()  # plaintext to send: the shell sends a prefix and deletes it (del out[:n])
        self.closed = False  # EOF, or a response h11 refused: close the socket now
        self.closing = False  # the last response is written (or a protocol error): close once flushed
        self.last_rx_s = now_s  # when bytes last arrived (the slowloris clock)
        self.body_bytes_max = body_bytes_max
        self._busy = False  # a request was handed out; its response is not complete yet
        self._head = False  # the request being answered is a HEAD
        self._paused = False  # output backpressure: stopped until the backlog drains below half
        self._rx_bytes = 0  # received since the current request began (bounds the header size check)
        self._method = ""
        self._target = b""
        self._headers: Headers = []
        self._body = bytearray()

    # ---- input -----------------------------------------------------------------------------------

    def receive(self, data: bytes, now_s: float) -> None:
        """Plaintext from the client; b"" is EOF (then `closed`). Call `next_request` afterwards. A TLS
        read that decrypts to nothing yet is `touch`, not `receive(b"")`."""
        if self.closed:
            return
        if not data:
            self.closed = True
            return
        self.last_rx_s = now_s
        if self.closing:
            return  # nothing more will be answered: do not buffer it
        self._rx_bytes += len(data)
        try:
            self._h.receive_data(data)
        except h11.RemoteProtocolError:
            self._protocol_error(400)

    def touch(self, now_s: float) -> None:
        """Bytes arrived that gave no plaintext (TLS records in progress): the client is not idle."""
        self.last_rx_s = now_s

    def next_request(self, wire_bytes: int = 0) -> HttpRequest | None:
        """The next complete request, or None: more bytes needed, busy, closing/closed, or output
        backpressure (unsent `out` plus `wire_bytes` over OUTPUT_BYTES_MAX). A request handed out makes
        the connection busy until `reply` or `end_stream`; a 100 Continue may be added to `out`."""
        if self._busy or self.closing or self.closed or self._output_paused(wire_bytes):
            return None  # paused: a client not reading its answers gets no more; resumes below half
        h = self._h
        if _nothing_to_read(h):
            return None
        while True:  # nothing here adds output but a 100 Continue: one backlog check is enough
            try:
                event = h.next_event()
            except h11.RemoteProtocolError as e:
                self._protocol_error(e.error_status_hint)
                return None
            cls = type(event)
            if cls is h11.Request:
                if not self._request_acceptable(event):  # type: ignore[arg-type]
                    return None
                self._method = event.method.decode("latin-1")  # type: ignore[union-attr]
                self._target = event.target  # type: ignore[union-attr]
                self._headers = event.headers.raw_items()  # type: ignore[union-attr]
                self._body = bytearray()
            elif cls is h11.Data:
                body, limit = self._body, self.body_bytes_max
                if len(body) <= limit:
                    body += event.data  # type: ignore[union-attr]
                    if len(body) > limit:
                        del body[limit + 1:]  # enough to say "too large"; drop the rest
            elif cls is h11.EndOfMessage:
                self._busy = True
                self._head = self._method == "HEAD"
                body_bytes = bytes(self._body)
                self._body = bytearray()
                return HttpRequest(self._method, self._target, self._headers, body_bytes)
            elif event is h11.NEED_DATA or event is h11.PAUSED:
                return None
            elif cls is h11.ConnectionClosed:
                self.closed = True
                return None

    def _request_acceptable(self, event: h11.Request) -> bool:
        """Checks h11 leaves to us: Go's header size limit, HTTP/1.x only; answers 100 Continue."""
        if self._rx_bytes > HEADER_BYTES_MAX:  # only then can a complete header block be too big
            size = len(event.target) + sum(len(k) + len(v) + 4 for k, v in event.headers.raw_items())
            if size > HEADER_BYTES_MAX:
                self._protocol_error(431)
                return False
        self._rx_bytes = 0
        if event.http_version not in (b"1.1", b"1.0"):
            self._protocol_error(505)
            return False
        if self._h.they_are_waiting_for_100_continue:
            self.out += self._h.send(h11.InformationalResponse(status_code=100, headers=[]))  # type: ignore[arg-type]
        return True

    def _protocol_error(self, status: int) -> None:
        if status == 431:
            self.out += _HEADERS_TOO_LARGE
        elif status == 505:
            self.out += _VERSION_NOT_SUPPORTED
        else:
            self.out += _BAD_REQUEST
        self.closing = True

    # ---- output ----------------------------------------------------------------------------------

    @property
    def busy(self) -> bool:
        """A request was handed out and its response (or watch stream) is not complete."""
        return self._busy

    def reply(self, reply: Reply, date: bytes) -> None:
        """The whole response to the busy request: reply's headers, then Date, then Content-Length
        (not for 204 or `no_length`); no body for a HEAD request (the request's method decides, not
        `reply.head`). Ignored unless a request is owed a response (busy, not closed)."""
        if not self._busy or self.closed:
            return
        headers = reply.headers + [(b"Date", date)]  # a copy: replies like NOT_FOUND are shared
        if reply.status != 204 and not reply.no_length:
            headers.append((b"Content-Length", b"%d" % len(reply.body)))
        h = self._h
        try:
            out = self._head_bytes(trusted_response(reply.status, headers))
            if reply.body and not self._head:
                out += h.send(h11.Data(data=reply.body))
            out += h.send(h11.EndOfMessage())
        except h11.LocalProtocolError:
            log.exception("cannot send response")
            self.closed = True
            return
        self.out += out
        self._response_done()

    def start_stream(self, status: int, headers: Headers, date: bytes = b"") -> None:
        """Begin a response streamed in parts (a watch; a proxy relaying a member's answer): the headers,
        Date unless `date` is empty (a relayed answer has the member's); without a Content-Length h11
        sends it chunked (HTTP/1.1) or delimited by close (HTTP/1.0). Ignored unless busy."""
        if not self._busy or self.closed:
            return
        try:
            self.out += self._head_bytes(trusted_response(status, [*headers, (b"Date", date)] if date else headers))
        except h11.LocalProtocolError:
            log.exception("cannot send Response")
            self.closed = True

    def _head_bytes(self, response: h11.Response) -> bytes:
        """The response head; to a HEAD request without a length, Go announces no chunking either
        (h11 would: it frames a HEAD answer as it would the GET's)."""
        out = self._h.send(response)
        if self._head:
            out = out.replace(b"\r\nTransfer-Encoding: chunked\r\n", b"\r\n", 1)
        return out  # type: ignore[return-value]

    def send_chunk(self, data: bytes) -> None:
        """Body bytes of the started stream (none for a HEAD request: its headers are all it gets)."""
        if data and not self._head:
            self._send(h11.Data(data=data))

    def end_stream(self) -> None:
        """Finish the started stream; the connection is no longer busy."""
        if self._send(h11.EndOfMessage()):
            self._response_done()

    def _send(self, event: h11.Response | h11.Data | h11.EndOfMessage) -> bool:
        if not self._busy or self.closed:
            return False
        try:
            self.out += self._h.send(event)  # type: ignore[arg-type]
        except h11.LocalProtocolError:
            log.exception("cannot send %s", type(event).__name__)
            self.closed = True
            return False
        return True

    def _response_done(self) -> None:
        self._busy = False
        h = self._h
        if h.our_state is h11.MUST_CLOSE or h.their_state is h11.MUST_CLOSE:
            self.closing = True
            return
        if h.our_state is h11.DONE and h.their_state is h11.DONE:
            h.start_next_cycle()
            self._paused = False  # next_request re-checks the backlog before handing out another
        # else: the client is still sending a body we did not wait for; h11 reads and discards it

    # ---- flow control and housekeeping -----------------------------------------------------------

    def backlog(self, wire_bytes: int = 0) -> int:
        """Bytes owed to the client: unsent plaintext in `out` plus the shell's unsent ciphertext."""
        return len(self.out) + wire_bytes

    def stream_overflowing(self, wire_bytes: int = 0) -> bool:
        """A stream watcher this far behind (WATCH_OUTPUT_BYTES_MAX) should be dropped: log and close."""
        return len(self.out) + wire_bytes > WATCH_OUTPUT_BYTES_MAX

    def wants_read(self, wire_bytes: int = 0) -> bool:
        """Whether the shell should read the socket: not while the output backlog is over
        OUTPUT_BYTES_MAX (until it drains to half), nor while busy with over PIPELINE_BYTES_MAX of
        pipelined input buffered (until the response is done), nor once closed."""
        if self.closed or self._output_paused(wire_bytes):
            return False
        return not (self._busy and len(self._h.trailing_data[0]) > PIPELINE_BYTES_MAX)

    def _output_paused(self, wire_bytes: int) -> bool:
        backlog = len(self.out) + wire_bytes
        if self._paused:
            if not self._busy and backlog <= OUTPUT_BYTES_MAX // 2:
                self._paused = False  # the client caught up: serve what it pipelined meanwhile
        elif backlog > OUTPUT_BYTES_MAX:
            self._paused = True
        return self._paused

    def should_abandon(self, now_s: float) -> bool:
        """Slowloris: a request's bytes started arriving and then stopped for REQUEST_IDLE_S, and no
        response is owed. Idle keep-alive connections and open watches are kept."""
        if self._busy or self.closed or now_s - self.last_rx_s < REQUEST_IDLE_S:
            return False
        their = self._h.their_state
        return their is h11.SEND_BODY or (their is h11.IDLE and bool(self._h.trailing_data[0]))
