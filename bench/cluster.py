"""Cluster benchmark: a 3-member pyetcd cluster beside a 3-member Debian etcd 3.4 cluster, in one run.

Both clusters run with the same --heartbeat-interval/--election-timeout, on loopback free ports, with
data dirs under /var/tmp (removed afterwards).  With pinning (the default) every member of both clusters
runs on core 0 and the load generator (and the failover writer) on core 1, as in the single-member bench.

Throughput loads (closed loop, bench.loadgen in a subprocess, interleaved pyetcd/etcd per load), run with
the throughput timing (etcd's defaults unless --cluster-timing says otherwise):

    put-leader@64    PUT at 64 clients, all sent to the leader
    put-follower@64  PUT at 64 clients, all sent to one follower (which forwards them to the leader)
    qget@64          GET ?quorum=true at 64 clients sent to the leader (linearizable reads)
    get-spread@64    plain GET at 64 clients spread round-robin over the three members

Failover window, for each timing in FAILOVER_TIMINGS (10/100 and etcd's 100/1000), --cluster-trials
trials per cluster, alternating pyetcd/etcd: an open-loop writer sends a PUT every 2 ms
(--failover-interval-ms), alternating between the two followers (each on an idle keep-alive connection,
or a new one when all of that member's connections still wait for an answer, so no write is stuck
behind a hung one); the leader is killed with SIGKILL; the window is the time from the kill to the
first 2xx answer to a PUT sent after the kill.  The killed member is restarted and the cluster must be whole again (every member
healthy, agreeing on the leader, a quorum read through the restarted member answered) before the next
trial.  Resolution: about the write interval.

    .venv/bin/python -m bench.cluster [--duration 5] [--cluster-trials 5] [--no-pin]   # standalone
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import selectors
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.loadgen import (
    RECV_SIZE,
    connect,
    prefill,
    put_request,
    raise_nofile,
    response_end,
    run_loadgen,
    taskset,
)
from tests.support.kit import LoggedProcess
from tests.support.servers import PYETCD_BIN, REPO, etcd_available, free_port

KINDS = ("pyetcd", "etcd")
CLUSTER_LOADS = ("put-leader@64", "put-follower@64", "qget@64", "get-spread@64")
FAILOVER_TIMINGS: tuple[tuple[int, int], ...] = ((10, 100), (100, 1000))
THROUGHPUT_TIMING = (100, 1000)
SIZE = 3
MEMBER_CORE, LOADGEN_CORE = "0", "1"
WRITE_INTERVAL_S = 0.002  # failover writer: one PUT every 2 ms (500/s), alternating over the followers
WRITER_CONN_CAP = 400  # per member: pending writes beyond this are not sent (counted as skipped)
PRE_KILL_S = 0.5  # steady writes before the kill

Result = dict[str, Any]


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def pinning_possible() -> bool:
    return shutil.which("taskset") is not None and (os.cpu_count() or 1) >= 2


# ---------------------------------------------------------------- tiny HTTP client


def http_call(port: int, method: str, path: str, body: str | None = None,
              timeout: float = 2.0) -> tuple[int, dict[str, str], bytes]:
    """One request on a fresh connection: (status, lower-cased headers, body); raises OSError."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        hdrs = {"Content-Type": "application/x-www-form-urlencoded"} if body is not None else {}
        conn.request(method, path, body=body, headers=hdrs)
        r = conn.getresponse()
        data = r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, data
    except http.client.HTTPException as e:
        raise OSError(str(e)) from e
    finally:
        conn.close()


# ---------------------------------------------------------------- members and clusters


@dataclass
class Member(LoggedProcess):
    kind: str
    name: str
    client_port: int
    peer_port: int
    data_dir: Path
    argv: list[str] = field(default_factory=list)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def client_url(self) -> str:
        return f"http://127.0.0.1:{self.client_port}"

    @property
    def peer_url(self) -> str:
        return f"http://127.0.0.1:{self.peer_port}"

    @property
    def log_path(self) -> Path:
        return self.data_dir.parent / f"{self.data_dir.name}.log"

    def start(self) -> None:
        self.launch(self.argv)  # without the caller's ETCD* variables


class Cluster:
    """SIZE members of one kind with the given timing; started, probed and stopped by PID."""

    def __init__(self, kind: str, base: Path, heartbeat_ms: int, election_ms: int, pin: bool) -> None:
        self.kind, self.heartbeat_ms, self.election_ms = kind, heartbeat_ms, election_ms
        tag = f"{kind}-{heartbeat_ms}-{election_ms}"
        self.members = [Member(kind, f"n{i + 1}", free_port(), free_port(), base / f"{tag}-n{i + 1}")
                        for i in range(SIZE)]
        initial = ",".join(f"{m.name}={m.peer_url}" for m in self.members)
        exe = str(PYETCD_BIN) if kind == "pyetcd" else (shutil.which("etcd") or "etcd")
        for m in self.members:
            argv = [exe, "--name", m.name, "--data-dir", str(m.data_dir),
                    "--listen-client-urls", m.client_url, "--advertise-client-urls", m.client_url,
                    "--listen-peer-urls", m.peer_url, "--initial-advertise-peer-urls", m.peer_url,
                    "--initial-cluster", initial, "--initial-cluster-state", "new",
                    "--initial-cluster-token", f"bench-{tag}",
                    "--heartbeat-interval", str(heartbeat_ms), "--election-timeout", str(election_ms)]
            if kind == "etcd":
                argv += ["--enable-v2=true"]
            m.argv = taskset(MEMBER_CORE, argv) if pin else argv

    @property
    def label(self) -> str:
        return f"{self.kind} {self.heartbeat_ms}/{self.election_ms}"

    def start(self, timeout_s: float = 30.0) -> None:
        for m in self.members:
            m.start()
        self.wait_whole(timeout_s)

    def stop(self) -> None:
        for m in self.members:
            m.stop()

    def live(self) -> list[Member]:
        return [m for m in self.members if m.alive]

    def leader_seen_by(self, m: Member) -> Member | None:
        """The leader according to member m (GET /v2/members/leader), or None."""
        try:
            status, _, body = http_call(m.client_port, "GET", "/v2/members/leader", timeout=1.0)
            if status != 200:
                return None
            urls = json.loads(body).get("clientURLs") or []
        except (OSError, ValueError):
            return None
        return next((x for x in self.members if x.client_url in urls), None)

    def leader(self) -> Member | None:
        for m in self.live():
            ld = self.leader_seen_by(m)
            if ld is not None and ld.alive:
                return ld
        return None

    def term(self, m: Member) -> int | None:
        try:
            _, hdrs, _ = http_call(m.client_port, "GET", "/v2/keys/", timeout=2.0)
            return int(hdrs["x-raft-term"])
        except (OSError, KeyError, ValueError):
            return None

    def whole(self) -> bool:
        """Every member running and healthy, all naming the same live leader, which accepts a write,
        and a quorum read answered by every member."""
        if len(self.live()) != SIZE:
            return False
        seen = [self.leader_seen_by(m) for m in self.members]
        if any(x is None for x in seen) or len({id(x) for x in seen}) != 1:
            return False
        ld = seen[0]
        assert ld is not None
        try:
            status, _, _ = http_call(ld.client_port, "PUT", "/v2/keys/bench/ready", "value=1", timeout=3.0)
            if status not in (200, 201):
                return False
            for m in self.members:
                st, _, _ = http_call(m.client_port, "GET", "/v2/keys/bench/ready?quorum=true", timeout=3.0)
                if st != 200:
                    return False
                if http_call(m.client_port, "GET", "/health", timeout=2.0)[0] != 200:
                    return False
        except OSError:
            return False
        return True

    def wait_whole(self, timeout_s: float) -> float:
        t0 = time.monotonic()
        deadline = t0 + timeout_s
        while time.monotonic() < deadline:
            dead = [m for m in self.members if m.proc is not None and m.proc.poll() is not None]
            if dead:
                m = dead[0]
                raise RuntimeError(f"{self.label} {m.name} exited with {m.proc.returncode if m.proc else '?'}: "
                                   f"{m.log_tail(1500)}")
            if self.whole():
                return time.monotonic() - t0
            time.sleep(0.05)
        tails = " | ".join(f"{m.name}: {m.log_tail(600)}" for m in self.members)
        raise RuntimeError(f"{self.label}: not whole after {timeout_s:.0f}s (leader: "
                           f"{[getattr(self.leader_seen_by(m), 'name', None) for m in self.live()]}): {tails}")


# ---------------------------------------------------------------- throughput loads


def parse_cluster_load(name: str) -> tuple[str, int]:
    what, _, n = name.partition("@")
    if what not in ("put-leader", "put-follower", "qget", "get-spread") or not n.isdigit():
        raise argparse.ArgumentTypeError(f"bad cluster load {name!r}: want put-leader@N, put-follower@N, qget@N "
                                         "or get-spread@N")
    return what, int(n)


def run_cluster_load(name: str, cl: Cluster, a: argparse.Namespace) -> Result:
    what, n = parse_cluster_load(name)
    leader = cl.leader()
    if leader is None:
        return {"error": f"{cl.label}: no leader before the load"}
    followers = [m for m in cl.members if m is not leader]
    ports = {"put-leader": [leader.client_port], "put-follower": [followers[0].client_port],
             "qget": [leader.client_port], "get-spread": [m.client_port for m in cl.members]}[what]
    targets = {"put-leader": "leader", "put-follower": f"follower {followers[0].name}", "qget": "leader",
               "get-spread": "all members"}[what]
    load = "put" if what.startswith("put") else "get"
    pids = [leader.pid, *(f.pid for f in followers)]
    args = ["--port", ",".join(map(str, ports)), "--load", load, "--clients", str(n), "--duration", str(a.duration),
            "--warmup", str(a.warmup), "--procs", str(a.procs), "--cpu-pids", ",".join(str(p) for p in pids if p)]
    if what == "qget":
        args += ["--query", "quorum=true"]
    term0 = cl.term(leader)
    r = run_loadgen(args, a.pin, a.duration + a.warmup + 60, LOADGEN_CORE)
    if "error" in r:
        return r
    leader_after = cl.leader()
    r["sent_to"] = targets
    r["term_before"], r["term_after"] = term0, cl.term(leader)
    r["leader_changed"] = leader_after is not leader
    cpus = r.get("extra", {}).get("pids_cpu") or []
    r["member_cpu"] = {"leader": cpus[0] if cpus else None, "followers": cpus[1:]}
    return r


def run_throughput(clusters: dict[str, Cluster], a: argparse.Namespace) -> dict[str, dict[str, Result]]:
    """Every cluster load against every cluster, interleaved (pyetcd, etcd per load)."""
    for kind, cl in clusters.items():
        ld = cl.leader()
        if ld is not None and any(x.startswith(("qget", "get-spread")) for x in a.cluster_loads):
            errs = prefill(ld.client_port)
            if errs:
                log(f"{kind}: prefill got {errs} non-2xx answers")
    results: dict[str, dict[str, Result]] = {}
    for name in a.cluster_loads:
        results[name] = {}
        for kind, cl in clusters.items():
            log(f"cluster {name:<16} {cl.label}")
            results[name][kind] = run_cluster_load(name, cl, a)
            time.sleep(a.pause)
    return results


# ---------------------------------------------------------------- failover


@dataclass
class _Pending:
    sock: socket.socket
    port: int
    buf: bytes = b""
    t_send: int = 0


class OpenLoopWriter:
    """Sends a PUT every `interval_s`, alternating over `ports`; never waits for an answer to send the next."""

    def __init__(self, ports: list[int], interval_s: float) -> None:
        self.ports, self.interval_ns = ports, int(interval_s * 1e9)
        self.sel = selectors.DefaultSelector()
        self.idle: dict[int, list[_Pending]] = {p: [] for p in ports}
        self.busy: dict[int, int] = {p: 0 for p in ports}
        self.reqs = {p: [put_request("127.0.0.1", p, f"/v2/keys/bench/failover/k{i}") for i in range(100)]
                     for p in ports}
        self.n_sent = 0
        self.skipped = 0
        self.connect_errors = 0
        self.done: list[tuple[int, int, int, int]] = []  # (t_send, t_done, status, port)
        self.dropped: list[tuple[int, int, int]] = []  # (t_send, t_drop, port): connection closed or reset

    def _send(self, now: int) -> None:
        port = self.ports[self.n_sent % len(self.ports)]
        req = self.reqs[port][self.n_sent % 100]
        self.n_sent += 1
        if self.busy[port] >= WRITER_CONN_CAP:
            self.skipped += 1
            return
        idle = self.idle[port]
        if idle:
            c = idle.pop()
        else:
            try:
                c = _Pending(connect("127.0.0.1", port, timeout=0.5), port)
            except OSError:
                self.connect_errors += 1
                return
            self.sel.register(c.sock, selectors.EVENT_READ, c)
        c.t_send, c.buf = now, b""
        try:
            c.sock.send(req)
        except OSError:
            self._drop(c, now)
            return
        self.busy[port] += 1

    def _drop(self, c: _Pending, now: int) -> None:
        self.dropped.append((c.t_send, now, c.port))
        self.sel.unregister(c.sock)
        c.sock.close()

    def run_until(self, stop: Any, deadline_ns: int) -> None:
        """Keep sending and reading until stop() is true or the deadline passes."""
        clock = time.perf_counter_ns
        next_send = clock()
        while True:
            now = clock()
            if now >= deadline_ns or stop():
                return
            if now >= next_send:
                self._send(now)
                next_send += self.interval_ns
                if next_send < now:  # we fell behind (e.g. a slow connect): do not burst
                    next_send = now + self.interval_ns
                continue
            for key, _ in self.sel.select(max(0.0, (next_send - now) / 1e9)):
                c: _Pending = key.data
                try:
                    data = c.sock.recv(RECV_SIZE)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    data = b""
                t = clock()
                if not data:
                    self.busy[c.port] -= 1
                    self._drop(c, t)
                    continue
                c.buf += data
                end, _ = response_end(c.buf)
                if end < 0:
                    continue
                self.done.append((c.t_send, t, int(c.buf[9:12]), c.port))
                self.busy[c.port] -= 1
                c.buf = b""
                self.idle[c.port].append(c)

    def close(self) -> None:
        for key in list(self.sel.get_map().values()):
            key.fileobj.close()  # type: ignore[union-attr]
        self.sel.close()


def failover_trial(cl: Cluster, timeout_s: float, interval_s: float = WRITE_INTERVAL_S) -> Result:
    """Kill -9 the leader under a steady write load; time until the first acknowledged write sent after it."""
    leader = cl.leader()
    if leader is None:
        return {"error": "no leader before the trial"}
    survivors = [m for m in cl.members if m is not leader]
    term0 = cl.term(leader)
    w = OpenLoopWriter([m.client_port for m in survivors], interval_s)
    clock = time.perf_counter_ns
    try:
        t0 = clock()
        w.run_until(lambda: False, t0 + int(PRE_KILL_S * 1e9))
        pre = [d for d in w.done if d[2] in (200, 201)]
        pre_ms = statistics.median((d[1] - d[0]) / 1e6 for d in pre) if pre else None
        t_kill = clock()
        leader.kill9()
        t_killed = clock()
        n_before = len(w.done)

        def acked() -> bool:
            return any(d[0] >= t_kill and d[2] in (200, 201) for d in w.done[n_before:])

        w.run_until(acked, t_kill + int(timeout_s * 1e9))
        post = w.done[n_before:]
        first = min((d for d in post if d[0] >= t_kill and d[2] in (200, 201)), key=lambda d: d[1], default=None)
        first_any = min((d[1] for d in post if d[2] in (200, 201)), default=None)
        non2xx = [d[2] for d in post if d[2] not in (200, 201)]
        by_port = {m.client_port: m.name for m in cl.members}
        out: Result = {
            "killed": leader.name,
            "window_ms": round((first[1] - t_kill) / 1e6, 1) if first else None,
            "first_ack_any_ms": round((first_any - t_kill) / 1e6, 1) if first_any else None,
            "acked_by": by_port.get(first[3]) if first else None,
            "kill_syscall_ms": round((t_killed - t_kill) / 1e6, 2),
            "pre_kill_acks": len(pre), "pre_kill_p50_ms": round(pre_ms, 2) if pre_ms is not None else None,
            "non_2xx": dict(sorted({s: non2xx.count(s) for s in set(non2xx)}.items())),
            "dropped": len(w.dropped), "skipped": w.skipped, "connect_errors": w.connect_errors,
            "term_before": term0,
        }
        if first is None:
            out["error"] = f"no write acknowledged within {timeout_s:.0f}s of the kill"
    finally:
        w.close()
    new_leader = cl.leader()
    out["new_leader"] = new_leader.name if new_leader else None
    out["term_after"] = cl.term(new_leader) if new_leader else None
    t_restart = time.monotonic()
    leader.start()
    try:
        cl.wait_whole(30.0)
        out["rejoin_s"] = round(time.monotonic() - t_restart, 2)
    except RuntimeError as e:
        out["rejoin_error"] = str(e)[:500]
    return out


def run_failover(clusters: dict[str, Cluster], a: argparse.Namespace) -> dict[str, list[Result]]:
    """a.cluster_trials trials per cluster, alternating kinds; stops a cluster's trials at its first broken rejoin."""
    trials: dict[str, list[Result]] = {k: [] for k in clusters}
    broken: set[str] = set()
    for i in range(a.cluster_trials):
        for kind, cl in clusters.items():
            if kind in broken:
                continue
            timeout_s = max(5.0, 10 * cl.election_ms / 1000)
            r = failover_trial(cl, timeout_s, a.failover_interval_ms / 1000)
            log(f"failover {cl.label:<16} trial {i + 1}/{a.cluster_trials}: window "
                f"{fmt(r.get('window_ms'), '.1f')} ms (killed {r.get('killed')}, new leader {r.get('new_leader')}, "
                f"rejoin {fmt(r.get('rejoin_s'), '.1f')} s){' ' + r['error'] if 'error' in r else ''}")
            trials[kind].append(r)
            if "rejoin_error" in r or r.get("error") == "no leader before the trial":
                log(f"{cl.label}: {r.get('rejoin_error') or r['error']}; no more trials for it")
                broken.add(kind)
            time.sleep(0.2)
    return trials


def failover_summary(trials: list[Result]) -> Result:
    w = [t["window_ms"] for t in trials if t.get("window_ms") is not None]
    return {"trials": len(trials), "ok": len(w), "median_ms": round(statistics.median(w), 1) if w else None,
            "min_ms": min(w) if w else None, "max_ms": max(w) if w else None, "windows_ms": w}


# ---------------------------------------------------------------- ratios, targets, output


def fmt(v: Any, spec: str = ".0f") -> str:
    return "-" if v is None or (isinstance(v, float) and v != v) else format(v, spec)


def _ratio(num: float | None, den: float | None) -> float | None:
    if not num or not den or num != num or den != den:
        return None
    return round(num / den, 3)


def _ops(results: dict[str, dict[str, Result]], load: str, kind: str) -> float | None:
    v = results.get(load, {}).get(kind, {}).get("ops_s")
    return v if isinstance(v, int | float) else None


def cluster_targets(loads: dict[str, dict[str, Result]], failover: dict[str, Result]) -> list[Result]:
    def check(name: str, value: float | None, limit: float | None, at_least: bool) -> Result:
        ok = None if value is None or limit is None else (value >= limit if at_least else value <= limit)
        return {"target": name, "value": value, "limit": limit, "status": "n/a" if ok is None else
                ("PASS" if ok else "FAIL")}

    out = []
    for load in (x for x in loads if x.startswith("put")):  # issue 15: PUT@64 on 3 members >= 0.6x etcd
        out.append(check(f"cluster {load} >= 0.6x etcd", _ratio(_ops(loads, load, "pyetcd"), _ops(loads, load, "etcd")),
                         0.6, True))
    for load in (x for x in loads if x.startswith("qget")):
        out.append(check(f"cluster {load} >= 0.5x etcd", _ratio(_ops(loads, load, "pyetcd"), _ops(loads, load, "etcd")),
                         0.5, True))
    for timing, per in failover.items():
        py, ref = per.get("pyetcd", {}), per.get("etcd", {})
        out.append(check(f"failover {timing} median <= etcd's (ms)", py.get("median_ms"), ref.get("median_ms"), False))
    return out


def load_row(load: str, kind: str, r: Result) -> str:
    if "error" in r:
        return f"{load:<16} {kind:<7} {r['error']}"
    cpu = r.get("member_cpu", {})
    fol = "/".join(fmt(x, ".2f") for x in cpu.get("followers", []))
    note = " LEADER CHANGED" if r.get("leader_changed") else ""
    if r.get("term_before") != r.get("term_after"):
        note += f" term {r.get('term_before')}->{r.get('term_after')}"
    return (f"{load:<16} {kind:<7} {fmt(r['ops_s']):>8} {fmt(r['p50_ms'], '.3f'):>8} {fmt(r['p99_ms'], '.3f'):>8} "
            f"{r['errors'] + r['io_errors']:>5} {fmt(cpu.get('leader'), '.2f'):>6} {fol:>10} "
            f"{fmt(r.get('loadgen_cpu'), '.2f'):>6}{note}")


def report(doc: Result) -> str:
    lines = [f"cluster bench: {SIZE}-member pyetcd and etcd clusters; {doc['pinning']}",
             f"throughput loads with --heartbeat-interval {doc['throughput_timing'][0]} --election-timeout "
             f"{doc['throughput_timing'][1]}, {doc['duration_s']:g} s each after {doc['warmup_s']:g} s warm-up",
             f"{'load':<16} {'cluster':<7} {'ops/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'err':>5} {'ld cpu':>6} "
             f"{'fol cpu':>10} {'lg cpu':>6}"]
    for load, per in doc["loads"].items():
        lines.append("-" * 84)
        lines += [load_row(load, kind, r) for kind, r in per.items()]
        lines.append(f"{'':<16} ratio pyetcd/etcd (ops/s): {fmt(doc['ratios'].get(load), '.2f')}x")
    lines.append("-" * 84)
    lines.append(f"failover window (kill -9 the leader under a PUT every {doc['failover_write_interval_ms']:g} ms to the "
                 f"followers; kill -> first 2xx to a PUT sent after it)")
    for timing, per in doc["failover"].items():
        for kind, s in per.items():
            ws = ", ".join(fmt(x, ".0f") for x in s["windows_ms"])
            lines.append(f"  {timing:<9} {kind:<7} median {fmt(s['median_ms'], '.1f'):>7} ms  "
                         f"(min {fmt(s['min_ms'], '.0f')}, max {fmt(s['max_ms'], '.0f')}; {s['ok']}/{s['trials']} "
                         f"trials: {ws})")
        lines.append(f"  {timing:<9} ratio pyetcd/etcd (median): "
                     f"{fmt(doc['failover_ratios'].get(timing), '.2f')}x")
    for kind, err in doc.get("errors", {}).items():
        lines.append(f"  {kind}: {err}")
    lines.append(f"(cluster part took {doc['elapsed_s']:.0f} s)")
    return "\n".join(lines)


# ---------------------------------------------------------------- driver


def add_cluster_args(ap: argparse.ArgumentParser) -> None:
    g = ap.add_argument_group("cluster")
    g.add_argument("--cluster-loads", default=",".join(CLUSTER_LOADS),
                   help="comma list of put-leader@N, put-follower@N, qget@N, get-spread@N")
    g.add_argument("--cluster-trials", type=int, default=5, help="failover trials per cluster and timing (default 5)")
    g.add_argument("--cluster-timing", default=tstr(THROUGHPUT_TIMING),
                   help="HEARTBEAT/ELECTION ms for the throughput loads (default etcd's 100/1000)")
    g.add_argument("--failover-interval-ms", type=float, default=WRITE_INTERVAL_S * 1000,
                   help="failover writer: one PUT every this many ms (default 2)")
    g.add_argument("--failover-timings", default=",".join(tstr(t) for t in FAILOVER_TIMINGS),
                   help="comma list of HEARTBEAT/ELECTION ms for the failover trials")


def tstr(timing: tuple[int, int]) -> str:
    return f"{timing[0]}/{timing[1]}"


def _timing(text: str) -> tuple[int, int]:
    hb, _, et = text.partition("/")
    if not hb.isdigit() or not et.isdigit():
        raise argparse.ArgumentTypeError(f"bad timing {text!r}: want HEARTBEAT/ELECTION in ms, e.g. 100/1000")
    return int(hb), int(et)


def check_cluster_args(a: argparse.Namespace) -> None:
    a.cluster_loads = [x for x in a.cluster_loads.split(",") if x] if isinstance(a.cluster_loads, str) \
        else a.cluster_loads
    for x in a.cluster_loads:
        parse_cluster_load(x)
    a.cluster_timing = _timing(a.cluster_timing) if isinstance(a.cluster_timing, str) else a.cluster_timing
    if isinstance(a.failover_timings, str):
        a.failover_timings = [_timing(x) for x in a.failover_timings.split(",") if x]


def _start_clusters(timing: tuple[int, int], base: Path, a: argparse.Namespace,
                    errors: dict[str, str]) -> dict[str, Cluster]:
    """Start a cluster of each available kind with this timing (all members launched first, then awaited)."""
    started: dict[str, Cluster] = {}
    for kind in KINDS:
        if kind == "pyetcd" and not PYETCD_BIN.exists():
            errors[kind] = f"not run: {PYETCD_BIN} not found"
            continue
        if kind == "etcd" and not etcd_available():
            errors[kind] = "not run: etcd not on PATH (make etcd)"
            continue
        cl = Cluster(kind, base, *timing, pin=a.pin)
        for m in cl.members:
            m.start()
        started[kind] = cl
    ready: dict[str, Cluster] = {}
    for kind, cl in started.items():
        try:
            took = cl.wait_whole(60.0)
            log(f"{cl.label}: whole in {took:.1f} s (leader {getattr(cl.leader(), 'name', None)})")
            ready[kind] = cl
        except RuntimeError as e:
            errors[f"{cl.label}"] = str(e)[:1500]
            log(f"{cl.label}: {str(e)[:1500]}")
            cl.stop()
    return ready


def run(a: argparse.Namespace) -> Result:
    """The whole cluster part; returns the document stored under "cluster" in latest.json."""
    check_cluster_args(a)
    t_begin = time.monotonic()
    raise_nofile(8192)
    pinned = a.pin and pinning_possible()
    pinning = (f"pinned: all members on core {MEMBER_CORE}, loadgen and failover writer on core {LOADGEN_CORE}"
               if pinned else "not pinned")
    old_affinity = os.sched_getaffinity(0)
    if pinned:
        os.sched_setaffinity(0, {int(LOADGEN_CORE)})  # the in-process failover writer
    base = Path(tempfile.mkdtemp(prefix="pyetcd-cluster-bench-", dir="/var/tmp"))
    errors: dict[str, str] = {}
    loads: dict[str, dict[str, Result]] = {}
    trials: dict[str, dict[str, list[Result]]] = {}
    timings = list(dict.fromkeys([a.cluster_timing, *a.failover_timings]))
    try:
        for timing in timings:
            clusters = _start_clusters(timing, base, a, errors)
            try:
                if timing == a.cluster_timing and a.cluster_loads:
                    loads = run_throughput(clusters, a)
                if timing in a.failover_timings and a.cluster_trials > 0:
                    trials[tstr(timing)] = run_failover(clusters, a)
            finally:
                for cl in clusters.values():
                    cl.stop()
    finally:
        shutil.rmtree(base, ignore_errors=True)
        os.sched_setaffinity(0, old_affinity)
    failover = {t: {k: failover_summary(v) for k, v in per.items()} for t, per in trials.items()}
    doc: Result = {
        "size": SIZE, "pinning": pinning, "pinned": pinned, "throughput_timing": list(a.cluster_timing),
        "duration_s": a.duration, "warmup_s": a.warmup, "failover_write_interval_ms": a.failover_interval_ms,
        "loads": loads,
        "ratios": {x: _ratio(_ops(loads, x, "pyetcd"), _ops(loads, x, "etcd")) for x in loads},
        "failover": failover,
        "failover_ratios": {t: _ratio(per.get("pyetcd", {}).get("median_ms"), per.get("etcd", {}).get("median_ms"))
                            for t, per in failover.items()},
        "failover_trials": trials,
        "errors": errors,
    }
    doc["targets"] = cluster_targets(loads, failover)
    doc["elapsed_s"] = round(time.monotonic() - t_begin, 1)
    return doc


def finish(doc: Result, report_text: str, json_path: Path | None) -> int:
    """What every bench part's main ends with: its table, its targets, and the document if asked."""
    print(report_text)
    print("\ntargets (informational):")
    print_targets(doc["targets"])
    if json_path:
        json_path.write_text(json.dumps(doc, indent=2) + "\n")
    return 0


def print_targets(tgt: list[Result]) -> None:
    """The informational targets of any bench part: status, name, measured value, limit and note if any."""
    for t in tgt:
        lim = f" (limit {fmt(t['limit'], '.3f')})" if t.get("limit") is not None else ""
        note = f"  ({t['note']})" if t.get("note") else ""
        print(f"  {t['status']:<4}  {t['target']:<48} measured {fmt(t['value'], '.3f')}{lim}{note}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="3-member pyetcd cluster vs 3-member etcd cluster")
    ap.add_argument("--duration", type=float, default=5.0)
    ap.add_argument("--warmup", type=float, default=1.0)
    ap.add_argument("--procs", type=int, default=1)
    ap.add_argument("--pause", type=float, default=0.5)
    ap.add_argument("--no-pin", dest="pin", action="store_false")
    ap.add_argument("--json", type=Path, default=None, help="also write the document here")
    add_cluster_args(ap)
    a = ap.parse_args(argv)
    os.chdir(REPO)
    doc = run(a)
    return finish(doc, report(doc), a.json)


if __name__ == "__main__":
    sys.exit(main())
