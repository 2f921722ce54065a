"""Differential harness: run one request sequence against two servers, normalise, compare.

A *case* is a named list of steps run in a private key namespace (``{ns}``). Each step sends one
raw HTTP/1.1 request over a fresh loopback socket and captures status, headers and body bytes.
Responses are normalised (see ``normalise``) following spec §12.3 so that two servers started
at different times with different index counters can be compared field by field.

Templates usable in request targets, bodies and headers:
``{ns}`` (the case's key prefix, e.g. ``/c042``), ``{base}``/``{base+N}``/``{base-N}`` (the store
index read from ``GET /v2/keys/`` when the case started), ``{url}``, ``{hostport}`` and any variable
captured by an earlier step.
"""

from __future__ import annotations

import difflib
import json
import re
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

FORM = "application/x-www-form-urlencoded"
JSON_CT = "application/json"
DEFAULT_TIMEOUT = 10.0
TRUE_SPELLINGS = {"1", "t", "T", "TRUE", "true", "True"}

# --------------------------------------------------------------------------------------------
# Raw HTTP client
# --------------------------------------------------------------------------------------------


@dataclass
class Response:
    """One captured HTTP response."""

    status: int
    reason: str
    headers: list[tuple[str, str]]
    body: bytes
    chunks: list[bytes] = field(default_factory=list)
    chunked: bool = False
    complete: bool = True
    recv_time: float = 0.0
    error: str = ""

    def header(self, name: str) -> str | None:
        name = name.lower()
        for k, v in self.headers:
            if k.lower() == name:
                return v
        return None

    def describe(self, limit: int = 1500) -> str:
        lines = [f"HTTP {self.status} {self.reason}" + (f"  [client error: {self.error}]" if self.error else "")]
        lines += [f"{k}: {v}" for k, v in self.headers]
        body = self.body
        shown = body[:limit].decode("utf-8", "replace")
        more = f"... ({len(body)} bytes total)" if len(body) > limit else ""
        lines.append("")
        lines.append(shown + more)
        return "\n".join(lines)


class Connection:
    """A raw-socket HTTP/1.1 exchange that can be read incrementally (for watches)."""

    def __init__(self, port: int, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""
        self.eof = False

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def _fill(self, timeout: float | None = None) -> bool:
        if self.eof:
            return False
        if timeout is not None:
            self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(1 << 20)
        except (ConnectionResetError, BrokenPipeError):
            data = b""
        if not data:
            self.eof = True
            return False
        self.buf += data
        return True

    def _take(self, n: int) -> bytes:
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read_until(self, marker: bytes, timeout: float | None = None) -> bytes | None:
        deadline = None if timeout is None else time.monotonic() + timeout
        while marker not in self.buf:
            left = None if deadline is None else max(0.01, deadline - time.monotonic())
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"timed out waiting for {marker!r}")
            if not self._fill(left):
                return None
        idx = self.buf.index(marker) + len(marker)
        return self._take(idx)

    def read_exact(self, n: int, timeout: float | None = None) -> bytes:
        while len(self.buf) < n:
            if not self._fill(timeout):
                break
        return self._take(n)

    def read_to_eof(self, timeout: float | None = None) -> bytes:
        while self._fill(timeout):
            pass
        return self._take(len(self.buf))

    def read_head(self, timeout: float) -> Response:
        raw = self.read_until(b"\r\n\r\n", timeout)
        if raw is None:
            return Response(0, "", [], b"", error=f"connection closed before headers ({self.buf[:200]!r})")
        lines = raw.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ", 2)
        status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
        reason = parts[2] if len(parts) > 2 else ""
        headers = [tuple(x.strip() for x in ln.split(":", 1)) for ln in lines[1:] if ":" in ln]
        resp = Response(status, reason, headers, b"")  # type: ignore[arg-type]
        resp.chunked = "chunked" in (resp.header("Transfer-Encoding") or "").lower()
        resp.recv_time = time.time()
        return resp

    def read_chunk(self, timeout: float) -> bytes | None:
        """Read one chunk of a chunked body; None at the terminating zero chunk or EOF."""
        size_line = self.read_until(b"\r\n", timeout)
        if size_line is None:
            return None
        size = int(size_line.split(b";")[0].strip() or b"0", 16)
        if size == 0:
            self.read_until(b"\r\n", timeout)
            return None
        data = self.read_exact(size, timeout)
        self.read_exact(2, timeout)
        return data

    def read_body(self, resp: Response, method: str, timeout: float) -> Response:
        if method == "HEAD" or resp.status in (204, 304) or 100 <= resp.status < 200:
            return resp
        try:
            if resp.chunked:
                self._read_chunks(resp, timeout, None)
            elif resp.header("Content-Length") is not None:
                resp.body = self.read_exact(int(resp.header("Content-Length") or "0"), timeout)
            else:
                resp.body = self.read_to_eof(timeout)
        except (TimeoutError, OSError) as exc:
            resp.complete = False
            resp.error = f"body read failed: {exc}"
        resp.recv_time = time.time()
        return resp

    def _read_chunks(self, resp: Response, timeout: float, limit: int | None) -> None:
        while limit is None or len(resp.chunks) < limit:
            chunk = self.read_chunk(timeout)
            if chunk is None:
                return
            resp.chunks.append(chunk)
            resp.body += chunk


def render_request(method: str, target: str, port: int, body: bytes | None, headers: list[tuple[str, str]]) -> bytes:
    lines = [f"{method} {target} HTTP/1.1", f"Host: 127.0.0.1:{port}"]
    lines += [f"{k}: {v}" for k, v in headers]
    if body is not None and not any(k.lower() == "content-length" for k, _ in headers):
        lines.append(f"Content-Length: {len(body)}")
    lines.append("Connection: close")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8")
    return head + (body or b"")


def exchange(port: int, method: str, target: str, body: bytes | None = None,
             headers: list[tuple[str, str]] | None = None, timeout: float = DEFAULT_TIMEOUT) -> Response:
    conn = Connection(port, timeout)
    try:
        conn.send(render_request(method, target, port, body, headers or []))
        resp = conn.read_head(timeout)
        if resp.status:
            resp = conn.read_body(resp, method, timeout)
        return resp
    finally:
        conn.close()


# --------------------------------------------------------------------------------------------
# Steps and cases
# --------------------------------------------------------------------------------------------

Body = bytes | str | None
Capture = Callable[[Any], dict[str, str]]


@dataclass(frozen=True)
class Request:
    """A request template; ``form`` pairs are template-filled, then urlencoded into the body."""

    method: str
    target: str
    body: Body = None
    content_type: str | None = None
    headers: tuple[tuple[str, str], ...] = ()
    form: tuple[tuple[str, str], ...] | None = None


@dataclass(frozen=True)
class Send:
    """Send one request and compare the response."""

    req: Request
    compare: bool = True
    capture: Capture | None = None
    ignore: frozenset[str] = frozenset()


@dataclass(frozen=True)
class WatchStart:
    """Open a (blocking) watch; its response is compared by the matching WatchEnd/StreamRead."""

    label: str
    req: Request
    ignore: frozenset[str] = frozenset()


@dataclass(frozen=True)
class WatchEnd:
    label: str
    timeout: float = 4.0


@dataclass(frozen=True)
class WatchQuiet:
    """Assert that nothing arrived on an open watch within ``seconds`` (compared as a flag)."""

    label: str
    seconds: float = 0.3


@dataclass(frozen=True)
class StreamRead:
    """Read ``count`` event chunks of an open stream watch, compare them, then close it."""

    label: str
    count: int
    timeout: float = 6.0
    close: bool = True


@dataclass(frozen=True)
class Sleep:
    seconds: float


@dataclass(frozen=True)
class Bulk:
    """``count`` uncompared PUTs of ``target`` (templated; ``{i}`` is the counter) on one keep-alive socket."""

    target: str
    count: int


Step = Send | WatchStart | WatchEnd | WatchQuiet | StreamRead | Sleep | Bulk


@dataclass(frozen=True)
class Case:
    name: str
    steps: tuple[Step, ...]
    section: str = ""


# ---- step builders --------------------------------------------------------------------------


def req(method: str, target: str, form: dict[str, str] | list[tuple[str, str]] | str | None = None,
        body: Body = None, content_type: str | None = None, headers: tuple[tuple[str, str], ...] = ()) -> Request:
    """Build a request; a str ``form`` is sent verbatim, a dict/list is urlencoded after template filling."""
    pairs: tuple[tuple[str, str], ...] | None = None
    if isinstance(form, str):
        body = form
    elif form is not None:
        pairs = tuple(form.items()) if isinstance(form, dict) else tuple(form)
    if form is not None:
        content_type = content_type or FORM
    return Request(method, target, body, content_type, headers, pairs)


def keys(path: str, query: str = "") -> str:
    """Target for a key path below the case namespace: keys('/a', 'x=1') -> /v2/keys{ns}/a?x=1."""
    return "/v2/keys{ns}" + path + (f"?{query}" if query else "")


def get(path: str, query: str = "", **kw: Any) -> Send:
    return Send(req("GET", keys(path, query)), **kw)


def head(path: str, query: str = "") -> Send:
    return Send(req("HEAD", keys(path, query)))


def put(path: str, query: str = "", compare: bool = True, **form: str) -> Send:
    return Send(req("PUT", keys(path, query), form=form if form else None), compare=compare)


def post(path: str, query: str = "", **form: str) -> Send:
    return Send(req("POST", keys(path, query), form=form if form else None))


def delete(path: str, query: str = "") -> Send:
    return Send(req("DELETE", keys(path, query)))


def send(method: str, target: str, **kw: Any) -> Send:
    extra = {k: kw.pop(k) for k in ("compare", "capture", "ignore") if k in kw}
    return Send(req(method, target, **kw), **extra)


def watch(label: str, path: str, query: str = "wait=true", ignore: frozenset[str] = frozenset()) -> WatchStart:
    return WatchStart(label, req("GET", keys(path, query)), ignore)


def case(name: str, *steps: Step, section: str = "") -> Case:
    return Case(name, tuple(steps), section)


# --------------------------------------------------------------------------------------------
# Running a case against one server
# --------------------------------------------------------------------------------------------

TEMPLATE = re.compile(r"\{([A-Za-z_]\w*)(?:([+-])(\d+))?\}")


@dataclass
class Context:
    port: int
    url: str
    ns: str
    base: int = 0
    vars: dict[str, str] = field(default_factory=dict)

    def fill(self, text: str) -> str:
        def sub(m: re.Match[str]) -> str:
            name, sign, num = m.group(1), m.group(2), m.group(3)
            if name == "base":
                off = int(num or 0) * (-1 if sign == "-" else 1)
                return str(self.base + off)
            values = {"ns": self.ns, "url": self.url, "hostport": self.url.split("//", 1)[1], **self.vars}
            if name not in values or sign:
                raise KeyError(f"unknown template {m.group(0)!r}")
            return values[name]
        return TEMPLATE.sub(sub, text)

    def fill_body(self, r: Request) -> bytes | None:
        if r.form is not None:
            return urlencode([(k, self.fill(v)) for k, v in r.form]).encode("ascii")
        if r.body is None:
            return None
        if isinstance(r.body, bytes):
            return r.body
        return self.fill(r.body).encode("utf-8")


@dataclass
class Outcome:
    """What one compared step produced on one server."""

    step_no: int
    request: str
    response: Response
    view: dict[str, Any]


@dataclass
class OpenWatch:
    conn: Connection
    req: Request
    target: str
    response: Response
    ignore: frozenset[str] = frozenset()


def request_headers(ctx: Context, r: Request) -> list[tuple[str, str]]:
    hdrs = [(k, ctx.fill(v)) for k, v in r.headers]
    if r.content_type is not None:
        hdrs.append(("Content-Type", r.content_type))
    return hdrs


def describe_request(method: str, target: str, body: bytes | None, hdrs: list[tuple[str, str]]) -> str:
    text = f"{method} {target}"
    for k, v in hdrs:
        text += f"\n  {k}: {v}"
    if body:
        shown = body[:300].decode("utf-8", "replace")
        text += f"\n  body ({len(body)} bytes): {shown}" + ("..." if len(body) > 300 else "")
    return text


class Runner:
    """Runs one case against one server, producing comparable outcomes."""

    def __init__(self, port: int, url: str, ns: str) -> None:
        self.ctx = Context(port, url, ns)
        self.watches: dict[str, OpenWatch] = {}
        self.outcomes: list[Outcome] = []

    def run(self, c: Case) -> list[Outcome]:
        self.ctx.base = read_base(self.ctx.port)
        try:
            for no, step in enumerate(c.steps, 1):
                self.run_step(no, step)
        finally:
            for w in self.watches.values():
                w.conn.close()
        return self.outcomes

    def run_step(self, no: int, step: Step) -> None:
        if isinstance(step, Send):
            self.do_send(no, step)
        elif isinstance(step, WatchStart):
            self.do_watch_start(step)
        elif isinstance(step, WatchEnd):
            self.do_watch_end(no, step)
        elif isinstance(step, WatchQuiet):
            self.do_watch_quiet(no, step)
        elif isinstance(step, StreamRead):
            self.do_stream_read(no, step)
        elif isinstance(step, Sleep):
            time.sleep(step.seconds)
        elif isinstance(step, Bulk):
            bulk_put(self.ctx, step)

    def do_send(self, no: int, step: Send) -> None:
        r = step.req
        target, body, hdrs = self.ctx.fill(r.target), self.ctx.fill_body(r), request_headers(self.ctx, r)
        resp = exchange(self.ctx.port, r.method, target, body, hdrs)
        view = normalise(resp, self.ctx, r.method, target, body, watch=False, ignore=step.ignore)
        if r.method == "HEAD" and resp.status and target.startswith(("/v2/keys", "/v2/machines")):
            view["head_len_matches_get"] = head_matches_get(self.ctx.port, target, resp)
        if step.capture is not None and resp.status:
            self.ctx.vars.update(step.capture(json.loads(resp.body or b"null")))
        if step.compare:
            self.outcomes.append(Outcome(no, describe_request(r.method, target, body, hdrs), resp, view))

    def do_watch_start(self, step: WatchStart) -> None:
        r = step.req
        target, body, hdrs = self.ctx.fill(r.target), self.ctx.fill_body(r), request_headers(self.ctx, r)
        conn = Connection(self.ctx.port)
        conn.send(render_request(r.method, target, self.ctx.port, body, hdrs))
        try:
            resp = conn.read_head(DEFAULT_TIMEOUT)
        except (TimeoutError, OSError) as exc:
            resp = Response(0, "", [], b"", error=f"no response head: {exc}")
        self.watches[step.label] = OpenWatch(conn, r, target, resp, step.ignore)

    def _finish_watch(self, no: int, label: str, resp: Response, extra: dict[str, Any] | None = None) -> None:
        w = self.watches[label]
        view = normalise(resp, self.ctx, w.req.method, w.target, None, watch=True, ignore=w.ignore)
        view.update(extra or {})
        desc = describe_request(w.req.method, w.target, None, []) + f"   [watch {label!r}]"
        self.outcomes.append(Outcome(no, desc, resp, view))

    def do_watch_end(self, no: int, step: WatchEnd) -> None:
        w = self.watches.pop(step.label)
        resp = w.response
        if resp.status and not resp.error:
            resp = w.conn.read_body(resp, "GET", step.timeout)
        w.conn.close()
        self.watches[step.label] = w  # keep the request around for describing
        self._finish_watch(no, step.label, resp)
        self.watches.pop(step.label)

    def do_watch_quiet(self, no: int, step: WatchQuiet) -> None:
        w = self.watches[step.label]
        got = b""
        if w.response.status and not w.response.error:
            try:
                w.conn._fill(step.seconds)
                got = w.conn.buf
            except (TimeoutError, OSError):
                got = w.conn.buf
        view = {"watch_quiet": not got and not w.conn.eof}
        desc = f"(no event expected on watch {step.label!r} within {step.seconds}s)"
        self.outcomes.append(Outcome(no, desc, Response(0, "", [], got), view))

    def do_stream_read(self, no: int, step: StreamRead) -> None:
        w = self.watches[step.label]
        resp = w.response
        if resp.status and not resp.error:
            try:
                w.conn._read_chunks(resp, step.timeout, step.count)
            except (TimeoutError, OSError) as exc:
                resp.error = f"stream read: {exc}"
        resp.recv_time = time.time()
        self._finish_watch(no, step.label, resp, {"events_read": len(resp.chunks)})
        if step.close:
            w.conn.close()
            self.watches.pop(step.label)


def read_base(port: int) -> int:
    resp = exchange(port, "GET", "/v2/keys/")
    value = resp.header("X-Etcd-Index")
    if resp.status != 200 or value is None:
        raise RuntimeError(f"cannot read base index: {resp.describe()}")
    return int(value)


def head_matches_get(port: int, target: str, head_resp: Response) -> bool | None:
    length = head_resp.header("Content-Length")
    if length is None:
        return None
    got = exchange(port, "GET", target)
    return int(length) == len(got.body)


def bulk_put(ctx: Context, step: Bulk) -> None:
    conn = Connection(ctx.port)
    try:
        for i in range(step.count):
            target = ctx.fill(step.target.replace("{i}", str(i)))
            data = render_request("PUT", target, ctx.port, b"value=x", [("Content-Type", FORM)])
            conn.send(data.replace(b"Connection: close\r\n", b""))
            resp = conn.read_head(DEFAULT_TIMEOUT)
            conn.read_body(resp, "PUT", DEFAULT_TIMEOUT)
            if resp.status not in (200, 201):
                raise RuntimeError(f"bulk write failed: {resp.describe()}")
    finally:
        conn.close()


# --------------------------------------------------------------------------------------------
# Normalisation
# --------------------------------------------------------------------------------------------

CLUSTER_ID = re.compile(r"^[0-9a-f]{1,16}$")  # Go types.ID: hex, not zero padded
MEMBER_ID = re.compile(r"^[0-9a-f]{1,16}$")
HTTP_DATE = re.compile(r"^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d\d (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} \d\d:\d\d:\d\d GMT$")
RFC3339 = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d*[1-9])?Z$")
GO_DURATION = re.compile(r"^(\d+h)?(\d+m)?(\d+(\.\d+)?(s|ms|µs|ns))$")
VERSION = re.compile(r"^\d+\.\d+\.\d+$")
INORDER = re.compile(r"(?<=/)\d{20}(?=/|$)")
INDEX_FIELDS = {"createdIndex", "modifiedIndex", "index"}
CORS_AND_MISC = ("Access-Control-Allow-Headers", "Access-Control-Allow-Methods", "Access-Control-Allow-Origin",
                 "X-Content-Type-Options")


@dataclass
class NormCtx:
    base: int
    url: str
    recv_time: float
    sorted_listing: bool
    kind: str
    error_code: int | None = None


def norm_index(value: int, base: int) -> int | str:
    return 0 if value == 0 else f"B{value - base:+d}"


def norm_key(key: str, base: int) -> str:
    return INORDER.sub(lambda m: f"<{norm_index(int(m.group(0)), base)}>", key)


def norm_cause(cause: str, n: NormCtx) -> str:
    cause = norm_key(cause, n.base)
    if n.error_code in (101, 401):
        cause = re.sub(r"\d+", lambda m: str(norm_index(int(m.group(0)), n.base)) if int(m.group(0)) > n.base
                       else m.group(0), cause)
    return cause


def check_expiration(value: str, ttl: Any, recv_time: float) -> str:
    m = RFC3339.match(value) if isinstance(value, str) else None
    if not m:
        return f"<BAD expiration format: {value!r}>"
    if not isinstance(ttl, int):
        return "<expiration>"
    exp = datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC).timestamp()
    exp += float(m.group(2) or 0)
    delta = exp - (recv_time + ttl)
    return "<expiration>" if -1.6 <= delta <= 0.6 else f"<BAD expiration {value}: now+ttl off by {delta:.2f}s>"


def pattern(value: Any, rx: re.Pattern[str], label: str) -> str:
    return f"<{label}>" if isinstance(value, str) and rx.match(value) else f"<BAD {label}: {value!r}>"


def norm_json(value: Any, n: NormCtx, key: str = "", parent: dict[str, Any] | None = None) -> Any:
    if isinstance(value, dict):
        if "errorCode" in value and isinstance(value["errorCode"], int):
            n.error_code = value["errorCode"]
        return {k: norm_field(k, v, n, value) for k, v in value.items()}
    if isinstance(value, list):
        items = [norm_json(v, n, key, parent) for v in value]
        if key == "nodes" and not n.sorted_listing:
            items.sort(key=lambda x: str(x.get("key")) if isinstance(x, dict) else "")
        return items
    return value


def norm_field(k: str, v: Any, n: NormCtx, obj: dict[str, Any]) -> Any:
    if n.kind in ("keys", "watch"):
        return norm_keys_field(k, v, n, obj)
    if n.kind == "members":
        return norm_members_field(k, v, n, obj)
    if n.kind.startswith("stats"):
        return norm_stats_field(k, v, n, obj)
    if n.kind == "version":
        return pattern(v, VERSION, "version")
    return norm_json(v, n, k, obj)


def norm_keys_field(k: str, v: Any, n: NormCtx, obj: dict[str, Any]) -> Any:
    if k in INDEX_FIELDS and isinstance(v, int) and not isinstance(v, bool):
        return norm_index(v, n.base)
    if k == "key" and isinstance(v, str):
        return norm_key(v, n.base)
    if k == "cause" and isinstance(v, str):
        return norm_cause(v, n)
    if k == "expiration":
        return check_expiration(v, obj.get("ttl"), n.recv_time)
    return norm_json(v, n, k, obj)


def norm_members_field(k: str, v: Any, n: NormCtx, obj: dict[str, Any]) -> Any:
    if k == "id":
        return pattern(v, MEMBER_ID, "member-id")
    if k == "peerURLs" and isinstance(v, list):
        return ["<peerURL>" if isinstance(u, str) and u.startswith("http") else u for u in v]
    if k == "clientURLs" and isinstance(v, list):
        return ["<URL>" if u == n.url else u for u in v]
    return norm_json(v, n, k, obj)


STATS_INT_FIELDS = {"recvAppendRequestCnt", "sendAppendRequestCnt"}
STATS_RATE_FIELDS = {"sendPkgRate", "sendBandwidthRate", "recvPkgRate", "recvBandwidthRate"}


def norm_stats_field(k: str, v: Any, n: NormCtx, obj: dict[str, Any]) -> Any:
    if k in ("id", "leader") and isinstance(v, str):
        return pattern(v, MEMBER_ID, "member-id")
    if k == "startTime":
        return pattern(v, RFC3339, "time")
    if k == "uptime":
        return pattern(v, GO_DURATION, "duration")
    if k in STATS_RATE_FIELDS:
        return "<rate>" if isinstance(v, (int, float)) else f"<BAD rate {v!r}>"
    if n.kind == "stats_store" or k in STATS_INT_FIELDS:
        return "<int>" if isinstance(v, int) and not isinstance(v, bool) and v >= 0 else f"<BAD count {v!r}>"
    return norm_json(v, n, k, obj)


def endpoint_kind(target: str, watch: bool) -> str:
    path = urlsplit(target).path
    if watch:
        return "watch"
    if path.startswith("/v2/keys"):
        return "keys"
    if path.startswith("/v2/members"):
        return "members"
    if path == "/v2/stats/store":
        return "stats_store"
    if path.startswith("/v2/stats"):
        return "stats"
    if path == "/version":
        return "version"
    return "other"


def first_param(target: str, body: bytes | None, content_type_form: bool, method: str, name: str) -> str | None:
    """First occurrence of a parameter as the server should see it (body wins for PUT/POST forms)."""
    if body and content_type_form and method in ("PUT", "POST"):
        for k, v in parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True):
            if k == name:
                return v
    for k, v in parse_qsl(urlsplit(target).query, keep_blank_values=True):
        if k == name:
            return v
    return None


def go_quote(s: str) -> str:
    out = ['"']
    for ch in s:
        o = ord(ch)
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif o < 0x20 or ch in "<>&\u2028\u2029\ufffd":  # U+FFFD: Go's escape for invalid UTF-8 input
            out.append(f"\\u{o:04x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def go_json(v: Any) -> str:
    """Go encoding/json compact output (HTML-safe escaping, raw UTF-8)."""
    if isinstance(v, dict):
        return "{" + ",".join(go_quote(k) + ":" + go_json(x) for k, x in v.items()) + "}"
    if isinstance(v, list):
        return "[" + ",".join(go_json(x) for x in v) + "]"
    if isinstance(v, str):
        return go_quote(v)
    if v is True:
        return "true"
    if v is False:
        return "false"
    if v is None:
        return "null"
    return json.dumps(v)


def norm_json_body(raw: bytes, n: NormCtx) -> dict[str, Any]:
    try:
        parsed = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        return {"invalid_json": str(exc)[:80], "text": raw.decode("utf-8", "replace")[:400]}
    n.error_code = None
    out: dict[str, Any] = {"json": norm_json(parsed, n)}
    out["go_encoding"] = raw.removesuffix(b"\n") == go_json(parsed).encode("utf-8")
    out["trailing_newline"] = raw.endswith(b"\n")
    return out


def norm_text_body(raw: bytes, n: NormCtx) -> str:
    text = raw.decode("utf-8", "replace")
    return text.replace(n.url, "<URL>")


def norm_body(resp: Response, n: NormCtx) -> Any:
    ctype = (resp.header("Content-Type") or "").lower()
    raw = resp.body
    if n.kind == "watch":
        lines = raw.split(b"\n")
        events = [norm_json_body(ln + b"\n", n) for ln in lines[:-1]]
        if lines[-1]:
            events.append({"incomplete_line": lines[-1].decode("utf-8", "replace")[:200]})
        return events
    if raw and (ctype.startswith(JSON_CT) or raw.startswith(b"{")) and n.kind != "other_text":
        return norm_json_body(raw, n)
    return norm_text_body(raw, n)


def norm_headers(resp: Response, n: NormCtx, method: str, path: str, watch: bool,
                 ignore: frozenset[str]) -> dict[str, Any]:
    h: dict[str, Any] = {"content-type": resp.header("Content-Type")}
    idx = resp.header("X-Etcd-Index")
    h["x-etcd-index"] = None if idx is None else (norm_index(int(idx), n.base) if idx.isdigit() else f"<BAD {idx}>")
    for name in ("X-Raft-Index", "X-Raft-Term"):
        v = resp.header(name)
        h[name.lower()] = None if v is None else ("<int>" if v.isdigit() else f"<BAD {v}>")
    cid = resp.header("X-Etcd-Cluster-Id")
    h["x-etcd-cluster-id"] = None if cid is None else pattern(cid, CLUSTER_ID, "cluster-id")
    date = resp.header("Date")
    h["date"] = None if date is None else pattern(date, HTTP_DATE, "http-date")
    for name in CORS_AND_MISC:
        h[name.lower()] = resp.header(name)
    h["allow"] = resp.header("Allow") if resp.status == 405 else resp.header("Allow") is not None
    h["location"] = resp.header("Location") if resp.status == 301 else resp.header("Location") is not None
    if watch:
        h["transfer-encoding"] = resp.header("Transfer-Encoding")
    text_like = not (resp.header("Content-Type") or "").startswith(JSON_CT)
    if text_like and not watch and path != "/v2/machines":
        h["content-length"] = resp.header("Content-Length")
    if method == "HEAD":
        h["content-length-present"] = resp.header("Content-Length") is not None
    for name in ignore:
        h.pop(name.lower(), None)
    return h


def normalise(resp: Response, ctx: Context, method: str, target: str, body: bytes | None,
              watch: bool, ignore: frozenset[str] = frozenset()) -> dict[str, Any]:
    form = body is not None
    sorted_flag = first_param(target, body, form, method, "sorted") in TRUE_SPELLINGS
    kind = endpoint_kind(target, watch)
    n = NormCtx(ctx.base, ctx.url, resp.recv_time or time.time(), sorted_flag, kind)
    view: dict[str, Any] = {"status": resp.status}
    if resp.error:
        view["client_error"] = resp.error.split(":")[0]
    path = urlsplit(target).path
    if path == "/v2/machines":
        n.kind = "other_text"
    view["headers"] = norm_headers(resp, n, method, path, watch, ignore)
    view["body"] = norm_body(resp, n)
    return view


# --------------------------------------------------------------------------------------------
# Comparison
# --------------------------------------------------------------------------------------------


def deep_eq(a: Any, b: Any, key: str = "") -> bool:
    if key == "ttl" and isinstance(a, int) and isinstance(b, int) and not isinstance(a, bool):
        return abs(a - b) <= 1
    if isinstance(a, dict) and isinstance(b, dict):
        return list(a) == list(b) and all(deep_eq(a[k], b[k], k) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(deep_eq(x, y, key) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


def pretty(view: dict[str, Any]) -> list[str]:
    return json.dumps(view, indent=1, ensure_ascii=False, default=repr).splitlines()


def compare_outcomes(c: Case, ref: list[Outcome], got: list[Outcome], names: tuple[str, str]) -> str | None:
    """Return a readable report of every mismatching step, or None when both runs agree."""
    reports: list[str] = []
    if len(ref) != len(got):
        reports.append(f"step count differs: {names[0]}={len(ref)} {names[1]}={len(got)}")
    for a, b in zip(ref, got, strict=False):
        if deep_eq(a.view, b.view):
            continue
        diff = difflib.unified_diff(pretty(a.view), pretty(b.view), f"{names[0]} (normalised)",
                                    f"{names[1]} (normalised)", lineterm="", n=2)
        reports.append("\n".join([
            f"--- case {c.name!r} step {a.step_no}: mismatch",
            "request:", "  " + a.request,
            f"[{names[0]} raw]", a.response.describe(),
            f"[{names[1]} raw]", b.response.describe(),
            "[normalised diff]", *diff,
        ]))
    return "\n\n".join(reports) if reports else None


@dataclass
class Target:
    name: str
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def run_on(target: Target, c: Case, ns: str) -> list[Outcome]:
    return Runner(target.port, target.url, ns).run(c)


def run_both(c: Case, ns: str, ref: Target, other: Target) -> tuple[list[Outcome], list[Outcome]]:
    """Run the case on both servers concurrently (same steps, same sleeps)."""
    results: dict[str, list[Outcome] | BaseException] = {}

    def worker(t: Target, slot: str) -> None:
        try:
            results[slot] = run_on(t, c, ns)
        except BaseException as exc:  # noqa: BLE001 - reported to the caller
            results[slot] = exc

    threads = [threading.Thread(target=worker, args=(t, s)) for t, s in ((ref, "ref"), (other, "other"))]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    for slot in ("ref", "other"):
        if isinstance(results[slot], BaseException):
            raise RuntimeError(f"case {c.name!r} crashed on {slot}: {results[slot]!r}") from results[slot]  # type: ignore[misc]
    return results["ref"], results["other"]  # type: ignore[return-value]
