"""Real pyetcd Raft clusters on loopback: members on free ports, optional TCP relays to cut links.

`make_cluster(n, relay=..., snapshot_count=...)` starts n members with short timers
(`--heartbeat-interval 50 --election-timeout 500`), waits for a leader agreed on by a majority and, at
teardown, kills every process it started by PID. A failed test gets the tails of the members' logs in its
report ("member logs" section).

Relays: with `relay=True` each member advertises a peer URL served by a `Relay` in this process, which
forwards to the member's listened peer port. Every peer request carries `X-Server-From`, so the relay of
member D knows which member S a connection comes from, and `Cluster.cut(S, D)` drops the S->D link (the
connection is closed, and reconnects are closed after reading the request head). Responses ride on the
same connection, so a cut S->D silences S's messages to D but not D's to S (that is the D->S link).
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from pyetcd.server.members import member_id

from tests.integration._http import Resp, request
from tests.support.kit import Child, LoggedProcess, TcpListener, head_fields, pump, read_head, wait_for
from tests.support.servers import PYETCD_BIN, free_port

HEARTBEAT_MS = 50
ELECTION_MS = 500
# etcd's v2 request timeout for these settings (5 s + 2 x election timeout): a write without quorum fails then.
REQUEST_TIMEOUT_S = 5.0 + 2 * ELECTION_MS / 1000
TOKEN = "pyetcd-cluster-test"
CLIENT_ERRORS = (OSError, ValueError)  # refused, reset, timed out, closed early (PeerClosed is an OSError)


# ---- relays --------------------------------------------------------------------------------------


class Relay(TcpListener):
    """Accepts on `port` (a member's advertised peer port) and forwards to `target_port` (its listened one).

    `blocked(src_id_hex, dst_name)` is consulted, under `lock`, before forwarding every chunk and every
    50 ms; a blocked connection is closed. The cluster changes its cuts under the same lock, so once
    `Cluster.cut` returns not one more byte crosses a cut link. Threads end at close() (every wait is
    bounded).
    """

    def __init__(self, dst_name: str, port: int, target_port: int,
                 blocked: Callable[[str | None, str], bool], lock: threading.RLock) -> None:
        self.lock = lock
        self.dst_name = dst_name
        self.target_port = target_port
        self.blocked = blocked
        self.refused = 0
        super().__init__(port, name=f"relay-{dst_name}")

    def serve(self, client: socket.socket) -> None:
        head = read_head(client, self.stopping)
        src = head_fields(head)[1].get("x-server-from")
        src = src.lower() if src is not None else None
        if self.blocked(src, self.dst_name):
            self.refused += 1
            return
        with socket.create_connection(("127.0.0.1", self.target_port), timeout=1.0) as upstream:
            with self.lock:
                if self.blocked(src, self.dst_name):
                    return
                upstream.sendall(head)

            def send(dst: socket.socket | None, data: bytes) -> bool:
                with self.lock:
                    if self.blocked(src, self.dst_name):
                        return False
                    assert dst is not None
                    dst.sendall(data)
                return True

            pump(client, upstream, self.stopping, send=send, still_open=lambda: not self.blocked(src, self.dst_name))


# ---- members and clusters ------------------------------------------------------------------------


@dataclass
class Member(LoggedProcess):
    name: str
    client_port: int
    peer_port: int  # listened
    adv_peer_port: int  # advertised (a relay's port when the cluster has relays)
    data_dir: Path
    extra: list[str] = field(default_factory=list)
    state: str = "new"
    member_id: int = 0
    proc: subprocess.Popen[bytes] | None = None
    relay: Relay | None = None
    removed: bool = False
    starts: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.client_port}"

    @property
    def peer_url(self) -> str:
        """The advertised peer URL (what the others dial)."""
        return f"http://127.0.0.1:{self.adv_peer_port}"

    @property
    def id_hex(self) -> str:
        return f"{self.member_id:x}"

    @property
    def log_path(self) -> Path:
        return self.data_dir.parent / f"{self.name}.log"


class Cluster:
    """A set of pyetcd members on loopback. Methods never wait unboundedly."""

    def __init__(self, base: Path, n: int, relay: bool = False, snapshot_count: int | None = None,
                 extra: list[str] | None = None) -> None:
        self.base = base
        self.use_relay = relay
        self.extra = list(extra or [])
        if snapshot_count is not None:
            self.extra += ["--snapshot-count", str(snapshot_count)]
        self.members: list[Member] = []
        self.cuts: set[tuple[str, str]] = set()  # (src name, dst name)
        self._lock = threading.RLock()
        for i in range(1, n + 1):
            self.members.append(self._new_member(f"m{i}"))
        for m in self.members:
            m.member_id = member_id([m.peer_url], TOKEN)

    # -- construction --

    def _new_member(self, name: str) -> Member:
        client, peer = free_port(), free_port()
        adv = free_port() if self.use_relay else peer
        m = Member(name, client, peer, adv, self.base / f"{name}.etcd", list(self.extra))
        if self.use_relay:
            m.relay = Relay(name, adv, peer, self._blocked, self._lock)
        return m

    def by_name(self, name: str) -> Member:
        return next(m for m in self.members if m.name == name)

    @property
    def active(self) -> list[Member]:
        """Members of the cluster (not removed)."""
        return [m for m in self.members if not m.removed]

    @property
    def alive(self) -> list[Member]:
        return [m for m in self.active if m.alive]

    @property
    def quorum(self) -> int:
        return len(self.active) // 2 + 1

    def initial_cluster(self) -> str:
        return ",".join(f"{m.name}={m.peer_url}" for m in self.active)

    def argv(self, m: Member) -> list[str]:
        return [str(PYETCD_BIN), "--name", m.name, "--data-dir", str(m.data_dir),
                "--listen-client-urls", m.url, "--advertise-client-urls", m.url,
                "--listen-peer-urls", f"http://127.0.0.1:{m.peer_port}",
                "--initial-advertise-peer-urls", m.peer_url,
                "--initial-cluster", self.initial_cluster(), "--initial-cluster-state", m.state,
                "--initial-cluster-token", TOKEN,
                "--heartbeat-interval", str(HEARTBEAT_MS), "--election-timeout", str(ELECTION_MS), *m.extra]

    def launch(self, m: Member) -> None:
        """Start a member's process (without waiting for it: it needs a quorum to be healthy)."""
        assert not m.alive, f"{m.name} already running"
        m.launch(self.argv(m), banner=f"==== start #{m.starts + 1} of {m.name}: {' '.join(self.argv(m))}\n")
        m.starts += 1

    def start(self, timeout_s: float = 20.0) -> Member:
        for m in self.members:
            self.launch(m)
        return self.wait_leader(timeout_s)

    def restart(self, m: Member, timeout_s: float = 20.0) -> None:
        self.launch(m)
        assert wait_for(lambda: self.healthy(m), timeout_s), f"{m.name} not healthy: {m.log_tail()}"

    def stop_all(self) -> None:
        for m in self.members:
            m.kill9()
        for m in self.members:
            if m.relay is not None:
                m.relay.close()

    # -- partitions --

    def _blocked(self, src_hex: str | None, dst: str) -> bool:
        if src_hex is None:
            return False
        with self._lock:
            src = next((m.name for m in self.members if m.id_hex == src_hex), None)
            return src is not None and (src, dst) in self.cuts

    def cut(self, src: Member, dst: Member, both: bool = True) -> None:
        assert self.use_relay, "cuts need make_cluster(..., relay=True)"
        with self._lock:
            self.cuts.add((src.name, dst.name))
            if both:
                self.cuts.add((dst.name, src.name))

    def isolate(self, m: Member) -> None:
        for other in self.members:
            if other is not m:
                self.cut(m, other)

    def partition(self, *groups: list[Member]) -> None:
        """Cut every link between members of different groups (both ways)."""
        for i, g in enumerate(groups):
            for h in groups[i + 1:]:
                for a in g:
                    for b in h:
                        self.cut(a, b)

    def heal(self) -> None:
        with self._lock:
            self.cuts.clear()

    # -- observation --

    def stats_self(self, m: Member, timeout: float = 1.0) -> dict[str, Any] | None:
        try:
            r = request(m.client_port, "GET", "/v2/stats/self", timeout=timeout)
        except CLIENT_ERRORS:
            return None
        return r.json() if r.status == 200 else None

    def healthy(self, m: Member) -> bool:
        try:
            return request(m.client_port, "GET", "/health", timeout=1.0).status == 200
        except CLIENT_ERRORS:
            return False

    def leaders(self, among: list[Member] | None = None) -> list[Member]:
        """Members that say they are leader right now."""
        out = []
        for m in among if among is not None else self.alive:
            st = self.stats_self(m)
            if st is not None and st.get("state") == "StateLeader":
                out.append(m)
        return out

    def agreed_leader(self, among: list[Member] | None = None) -> Member | None:
        """The member that says it leads and that a quorum of the cluster (itself included) follows."""
        views: dict[str, dict[str, Any]] = {}
        for m in among if among is not None else self.alive:
            st = self.stats_self(m)
            if st is not None:
                views[m.name] = st
        for m in self.active:
            st = views.get(m.name)
            if st is None or st.get("state") != "StateLeader":
                continue
            followers = sum(1 for v in views.values() if v.get("leaderInfo", {}).get("leader") == m.id_hex)
            if followers >= self.quorum:
                return m
        return None

    def wait_leader(self, timeout_s: float = 15.0, among: list[Member] | None = None,
                    not_: Member | None = None) -> Member:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            lead = self.agreed_leader(among)
            if lead is not None and lead is not not_:
                return lead
            time.sleep(0.05)
        raise AssertionError(f"no agreed leader within {timeout_s}s:\n{self.logs()}")

    def logs(self, n: int = 3000) -> str:
        return "\n".join(f"---- {m.name} ({m.log_path}) ----\n{m.log_tail(n)}" for m in self.members)

    # -- membership --

    def add_member(self, name: str, via: Member, timeout_s: float = 20.0,
                   headers: list[tuple[str, str]] | None = None) -> Member:
        """POST /v2/members via `via` (with `headers`, e.g. root's credentials), then start the new member
        with --initial-cluster-state existing."""
        m = self._new_member(name)
        m.state = "existing"
        body = json.dumps({"peerURLs": [m.peer_url]}).encode()
        r = request(via.client_port, "POST", "/v2/members", body=body,
                    headers=[("Content-Type", "application/json"), *(headers or [])], timeout=REQUEST_TIMEOUT_S + 2)
        assert r.status == 201, (r.status, r.body)
        m.member_id = int(r.json()["id"], 16)
        self.members.append(m)
        self.launch(m)
        assert wait_for(lambda: self.healthy(m), timeout_s), f"{name} did not join:\n{self.logs()}"
        return m

    def remove_member(self, m: Member, via: Member) -> Resp:
        r = request(via.client_port, "DELETE", f"/v2/members/{m.id_hex}", timeout=REQUEST_TIMEOUT_S + 2)
        if r.status == 204:
            m.removed = True
        return r


# ---- client helpers ------------------------------------------------------------------------------


def put(m: Member, key: str, value: str, timeout: float = REQUEST_TIMEOUT_S + 2, **form: str) -> Resp:
    return request(m.client_port, "PUT", f"/v2/keys{key}", form={"value": value, **form}, timeout=timeout)


def get(m: Member, key: str, quorum: bool = False, timeout: float = REQUEST_TIMEOUT_S + 2,
        recursive: bool = False) -> Resp:
    q = "&".join(x for x in ("quorum=true" if quorum else "", "recursive=true" if recursive else "") if x)
    return request(m.client_port, "GET", f"/v2/keys{key}" + (f"?{q}" if q else ""), timeout=timeout)


def put_retry(c: Cluster, key: str, value: str, timeout_s: float = 15.0) -> Resp:
    """PUT until some alive member acknowledges it (each try bounded)."""
    deadline = time.monotonic() + timeout_s
    last: object = None
    i = 0
    while time.monotonic() < deadline:
        alive = c.alive
        if alive:
            try:
                r = put(alive[i % len(alive)], key, value, timeout=3.0)
                if r.status in (200, 201):
                    return r
                last = (r.status, r.body)
            except CLIENT_ERRORS as e:
                last = e
        i += 1
        time.sleep(0.05)
    raise AssertionError(f"PUT {key} not acknowledged within {timeout_s}s: {last}\n{c.logs()}")


@dataclass(frozen=True)
class Ack:
    key: str
    value: str
    member: str  # the member that answered
    sent: float  # monotonic
    acked: float
    index: int  # the node's modifiedIndex
    raft_term: int  # X-Raft-Term of the answer (0 if absent)


@dataclass
class LoadResult:
    acks: list[Ack] = field(default_factory=list)
    failed: int = 0  # error answers (e.g. 500 request timed out)
    indeterminate: int = 0  # no answer (connection refused/reset/timeout)

    @property
    def acked(self) -> dict[str, str]:
        return {a.key: a.value for a in self.acks}


class WriteLoad:
    """`threads` writers PUT unique keys under `prefix`, round-robin over `targets()` (bounded per request)."""

    def __init__(self, targets: Callable[[], list[Member]], prefix: str = "/load", threads: int = 2,
                 timeout: float = 3.0) -> None:
        self.targets = targets
        self.prefix = prefix
        self.timeout = timeout
        self.result = LoadResult()
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self.threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(threads)]

    def __enter__(self) -> WriteLoad:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> LoadResult:
        self.stopping.set()
        for t in self.threads:
            t.join(self.timeout + 5)
        return self.result

    def _run(self, w: int) -> None:
        n = 0
        while not self.stopping.is_set() and n < 100_000:
            n += 1
            targets = self.targets()
            if not targets:
                time.sleep(0.05)
                continue
            m = targets[(n + w) % len(targets)]
            key, value = f"{self.prefix}/w{w}-{n}", f"v{w}-{n}"
            sent = time.monotonic()
            try:
                r = put(m, key, value, timeout=self.timeout)
            except CLIENT_ERRORS:
                with self._lock:
                    self.result.indeterminate += 1
                time.sleep(0.02)
                continue
            now = time.monotonic()
            with self._lock:
                if r.status in (200, 201):
                    self.result.acks.append(Ack(key, value, m.name, sent, now, r.json()["node"]["modifiedIndex"],
                                                int(r.header("X-Raft-Term") or 0)))
                else:
                    self.result.failed += 1
            if r.status not in (200, 201):
                time.sleep(0.02)

    def count(self) -> int:
        with self._lock:
            return len(self.result.acks)

    def acks_sent_after(self, t: float) -> list[Ack]:
        with self._lock:
            return [a for a in self.result.acks if a.sent > t]


def read_all(m: Member, prefix: str, quorum: bool = True) -> dict[str, str]:
    """key -> value of every leaf under prefix (one recursive GET)."""
    r = get(m, prefix, quorum=quorum, recursive=True)
    if r.status == 404:
        return {}
    assert r.status == 200, (r.status, r.body)
    out: dict[str, str] = {}
    stack = [r.json()["node"]]
    while stack:
        node = stack.pop()
        if "value" in node:
            out[node["key"]] = node["value"]
        stack.extend(node.get("nodes", []))
    return out


def assert_no_acked_write_lost(c: Cluster, acked: dict[str, str], prefix: str = "/load",
                               members: list[Member] | None = None) -> None:
    """Every acknowledged key has its value on the leader (quorum read) and, once caught up, on every member."""
    lead = c.wait_leader()
    got = read_all(lead, prefix, quorum=True)
    lost = {k: v for k, v in acked.items() if got.get(k) != v}
    assert not lost, f"{len(lost)} acknowledged writes lost, e.g. {sorted(lost.items())[:5]}"
    for m in members if members is not None else c.alive:
        assert wait_for(lambda m=m: all(read_all(m, prefix, quorum=False).get(k) == v  # type: ignore[misc]
                                        for k, v in acked.items()), 15.0, 0.2), \
            f"{m.name} does not have every acknowledged write"


# ---- fixtures ------------------------------------------------------------------------------------


MakeCluster = Callable[..., Cluster]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    clusters: list[Cluster] = getattr(item, "_pyetcd_clusters", [])
    if report.when == "call" and report.failed and clusters:
        report.sections.append(("member logs", "\n".join(c.logs(6000) for c in clusters)))


@pytest.fixture
def make_cluster(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[MakeCluster]:
    """Build and start clusters; every process and relay made here is stopped at teardown (by PID)."""
    made: list[Cluster] = []
    request.node._pyetcd_clusters = made

    def make(n: int = 3, relay: bool = False, snapshot_count: int | None = None,
             extra: list[str] | None = None, start: bool = True) -> Cluster:
        c = Cluster(tmp_path / f"c{len(made)}", n, relay, snapshot_count, extra)
        c.base.mkdir(parents=True, exist_ok=True)
        made.append(c)
        if start:
            c.start()
        return c

    yield make
    for c in made:
        c.stop_all()


# ---- v2 proxies in front of a cluster -------------------------------------------------------------


@dataclass
class Proxy:
    proc: Child
    port: int
    data_dir: Path
    argv: list[str]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def serving(self) -> bool:
        """The proxy knows an endpoint (its config lists one) and answers through it."""
        assert self.proc.alive, f"the proxy exited:\n{self.proc.log_tail()}"
        try:
            r = request(self.port, "GET", "/v2/config/local/proxy", timeout=2.0)
            return r.status == 200 and bool(r.json()["endpoints"]) and \
                request(self.port, "GET", "/version", timeout=2.0).status == 200
        except CLIENT_ERRORS:
            return False


class StartProxy:
    """`start(cluster, binary="pyetcd"|"etcd", mode="on", extra=[...])`: a v2 proxy (pyetcd's or etcd 3.4's)
    in front of `cluster`, with a 1 s refresh interval; `wait=True` returns once it serves. Every proxy
    started here is stopped at teardown."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.started: list[Proxy] = []

    def __call__(self, c: Cluster | None, binary: str = "pyetcd", mode: str = "on", extra: list[str] | None = None,
                 wait: bool = True, data_dir: Path | None = None, port: int | None = None) -> Proxy:
        port = port or free_port()
        name = f"{binary}-proxy{len(self.started)}"
        data_dir = data_dir or self.base / f"{name}.etcd"
        exe = str(PYETCD_BIN) if binary == "pyetcd" else shutil.which("etcd") or "etcd"
        argv = [exe, "--proxy", mode, "--name", name, "--data-dir", str(data_dir),
                "--listen-client-urls", f"http://127.0.0.1:{port}", "--proxy-refresh-interval", "1000"]
        if c is not None:
            argv += ["--initial-cluster", c.initial_cluster()]
        argv += list(extra or [])
        proc = Child(self.base / f"{name}.log")
        proc.launch(argv, banner=f"==== {' '.join(argv)}\n")
        p = Proxy(proc, port, data_dir, argv)
        self.started.append(p)
        if wait:
            assert wait_for(p.serving, 20.0, 0.1), f"{name} not serving within 20 s:\n{proc.log_tail()}"
        return p

    def stop_all(self) -> None:
        for p in self.started:
            p.proc.stop()


@pytest.fixture
def start_proxy(tmp_path: Path) -> Iterator[StartProxy]:
    sp = StartProxy(tmp_path)
    yield sp
    sp.stop_all()


# ---- concurrent client histories for the linearizability checker ---------------------------------


class HistoryClients:
    """`threads` clients doing PUT / CAS (prevValue) / create (prevExist=false) / DELETE / quorum GET on a few
    keys against `targets()`, each op recorded for pyetcd.testing.sim.linearizability.

    Every op is recorded with its invocation and completion times (monotonic). An op without a definite
    answer (no answer, or 500 "request timed out") is indeterminate: it may or may not have taken effect.
    Written values are unique, so the checker's search stays small.
    """

    def __init__(self, targets: Callable[[], list[Member]], keys: tuple[str, ...] = ("/lin/a", "/lin/b", "/lin/c"),
                 threads: int = 5, timeout: float = 3.0, max_ops_per_thread: int = 300, seed: int = 1) -> None:
        from pyetcd.testing.sim.linearizability import Op

        self.targets = targets
        self.keys = keys
        self.timeout = timeout
        self.max_ops = max_ops_per_thread
        self.seed = seed
        self.ops: list[Op] = []
        self.unexpected: list[str] = []
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._next_id = 0
        self.threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(threads)]

    def __enter__(self) -> HistoryClients:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self.stopping.set()
        for t in self.threads:
            t.join(self.timeout + 5)

    def _record(self, **kw: Any) -> None:
        from pyetcd.testing.sim.linearizability import Op

        with self._lock:
            self._next_id += 1
            self.ops.append(Op(op_id=self._next_id, **kw))

    def _run(self, w: int) -> None:
        import random

        from pyetcd.testing.sim.linearizability import OK, Kind

        rng = random.Random(self.seed * 1000 + w)
        seen: dict[str, str | None] = {}  # the last value this client read, per key
        for n in range(self.max_ops):
            if self.stopping.is_set():
                return
            targets = self.targets()
            if not targets:
                time.sleep(0.05)
                continue
            m = rng.choice(targets)
            key = rng.choice(self.keys)
            value = f"c{w}-{n}"
            roll = rng.random()
            expected = seen.get(key)
            if roll < 0.35:
                kind, method, form = Kind.READ, "GET", None
            elif roll < 0.65 or (roll < 0.85 and expected is None):
                kind, method, form = Kind.WRITE, "PUT", {"value": value}
            elif roll < 0.85:
                kind, method, form = Kind.CAS, "PUT", {"value": value, "prevValue": expected or ""}
            elif roll < 0.93:
                kind, method, form = Kind.CREATE, "PUT", {"value": value, "prevExist": "false"}
            else:
                kind, method, form = Kind.DELETE, "DELETE", None
            target = f"/v2/keys{key}" + ("?quorum=true" if kind is Kind.READ else "")
            rec: dict[str, Any] = {"key": key, "kind": kind, "value": None if kind in (Kind.READ, Kind.DELETE)
                                   else value, "expected": expected if kind is Kind.CAS else None}
            invoke = time.monotonic()
            try:
                r = request(m.client_port, method, target, form=form, timeout=self.timeout)
            except CLIENT_ERRORS:
                # No answer: an update may have taken effect (or may later); a read says nothing.
                if kind is not Kind.READ:
                    self._record(invoke=invoke, complete=None, **rec)
                time.sleep(0.02)
                continue
            done = time.monotonic()
            try:
                body = r.json() if r.body else {}
            except ValueError:
                body = {}
            code = body.get("errorCode") if r.status >= 400 else OK
            if r.status in (200, 201):
                if kind is Kind.READ:
                    rec["value"] = seen[key] = body["node"]["value"]
                self._record(invoke=invoke, complete=done, outcome=OK, **rec)
            elif self._indeterminate(r):
                if kind is not Kind.READ:
                    self._record(invoke=invoke, complete=None, **rec)
            elif code in (100, 101, 105):
                if kind is Kind.READ:
                    seen[key] = None
                self._record(invoke=invoke, complete=done, outcome=code, **rec)
            else:
                self.unexpected.append(f"{kind.value} {key} on {m.name}: {r.status} {r.body[:200]!r}")

    @staticmethod
    def _indeterminate(r: Resp) -> bool:
        """etcd's 'request timed out' (the proposal may still commit) and 5xx without a definite outcome."""
        return r.status in (500, 503)

    def check(self) -> None:
        from pyetcd.testing.sim.linearizability import Kind, check

        assert not self.unexpected, f"unexpected answers: {self.unexpected[:5]}"
        completed = [o for o in self.ops if o.complete is not None]
        assert len(completed) >= 50, f"only {len(completed)} completed ops"
        assert any(o.kind is Kind.READ and o.value is not None for o in completed), "no read saw a value"
        assert any(o.kind is Kind.CAS and o.outcome == 0 for o in completed), "no CAS succeeded"
        result = check(list(self.ops))
        assert result.ok, result.message
