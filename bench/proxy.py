"""Proxy benchmark: etcd 3.4's v2 proxy vs pyetcd's, in front of the same 3-member pyetcd cluster, in one run.

One pyetcd cluster (bench/cluster.py's, etcd's default 100/1000 timing); in front of it `etcd --proxy on` and
`pyetcd --proxy on` with the same flags. Both proxies send every request to the first endpoint of a list
they shuffle at each refresh, so each is (re)started until that endpoint is the same follower, and the
refresh interval is an hour: both forward to that one member for the whole run. "direct" is the same
loads sent straight to that member: what the proxy costs is the difference.

Loads (bench.loadgen in a subprocess, like the other parts), each run against etcd-proxy, pyetcd-proxy and
direct in turn, --proxy-repeat times (the order rotating between repeats), the median run kept:

    put@64  get@64     closed-loop throughput at 64 clients
    put@1   get@1      one client: p50 latency
    watch@1000         1,000 long polls through the proxy, woken by one PUT through it: all-woken time

Members and proxies run on core 0, the load generator on core 1 (when pinning is possible). Ratios are
pyetcd-proxy/etcd-proxy (throughput; for @1 loads p50 latency; for watches the all-woken time) and each
proxy against direct.

    .venv/bin/python -m bench.proxy [--duration 5] [--proxy-repeat 3] [--proxy-loads put@64,...] [--no-pin]
    .venv/bin/python -m bench.run --only-proxy          # the same, as a part of bench/run.py
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.cluster import (
    LOADGEN_CORE,
    MEMBER_CORE,
    THROUGHPUT_TIMING,
    Cluster,
    _ratio,
    finish,
    fmt,
    http_call,
    log,
    pinning_possible,
    taskset,
)
from bench.loadgen import prefill, raise_nofile, run_loadgen
from tests.support.kit import LoggedProcess
from tests.support.servers import PYETCD_BIN, REPO, etcd_available, free_port

PROXY_KINDS = ("etcd-proxy", "pyetcd-proxy")
TARGETS = (*PROXY_KINDS, "direct")
PROXY_LOADS = ("put@64", "get@64", "put@1", "get@1", "watch@1000")
REFRESH_MS = 3_600_000  # an hour: the endpoint order is not reshuffled during the run
START_TRIES = 30  # restarts to get a proxy whose first endpoint is the chosen follower (1 in 3 per start)

Result = dict[str, Any]


# ---------------------------------------------------------------- proxies


@dataclass
class ProxyProc(LoggedProcess):
    """`etcd --proxy on` or `pyetcd --proxy on` in front of a cluster, on a free port."""

    kind: str  # "etcd-proxy" or "pyetcd-proxy"
    base: Path
    initial_cluster: str
    pin: bool
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def log_path(self) -> Path:
        return self.base / f"{self.kind}.log"

    def argv(self) -> list[str]:
        exe = str(PYETCD_BIN) if self.kind == "pyetcd-proxy" else (shutil.which("etcd") or "etcd")
        argv = [exe, "--proxy", "on", "--name", self.kind, "--data-dir", str(self.base / f"{self.kind}.{self.starts}"),
                "--listen-client-urls", f"http://127.0.0.1:{self.port}", "--initial-cluster", self.initial_cluster,
                "--proxy-refresh-interval", str(REFRESH_MS)]
        return taskset(MEMBER_CORE, argv) if self.pin else argv

    def first_endpoint(self) -> str | None:
        """The member it forwards to: the first of the endpoints its config lists."""
        try:
            status, _, body = http_call(self.port, "GET", "/v2/config/local/proxy", timeout=1.0)
            eps = json.loads(body).get("endpoints") or [] if status == 200 else []
        except (OSError, ValueError):
            return None
        return eps[0] if eps else None

    def start_towards(self, member_url: str) -> None:
        """Start it, again and again with a fresh data dir, until its first endpoint is `member_url`."""
        for _ in range(START_TRIES):
            self.starts += 1
            self.launch(self.argv(), banner=f"==== start #{self.starts}\n")
            self.wait_ready(lambda: self.first_endpoint() is not None, self.kind, 20.0)
            if self.first_endpoint() == member_url:
                return
            self.stop()
        raise RuntimeError(f"{self.kind}: first endpoint never {member_url} in {START_TRIES} starts")


# ---------------------------------------------------------------- loads


def parse_proxy_load(name: str) -> tuple[str, int]:
    kind, _, n = name.partition("@")
    if kind not in ("put", "get", "watch") or not n.isdigit():
        raise argparse.ArgumentTypeError(f"bad proxy load {name!r}: want put@N, get@N or watch@N")
    return kind, int(n)


def run_proxy_load(name: str, port: int, server_pid: int, member_pids: list[int], a: argparse.Namespace) -> Result:
    """One load against one target (a proxy's port or the member's) in a loadgen subprocess."""
    kind, n = parse_proxy_load(name)
    args = ["--port", str(port), "--load", kind, "--clients", str(n), "--duration", str(a.duration),
            "--warmup", str(a.warmup), "--procs", str(a.procs), "--rounds", str(a.watch_rounds),
            "--server-pid", str(server_pid), "--cpu-pids", ",".join(map(str, member_pids))]
    timeout = a.duration + a.warmup + 60 + (15 * a.watch_rounds if kind == "watch" else 0)
    r = run_loadgen(args, a.pin, timeout, LOADGEN_CORE)
    if "error" in r:
        return r
    cpus = r.get("extra", {}).get("pids_cpu") or []
    r["members_cpu"] = cpus
    return r


def key_metric(load: str) -> str:
    if load.startswith("watch"):
        return "all_woken_ms_median"
    return "p50_ms" if load.endswith("@1") else "ops_s"


def median_of(load: str, runs: list[Result]) -> Result:
    """The run with the median key metric (all runs kept under 'runs')."""
    key = key_metric(load)
    ok = [r for r in runs if "error" not in r and isinstance(r.get(key), int | float) and r[key] == r[key]]
    if not ok:
        return runs[-1] if runs else {"error": "not run"}
    ok.sort(key=lambda r: r[key])
    pick = dict(ok[(len(ok) - 1) // 2])
    pick["runs"] = [{k: r.get(k) for k in (key, "ops_s", "p50_ms", "p99_ms", "error") if k in r} for r in runs]
    return pick


def run_loads(targets: dict[str, tuple[int, int]], member_pids: list[int], a: argparse.Namespace) -> dict[str, dict[str, Result]]:
    """Every load against every target, interleaved; the order of the targets rotates between repeats."""
    results: dict[str, dict[str, Result]] = {}
    names = list(targets)
    for load in a.proxy_loads:
        runs: dict[str, list[Result]] = {t: [] for t in names}
        for i in range(a.proxy_repeat):
            order = names[i % len(names):] + names[:i % len(names)]
            for t in order:
                port, pid = targets[t]
                log(f"proxy {load:<11} {t:<13} run {i + 1}/{a.proxy_repeat}")
                runs[t].append(run_proxy_load(load, port, pid, member_pids, a))
                time.sleep(a.pause)
        results[load] = {t: median_of(load, runs[t]) for t in names}
    return results


# ---------------------------------------------------------------- ratios and output


def metric(results: dict[str, dict[str, Result]], load: str, target: str) -> float | None:
    v = results.get(load, {}).get(target, {}).get(key_metric(load))
    return v if isinstance(v, int | float) and v == v else None


def ratios(results: dict[str, dict[str, Result]]) -> dict[str, dict[str, float | None]]:
    out: dict[str, dict[str, float | None]] = {}
    for load in results:
        out[load] = {
            "pyetcd-proxy/etcd-proxy": _ratio(metric(results, load, "pyetcd-proxy"), metric(results, load, "etcd-proxy")),
            "etcd-proxy/direct": _ratio(metric(results, load, "etcd-proxy"), metric(results, load, "direct")),
            "pyetcd-proxy/direct": _ratio(metric(results, load, "pyetcd-proxy"), metric(results, load, "direct")),
        }
    return out


def proxy_targets(rat: dict[str, dict[str, float | None]]) -> list[Result]:
    """Informational: throughput at least 0.5x etcd's proxy, 1-client p50 and all-woken time at most 2x."""
    out = []
    for load, r in rat.items():
        value = r.get("pyetcd-proxy/etcd-proxy")
        higher_better = key_metric(load) == "ops_s"
        limit = 0.5 if higher_better else 2.0
        ok = None if value is None else (value >= limit if higher_better else value <= limit)
        what = {"ops_s": "ops", "p50_ms": "p50", "all_woken_ms_median": "all-woken"}[key_metric(load)]
        out.append({"target": f"proxy {load} {what} {'>=' if higher_better else '<='} {limit:g}x etcd's proxy",
                    "value": value, "limit": limit, "status": "n/a" if ok is None else ("PASS" if ok else "FAIL")})
    return out


def row(load: str, target: str, r: Result) -> str:
    if "error" in r:
        return f"{load:<11} {target:<13} {r['error']}"
    if "all_woken_ms" in r:
        rounds = ", ".join(fmt(x, ".1f") for x in r["all_woken_ms"])
        return (f"{load:<11} {target:<13} all woken in {fmt(r['all_woken_ms_median'], '.1f')} ms (median; rounds: "
                f"{rounds}), woken {min(r['woken'])}/{r['clients']}, heads before the PUT "
                f"{min(r['armed_before_put'])}, per-watcher p50 {fmt(statistics.median(r['per_watcher_p50_ms']), '.1f')} ms")
    mem = "/".join(fmt(x, ".2f") for x in r.get("members_cpu", []))
    return (f"{load:<11} {target:<13} {fmt(r['ops_s']):>8} {fmt(r['p50_ms'], '.3f'):>8} {fmt(r['p99_ms'], '.3f'):>8} "
            f"{r['errors'] + r['io_errors']:>5} {fmt(r.get('server_cpu'), '.2f'):>7} {mem:>15} "
            f"{fmt(r.get('loadgen_cpu'), '.2f'):>6}")


def report(doc: Result) -> str:
    lines = [f"proxy bench: etcd 3.4's v2 proxy vs pyetcd's in front of one {doc['size']}-member pyetcd cluster "
             f"({doc['timing'][0]}/{doc['timing'][1]}); both forward to {doc['via']}; direct = that member; "
             f"{doc['pinning']}; {doc['duration_s']:g} s per load after {doc['warmup_s']:g} s warm-up, "
             f"median of {doc['repeat']}",
             f"{'load':<11} {'target':<13} {'ops/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'err':>5} {'tgt cpu':>7} "
             f"{'member cpus':>15} {'lg cpu':>6}"]
    for load, per in doc["loads"].items():
        lines.append("-" * 90)
        lines += [row(load, t, r) for t, r in per.items()]
        what = {"ops_s": "ops/s", "p50_ms": "p50 latency", "all_woken_ms_median": "all-woken time"}[key_metric(load)]
        lines.append(f"{'':<11} ratios ({what}): " + "  ".join(f"{k} {fmt(v, '.2f')}x"
                                                             for k, v in doc["ratios"][load].items()))
    for k, err in doc.get("errors", {}).items():
        lines.append(f"  {k}: {err}")
    lines.append(f"(proxy part took {doc['elapsed_s']:.0f} s; loadavg before "
                 f"{' '.join(fmt(x, '.2f') for x in doc.get('loadavg_before', []))}, after "
                 f"{' '.join(fmt(x, '.2f') for x in doc.get('loadavg_after', []))})")
    return "\n".join(lines)


# ---------------------------------------------------------------- driver


def add_proxy_args(ap: argparse.ArgumentParser) -> None:
    g = ap.add_argument_group("proxy")
    g.add_argument("--proxy-loads", default=",".join(PROXY_LOADS), help="comma list of put@N, get@N, watch@N")
    g.add_argument("--proxy-repeat", type=int, default=3, help="runs per load and target; the median is kept")


def check_proxy_args(a: argparse.Namespace) -> None:
    if isinstance(a.proxy_loads, str):
        a.proxy_loads = [x for x in a.proxy_loads.split(",") if x]
    for x in a.proxy_loads:
        parse_proxy_load(x)


def run(a: argparse.Namespace) -> Result:
    """The whole proxy part; returns the document stored under "proxy" in latest.json."""
    check_proxy_args(a)
    t_begin = time.monotonic()
    load0 = os.getloadavg()
    raise_nofile(8192)  # inherited: 1000 watches are 1000+ descriptors on the proxy (and 1000 more upstream)
    pinned = a.pin and pinning_possible()
    base = Path(tempfile.mkdtemp(prefix="pyetcd-proxy-bench-", dir="/var/tmp"))
    errors: dict[str, str] = {}
    loads: dict[str, dict[str, Result]] = {}
    via = "?"
    cl = Cluster("pyetcd", base, *THROUGHPUT_TIMING, pin=pinned)
    proxies = [ProxyProc(kind, base, ",".join(f"{m.name}={m.peer_url}" for m in cl.members), pinned)
               for kind in PROXY_KINDS]
    try:
        if not PYETCD_BIN.exists() or not etcd_available():
            raise RuntimeError(f"not run: needs {PYETCD_BIN} and etcd on PATH")
        cl.start(60.0)
        leader = cl.leader()
        follower = next(m for m in cl.members if m is not leader)
        via = f"follower {follower.name}"
        for p in proxies:
            p.start_towards(follower.client_url)
            log(f"{p.kind}: forwards to {follower.name} (after {p.starts} start(s))")
        if prefill(follower.client_port):
            errors["prefill"] = "non-2xx answers while writing the GET keys"
        targets = {p.kind: (p.port, p.pid) for p in proxies}
        targets["direct"] = (follower.client_port, follower.pid)
        loads = run_loads(targets, [m.pid for m in cl.members], a)
        for p in proxies:
            if p.first_endpoint() != follower.client_url:
                errors[p.kind] = f"forwarded to {p.first_endpoint()} by the end of the run"
    except RuntimeError as e:
        errors["setup"] = str(e)[:1500]
        log(errors["setup"])
    finally:
        for p in proxies:
            p.stop()
        cl.stop()
        shutil.rmtree(base, ignore_errors=True)
    rat = ratios(loads)
    return {
        "size": len(cl.members), "timing": list(THROUGHPUT_TIMING), "via": via,
        "pinning": (f"members and proxies on core {MEMBER_CORE}, loadgen on core {LOADGEN_CORE}" if pinned
                    else "not pinned"),
        "pinned": pinned, "duration_s": a.duration, "warmup_s": a.warmup, "repeat": a.proxy_repeat,
        "loads": loads, "ratios": rat, "targets": proxy_targets(rat), "errors": errors,
        "elapsed_s": round(time.monotonic() - t_begin, 1),
        "loadavg_before": [round(x, 2) for x in load0], "loadavg_after": [round(x, 2) for x in os.getloadavg()],
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="etcd's v2 proxy vs pyetcd's in front of a 3-member pyetcd cluster")
    ap.add_argument("--duration", type=float, default=5.0)
    ap.add_argument("--warmup", type=float, default=1.0)
    ap.add_argument("--procs", type=int, default=1)
    ap.add_argument("--watch-rounds", type=int, default=3)
    ap.add_argument("--pause", type=float, default=0.5)
    ap.add_argument("--no-pin", dest="pin", action="store_false")
    ap.add_argument("--json", type=Path, default=None, help="also write the document here")
    add_proxy_args(ap)
    a = ap.parse_args(argv)
    try:
        check_proxy_args(a)
    except argparse.ArgumentTypeError as e:
        ap.error(str(e))
    os.chdir(REPO)
    doc = run(a)
    return finish(doc, report(doc), a.json)


if __name__ == "__main__":
    sys.exit(main())
