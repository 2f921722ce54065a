"""Fleet-scale benchmark: pyetcd beside Debian's etcd 3.4 with many watchers and a big store, in one run.

Parts (each run against pyetcd, then etcd, servers stopped by PID after each):

    watchers   --fleet-watchers (15,000) long polls on one member, woken by one PUT: the server's RSS before
               and with the watchers in place (VmRSS from /proc), bytes per watcher, and for each of
               --fleet-watch-rounds rounds (the same connections re-armed) the wake latency from the PUT's send
               to each watcher's complete answer: p50, p99, max and how many of the requested were woken.
               A connection the server refuses or closes is not replaced: it is counted, not hidden.
    proxies    --fleet-proxy-watchers (10,000) spread over two v2 proxies of the same kind (`--proxy on`) in
               front of a 3-member cluster of that kind (bench/cluster.py's, etcd's 100/1000 timing), woken by
               one PUT through the first proxy; RSS of the proxies and of the members.
    fill       --fleet-keys (1,000,000) distinct keys /v2/keys/bench/m/k{i} of 100 bytes, each PUT once at
               --fleet-clients (64) connections: load time, PUT p99/p99.9/max over every request, RSS after,
               bytes per key, data dir size (disk usage, as du; etcd's WAL files are preallocated 64 MB);
               then kill -9 and start it again: the time from spawn until /health answers 200 AND a GET of
               the last key returns it.
    snapshot   on that restarted member (the big store), PUT@64 for --fleet-snapshot-duration seconds with
               --snapshot-count set so that it snapshots about every --fleet-snapshot-every seconds (its PUT@64
               rate, the faster of a 3-s probe on that store and the fill, x those seconds, or
               --fleet-snapshot-count for both; a clean stop and start sets the flag); the snapshots'
               start/end come from the server's log ('start to snapshot' or 'triggering snapshot' ... 'saved
               snapshot'); the run is cut in 1-second windows of completion time: p99 of the requests
               completing in windows that overlap a snapshot vs p99 of the others (during/without).

Servers are pinned to core 0, the load (bench.loadgen in a subprocess, and this module's watcher client in a
subprocess) to core 1. The RLIMIT_NOFILE soft limit is raised to the hard limit before anything is spawned,
so every server and client inherits it. A part that fails (a server that dies, a loadgen error, a count
short of what was asked) is reported in the table, never raised.

    .venv/bin/python -m bench.fleet [--fleet-keys 100000] [--fleet-watchers 3000] [--fleet-parts watchers,fill]
    .venv/bin/python -m bench.run --only-fleet          # the same, as a part of bench/run.py
"""

from __future__ import annotations

import argparse
import json
import os
import re
import selectors
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from array import array
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.cluster import THROUGHPUT_TIMING, Cluster, finish, http_call, log, pinning_possible
from bench.loadgen import (
    HOST,
    LOADGEN_CORE,
    RECV_SIZE,
    VALUE,
    Conn,
    connect,
    get_request,
    percentile,
    put_request,
    raise_nofile,
    response_end,
    run_loadgen,
    send_all,
    taskset,
)
from bench.proxy import ProxyProc
from tests.support.servers import PYETCD_BIN, REPO, Server, etcd_available, etcd_server, pyetcd_server

KINDS = ("pyetcd", "etcd")
PARTS = ("watchers", "proxies", "fill", "snapshot")
SERVER_CORE = "0"
WATCH_PATH = "/v2/keys/bench/fleet-w"
SNAP_START = re.compile(r"start to snapshot|triggering snapshot")
SNAP_END = re.compile(r"saved snapshot")
LOG_TIME = re.compile(r"^(\d{4}-\d\d-\d\d)[T ](\d\d:\d\d:\d\d(?:\.\d+)?)")

Result = dict[str, Any]


# ---------------------------------------------------------------- small helpers


def rss_bytes(pid: int | None) -> int | None:
    """VmRSS of a process, in bytes (None if it is gone)."""
    if not pid:
        return None
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def disk_usage(path: Path) -> int:
    """Bytes allocated under `path` (what `du -s` counts)."""
    total = 0
    for root, _, files in os.walk(path):
        for name in [root, *(os.path.join(root, f) for f in files)]:
            try:
                total += os.lstat(name).st_blocks * 512
            except OSError:
                pass
    return total


def fmt(v: Any, spec: str = ".0f") -> str:
    if v is None or (isinstance(v, float) and v != v):
        return "-"
    if isinstance(v, str):
        return v
    return format(v, spec)


def ratio(num: Any, den: Any) -> float | None:
    ok = all(isinstance(x, int | float) and x == x and x > 0 for x in (num, den))
    return round(num / den, 3) if ok else None


def short(e: BaseException | str, n: int = 400) -> str:
    """The first and last line of an error, at most n chars."""
    lines = [x.strip() for x in str(e).strip().splitlines() if x.strip()]
    text = " ... ".join(dict.fromkeys([lines[0], lines[-1]])) if lines else type(e).__name__
    return text[:n]


def last_lines(log_tail: str, k: int = 2, n: int = 400) -> str:
    """The last k non-empty lines of a log tail (its first line may be cut), at most n chars."""
    lines = [x.strip() for x in log_tail.splitlines()[1:] if x.strip()]
    return " | ".join(lines[-k:])[-n:] or "(empty log)"


def pinned(argv: list[str], pin: bool) -> list[str]:
    return taskset(SERVER_CORE, argv) if pin else argv


def sub(d: Result, *keys: str) -> Any:
    for k in keys:
        if not isinstance(d, dict):
            return None
        d = d.get(k)  # type: ignore[assignment]
    return d


# ---------------------------------------------------------------- the watcher client (a subprocess on core 1)


def watch_fleet(ports: list[int], n: int, rounds: int, rss_pids: list[int], settle_s: float = 3.0,
                wake_timeout_s: float = 30.0, host: str = HOST) -> Result:
    """`n` long polls spread round-robin over `ports`, woken by one PUT through ports[0], `rounds` times.

    Connections are opened one by one and each sends its watch at once. A watcher is armed when the response
    headers arrive (etcd and pyetcd flush them at once; etcd's proxy only with the event); arming ends when all
    are armed or nothing changed for `settle_s`. Each watch carries waitIndex = the index of the round's PUT
    (learnt from the PUT before it), so a watch that reaches the member after the PUT (through a proxy that
    is still opening its upstream connections) still gets the event from the history instead of missing it.
    A connection the server refuses, closes or answers before the PUT is not replaced.
    RSS of `rss_pids` is read before the first connection and `settle_s` after arming.
    """
    raise_nofile(-1)
    clock = time.perf_counter_ns
    rss0 = {str(p): rss_bytes(p) for p in rss_pids}
    sel = selectors.DefaultSelector()
    conns: list[Conn] = []
    index, index_error = _put_index(host, ports[0], "start")
    reqs = _watch_requests(host, ports, index)
    connect_failed, connect_error = 0, ""
    closed: set[int] = set()  # conns (by idx) the server closed: never reused
    t0 = clock()
    for i in range(n):
        port = ports[i % len(ports)]
        try:
            sock = connect(host, port, timeout=10.0)
            c = Conn(sock, i, port)
            c.t_send = clock()
            send_all(sock, reqs[port])
        except OSError as e:
            connect_failed += 1
            connect_error = connect_error or f"{type(e).__name__}: {e}"
            continue
        conns.append(c)
        sel.register(sock, selectors.EVENT_READ, c)
    open_s = (clock() - t0) / 1e9

    def on_data(c: Conn) -> None:
        try:
            data = c.sock.recv(RECV_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        now = clock()
        if not data:
            closed.add(c.idx)
            sel.unregister(c.sock)
            c.sock.close()
            return
        c.buf += data
        end, hend = response_end(c.buf)
        if hend >= 0 and not c.hdr_ns:
            c.hdr_ns, c.status = now, int(c.buf[9:12])
        if end >= 0 and not c.done_ns:
            c.done_ns = now

    def arm(live: list[Conn]) -> float:
        """Wait until every live watcher has its headers (or a final answer) or nothing changes for settle_s."""
        t_arm = clock()
        last_change, seen = time.monotonic(), -1
        cap = time.monotonic() + 60.0 + n / 250
        ids = {c.idx for c in live}
        state = sum(1 for c in live if c.hdr_ns or c.done_ns or c.idx in closed)  # counted as they change
        while time.monotonic() < cap:
            for key, _ in sel.select(0.1):
                c = key.data
                before = bool(c.hdr_ns or c.done_ns or c.idx in closed)
                on_data(c)
                if not before and c.idx in ids and (c.hdr_ns or c.done_ns or c.idx in closed):
                    state += 1
            if state != seen:
                seen, last_change = state, time.monotonic()
            if state >= len(live) or time.monotonic() - last_change > settle_s:
                break
        return (clock() - t_arm) / 1e9

    arm_s = arm(conns)
    time.sleep(settle_s)  # let the last registrations (and a proxy's upstream watches) land
    for key, _ in sel.select(0):
        on_data(key.data)
    rss1 = {str(p): rss_bytes(p) for p in rss_pids}
    in_place = [c for c in conns if c.idx not in closed and not c.done_ns]
    first = {
        "requested": n, "opened": len(conns), "connect_failed": connect_failed, "connect_error": connect_error,
        "open_s": round(open_s, 3), "arm_s": round(arm_s, 3),
        "heads": sum(1 for c in conns if c.hdr_ns and not c.done_ns and c.idx not in closed),
        "closed_before_put": len(closed), "answered_before_put": sum(1 for c in conns if c.done_ns),
        "answered_before_put_status": sorted({c.status for c in conns if c.done_ns}),
        "in_place": len(in_place), "rss_before": rss0, "rss_after": rss1,
    }
    out_rounds: list[Result] = []
    live = in_place
    for r in range(rounds):
        if r > 0:  # re-arm the watchers answered last round, on the same connections
            live = [c for c in live if c.idx not in closed and c.done_ns]
            reqs = _watch_requests(host, ports, out_rounds[-1].get("put_index"))
            for c in live:
                c.buf, c.hdr_ns, c.done_ns, c.status = b"", 0, 0, 0
                try:
                    send_all(c.sock, reqs[c.port])
                except OSError:
                    closed.add(c.idx)
                    sel.unregister(c.sock)
                    c.sock.close()
            live = [c for c in live if c.idx not in closed]
            arm(live)
            live = [c for c in live if c.idx not in closed and not c.done_ns]
        out_rounds.append(_wake_round(sel, live, closed, on_data, ports[0], host, r, wake_timeout_s))
    for c in conns:
        if c.idx not in closed:
            c.sock.close()
    sel.close()
    first["rounds"] = out_rounds
    first["wait_index"] = index
    if index_error:
        first["wait_index_error"] = index_error
    return first


def _watch_requests(host: str, ports: list[int], index: int | None) -> dict[int, bytes]:
    """The watch request per port: for the event after `index` when known, else for the next one."""
    query = "?wait=true" + (f"&waitIndex={index + 1}" if index is not None else "")
    return {p: get_request(host, p, WATCH_PATH + query) for p in ports}


def _index_of(response: bytes) -> int | None:
    """node.modifiedIndex of a keys-API answer (else its X-Etcd-Index), or None."""
    head, _, body = response.partition(b"\r\n\r\n")
    try:
        return int(json.loads(body)["node"]["modifiedIndex"])
    except (ValueError, KeyError, TypeError):
        pass
    m = re.search(rb"(?i)\r\nx-etcd-index:\s*(\d+)", head)
    return int(m[1]) if m else None


def _put_index(host: str, port: int, value: str) -> tuple[int | None, str]:
    """PUT the watched key once; (its modifiedIndex or None, an error text)."""
    try:
        status, _, body = http_call(port, "PUT", WATCH_PATH, f"value={value}", timeout=30.0)
    except OSError as e:
        return None, f"PUT before arming: {type(e).__name__}: {e}"
    if not 200 <= status < 300:
        return None, f"PUT before arming: {status} {body[:200]!r}"
    return _index_of(b"\r\n\r\n" + body), ""


def _wake_round(sel: selectors.BaseSelector, live: list[Conn], closed: set[int], on_data: Any, port: int,
                host: str, r: int, wake_timeout_s: float) -> Result:
    """One PUT through `port` on a fresh connection; collect the watchers' answers for `wake_timeout_s`."""
    clock = time.perf_counter_ns
    res: Result = {"armed": len(live), "put_status": None, "put_ms": None, "writer_error": ""}
    try:
        writer = connect(host, port, timeout=10.0)
    except OSError as e:
        res["writer_error"] = f"writer could not connect: {type(e).__name__}: {e}"
        writer = None
    wbuf, t_put = b"", clock()
    if writer is not None:
        try:
            send_all(writer, put_request(host, port, WATCH_PATH, f"round{r}"))
            sel.register(writer, selectors.EVENT_READ, None)
        except OSError as e:
            res["writer_error"] = f"writer: {type(e).__name__}: {e}"
            writer.close()
            writer = None
    deadline = t_put + int(wake_timeout_s * 1e9)
    closed_at_put = len(closed)
    ids = {c.idx for c in live}
    pending = sum(1 for c in live if not c.done_ns and c.idx not in closed)  # counted down as they finish
    while clock() < deadline:
        if not pending and (writer is None or res["put_status"] is not None):
            break
        if writer is None and pending == len(live) and clock() - t_put > 3e9:
            break  # no PUT went out: nobody will be woken
        for key, _ in sel.select(0.1):
            if key.data is None:
                assert writer is not None
                try:
                    data = writer.recv(RECV_SIZE)
                except OSError:
                    data = b""
                if not data:
                    res["writer_error"] = res["writer_error"] or "the server closed the writer's connection"
                    sel.unregister(writer)
                    writer.close()
                    writer = None
                    continue
                wbuf += data
                end = response_end(wbuf)[0]
                if end >= 0 and res["put_status"] is None:
                    res["put_status"], res["put_ms"] = int(wbuf[9:12]), round((clock() - t_put) / 1e6, 3)
                    res["put_index"] = _index_of(wbuf[:end])
            else:
                c = key.data
                before = bool(c.done_ns or c.idx in closed)
                on_data(c)
                if not before and c.idx in ids and (c.done_ns or c.idx in closed):
                    pending -= 1
    if writer is not None:
        sel.unregister(writer)
        writer.close()
    lat = sorted(c.done_ns - t_put for c in live if c.done_ns and 200 <= c.status < 300)
    bad = [c for c in live if c.done_ns and not 200 <= c.status < 300]
    if bad:
        res["non_2xx_status"] = sorted({c.status for c in bad})
        res["non_2xx_sample"] = bad[0].buf[:300].decode(errors="replace")
    res.update({
        "woken": len(lat), "non_2xx": sum(1 for c in live if c.done_ns and not 200 <= c.status < 300),
        "closed": len(closed) - closed_at_put,
        "not_answered": sum(1 for c in live if not c.done_ns and c.idx not in closed),
        "p50_ms": round(percentile(lat, 50), 3), "p99_ms": round(percentile(lat, 99), 3),
        "max_ms": round(lat[-1] / 1e6, 3) if lat else float("nan"),
    })
    return res


def run_watch_worker(ports: list[int], n: int, rounds: int, rss_pids: list[int], pin: bool,
                     settle_s: float = 3.0, wake_timeout_s: float = 30.0) -> Result:
    """watch_fleet in a subprocess pinned to the load core (its own fd limit, its own CPU)."""
    argv = [sys.executable, "-m", "bench.fleet", "--watch-worker", "--ports", ",".join(map(str, ports)),
            "--watchers", str(n), "--rounds", str(rounds), "--rss-pids", ",".join(map(str, rss_pids)),
            "--settle", str(settle_s), "--wake-timeout", str(wake_timeout_s)]
    if pin:
        argv = taskset(LOADGEN_CORE, argv)
    timeout = 180 + n / 50 + rounds * (wake_timeout_s + 60 + n / 250)
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, cwd=REPO)
    except subprocess.TimeoutExpired:
        return {"error": f"watcher client timed out after {timeout:.0f}s"}
    if p.returncode != 0:
        return {"error": "watcher client failed: " + (p.stderr.strip().splitlines() or ["?"])[-1][:300]}
    try:
        out: Result = json.loads(p.stdout)
    except ValueError:
        return {"error": f"watcher client printed no JSON: {p.stdout[:200]!r}"}
    return out


def summarize_watch(w: Result, pids: dict[str, list[int]]) -> Result:
    """Add RSS deltas per role (pids: role -> PIDs), bytes per watcher and the median round (by p99)."""
    if "error" in w:
        return w
    before, after = w.get("rss_before", {}), w.get("rss_after", {})
    for role, plist in pids.items():
        b = [before.get(str(p)) for p in plist]
        a = [after.get(str(p)) for p in plist]
        ok = all(isinstance(x, int) for x in b + a)
        w[f"{role}_rss_before"] = sum(b) if ok else None
        w[f"{role}_rss_after"] = sum(a) if ok else None
        w[f"{role}_rss_delta"] = sum(a) - sum(b) if ok else None
    deltas = [w.get(f"{role}_rss_delta") for role in pids]
    total = sum(deltas) if all(isinstance(x, int) for x in deltas) else None  # type: ignore[arg-type]
    w["rss_delta"] = total
    w["bytes_per_watcher"] = round(total / w["in_place"]) if total is not None and w.get("in_place") else None
    rounds = w.get("rounds") or []
    if rounds:
        key = sorted(range(len(rounds)), key=lambda i: (rounds[i]["p99_ms"] if rounds[i]["p99_ms"] ==
                                                        rounds[i]["p99_ms"] else float("inf")))
        pick = rounds[key[(len(key) - 1) // 2]]
        w["median_round"] = pick
        w["woken_min"] = min(r["woken"] for r in rounds)
        w["woken_first"] = rounds[0]["woken"]
        w["p99_rounds_ms"] = [r["p99_ms"] for r in rounds]
        w["all_woken"] = all(r["woken"] == w["requested"] for r in rounds)
    return w


# ---------------------------------------------------------------- part: watchers on one member


def make_member(kind: str, base: Path, name: str, pin: bool, extra: list[str] | None = None) -> Server:
    if kind == "pyetcd":
        if not PYETCD_BIN.exists():
            raise RuntimeError(f"{PYETCD_BIN} not found")
        srv = pyetcd_server(base, name, extra=extra)
    else:
        if not etcd_available():
            raise RuntimeError("etcd not on PATH (make etcd)")
        srv = etcd_server(base, name, extra=extra)
    srv.argv = pinned(srv.argv, pin)
    return srv


def part_watchers(kind: str, base: Path, a: argparse.Namespace) -> Result:
    srv = make_member(kind, base, f"watch-{kind}", a.pin)
    try:
        srv.start(30.0)
        time.sleep(0.5)
        w = run_watch_worker([srv.port], a.fleet_watchers, a.fleet_watch_rounds, [srv.pid], a.pin)
        w = summarize_watch(w, {"server": [srv.pid]})
        if not srv.alive:
            w["server_died"] = f"exited with {srv.proc.returncode if srv.proc else '?'}: {last_lines(srv.log_tail(600))}"
        return w
    finally:
        srv.stop()


# ---------------------------------------------------------------- part: watchers over two proxies


def part_proxies(kind: str, base: Path, a: argparse.Namespace) -> Result:
    cl = Cluster(kind, base, *THROUGHPUT_TIMING, pin=a.pin)
    initial = ",".join(f"{m.name}={m.peer_url}" for m in cl.members)
    proxies: list[ProxyProc] = []
    for i in (1, 2):
        d = base / f"{kind}-proxy{i}"
        d.mkdir(parents=True, exist_ok=True)
        proxies.append(ProxyProc(f"{kind}-proxy", d, initial, a.pin))
    try:
        cl.start(60.0)
        for p in proxies:
            p.starts = 1
            p.launch(p.argv())
            p.wait_ready(lambda p=p: p.first_endpoint() is not None, p.kind, 30.0)  # type: ignore[misc]
        via = [p.first_endpoint() for p in proxies]
        time.sleep(0.5)
        w = run_watch_worker([p.port for p in proxies], a.fleet_proxy_watchers, a.fleet_watch_rounds,
                             [*(p.pid for p in proxies), *(m.pid for m in cl.members)], a.pin)
        w = summarize_watch(w, {"proxies": [p.pid for p in proxies], "members": [m.pid for m in cl.members]})
        w["proxies_forward_to"] = via
        dead = [p.kind for p in proxies if not p.alive] + [m.name for m in cl.members if not m.alive]
        if dead:
            w["server_died"] = "not running at the end: " + ", ".join(dead)
        return w
    finally:
        for p in proxies:
            p.stop()
        cl.stop()


# ---------------------------------------------------------------- part: fill, restart, snapshot


def wait_restart(srv: Server, last_key: str, timeout_s: float) -> Result:
    """Poll (every 10 ms) until /health answers 200 and a GET of `last_key` returns its value."""
    t0 = time.monotonic()
    health_s: float | None = None
    deadline = t0 + timeout_s
    while time.monotonic() < deadline:
        if srv.proc is None or srv.proc.poll() is not None:
            return {"error": f"exited while restarting ({srv.proc.returncode if srv.proc else '?'}): "
                             f"{last_lines(srv.log_tail(800))}", "health_s": health_s}
        try:
            if health_s is None:
                if http_call(srv.port, "GET", "/health", timeout=1.0)[0] == 200:
                    health_s = time.monotonic() - t0
            if health_s is not None:
                status, _, body = http_call(srv.port, "GET", last_key, timeout=1.0)
                if status == 200 and json.loads(body).get("node", {}).get("value") == VALUE:
                    return {"restart_s": round(time.monotonic() - t0, 3), "health_s": round(health_s, 3)}
        except (OSError, ValueError):
            pass
        time.sleep(0.01)
    return {"error": f"not ready {timeout_s:.0f}s after the restart", "health_s": health_s}


def part_fill(kind: str, base: Path, a: argparse.Namespace, want_snapshot: bool) -> tuple[Result, Result | None]:
    """Fill, measure, kill -9, restart with the same flags (timed); then, for the snapshot part, a 3-s PUT@64
    probe of the rate, a clean stop and a start with --snapshot-count = rate x --fleet-snapshot-every (the rate:
    the faster of the probe and the fill)."""
    res: Result = {"keys": a.fleet_keys, "clients": a.fleet_clients}
    snap: Result | None = None
    srv = make_member(kind, base, f"fill-{kind}", a.pin)
    try:
        srv.start(30.0)
        time.sleep(0.5)
        res["rss_empty"] = rss_bytes(srv.pid)
        args = ["--port", str(srv.port), "--load", "fill", "--keys", str(a.fleet_keys), "--clients",
                str(a.fleet_clients), "--server-pid", str(srv.pid), "--timeout", str(120 + a.fleet_keys / 200)]
        fill = run_loadgen(args, a.pin, 240 + a.fleet_keys / 200)
        res["load"] = fill
        if not srv.alive:
            res["error"] = f"server died during the fill: {last_lines(srv.log_tail(800))}"
            return res, snap
        time.sleep(1.0)
        res["rss_after"] = rss_bytes(srv.pid)
        if isinstance(res["rss_after"], int) and isinstance(res["rss_empty"], int):
            res["bytes_per_key"] = round((res["rss_after"] - res["rss_empty"]) / a.fleet_keys)
        res["data_dir_bytes"] = disk_usage(srv.data_dir)
        if "error" in fill:
            res["error"] = f"fill: {fill['error']}"
        srv.kill9()
        log(f"fleet fill {kind}: killed -9 after the fill; restarting")
        srv.launch(srv.argv, banner="\n==== restart after kill -9\n")
        last_key = fill.get("last_key") or f"/v2/keys/bench/m/k{a.fleet_keys - 1}"
        ready_s = 120 + a.fleet_keys / 2000
        res["restart"] = wait_restart(srv, last_key, ready_s)
        res["rss_after_restart"] = rss_bytes(srv.pid) if srv.alive else None
        if not want_snapshot:
            return res, snap
        if "error" in res["restart"]:
            return res, {"error": f"not run: the restart failed: {res['restart']['error']}"}
        count = a.fleet_snapshot_count
        probe: Result = {}
        if not count:
            probe = run_loadgen(["--port", str(srv.port), "--load", "put", "--clients", str(a.fleet_clients),
                                 "--duration", "3", "--warmup", "0.5"], a.pin, 90)
            # the faster of the fill and the probe: a probe can fall on a snapshot the restart owed (etcd's
            # first after 100,000 entries stalls its applies for seconds with 1M keys) and understate the rate
            rates = [x for x in (probe.get("ops_s"), fill.get("ops_s")) if isinstance(x, int | float) and x == x]
            rate = max(rates, default=0)
            count = max(1000, int(round(rate * a.fleet_snapshot_every / 1000.0)) * 1000)
        srv.stop()
        srv.argv = [*srv.argv, "--snapshot-count", str(count)]
        srv.launch(srv.argv, banner=f"\n==== start with --snapshot-count {count}\n")
        ready = wait_restart(srv, last_key, ready_s)
        if "error" in ready:
            return res, {"error": f"not run: the start with --snapshot-count {count} failed: {ready['error']}"}
        snap = part_snapshot(srv, count, a)
        snap["probe_ops_s"] = probe.get("ops_s", probe.get("error"))
        return res, snap
    finally:
        srv.stop()
        shutil.rmtree(srv.data_dir, ignore_errors=True)


def log_snapshots(text: str) -> list[tuple[float, float | None]]:
    """(start, end) wall-clock seconds of each snapshot in a server log (end None if not saved)."""
    out: list[tuple[float, float | None]] = []
    for line in text.splitlines():
        m = LOG_TIME.match(line)
        if not m:
            continue
        if SNAP_START.search(line):
            t = datetime.strptime(f"{m[1]} {m[2]}", "%Y-%m-%d %H:%M:%S.%f").timestamp()
            out.append((t, None))
        elif SNAP_END.search(line) and out and out[-1][1] is None:
            t = datetime.strptime(f"{m[1]} {m[2]}", "%Y-%m-%d %H:%M:%S.%f").timestamp()
            out[-1] = (out[-1][0], t)
    return out


def split_windows(pairs: array[int], snaps: list[tuple[float, float]], window_s: float = 1.0) -> Result:
    """p99 of requests completing in windows that overlap a snapshot vs in the other windows."""
    if not pairs:
        return {"error": "no requests recorded"}
    ends, lats = pairs[0::2], pairs[1::2]
    t_first = min(ends)
    w_ns = int(window_s * 1e9)
    buckets: dict[int, list[int]] = {}
    for t, x in zip(ends, lats, strict=True):
        buckets.setdefault((t - t_first) // w_ns, []).append(x)
    during: list[int] = []
    without: list[int] = []
    n_during = n_without = 0
    worst: list[float] = []
    for b, xs in buckets.items():
        lo = (t_first + b * w_ns) / 1e9
        hi = lo + window_s
        if any(s < hi and e >= lo for s, e in snaps):
            during += xs
            n_during += 1
            worst.append(percentile(sorted(xs), 99))
        else:
            without += xs
            n_without += 1
    during.sort()
    without.sort()
    out: Result = {"windows_during": n_during, "windows_without": n_without,
                   "p99_during_ms": round(percentile(during, 99), 3),
                   "p99_without_ms": round(percentile(without, 99), 3),
                   "max_during_ms": round(during[-1] / 1e6, 3) if during else None,
                   "max_without_ms": round(without[-1] / 1e6, 3) if without else None,
                   "worst_window_p99_ms": round(max(worst), 3) if worst else None}
    out["during/without"] = ratio(out["p99_during_ms"], out["p99_without_ms"])
    return out


def part_snapshot(srv: Server, count: int, a: argparse.Namespace) -> Result:
    dump = srv.data_dir.parent / f"{srv.data_dir.name}.lat"
    offset = srv.log_path.stat().st_size if srv.log_path.exists() else 0
    args = ["--port", str(srv.port), "--load", "put", "--clients", str(a.fleet_clients), "--duration",
            str(a.fleet_snapshot_duration), "--warmup", "1", "--server-pid", str(srv.pid), "--dump", str(dump)]
    r = run_loadgen(args, a.pin, a.fleet_snapshot_duration + 120)
    res: Result = {"snapshot_count": count, "duration_s": a.fleet_snapshot_duration}
    if "error" in r:
        res["error"] = r["error"]
        return res
    res.update({k: r.get(k) for k in ("ops_s", "p50_ms", "p99_ms", "p999_ms", "max_ms", "errors", "io_errors")})
    time.sleep(0.5)  # a snapshot still being written is logged a moment later
    with open(srv.log_path, "rb") as f:
        f.seek(offset)
        text = f.read().decode(errors="replace")
    pairs = array("q")
    try:
        pairs.frombytes(dump.read_bytes())
    except OSError as e:
        res["error"] = f"no latency dump: {e}"
        return res
    finally:
        dump.unlink(missing_ok=True)
    ends = pairs[0::2]
    if not ends:
        res["error"] = "no requests recorded"
        return res
    t_lo, t_hi = min(ends) / 1e9, max(ends) / 1e9
    snaps = [(s, e if e is not None else t_hi) for s, e in log_snapshots(text)]
    snaps = [(s, e) for s, e in snaps if e >= t_lo and s <= t_hi]
    res["snapshots"] = len(snaps)
    res["snapshot_ms"] = [round((e - s) * 1000, 1) for s, e in snaps]
    res["snapshot_ms_median"] = round(statistics.median(res["snapshot_ms"]), 1) if snaps else None
    res.update(split_windows(pairs, snaps))
    if not snaps:
        res["note"] = f"no snapshot in the run (--snapshot-count {count})"
    elif not res.get("windows_without"):
        res["note"] = (f"every 1-s window overlapped a snapshot (--snapshot-count {count}, snapshots of "
                       f"{res['snapshot_ms_median']} ms): no p99 without")
    return res


# ---------------------------------------------------------------- the whole part


def run(a: argparse.Namespace) -> Result:
    """Every fleet part for pyetcd and etcd; returns the document stored under "fleet" in latest.json."""
    check_fleet_args(a)
    t_begin = time.monotonic()
    load0 = os.getloadavg()
    nofile = raise_nofile(-1)
    pin = bool(a.pin and pinning_possible())
    a = argparse.Namespace(**{**vars(a), "pin": pin})  # the caller's namespace stays as it was
    old_affinity = os.sched_getaffinity(0)
    if pin:
        os.sched_setaffinity(0, {int(LOADGEN_CORE)})  # this process polls during restarts: off the servers' core
    base = Path(tempfile.mkdtemp(prefix="pyetcd-fleet-bench-", dir="/var/tmp"))  # disk-backed: fsync costs
    doc: Result = {"watchers": {}, "proxies": {}, "fill": {}, "snapshot": {}, "errors": {}}
    try:
        for part in a.fleet_parts:
            if part == "snapshot":  # run inside the fill part, on the filled store
                if "fill" not in a.fleet_parts:
                    doc["errors"]["snapshot"] = "needs the fill part (it runs on the filled store)"
                continue
            for kind in a.fleet_servers:
                log(f"fleet {part:<9} {kind}")
                try:
                    if part == "watchers":
                        doc["watchers"][kind] = part_watchers(kind, base, a)
                    elif part == "proxies":
                        doc["proxies"][kind] = part_proxies(kind, base, a)
                    elif part == "fill":
                        fill, snap = part_fill(kind, base, a, "snapshot" in a.fleet_parts)
                        doc["fill"][kind] = fill
                        if snap is not None:
                            doc["snapshot"][kind] = snap
                        elif "snapshot" in a.fleet_parts:
                            doc["snapshot"][kind] = {"error": "not run: " + (
                                fill.get("error") or sub(fill, "restart", "error") or "the restart failed")}
                except Exception as e:  # noqa: BLE001 - a part that fails is reported, never raised
                    doc[part][kind] = {"error": f"{type(e).__name__}: {short(e)}"}
                    log(f"fleet {part} {kind}: {type(e).__name__}: {short(e)}")
    finally:
        if a.fleet_keep_logs:
            a.fleet_keep_logs.mkdir(parents=True, exist_ok=True)
            for f in base.rglob("*.log"):
                shutil.copy2(f, a.fleet_keep_logs / f"{f.parent.name}-{f.name}" if f.parent != base else
                             a.fleet_keep_logs / f.name)
        shutil.rmtree(base, ignore_errors=True)
        os.sched_setaffinity(0, old_affinity)
    doc.update({
        "requested": {"watchers": a.fleet_watchers, "proxy_watchers": a.fleet_proxy_watchers, "keys": a.fleet_keys,
                      "clients": a.fleet_clients, "rounds": a.fleet_watch_rounds,
                      "snapshot_duration_s": a.fleet_snapshot_duration},
        "parts": list(a.fleet_parts), "nofile": nofile, "pinned": pin,
        "pinning": f"servers on core {SERVER_CORE}, load on core {LOADGEN_CORE}" if pin else "not pinned",
        "elapsed_s": round(time.monotonic() - t_begin, 1),
        "loadavg_before": [round(x, 2) for x in load0], "loadavg_after": [round(x, 2) for x in os.getloadavg()],
    })
    doc["ratios"] = fleet_ratios(doc)
    doc["targets"] = fleet_targets(doc)
    return doc


# ---------------------------------------------------------------- ratios, targets, report


def _v(doc: Result, part: str, kind: str, *keys: str) -> Any:
    v = sub(doc, part, kind, *keys)
    return v if isinstance(v, int | float) and v == v else None


def fill_complete(doc: Result, kind: str) -> bool:
    """The fill stored every key it was asked to (its figures are comparable)."""
    d = sub(doc, "fill", kind) or {}
    return sub(d, "load", "completed") == d.get("keys") and "error" not in d


def fleet_ratios(doc: Result) -> Result:
    """pyetcd/etcd for each figure; the fill's and restart's only when both fills stored every key."""
    filled = fill_complete(doc, "pyetcd") and fill_complete(doc, "etcd")

    def r(part: str, *keys: str) -> float | None:
        if part == "fill" and not filled:
            return None
        return ratio(_v(doc, part, "pyetcd", *keys), _v(doc, part, "etcd", *keys))

    return {
        "watcher bytes": r("watchers", "bytes_per_watcher"),
        "watcher rss delta": r("watchers", "rss_delta"),
        "wake p50": r("watchers", "median_round", "p50_ms"),
        "wake p99": r("watchers", "median_round", "p99_ms"),
        "wake max": r("watchers", "median_round", "max_ms"),
        "proxy watcher bytes": r("proxies", "bytes_per_watcher"),
        "proxy wake p99": r("proxies", "median_round", "p99_ms"),
        "fill load time": r("fill", "load", "load_s"),
        "fill p99": r("fill", "load", "p99_ms"),
        "fill p99.9": r("fill", "load", "p999_ms"),
        "fill max": r("fill", "load", "max_ms"),
        "key memory": r("fill", "rss_after"),
        "key bytes": r("fill", "bytes_per_key"),
        "data dir": r("fill", "data_dir_bytes"),
        "restart": r("fill", "restart", "restart_s"),
        "snapshot p99 during/without": r("snapshot", "during/without"),
    }


def fleet_targets(doc: Result) -> list[Result]:
    rat = doc["ratios"]
    keys = doc.get("requested", {}).get("keys", 0)
    nw = doc.get("requested", {}).get("watchers", 0)

    def check(name: str, value: float | None, limit: float, note: str = "", fail: bool = False) -> Result:
        ok = None if value is None else value <= limit
        status = "FAIL" if fail else ("n/a" if ok is None else ("PASS" if ok else "FAIL"))
        t: Result = {"target": name, "value": value, "limit": limit, "status": status}
        if note:
            t["note"] = note
        return t

    def woke_all(kind: str) -> bool:
        return bool(sub(doc, "watchers", kind, "all_woken"))

    short_of = "" if woke_all("pyetcd") or "pyetcd" not in doc.get("watchers", {}) else (
        f"pyetcd woke {fmt(sub(doc, 'watchers', 'pyetcd', 'woken_min'))}/{nw} in its worst round")
    return [
        check(f"fleet {nw} watchers: bytes each <= 0.3x etcd's", rat["watcher bytes"], 0.3),
        check(f"fleet {nw} watchers: wake p99 <= 0.8x etcd's", rat["wake p99"], 0.8, short_of,
              fail=bool(short_of) and "watchers" in doc.get("parts", [])),
        check(f"fleet {keys} keys: memory <= 0.5x etcd's", rat["key memory"], 0.5),
        check(f"fleet {keys} keys: restart <= 0.5x etcd's", rat["restart"], 0.5),
        check(f"fleet {keys} keys: PUT p99.9 <= 1.5x etcd's", rat["fill p99.9"], 1.5),
        check("fleet snapshot: PUT p99 during/without <= 1.5", _v(doc, "snapshot", "pyetcd", "during/without"), 1.5),
    ]


def _mb(v: Any) -> Any:
    return v / 1e6 if isinstance(v, int | float) else v


def _of(n: Any, d: Any) -> str:
    return f"{fmt(n)}/{fmt(d)}" if n is not None else "-"


def report(doc: Result) -> str:
    req = doc.get("requested", {})
    lines = [f"fleet bench: pyetcd vs etcd 3.4, {doc.get('pinning')}; fd limit {doc.get('nofile')}; "
             f"loadavg before {' '.join(fmt(x, '.2f') for x in doc.get('loadavg_before', []))}",
             f"{'':<46} {'pyetcd':>14} {'etcd':>14} {'pyetcd/etcd':>12}"]
    errors: list[str] = []

    def section(title: str) -> None:
        lines.append("-" * 90)
        lines.append(title)

    def row(label: str, part: str, keys: tuple[str, ...], spec: str = ".0f", scale: Any = None,
            rkey: str | None = None, text: Any = None) -> None:
        cells = []
        for kind in KINDS:
            if text is not None:
                cells.append(text(sub(doc, part, kind) or {}))
                continue
            v = sub(doc, part, kind, *keys)
            cells.append(fmt(scale(v) if scale and v is not None else v, spec))
        rv = doc["ratios"].get(rkey) if rkey else None
        lines.append(f"  {label:<44} {cells[0]:>14} {cells[1]:>14} {fmt(rv, '.2f') + 'x' if rv else '':>12}")

    def errs(part: str, label: str) -> None:
        for kind in KINDS:
            d = sub(doc, part, kind) or {}
            for k in ("error", "server_died"):
                if d.get(k):
                    errors.append(f"{label} {kind}: {d[k]}")
            if d.get("wait_index_error"):
                errors.append(f"{label} {kind}: watches without waitIndex ({d['wait_index_error']})")
            for i, rr in enumerate(d.get("rounds") or []):
                if rr.get("writer_error"):
                    errors.append(f"{label} {kind} round {i + 1}: {rr['writer_error']}")
                if rr.get("non_2xx") or rr.get("not_answered") or rr.get("closed"):
                    sample = (rr.get("non_2xx_sample") or "").splitlines()[:1]
                    errors.append(f"{label} {kind} round {i + 1}: of {rr.get('armed')} armed, {rr.get('non_2xx')} "
                                  f"non-2xx {rr.get('non_2xx_status', '')} {sample[0] if sample else ''}, "
                                  f"{rr.get('not_answered')} not answered in time, {rr.get('closed')} closed")
            if d.get("connect_failed"):
                errors.append(f"{label} {kind}: {d['connect_failed']} connections failed ({d.get('connect_error')})")

    def wake_rows(part: str, n: int, rk: str) -> None:
        row("watchers in place before the PUT", part, (), text=lambda d: _of(d.get("in_place"), n))
        row("  refused/closed, answered early", part, (), text=lambda d: f"{fmt(d.get('connect_failed', 0) + d.get('closed_before_put', 0)) if d.get('rounds') is not None else '-'}, {fmt(d.get('answered_before_put'))}")
        row("woken by one PUT (worst round)", part, (), text=lambda d: _of(d.get("woken_min"), n))
        row("  PUT answer status, ms (median round)", part, (),
            text=lambda d: f"{fmt(sub(d, 'median_round', 'put_status'))}, {fmt(sub(d, 'median_round', 'put_ms'), '.1f')}")
        row("wake p50 ms (median round by p99)", part, ("median_round", "p50_ms"), ".1f", rkey=None)
        row("wake p99 ms", part, ("median_round", "p99_ms"), ".1f", rkey=f"{rk}wake p99")
        row("wake max ms", part, ("median_round", "max_ms"), ".1f", rkey="wake max" if not rk else None)
        row("  p99 ms per round", part, (), text=lambda d: "/".join(fmt(x) for x in d.get("p99_rounds_ms", [])) or "-")

    if "watchers" in doc.get("parts", []):
        n = req.get("watchers")
        section(f"{n} long-poll watchers on one member")
        row("server RSS before, MB", "watchers", ("server_rss_before",), ".1f", _mb)
        row("server RSS with the watchers, MB", "watchers", ("server_rss_after",), ".1f", _mb)
        row("memory per watcher, bytes", "watchers", ("bytes_per_watcher",), rkey="watcher bytes")
        wake_rows("watchers", n, "")
        errs("watchers", "watchers")
    if "proxies" in doc.get("parts", []):
        n = req.get("proxy_watchers")
        section(f"{n} watchers over two proxies (--proxy on) in front of a 3-member cluster of the same kind")
        row("proxies' RSS growth (both), MB", "proxies", ("proxies_rss_delta",), ".1f", _mb)
        row("members' RSS growth (all 3), MB", "proxies", ("members_rss_delta",), ".1f", _mb)
        row("memory per watcher (proxies+members), bytes", "proxies", ("bytes_per_watcher",),
            rkey="proxy watcher bytes")
        wake_rows("proxies", n, "proxy ")
        errs("proxies", "proxies")
    if "fill" in doc.get("parts", []):
        section(f"{req.get('keys')} keys of 100 bytes PUT once each at {req.get('clients')} clients")
        row("keys stored (2xx) / requested", "fill", (), text=lambda d: _of(sub(d, "load", "completed"), req.get("keys")))
        row("  non-2xx, reconnects", "fill", (),
            text=lambda d: f"{fmt(sub(d, 'load', 'errors'))}, {fmt(sub(d, 'load', 'io_errors'))}")
        row("load time, s", "fill", ("load", "load_s"), ".1f", rkey="fill load time")
        row("PUT ops/s during the load", "fill", ("load", "ops_s"))
        row("PUT p50 ms", "fill", ("load", "p50_ms"), ".2f")
        row("PUT p99 ms", "fill", ("load", "p99_ms"), ".1f", rkey="fill p99")
        row("PUT p99.9 ms", "fill", ("load", "p999_ms"), ".1f", rkey="fill p99.9")
        row("PUT max ms", "fill", ("load", "max_ms"), ".1f", rkey="fill max")
        row("server RSS empty, MB", "fill", ("rss_empty",), ".1f", _mb)
        row("server RSS after the load, MB", "fill", ("rss_after",), ".1f", _mb, rkey="key memory")
        row("memory per key, bytes", "fill", ("bytes_per_key",), rkey="key bytes")
        row("data dir (du), MB", "fill", ("data_dir_bytes",), ".1f", _mb, rkey="data dir")
        row("restart after kill -9: /health, s", "fill", ("restart", "health_s"), ".2f")
        row("restart: /health and last key read, s", "fill", ("restart", "restart_s"), ".2f", rkey="restart")
        row("server RSS after the restart, MB", "fill", ("rss_after_restart",), ".1f", _mb)
        errs("fill", "fill")
        for kind in KINDS:
            e = sub(doc, "fill", kind, "restart", "error")
            if e:
                errors.append(f"restart {kind}: {e}")
    if "snapshot" in doc.get("parts", []) and doc.get("snapshot"):
        section(f"PUT@{req.get('clients')} for {req.get('snapshot_duration_s')} s on the filled store, snapshots "
                f"taken meanwhile (1-s windows)")
        row("PUT@64 ops/s in a 3-s probe on the store", "snapshot", ("probe_ops_s",))
        row("--snapshot-count (rate x every)", "snapshot", ("snapshot_count",))
        row("snapshots in the run, median ms", "snapshot", (),
            text=lambda d: f"{fmt(d.get('snapshots'))}, {fmt(d.get('snapshot_ms_median'))}")
        row("windows with / without a snapshot", "snapshot", (),
            text=lambda d: f"{fmt(d.get('windows_during'))} / {fmt(d.get('windows_without'))}")
        row("PUT ops/s", "snapshot", ("ops_s",))
        row("PUT p99 ms in windows with a snapshot", "snapshot", ("p99_during_ms",), ".1f")
        row("PUT p99 ms in windows without", "snapshot", ("p99_without_ms",), ".1f")
        row("p99 during/without (target <= 1.5)", "snapshot", ("during/without",), ".2f")
        row("PUT max ms with / without a snapshot", "snapshot", (),
            text=lambda d: f"{fmt(d.get('max_during_ms'))} / {fmt(d.get('max_without_ms'))}")
        errs("snapshot", "snapshot")
        for kind in KINDS:
            note = sub(doc, "snapshot", kind, "note")
            if note:
                errors.append(f"snapshot {kind}: {note}")
    for k, e in doc.get("errors", {}).items():
        errors.append(f"{k}: {e}")
    if errors:
        lines.append("-" * 90)
        lines += [f"  ! {e}" for e in errors]
    lines.append(f"(fleet part took {doc.get('elapsed_s', 0):.0f} s; loadavg after "
                 f"{' '.join(fmt(x, '.2f') for x in doc.get('loadavg_after', []))})")
    return "\n".join(lines)


# ---------------------------------------------------------------- arguments and main


def add_fleet_args(ap: argparse.ArgumentParser) -> None:
    g = ap.add_argument_group("fleet")
    g.add_argument("--fleet-keys", type=int, default=1_000_000, help="keys of 100 B to load (default 1,000,000)")
    g.add_argument("--fleet-watchers", type=int, default=15_000, help="watchers on one member (default 15,000)")
    g.add_argument("--fleet-proxy-watchers", type=int, default=10_000,
                   help="watchers over two proxies (default 10,000)")
    g.add_argument("--fleet-watch-rounds", type=int, default=3, help="PUTs waking the watchers, re-armed between")
    g.add_argument("--fleet-clients", type=int, default=64, help="connections of the fill and snapshot loads")
    g.add_argument("--fleet-snapshot-duration", type=float, default=30.0, help="seconds of PUT@64 for snapshots")
    g.add_argument("--fleet-snapshot-every", type=float, default=5.0,
                   help="--snapshot-count = the server's PUT@64 rate on the filled store x this many seconds")
    g.add_argument("--fleet-snapshot-count", type=int, default=0, help="a fixed --snapshot-count for both servers")
    g.add_argument("--fleet-parts", default=",".join(PARTS), help=f"comma list of {', '.join(PARTS)}")
    g.add_argument("--fleet-servers", default=",".join(KINDS), help="comma list of pyetcd, etcd (default both)")
    g.add_argument("--fleet-keep-logs", type=Path, default=None, metavar="DIR",
                   help="copy the servers' logs here before their data dirs are removed")


def check_fleet_args(a: argparse.Namespace) -> None:
    if isinstance(a.fleet_parts, str):
        a.fleet_parts = [x for x in a.fleet_parts.split(",") if x]
    if isinstance(a.fleet_servers, str):
        a.fleet_servers = [x for x in KINDS if x in a.fleet_servers.split(",")]
    if not a.fleet_servers:
        raise argparse.ArgumentTypeError("--fleet-servers: want pyetcd, etcd or both")
    bad = set(a.fleet_parts) - set(PARTS)
    if bad:
        raise argparse.ArgumentTypeError(f"unknown fleet part(s) {sorted(bad)}: want {', '.join(PARTS)}")
    if a.fleet_keys < 1 or a.fleet_watchers < 1 or a.fleet_proxy_watchers < 1 or a.fleet_watch_rounds < 1:
        raise argparse.ArgumentTypeError("--fleet-keys, --fleet-*watchers and --fleet-watch-rounds must be >= 1")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="fleet scale: many watchers, a big store, snapshots under load; "
                                             "pyetcd beside etcd 3.4")
    ap.add_argument("--no-pin", dest="pin", action="store_false", help="do not use taskset")
    ap.add_argument("--json", type=Path, default=None, help="also write the document here")
    add_fleet_args(ap)
    w = ap.add_argument_group("watcher client (internal: run by this module in a subprocess)")
    w.add_argument("--watch-worker", action="store_true", help=argparse.SUPPRESS)
    w.add_argument("--ports", default="", help=argparse.SUPPRESS)
    w.add_argument("--watchers", type=int, default=0, help=argparse.SUPPRESS)
    w.add_argument("--rounds", type=int, default=1, help=argparse.SUPPRESS)
    w.add_argument("--rss-pids", default="", help=argparse.SUPPRESS)
    w.add_argument("--settle", type=float, default=3.0, help=argparse.SUPPRESS)
    w.add_argument("--wake-timeout", type=float, default=30.0, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.watch_worker:
        out = watch_fleet([int(p) for p in a.ports.split(",") if p], a.watchers, a.rounds,
                          [int(p) for p in a.rss_pids.split(",") if p], a.settle, a.wake_timeout)
        print(json.dumps(out))
        return 0
    try:
        check_fleet_args(a)
    except argparse.ArgumentTypeError as e:
        ap.error(str(e))
    os.chdir(REPO)
    doc = run(a)
    return finish(doc, report(doc), a.json)


if __name__ == "__main__":
    sys.exit(main())
