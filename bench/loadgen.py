"""Closed-loop HTTP/1.1 load generator: one process, `selectors`, raw non-blocking sockets.

Each of N keep-alive connections has exactly one request in flight; the next request is sent the
moment the previous response is complete.  Requests are pre-built bytes and responses are parsed
only as far as needed to find their end (status line, then Content-Length or the chunked terminator).
Latencies come from `time.perf_counter_ns`; only requests completing inside the measuring window
(after the warm-up) are counted.

Loads: `put` (PUT /v2/keys/bench/k{i%1000}, form body), `get` (GET of the same keys, which must exist:
see `prefill`; `--query quorum=true` makes them linearizable reads), and `watch` (W connections
long-polling /v2/keys/bench/w?wait=true, woken by one PUT), and `fill` (`--keys N` distinct keys
/v2/keys/bench/m/k{i}, each PUT once at `--clients` connections: load time and the latency tail).
`--port P1,P2,P3` spreads the closed-loop connections round-robin over several servers (the members of a
cluster). `--dump PATH` (put/get) writes every measured request as a pair of int64 (wall-clock completion
time in ns, latency in ns) to PATH, so a caller can split the run in windows (e.g. around snapshots).

The other bench parts run it in a subprocess through `run_loadgen` (pinned with `taskset`, JSON back).

    python -m bench.loadgen --port 2379 --load put --clients 64 --duration 5 [--procs 2] [--json]
"""

from __future__ import annotations

import argparse
import gc
import json
import multiprocessing
import os
import selectors
import shutil
import socket
import statistics
import subprocess
import sys
import time
from array import array
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from itertools import cycle
from pathlib import Path
from typing import Any

HOST = "127.0.0.1"
NKEYS = 1000
VALUE = ("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ" * 2)[:100]
WATCH_KEY = "/v2/keys/bench/w"
RECV_SIZE = 65536
HDR_END = b"\r\n\r\n"
REPO = Path(__file__).resolve().parents[1]
LOADGEN_CORE = "1"
FILL_PREFIX = "/v2/keys/bench/m/k"


# ---------------------------------------------------------------- request bytes


def put_request(host: str, port: int, path: str, value: str = VALUE, header: str = "") -> bytes:
    body = f"value={value}".encode()
    extra = f"{header}\r\n" if header else ""
    head = (f"PUT {path} HTTP/1.1\r\nHost: {host}:{port}\r\n{extra}"
            f"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {len(body)}\r\n\r\n")
    return head.encode() + body


def get_request(host: str, port: int, path: str, header: str = "") -> bytes:
    extra = f"{header}\r\n" if header else ""
    return f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n{extra}\r\n".encode()


def build_requests(load: str, host: str, port: int, query: str = "", header: str = "") -> list[bytes]:
    """The cycle of request bytes for a closed-loop load (`put` or `get`); `query` is appended to GETs;
    `header` (e.g. "Authorization: Basic ...") is added to every request."""
    paths = [f"/v2/keys/bench/k{i}" for i in range(NKEYS)]
    if load == "put":
        return [put_request(host, port, p, header=header) for p in paths]
    if load == "get":
        return [get_request(host, port, p + ("?" + query if query else ""), header) for p in paths]
    raise ValueError(f"unknown closed-loop load {load!r}")


# ---------------------------------------------------------------- response framing


def _chunked_end(buf: bytes, pos: int) -> int:
    """Index just past a complete chunked body starting at `pos`, or -1 if more bytes are needed."""
    n = len(buf)
    while True:
        eol = buf.find(b"\r\n", pos)
        if eol < 0:
            return -1
        size = int(buf[pos:eol].split(b";", 1)[0], 16)
        if size == 0:
            if buf[eol + 2:eol + 4] == b"\r\n":
                return eol + 4
            end = buf.find(HDR_END, eol)  # trailers
            return -1 if end < 0 else end + 4
        pos = eol + 2 + size + 2
        if pos > n:
            return -1


def response_end(buf: bytes) -> tuple[int, int]:
    """(end index of the first complete response in `buf` or -1, header end index or -1)."""
    hend = buf.find(HDR_END)
    if hend < 0:
        return -1, -1
    head = buf[:hend].lower()
    j = head.find(b"\ncontent-length:")
    if j >= 0:
        eol = head.find(b"\r", j + 16)
        end = hend + 4 + int(head[j + 16:eol if eol >= 0 else len(head)])
        return (end if len(buf) >= end else -1), hend
    if b"\ntransfer-encoding: chunked" in head:
        return _chunked_end(buf, hend + 4), hend
    return hend + 4, hend  # no body framing: 1xx/204/304 (we never read-until-close)


def status_of(buf: bytes) -> int:
    return int(buf[9:12])


# ---------------------------------------------------------------- connections


class Conn:
    """One keep-alive connection with at most one request in flight."""

    __slots__ = ("sock", "buf", "t_send", "hdr_ns", "done_ns", "status", "idx", "port")

    def __init__(self, sock: socket.socket, idx: int = 0, port: int = 0) -> None:
        self.sock = sock
        self.port = port
        self.buf = b""
        self.t_send = 0
        self.hdr_ns = 0
        self.done_ns = 0
        self.status = 0
        self.idx = idx


def connect(host: str, port: int, timeout: float = 5.0) -> socket.socket:
    sock = socket.create_connection((host, port), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setblocking(False)
    return sock


def send_all(sock: socket.socket, data: bytes) -> None:
    """Send a small request; loops only if the kernel buffer is momentarily full (never in practice)."""
    view = memoryview(data)
    while view:
        try:
            view = view[sock.send(view):]
        except BlockingIOError:
            time.sleep(0)


def cpu_ticks(pid: int | None) -> int | None:
    """utime+stime of a process in clock ticks (from /proc), or None."""
    if not pid:
        return None
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        return int(fields[11]) + int(fields[12])
    except (OSError, IndexError, ValueError):
        return None


# ---------------------------------------------------------------- closed loop


@dataclass
class WorkerResult:
    count: int = 0
    errors: int = 0  # non-2xx responses in the window
    io_errors: int = 0  # connections dropped by the server (reconnected)
    lat_ns: bytes = b""  # array('q') of latencies completed in the window
    cpu_s: float = 0.0  # this process's CPU time during the window
    server_cpu: float | None = None  # server CPU seconds / window seconds (worker 0 only)
    pids_cpu: list[float | None] = field(default_factory=list)  # the same for each of `cpu_pids` (worker 0)
    done_ns: bytes = b""  # array('q') of the perf-counter completion times of `lat_ns` (with `stamps` only)


def closed_loop(port: int | Sequence[int], requests: Sequence[bytes], clients: int, t_start: int, t_end: int,
                host: str = HOST, server_pid: int | None = None, cpu_pids: Sequence[int] = (),
                stamps: bool = False) -> WorkerResult:
    """Drive `clients` connections until perf-counter ns `t_end`; record completions after `t_start`.

    With several ports, connection i goes to ports[i % len(ports)]; with `stamps`, each recorded latency's
    completion time is kept too (`done_ns`).
    perf_counter_ns is CLOCK_MONOTONIC on Linux, so windows line up across forked workers.
    """
    ports = [port] if isinstance(port, int) else list(port)
    sel = selectors.DefaultSelector()
    reqs = cycle(requests)
    conns = [Conn(connect(host, ports[i % len(ports)]), i, ports[i % len(ports)]) for i in range(clients)]
    res, lat, ends = WorkerResult(), array("q"), array("q")
    record, clock = lat.append, time.perf_counter_ns
    stamp = ends.append if stamps else None
    for c in conns:
        sel.register(c.sock, selectors.EVENT_READ, c)
    for c in conns:
        c.t_send = clock()
        send_all(c.sock, next(reqs))
    gc.disable()
    cpu0, ticks0, in_window = 0.0, None, False
    pticks0: list[int | None] = []
    try:
        while True:
            now = clock()
            if now >= t_end:
                break
            if not in_window and now >= t_start:
                in_window, cpu0, ticks0 = True, time.process_time(), cpu_ticks(server_pid)
                pticks0 = [cpu_ticks(p) for p in cpu_pids]
            for key, _ in sel.select(0.5):
                c = key.data
                try:
                    data = c.sock.recv(RECV_SIZE)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    data = b""
                if not data:
                    res.io_errors += 1
                    _reconnect(sel, c, host, c.port)
                    c.t_send = clock()
                    send_all(c.sock, next(reqs))
                    continue
                buf = c.buf + data if c.buf else data
                end, _ = response_end(buf)
                if end < 0:
                    c.buf = buf
                    continue
                c.buf = buf[end:]
                done = clock()
                if t_start <= done < t_end:
                    record(done - c.t_send)
                    if stamp is not None:
                        stamp(done)
                    if buf[9] != 50:  # not b"2xx"
                        res.errors += 1
                c.t_send = done
                send_all(c.sock, next(reqs))
    finally:
        gc.enable()
    window_s = (t_end - t_start) / 1e9
    if in_window:
        res.cpu_s = time.process_time() - cpu0
        res.server_cpu = _cpu_share(ticks0, cpu_ticks(server_pid), window_s)
        res.pids_cpu = [_cpu_share(t0, cpu_ticks(p), window_s) for t0, p in zip(pticks0, cpu_pids, strict=True)]
    for c in conns:
        sel.unregister(c.sock)
        c.sock.close()
    sel.close()
    res.count, res.lat_ns, res.done_ns = len(lat), lat.tobytes(), ends.tobytes()
    return res


def _reconnect(sel: selectors.BaseSelector, c: Conn, host: str, port: int) -> None:
    sel.unregister(c.sock)
    c.sock.close()
    c.sock, c.buf = connect(host, port), b""
    sel.register(c.sock, selectors.EVENT_READ, c)


def _worker(args: tuple[int | list[int], list[bytes], int, int, int, str, int | None, list[int], bool]) -> WorkerResult:
    return closed_loop(*args)


def percentile(sorted_ns: Sequence[int], q: float) -> float:
    """Nearest-rank percentile of sorted ns values, in ms."""
    if not sorted_ns:
        return float("nan")
    k = min(len(sorted_ns) - 1, max(0, int(round(q / 100 * len(sorted_ns) + 0.5)) - 1))
    return sorted_ns[k] / 1e6


@dataclass
class LoadResult:
    load: str
    clients: int
    duration_s: float
    ops_s: float
    p50_ms: float
    p99_ms: float
    p999_ms: float
    max_ms: float
    count: int
    errors: int
    io_errors: int
    procs: int
    loadgen_cpu: float  # loadgen CPU seconds / window seconds (summed over its processes)
    server_cpu: float | None  # server CPU seconds / window seconds, if --server-pid given
    extra: dict[str, object] = field(default_factory=dict)


def run_closed(load: str, port: int | list[int], clients: int, duration: float, warmup: float = 1.0,
               procs: int = 1, server_pid: int | None = None, host: str = HOST, query: str = "",
               cpu_pids: list[int] | None = None, header: str = "", dump: str = "") -> LoadResult:
    """Run a closed-loop load split over `procs` loadgen processes and aggregate the results.

    `port` may list several servers (connections spread round-robin); `cpu_pids` are processes whose
    CPU share over the window is reported in `extra["pids_cpu"]`; `dump` names a file that gets every
    measured request as int64 pairs (wall-clock completion ns, latency ns).
    """
    requests = build_requests(load, host, port if isinstance(port, int) else port[0], query, header)
    procs = max(1, min(procs, clients))
    t_start = time.perf_counter_ns() + int((0.3 + warmup) * 1e9)  # +0.3 s for connecting
    t_end = t_start + int(duration * 1e9)
    shares = [clients // procs + (1 if i < clients % procs else 0) for i in range(procs)]
    jobs = [(port, requests[i::procs], n, t_start, t_end, host, server_pid if i == 0 else None,
             (cpu_pids or []) if i == 0 else [], bool(dump)) for i, n in enumerate(shares)]
    wall_offset = time.time_ns() - time.perf_counter_ns()  # perf_counter is CLOCK_MONOTONIC: one offset
    if procs == 1:
        results = [_worker(jobs[0])]
    else:
        with multiprocessing.get_context("fork").Pool(procs) as pool:
            results = pool.map(_worker, jobs)
    out = _aggregate(load, clients, duration, procs, results, results[0].server_cpu)
    if cpu_pids:
        out.extra["pids_cpu"] = results[0].pids_cpu
    if dump:
        pairs = array("q")
        for r in results:
            ends, lat = array("q"), array("q")
            ends.frombytes(r.done_ns)
            lat.frombytes(r.lat_ns)
            for t, x in zip(ends, lat, strict=True):
                pairs.append(t + wall_offset)
                pairs.append(x)
        with open(dump, "wb") as f:
            f.write(pairs.tobytes())
        out.extra["dump"] = dump
    return out


def _cpu_share(t0: int | None, t1: int | None, seconds: float) -> float | None:
    if t0 is None or t1 is None or seconds <= 0:
        return None
    return round((t1 - t0) / os.sysconf("SC_CLK_TCK") / seconds, 3)


def _aggregate(load: str, clients: int, duration: float, procs: int, results: list[WorkerResult],
               server_cpu: float | None) -> LoadResult:
    lat = array("q")
    for r in results:
        lat.frombytes(r.lat_ns)
    s = sorted(lat)
    count = len(s)
    return LoadResult(
        load=load, clients=clients, duration_s=duration, ops_s=round(count / duration, 1),
        p50_ms=round(percentile(s, 50), 3), p99_ms=round(percentile(s, 99), 3),
        p999_ms=round(percentile(s, 99.9), 3), max_ms=round(s[-1] / 1e6 if s else float("nan"), 3),
        count=count, errors=sum(r.errors for r in results), io_errors=sum(r.io_errors for r in results),
        procs=procs, loadgen_cpu=round(sum(r.cpu_s for r in results) / duration, 3), server_cpu=server_cpu)


# ---------------------------------------------------------------- prefill


def prefill(port: int, clients: int = 16, host: str = HOST, timeout: float = 60.0) -> int:
    """PUT every bench key once (so `get` finds them); returns the number of non-2xx answers."""
    pending = build_requests("put", host, port)
    sel = selectors.DefaultSelector()
    errors, inflight = 0, 0
    conns = [Conn(connect(host, port)) for _ in range(min(clients, len(pending)))]
    for c in conns:
        sel.register(c.sock, selectors.EVENT_READ, c)
        send_all(c.sock, pending.pop())
        inflight += 1
    deadline = time.monotonic() + timeout
    while inflight and time.monotonic() < deadline:
        for key, _ in sel.select(0.5):
            c = key.data
            data = c.sock.recv(RECV_SIZE)
            if not data:
                raise ConnectionError("server closed the connection during prefill")
            c.buf += data
            end, _ = response_end(c.buf)
            if end < 0:
                continue
            errors += c.buf[9] != 50
            c.buf = c.buf[end:]
            inflight -= 1
            if pending:
                send_all(c.sock, pending.pop())
                inflight += 1
    for c in conns:
        c.sock.close()
    sel.close()
    if inflight:
        raise TimeoutError(f"prefill: {inflight} requests unanswered after {timeout}s")
    return errors


# ---------------------------------------------------------------- fill


def run_fill(port: int, keys: int, clients: int = 64, host: str = HOST, prefix: str = FILL_PREFIX,
             server_pid: int | None = None, timeout: float = 3600.0) -> dict[str, Any]:
    """PUT `keys` distinct keys `prefix`{i} (i = 0 .. keys-1, in order), each once, over `clients` keep-alive
    connections, each with one request in flight; every latency is recorded.

    A connection the server closes is reopened and its key sent again (counted in `io_errors`). A server
    that stops answering (or is gone) ends the fill early: `completed` < `keys` and `error` say so.
    """
    clock = time.perf_counter_ns
    lat = array("q")
    record = lat.append
    errors = io_errors = 0
    next_key = 0
    error = ""
    sel = selectors.DefaultSelector()
    conns: list[Conn] = []

    def send(c: Conn) -> None:
        nonlocal next_key
        c.idx, next_key = next_key, next_key + 1
        c.buf, c.t_send = b"", clock()
        send_all(c.sock, put_request(host, port, f"{prefix}{c.idx}"))

    t0 = clock()
    deadline = t0 + int(timeout * 1e9)
    cpu0, ticks0 = time.process_time(), cpu_ticks(server_pid)
    inflight = 0
    gc.disable()
    try:
        for i in range(min(clients, keys)):
            c = Conn(connect(host, port), i)
            conns.append(c)
            sel.register(c.sock, selectors.EVENT_READ, c)
            send(c)
            inflight += 1
        while inflight:
            if clock() >= deadline:
                error = f"{inflight} requests unanswered after {timeout:g} s"
                break
            for key, _ in sel.select(0.5):
                c = key.data
                try:
                    data = c.sock.recv(RECV_SIZE)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    data = b""
                if not data:
                    io_errors += 1
                    _reconnect(sel, c, host, port)
                    c.t_send = clock()
                    send_all(c.sock, put_request(host, port, f"{prefix}{c.idx}"))
                    continue
                buf = c.buf + data if c.buf else data
                end, _ = response_end(buf)
                if end < 0:
                    c.buf = buf
                    continue
                done = clock()
                record(done - c.t_send)
                errors += buf[9] != 50
                if next_key < keys:
                    send(c)
                else:
                    c.buf = b""
                    inflight -= 1
    except OSError as e:  # refused or reset while (re)connecting: the server is gone
        error = f"after {len(lat)} answers: {type(e).__name__}: {e}"
    finally:
        gc.enable()
        for c in conns:
            c.sock.close()
        sel.close()
    elapsed = (clock() - t0) / 1e9
    s = sorted(lat)
    out: dict[str, Any] = {
        "load": "fill", "keys": keys, "clients": clients, "prefix": prefix, "completed": len(s) - errors,
        "answered": len(s), "errors": errors, "io_errors": io_errors, "load_s": round(elapsed, 3),
        "ops_s": round(len(s) / elapsed, 1) if elapsed > 0 else float("nan"),
        "p50_ms": round(percentile(s, 50), 3), "p99_ms": round(percentile(s, 99), 3),
        "p999_ms": round(percentile(s, 99.9), 3), "max_ms": round(s[-1] / 1e6, 3) if s else float("nan"),
        "loadgen_cpu": round((time.process_time() - cpu0) / elapsed, 3) if elapsed > 0 else None,
        "server_cpu": _cpu_share(ticks0, cpu_ticks(server_pid), elapsed),
        "last_key": f"{prefix}{keys - 1}",
    }
    if error:
        out["error"] = error
    return out


# ---------------------------------------------------------------- watch


def run_watch(port: int, watchers: int = 1000, rounds: int = 3, settle: float = 3.0, timeout: float = 10.0,
              host: str = HOST) -> dict[str, float | int | str | list[float]]:
    """`watchers` long polls on /bench/w woken by one PUT, `rounds` times on the same connections.

    A watcher counts as armed once the server has sent its response headers (etcd flushes them at
    once); if a server does not, we wait `settle` seconds before the PUT instead.  Reported: time from
    the PUT's send until the last watcher's response is complete, and how many completed.
    """
    watch_req = get_request(host, port, WATCH_KEY + "?wait=true")
    conns = _open_many(host, port, watchers)
    writer = connect(host, port)
    sel = selectors.DefaultSelector()
    for c in conns:
        sel.register(c.sock, selectors.EVENT_READ, c)
    all_ms: list[float] = []
    woken: list[int] = []
    armed: list[int] = []
    p50s: list[float] = []
    bad: list[int] = []
    try:
        setup_errors = _blocking_put(writer, put_request(host, port, WATCH_KEY, "start"))
        for r in range(rounds):
            n_armed = _arm(sel, conns, watch_req, settle, host, port)
            put = put_request(host, port, WATCH_KEY, f"round{r}")
            t_put = time.perf_counter_ns()
            send_all(writer, put)
            n_done = _collect(sel, conns, t_put, timeout, host, port)
            bad.append(sum(1 for c in conns if c.status and not 200 <= c.status < 300))
            _drain_put(writer, timeout)
            done = sorted(c.done_ns - t_put for c in conns if c.done_ns)
            all_ms.append(round(done[-1] / 1e6, 3) if n_done == watchers else float("nan"))
            p50s.append(round(percentile(done, 50), 3))
            woken.append(n_done)
            armed.append(n_armed)
    finally:
        for c in conns:
            c.sock.close()
        writer.close()
        sel.close()
    ok = [x for x in all_ms if x == x]
    return {"load": "watch", "clients": watchers, "rounds": rounds, "all_woken_ms": all_ms,
            "all_woken_ms_median": statistics.median(ok) if ok else float("nan"),
            "per_watcher_p50_ms": p50s, "woken": woken, "armed_before_put": armed,
            "min_woken": min(woken) if woken else 0, "non_2xx": bad, "setup_errors": setup_errors}


def _open_many(host: str, port: int, n: int) -> list[Conn]:
    conns = []
    for i in range(n):
        conns.append(Conn(connect(host, port), i))
    return conns


def _blocking_put(sock: socket.socket, req: bytes, timeout: float = 10.0) -> int:
    send_all(sock, req)
    return _drain_put(sock, timeout)


def _drain_put(sock: socket.socket, timeout: float) -> int:
    """Read one response from a non-blocking socket; returns 1 if it was not 2xx."""
    buf, deadline = b"", time.monotonic() + timeout
    sel = selectors.DefaultSelector()
    sel.register(sock, selectors.EVENT_READ)
    try:
        while time.monotonic() < deadline:
            if sel.select(0.5):
                data = sock.recv(RECV_SIZE)
                if not data:
                    raise ConnectionError("server closed the writer connection")
                buf += data
                end, _ = response_end(buf)
                if end >= 0:
                    return int(buf[9] != 50)
    finally:
        sel.close()
    raise TimeoutError("no answer to the watch PUT")


def _arm(sel: selectors.BaseSelector, conns: list[Conn], req: bytes, settle: float, host: str, port: int) -> int:
    """(Re)send the watch on every connection; wait until all have headers or `settle` elapses."""
    for c in conns:
        c.buf, c.hdr_ns, c.done_ns, c.status = b"", 0, 0, 0
        c.t_send = time.perf_counter_ns()
        try:
            send_all(c.sock, req)
        except OSError:
            _reconnect(sel, c, host, port)
            send_all(c.sock, req)
    deadline = time.monotonic() + settle
    armed = 0
    while armed < len(conns) and time.monotonic() < deadline:
        for key, _ in sel.select(0.1):
            armed += _on_watch_data(sel, key.data, host, port, req)
    return armed


def _collect(sel: selectors.BaseSelector, conns: list[Conn], t_put: int, timeout: float, host: str,
             port: int) -> int:
    deadline = t_put + int(timeout * 1e9)
    done = sum(1 for c in conns if c.done_ns)
    while done < len(conns) and time.perf_counter_ns() < deadline:
        for key, _ in sel.select(0.1):
            c = key.data
            was = c.done_ns
            _on_watch_data(sel, c, host, port, None)
            done += int(not was and bool(c.done_ns))
    return done


def _on_watch_data(sel: selectors.BaseSelector, c: Conn, host: str, port: int, rearm: bytes | None) -> int:
    """Consume bytes on a watcher; returns 1 when its headers arrive for the first time.

    A connection the server closed is replaced at once; while arming (`rearm` given) the watch is re-sent.
    """
    try:
        data = c.sock.recv(RECV_SIZE)
    except (BlockingIOError, InterruptedError):
        return 0
    except OSError:
        data = b""
    now = time.perf_counter_ns()
    if not data:
        _reconnect(sel, c, host, port)
        if rearm is not None:
            send_all(c.sock, rearm)
        return 0
    c.buf += data
    end, hend = response_end(c.buf)
    first = 0
    if hend >= 0 and not c.hdr_ns:
        c.hdr_ns, c.status, first = now, status_of(c.buf), 1
    if end >= 0 and not c.done_ns:
        c.done_ns = now
    return first


# ---------------------------------------------------------------- CLI


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--host", default=HOST)
    ap.add_argument("--port", required=True, help="port, or comma list of ports to spread connections over")
    ap.add_argument("--load", choices=["put", "get", "watch", "fill"], default="put")
    ap.add_argument("--keys", type=int, default=100_000, help="fill: distinct keys to PUT once each")
    ap.add_argument("--prefix", default=FILL_PREFIX, help="fill: key path prefix (the key index is appended)")
    ap.add_argument("--timeout", type=float, default=3600.0, help="fill: give up after this many seconds")
    ap.add_argument("--dump", default="", help="put/get: write (wall-clock end ns, latency ns) int64 pairs here")
    ap.add_argument("--clients", type=int, default=64, help="connections (watchers for --load watch)")
    ap.add_argument("--duration", type=float, default=5.0)
    ap.add_argument("--warmup", type=float, default=1.0)
    ap.add_argument("--procs", type=int, default=1, help="loadgen processes sharing the connections")
    ap.add_argument("--rounds", type=int, default=3, help="watch rounds")
    ap.add_argument("--prefill", action="store_true", help="PUT all bench keys first (for --load get)")
    ap.add_argument("--server-pid", type=int, default=None, help="sample this PID's CPU over the window")
    ap.add_argument("--cpu-pids", default="", help="comma list of PIDs whose CPU share is reported in extra")
    ap.add_argument("--query", default="", help="query string for GETs, e.g. quorum=true")
    ap.add_argument("--header", default="", help="one more header line on every request, e.g. Authorization")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    raise_nofile(a.clients + 64)
    ports = [int(p) for p in a.port.split(",") if p]
    if a.prefill:
        prefill(ports[0], host=a.host)
    out: dict[str, object]
    if a.load == "watch":
        out = dict(run_watch(ports[0], a.clients, a.rounds, host=a.host))
    elif a.load == "fill":
        out = run_fill(ports[0], a.keys, a.clients, a.host, a.prefix, a.server_pid, a.timeout)
    else:
        cpu_pids = [int(p) for p in a.cpu_pids.split(",") if p]
        out = asdict(run_closed(a.load, ports[0] if len(ports) == 1 else ports, a.clients, a.duration, a.warmup,
                                a.procs, a.server_pid, a.host, a.query, cpu_pids, a.header, a.dump))
    print(json.dumps(out) if a.json else _human(out))
    return 0


def raise_nofile(need: int) -> int:
    """Raise this process's RLIMIT_NOFILE soft limit to `need` (at most the hard limit; -1: the hard limit);
    children started afterwards inherit it. Returns the soft limit now in force."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if need < 0 else need
    if soft < want:
        soft = want if hard == resource.RLIM_INFINITY else min(want, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    return soft


# ---------------------------------------------------------------- the one subprocess runner


def taskset(core: str, argv: list[str]) -> list[str]:
    """Prefix argv with `taskset -c core` when taskset exists and the machine has at least 2 cores."""
    exe = shutil.which("taskset")
    if exe is None or (os.cpu_count() or 1) < 2:
        return argv
    return [exe, "-c", core, *argv]


def run_loadgen(args: Sequence[str], pin: bool, timeout: float, core: str = LOADGEN_CORE) -> dict[str, Any]:
    """Run `python -m bench.loadgen ARGS --json` in a subprocess (on `core` when `pin`), from the repo root.

    Returns its JSON result, or {"error": "..."} if it timed out, failed (the last line of its stderr) or
    printed no JSON: every bench part runs its loads through this one function.
    """
    argv = [sys.executable, "-m", "bench.loadgen", *args, "--json"]
    if pin:
        argv = taskset(core, argv)
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, cwd=REPO)
    except subprocess.TimeoutExpired:
        return {"error": f"loadgen timed out after {timeout:g}s"}
    if p.returncode != 0:
        return {"error": (p.stderr.strip().splitlines() or ["loadgen failed"])[-1][:300]}
    try:
        out = json.loads(p.stdout)
    except ValueError:
        return {"error": f"loadgen printed no JSON: {p.stdout.strip()[:200]!r}"}
    return out if isinstance(out, dict) else {"error": f"loadgen printed {type(out).__name__}, not an object"}


def _human(out: dict[str, object]) -> str:
    return "\n".join(f"{k:>22}: {v}" for k, v in out.items())


if __name__ == "__main__":
    sys.exit(main())
