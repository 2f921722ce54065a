"""Differential: etcd 3.4's v2 proxy and pyetcd's, each in front of the same 3-member pyetcd cluster.

`etcd --proxy on ...` (the reference) and `pyetcd --proxy on ...` (same flags) both learn the members from
the peers' GET /members and forward client requests to the members' client URLs. Every case of
tests/differential/cases.py is sent through each proxy in turn (first etcd's, then ours, on key prefixes
of the same length: /E-<case> and /P-<case>), so both see the same cluster and, the cases running one
after the other, the same index deltas; ours is restarted until it forwards to the same member as etcd's
(each proxy sends everything to the first endpoint of a list it shuffles), so member-specific answers
(stats) compare too; answers are normalised as in the single-server differential
(tests/differential/harness.py) plus: the prefix is replaced by {ns}, the multiset of header names is
compared (a proxy adds its own CORS headers on top of the member's, so etcd's proxy answers carry them
twice), and a watch's framing (chunked or Content-Length: etcd's proxy buffers the whole long-poll answer
and sends it with a length) is not compared.

Dedicated tests: long-poll and stream watches woken by one write seen by both proxies (the events must be
identical; ours must deliver each stream event as it happens, while etcd's proxy buffers small events in
Go's 4 KiB response buffer: only the events' contents are compared with it), the readonly proxy (501, no
body), GET /v2/config/local/proxy, a member killed (both keep serving) or all of them (both answer the
same error), and a proxy restarted from its data dir alone (DATA_DIR/proxy/cluster, {"PeerURLs": [...]}).

PROXY_DIFF_AGAINST=etcd puts a second etcd proxy where ours goes: it validates the harness itself.
"""

from __future__ import annotations

import difflib
import json
import os
import selectors
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.cluster.conftest import CLIENT_ERRORS, Cluster, MakeCluster, Proxy, StartProxy, put
from tests.differential.cases import CASES
from tests.differential.harness import (
    FORM,
    Case,
    Connection,
    OpenWatch,
    Outcome,
    Response,
    Runner,
    Step,
    StreamRead,
    WatchEnd,
    WatchStart,
    compare_outcomes,
    exchange,
    normalise,
    pretty,
    render_request,
    request_headers,
)
from tests.integration._http import RawConn, build_request
from tests.support.kit import wait_for
from tests.support.servers import etcd_available

pytestmark = pytest.mark.skipif(not etcd_available(), reason="etcd (Debian etcd-server 3.4) is not on PATH")

AGAINST = os.environ.get("PROXY_DIFF_AGAINST", "pyetcd")
READY_S = 20.0
REFRESH_MS = 1000  # the failure tests' proxies re-read the members every second (bounds their waits)
FAILURE_WAIT_MS = 1000

# Both proxies of the differential pair forward to the same member (ours is restarted until its first
# endpoint is etcd's proxy's), for the whole module (refresh interval an hour): so even a member-specific
# answer (its own stats, 403 "not current leader" from a follower) is comparable, and a read right after
# a write through the same proxy is never stale.
DIFF_REFRESH_MS = 3_600_000
SAME_MEMBER_TRIES = 30
# Stream watches: etcd's proxy copies the member's answer through Go's buffered ResponseWriter without
# flushing, so a stream's small events (and even its head) stay in the proxy until 4 KiB accumulate. The
# case would time out on etcd's side; test_stream_watch compares streams fairly.
BUFFERED_BY_ETCD = {"w_stream", "w_stream_single_key", "w_stream_history_then_live"}
EXCLUDED = {n: "etcd's proxy buffers stream events" for n in BUFFERED_BY_ETCD}
PROXY_CASES = [c for c in CASES if c.name not in EXCLUDED]


# ---- proxies ---------------------------------------------------------------------------------------


@dataclass
class Side:
    """One proxy of a pair, started by tests/cluster/conftest.py's StartProxy: `etcd --proxy MODE` or
    `pyetcd --proxy MODE`, the same flags for both (a later flag overrides StartProxy's refresh interval)."""

    kind: str  # "etcd" or "pyetcd"
    mode: str
    starter: StartProxy
    extra: list[str]
    proxy: Proxy | None = None

    def start(self, c: Cluster | None, data_dir: Path | None = None, port: int | None = None) -> Side:
        """Start it (with no --initial-cluster when `c` is None) and wait until it serves."""
        self.proxy = self.starter(c, binary=self.kind, mode=self.mode, extra=self.extra, data_dir=data_dir,
                                  port=port)
        return self

    @property
    def p(self) -> Proxy:
        assert self.proxy is not None, "not started"
        return self.proxy

    @property
    def port(self) -> int:
        return self.p.port

    @property
    def url(self) -> str:
        return self.p.url

    @property
    def name(self) -> str:
        return Path(self.p.proc.log_path).stem

    @property
    def cluster_file(self) -> Path:
        return self.p.data_dir / "proxy" / "cluster"

    def endpoints(self) -> list[str]:
        r = exchange(self.port, "GET", "/v2/config/local/proxy", timeout=2.0)
        return list(json.loads(r.body)["endpoints"]) if r.status == 200 else []

    def stop(self) -> None:
        if self.proxy is not None:
            self.proxy.proc.stop()

    def restart_from_data_dir(self) -> None:
        """Stop it and start it again on the same port with its data dir and no --initial-cluster."""
        self.stop()
        self.start(None, data_dir=self.p.data_dir, port=self.port)

    def log(self) -> str:
        return self.p.proc.log()

    def log_tail(self) -> str:
        return self.p.proc.log_tail()


def other_kind() -> str:
    return "etcd" if AGAINST == "etcd" else "pyetcd"


@dataclass
class Pair:
    """The reference (etcd's proxy) and the proxy under test, in front of one cluster."""

    ref: Side
    got: Side
    cluster: Cluster

    @property
    def both(self) -> tuple[Side, Side]:
        return self.ref, self.got


def start_pair(c: Cluster, starter: StartProxy, mode: str = "on", refresh_ms: int = REFRESH_MS,
               same_member: bool = False) -> Pair:
    """Start etcd's proxy and the one under test. With `same_member`, ours is restarted until the first of
    its endpoints, the member it forwards everything to, is etcd's proxy's first (each start shuffles)."""
    extra = ["--proxy-refresh-interval", str(refresh_ms), "--proxy-failure-wait", str(FAILURE_WAIT_MS)]
    pair = Pair(Side("etcd", mode, starter, extra), Side(other_kind(), mode, starter, extra), c)
    for side in pair.both:
        side.start(c)
    for _ in range(SAME_MEMBER_TRIES if same_member else 0):
        if pair.got.endpoints()[0] == pair.ref.endpoints()[0]:
            break
        pair.got.stop()
        pair.got.start(c)
    if same_member:
        names = [json.loads(exchange(p.port, "GET", "/v2/stats/self").body)["name"] for p in pair.both]
        assert names[0] == names[1], f"the proxies forward to different members: {names}"
    return pair


@pytest.fixture(scope="module")
def diff_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = Cluster(tmp_path_factory.mktemp("proxy-diff"), 3)
    c.base.mkdir(parents=True, exist_ok=True)
    try:
        c.start()
        yield c
    finally:
        c.stop_all()


@pytest.fixture(scope="module")
def pair(diff_cluster: Cluster) -> Iterator[Pair]:
    starter = StartProxy(diff_cluster.base)
    try:
        p = start_pair(diff_cluster, starter, refresh_ms=DIFF_REFRESH_MS, same_member=True)
        # One write, so that the base index is never 0 (see tests/differential/test_differential.py).
        exchange(p.ref.port, "PUT", "/v2/keys/diff-warmup", b"value=w", [("Content-Type", FORM)])
        yield p
    finally:
        starter.stop_all()


@pytest.fixture
def fresh_pair(make_cluster: MakeCluster, start_proxy: StartProxy) -> Pair:
    """A pair of proxies in front of a cluster of their own (for the tests that kill members)."""
    return start_pair(make_cluster(3), start_proxy)


# ---- running the cases through a proxy ---------------------------------------------------------------


def watchers(c: Cluster) -> int:
    """Watchers registered on the cluster's members (GET /v2/stats/store of each running member)."""
    total = 0
    for m in c.alive:
        r = exchange(m.client_port, "GET", "/v2/stats/store", timeout=2.0)
        total += int(json.loads(r.body)["watchers"]) if r.status == 200 else 0
    return total


def readable(conn: Connection, timeout: float) -> bool:
    with selectors.DefaultSelector() as sel:
        sel.register(conn.sock, selectors.EVENT_READ)
        return bool(sel.select(timeout))


class ProxyRunner(Runner):
    """The harness's Runner, with watches suited to a proxy: etcd's proxy sends a watch's head only with
    its first event, so a watch is sent without waiting for its head; it counts as in place once the
    members' watcher count rose (or an answer is already coming), and its head is read when it ends."""

    def __init__(self, proxy: Side, cluster: Cluster, ns: str) -> None:
        super().__init__(proxy.port, proxy.url, ns)
        self.cluster = cluster

    def run_step(self, no: int, step: Step) -> None:
        if isinstance(step, WatchEnd | StreamRead):
            self.read_watch_head(step.label, step.timeout)
        super().run_step(no, step)

    def do_watch_start(self, step: WatchStart) -> None:
        r = step.req
        target, body, hdrs = self.ctx.fill(r.target), self.ctx.fill_body(r), request_headers(self.ctx, r)
        before = watchers(self.cluster)
        conn = Connection(self.ctx.port)
        conn.send(render_request(r.method, target, self.ctx.port, body, hdrs))
        wait_for(lambda: readable(conn, 0) or watchers(self.cluster) > before, 5.0, 0.02)
        self.watches[step.label] = OpenWatch(conn, r, target, Response(0, "", [], b"", error="head not read"),
                                             step.ignore)

    def read_watch_head(self, label: str, timeout: float) -> None:
        w = self.watches[label]
        try:
            w.response = w.conn.read_head(timeout)
        except (TimeoutError, OSError) as exc:
            w.response = Response(0, "", [], b"", error=f"no response head: {exc}")


HOP_FRAMING = {"content-length", "transfer-encoding"}
CORS = ("access-control-allow-headers", "access-control-allow-methods", "access-control-allow-origin")


def header_names(resp: Response, watch: bool, ignore: frozenset[str] = frozenset()) -> list[str]:
    """The response's header names with their multiplicity (the Date's value is not compared anyway), but
    for the CORS headers (test_cors_headers compares those on their own), a watch's framing and what the
    case ignores."""
    skip = set(CORS) | (HOP_FRAMING if watch else set()) | ignore
    return sorted(k.lower() for k, _ in resp.headers if k.lower() not in skip)


def without_cors(view: dict[str, Any]) -> dict[str, Any]:
    for name in CORS:
        view.get("headers", {}).pop(name, None)
    return view


def step_ignores(c: Case, o: Outcome) -> frozenset[str]:
    """The header names the case ignores for this outcome (a WatchEnd's are its WatchStart's)."""
    step = c.steps[o.step_no - 1]
    label = getattr(step, "label", None)
    if label is not None:
        step = next(s for s in c.steps if isinstance(s, WatchStart) and s.label == label)
    return frozenset(x.lower() for x in getattr(step, "ignore", frozenset()))


def cors_headers(resp: Response) -> list[tuple[str, str]]:
    return sorted((k.lower(), v) for k, v in resp.headers if k.lower() in CORS)


def unprefix(value: Any, ns: str) -> Any:
    if isinstance(value, str):
        return value.replace(ns, "{ns}")
    if isinstance(value, list):
        return [unprefix(v, ns) for v in value]
    if isinstance(value, dict):
        return {unprefix(k, ns): unprefix(v, ns) for k, v in value.items()}
    return value


def store_index(port: int) -> int:
    return int(exchange(port, "GET", "/v2/keys/", timeout=2.0).header("X-Etcd-Index") or -1)


def settle(c: Cluster) -> None:
    """Wait until every member has applied the same store index: the case's base index, read through the
    proxy from whichever member it picks, is then the cluster's."""
    assert wait_for(lambda: len({store_index(m.client_port) for m in c.alive}) == 1, 10.0, 0.02), \
        "the members never agreed on the store index"


def run_through(proxy: Side, cluster: Cluster, c: Case, ns: str) -> list[Outcome]:
    settle(cluster)
    outcomes = ProxyRunner(proxy, cluster, ns).run(c)
    for o in outcomes:
        # A watch's answer (a WatchStart, or a Send with wait=true) is chunked by the member; etcd's proxy
        # buffers a long poll's whole answer and sends it with a Content-Length. Not compared.
        watch = "[watch" in o.request or "wait=true" in o.request.split("\n")[0]
        if watch:
            o.view.get("headers", {}).pop("transfer-encoding", None)
            o.view.get("headers", {}).pop("content-length", None)
        o.view["header_names"] = header_names(o.response, watch, step_ignores(c, o))
        o.view = unprefix(without_cors(o.view), ns)
    return outcomes


@pytest.mark.parametrize("c", PROXY_CASES, ids=[c.name for c in PROXY_CASES])
def test_case(c: Case, pair: Pair) -> None:
    ref = run_through(pair.ref, pair.cluster, c, f"/E-{c.name}")
    got = run_through(pair.got, pair.cluster, c, f"/P-{c.name}")
    report = compare_outcomes(c, ref, got, (f"{pair.ref.kind} proxy", f"{pair.got.kind} proxy"))
    unanswered = [o.request for o in ref if "[watch" in o.request and not o.response.status]
    assert not unanswered, f"watches etcd's proxy never answered (the case cannot compare them): {unanswered}"
    if report:
        pytest.fail(report, pytrace=False)


def test_excluded_cases_exist() -> None:
    names = {c.name for c in CASES}
    assert set(EXCLUDED) <= names
    assert len(PROXY_CASES) >= 160


# ---- proxy-level answers -------------------------------------------------------------------------------


def view_of(proxy: Side, resp: Response, method: str, target: str, body: bytes | None = None) -> dict[str, Any]:
    ctx = Runner(proxy.port, proxy.url, "/").ctx
    v = without_cors(normalise(resp, ctx, method, target, body, watch=False))
    v["header_names"] = header_names(resp, watch=False)
    v["raw_body"] = resp.body.decode("utf-8", "replace").replace(proxy.url, "<URL>")
    return v


def same_answer(pair: Pair, method: str, target: str, body: bytes | None = None,
                headers: list[tuple[str, str]] | None = None) -> dict[str, Any]:
    """Send one request through both proxies; assert the normalised answers are equal; etcd's view."""
    return answers(pair, method, target, body, headers, strict=True)[0]


def answers(pair: Pair, method: str, target: str, body: bytes | None = None,
            headers: list[tuple[str, str]] | None = None, strict: bool = False,
            reports: list[str] | None = None) -> list[dict[str, Any]]:
    """Both proxies' normalised answers to one request; a difference fails at once (strict) or is added
    to `reports`."""
    views = [view_of(p, exchange(p.port, method, target, body, headers), method, target, body) for p in pair.both]
    report = difference(pair, views, f"{method} {target}")
    if report and strict:
        pytest.fail(report, pytrace=False)
    if report and reports is not None:
        reports.append(report)
    return views


def difference(pair: Pair, views: list[dict[str, Any]], what: str) -> str | None:
    if views[0] == views[1]:
        return None
    diff = difflib.unified_diff(pretty(views[0]), pretty(views[1]), f"{pair.ref.kind} proxy",
                                f"{pair.got.kind} proxy", lineterm="", n=2)
    return f"{what}: the proxies differ\n" + "\n".join(diff)


def assert_same(pair: Pair, views: list[dict[str, Any]], what: str) -> None:
    report = difference(pair, views, what)
    if report:
        pytest.fail(report, pytrace=False)


def test_config_local_proxy(pair: Pair) -> None:
    """GET /v2/config/local/proxy lists the members' client URLs; other methods are 405 Allow: GET."""
    member_urls = sorted(m.url for m in pair.cluster.members)
    for p in pair.both:
        r = exchange(p.port, "GET", "/v2/config/local/proxy")
        assert r.status == 200, r.describe()
        assert sorted(json.loads(r.body)["endpoints"]) == member_urls, r.describe()
    # Byte for byte but for the order of the endpoints (each proxy shuffles them) and the Date.
    views = [view_of(p, exchange(p.port, "GET", "/v2/config/local/proxy"), "GET", "/v2/config/local/proxy")
             for p in pair.both]
    for v in views:
        v["raw_body"] = json.dumps(sorted(json.loads(v["raw_body"])["endpoints"]))
        v["body"] = "<endpoints>"
    assert_same(pair, views, "GET /v2/config/local/proxy")
    for method in ("POST", "PUT", "DELETE", "HEAD"):
        same_answer(pair, method, "/v2/config/local/proxy", b"" if method in ("POST", "PUT") else None)


@pytest.mark.parametrize("target", ["/version", "/health", "/v2/members", "/v2/machines", "/metrics-nope",
                                    "/v2/keys//clean", "/v2/config/local/proxy/", "/v2/config/local"])
def test_proxy_level_answers(pair: Pair, target: str) -> None:
    """Answers the proxy makes or passes on for paths outside /v2/keys, compared whole (header names too)."""
    same_answer(pair, "GET", target)


@pytest.mark.parametrize(("method", "target"), [
    ("GET", "/v2/keys/"), ("PUT", "/v2/keys/cors/k"), ("GET", "/version"), ("GET", "/nonexistent"),
    ("OPTIONS", "/v2/keys/cors/k"), ("GET", "/v2/config/local/proxy"), ("POST", "/v2/config/local/proxy"),
    ("GET", "/v2/keys//cors"),
])
def test_cors_headers(pair: Pair, method: str, target: str) -> None:
    """The CORS headers. etcd's proxy wraps its handler in its own CORS layer (--cors, default *): an answer
    it makes itself (config, 405) carries them once, as ours does; an answer it forwards carries the member's
    and then its own again. Ours passes the member's on once, on purpose: a repeated
    Access-Control-Allow-Origin is refused by browsers, so only the multiplicity may differ there. etcd's
    path-cleaning 301 comes from its mux outside that layer and has none; ours forwards the request and the
    member's 301 has them (noted, not copied)."""
    body = b"value=1" if method == "PUT" else None
    got = [cors_headers(exchange(p.port, method, target, body, [("Content-Type", FORM)] if body else None))
           for p in pair.both]
    if target == "/v2/keys//cors" and pair.got.kind == "pyetcd":
        assert got[0] == [] and sorted(set(got[1])) == got[1] and len(got[1]) == 3, got
        return
    if pair.got.kind == "pyetcd":
        got[0] = sorted(set(got[0]))
    assert got[0] == got[1], f"{method} {target}\netcd proxy: {got[0]}\n{pair.got.kind} proxy: {got[1]}"


def test_readonly_proxy_refuses_writes(diff_cluster: Cluster, start_proxy: StartProxy) -> None:
    """`--proxy readonly`: every method but GET is 501 with no body (etcd: WriteHeader(501) only); GETs and
    watches go through."""
    ro = start_pair(diff_cluster, start_proxy, mode="readonly")
    before = exchange(diff_cluster.members[0].client_port, "GET", "/v2/keys/ro?recursive=true")
    form = [("Content-Type", FORM)]
    reports: list[str] = []
    for method, target, body in [("PUT", "/v2/keys/ro/k", b"value=1"), ("POST", "/v2/keys/ro", b"value=1"),
                                 ("DELETE", "/v2/keys/ro/k", None), ("PUT", "/v2/members/1", b"{}"),
                                 ("POST", "/v2/members", b"{}"), ("DELETE", "/v2/members/1", None),
                                 ("HEAD", "/v2/keys/ro", None), ("OPTIONS", "/v2/keys/ro", None),
                                 ("PATCH", "/v2/keys/ro", b"x"), ("PUT", "/v2/config/local/proxy", b"")]:
        views = answers(ro, method, target, body, form if body else None, reports=reports)
        assert [v["status"] for v in views] == [501, 501], (method, target, views)
    after = exchange(diff_cluster.members[0].client_port, "GET", "/v2/keys/ro?recursive=true")
    assert (before.status, before.body) == (after.status, after.body), "a readonly proxy let a write through"
    assert put(diff_cluster.members[0], "/ro/k", "v").status in (200, 201)
    # a plain GET through a proxy may reach a follower that has not applied the write yet
    assert wait_for(lambda: all(exchange(p.port, "GET", "/v2/keys/ro/k").status == 200 for p in ro.both), 10.0)
    v = same_answer(ro, "GET", "/v2/keys/ro/k")
    assert v["status"] == 200
    same_answer(ro, "GET", "/v2/keys/ro/k?quorum=true")
    same_answer(ro, "GET", "/v2/config/local/proxy/nope")
    assert not reports, "\n\n".join(reports)


# ---- watches woken by one write, seen by both proxies ----------------------------------------------------


def open_watch(p: Side, target: str) -> RawConn:
    conn = RawConn(p.port, timeout=15.0)
    conn.send(build_request("GET", target))
    return conn


def await_watchers(c: Cluster, before: int, n: int) -> None:
    assert wait_for(lambda: watchers(c) >= before + n, 10.0, 0.02), "the watches never reached the members"


def head_view(p: Side, resp: Any) -> dict[str, Any]:
    r = Response(resp.status, resp.reason, resp.headers, b"")
    v = without_cors(normalise(r, Runner(p.port, p.url, "/").ctx, "GET", "/v2/keys/w?wait=true", None, watch=True))
    v["headers"].pop("transfer-encoding", None)
    v["header_names"] = header_names(r, watch=True)
    v.pop("body")
    return v


def test_long_poll_watch_woken_by_a_write(pair: Pair) -> None:
    """One long poll through each proxy on the same key, woken by one PUT straight to a member: both answer
    the same event (the very same bytes), with the same head."""
    c = pair.cluster
    before = watchers(c)
    conns = [open_watch(p, "/v2/keys/lp/k?wait=true") for p in pair.both]
    try:
        await_watchers(c, before, 2)
        t0 = time.monotonic()
        assert put(c.members[1], "/lp/k", "woken").status == 201
        got = [conn.read_response(timeout=10.0) for conn in conns]
        woke_s = time.monotonic() - t0
    finally:
        for conn in conns:
            conn.close()
    assert got[0].body == got[1].body, (got[0].body, got[1].body)
    assert json.loads(got[0].body)["node"]["value"] == "woken"
    assert_same(pair, [head_view(pair.ref, got[0]), head_view(pair.got, got[1])], "the long poll's head")
    assert woke_s < 5.0, f"the watches took {woke_s:.1f}s to answer"


class StreamReader:
    """A stream watch's events as they arrive, read leniently: the head, then chunk payloads as far as the
    bytes go (etcd's proxy may hold back a chunk's closing CRLF until its next write)."""

    def __init__(self, conn: RawConn) -> None:
        self.conn = conn
        self.head: Any = None
        self.raw = bytearray()  # chunked bytes after the head
        self.arrivals: list[float] = []  # monotonic time each complete event was seen

    def payload(self) -> bytes:
        out, pos, raw = bytearray(), 0, self.raw
        while True:
            eol = raw.find(b"\r\n", pos)
            if eol < 0:
                return bytes(out)
            size = int(raw[pos:eol].split(b";")[0] or b"0", 16)
            if size == 0:
                return bytes(out)
            out += raw[eol + 2:eol + 2 + size]
            if eol + 2 + size + 2 > len(raw):
                return bytes(out)
            pos = eol + 2 + size + 2

    def events(self) -> list[bytes]:
        return [line + b"\n" for line in self.payload().split(b"\n")[:-1]]

    def poll(self, timeout: float) -> int:
        """Read what arrives within `timeout`; the number of complete events so far."""
        deadline = time.monotonic() + timeout
        try:
            if self.head is None:
                self.head = self.conn.read_head(timeout)
            if self.conn.buf:
                self.raw += self.conn.buf
                self.conn.buf.clear()
            while len(self.events()) <= len(self.arrivals) and time.monotonic() < deadline:
                self.conn._fill(deadline)
                self.raw += self.conn.buf
                self.conn.buf.clear()
        except (TimeoutError, OSError):
            pass
        now = time.monotonic()
        self.arrivals += [now] * (len(self.events()) - len(self.arrivals))
        return len(self.arrivals)

    def wait_events(self, n: int, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while self.poll(max(0.01, deadline - time.monotonic())) < n and time.monotonic() < deadline:
            pass
        return len(self.arrivals)


def test_stream_watch(pair: Pair) -> None:
    """A stream watch (stream=true) through each proxy on the same key; three small PUTs, each straight to a
    member. Ours must deliver each event before the next PUT (within 2 s); etcd's proxy may hold them in its
    response buffer, so with it only the end result is compared: a 20 KiB PUT pushes everything out, after
    which both streams must hold the same four events, byte for byte, under the same head."""
    c = pair.cluster
    before = watchers(c)
    readers = [StreamReader(open_watch(p, "/v2/keys/st?wait=true&stream=true&recursive=true")) for p in pair.both]
    ref, got = readers
    try:
        await_watchers(c, before, 2)
        etcd_early = []
        for i in range(1, 4):
            t_put = time.monotonic()
            assert put(c.members[i % 3], f"/st/k{i}", f"v{i}").status == 201
            n = got.wait_events(i, 2.0)
            etcd_early.append(ref.poll(0.05))
            if pair.got.kind == "etcd":  # PROXY_DIFF_AGAINST=etcd: the buffering is etcd's own
                continue
            assert n >= i, (f"{pair.got.kind} proxy: event {i} of the stream not delivered within 2 s of its "
                            f"write (head {'read' if got.head else 'not read'}, {n} events so far)")
            assert got.arrivals[i - 1] >= t_put
        assert put(c.members[0], "/st/big", "x" * 20480).status == 201
        for r in readers:
            r.wait_events(4, 10.0)
    finally:
        for r in readers:
            r.conn.close()
    print(f"etcd proxy: events delivered right after each of the 3 small writes: {etcd_early}")
    assert len(ref.events()) == len(got.events()) == 4, (ref.events(), got.events())
    assert ref.events() == got.events()
    assert [json.loads(e)["node"]["key"] for e in got.events()] == ["/st/k1", "/st/k2", "/st/k3", "/st/big"]
    assert_same(pair, [head_view(pair.ref, ref.head), head_view(pair.got, got.head)], "the stream's head")


# ---- endpoint failures -----------------------------------------------------------------------------------


def through(p: Side, method: str, target: str, value: str | None = None, timeout: float = 10.0) -> Response:
    body = None if value is None else f"value={value}".encode()
    try:
        return exchange(p.port, method, target, body, [("Content-Type", FORM)] if body else None, timeout)
    except CLIENT_ERRORS as exc:
        return Response(0, "", [], b"", error=str(exc))


def test_one_member_down_both_keep_serving(fresh_pair: Pair) -> None:
    """kill -9 a follower: every read and write through either proxy still succeeds (a request the dead
    endpoint refuses is retried on the next one)."""
    c = fresh_pair.cluster
    lead = c.wait_leader()
    victim = next(m for m in c.members if m is not lead)
    victim.kill9()
    for i in range(30):
        for p in fresh_pair.both:
            w = through(p, "PUT", f"/v2/keys/one-down/{p.kind}{i}", f"v{i}")
            assert w.status in (200, 201), f"{p.kind} proxy, write {i}: {w.describe()}"
            r = through(p, "GET", f"/v2/keys/one-down/{p.kind}{i}?quorum=true")
            assert r.status == 200 and json.loads(r.body)["node"]["value"] == f"v{i}", r.describe()
        time.sleep(0.05)  # spread over > 1 refresh, so each proxy's shuffled endpoint order changes


def steady_error(p: Side) -> Response:
    """The answer once the proxy has settled: the same answer three times in a row."""
    last: list[tuple[int, bytes]] = []
    resp = through(p, "GET", "/v2/keys/all-down")
    deadline = time.monotonic() + 3 * (REFRESH_MS + FAILURE_WAIT_MS) / 1000 + 5
    while time.monotonic() < deadline:
        resp = through(p, "GET", "/v2/keys/all-down")
        last = (last + [(resp.status, resp.body)])[-3:]
        if len(last) == 3 and len(set(last)) == 1:
            return resp
        time.sleep(0.2)
    return resp


def test_all_members_down_same_error(fresh_pair: Pair) -> None:
    """kill -9 every member: both proxies settle on the same answer (etcd: 503 {"message": "httpproxy: zero
    endpoints currently available"} once the refresh finds no member; 502 "unable to get response from N
    endpoint(s)" while endpoints are still listed), for reads and writes alike; both recover when the
    members come back."""
    c = fresh_pair.cluster
    for m in c.members:
        m.kill9()
    first = [through(p, "GET", "/v2/keys/all-down") for p in fresh_pair.both]
    assert all(r.status in (502, 503) for r in first), [r.describe() for r in first]
    settled = [steady_error(p) for p in fresh_pair.both]
    views = [view_of(p, r, "GET", "/v2/keys/all-down") for p, r in zip(fresh_pair.both, settled, strict=True)]
    assert_same(fresh_pair, views, "GET with every member down")
    assert settled[0].status == 503, settled[0].describe()
    for method, value in (("PUT", "x"), ("DELETE", None)):
        got = [view_of(p, through(p, method, "/v2/keys/all-down", value), method, "/v2/keys/all-down")
               for p in fresh_pair.both]
        assert_same(fresh_pair, got, f"{method} with every member down")
    cfg = [p.endpoints() for p in fresh_pair.both]
    assert cfg[0] == cfg[1] == [], cfg
    for m in c.members:
        c.launch(m)
    c.wait_leader()
    for p in fresh_pair.both:
        assert wait_for(lambda p=p: through(p, "PUT", "/v2/keys/back", "1").status in (200, 201),  # type: ignore[misc]
                        READY_S, 0.2), f"{p.kind} proxy did not recover:\n{p.log_tail()}"


def test_restart_from_data_dir(fresh_pair: Pair) -> None:
    """Both proxies write DATA_DIR/proxy/cluster ({"PeerURLs": [...]}, the members' peer URLs, sorted); a
    proxy restarted with its data dir and no --initial-cluster finds the cluster from that file."""
    c = fresh_pair.cluster
    peers = sorted(m.peer_url for m in c.members)
    for p in fresh_pair.both:
        assert wait_for(p.cluster_file.exists, 5.0), f"{p.kind} proxy: no {p.cluster_file}"
    texts = [p.cluster_file.read_text() for p in fresh_pair.both]
    assert texts[0] == texts[1], texts
    assert json.loads(texts[0]) == {"PeerURLs": peers}
    modes = [p.cluster_file.stat().st_mode & 0o777 for p in fresh_pair.both]
    assert modes[0] == modes[1], [oct(x) for x in modes]
    for p in fresh_pair.both:
        p.restart_from_data_dir()
        w = through(p, "PUT", f"/v2/keys/restarted/{p.name}", "1")
        assert w.status == 201, w.describe()
        assert sorted(p.endpoints()) == sorted(m.url for m in c.members)
        assert "using peer urls" in p.log() or p.kind == "pyetcd"

