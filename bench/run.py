"""Benchmark pyetcd against Debian's etcd 3.4 and the bare selectors+h11 ceiling, in one run.

Every server is its own process pinned to core 0 and the load generator runs on core 1 (when taskset
exists), so on a 2-core machine each side gets one core.  The loads are interleaved: each load is run
against every server before moving to the next, so a noisy neighbour hurts all servers alike; what
is meant to be compared are the ratios measured in the same run.

    .venv/bin/python -m bench.run [--duration 5] [--only pyetcd,etcd,ceiling] [--loads put@1,get@64,...]
                                  [--no-cluster | --only-cluster] [--cluster-trials 5] [--baseline REV]
                                  [--no-fleet | --only-fleet] [--fleet-keys 1000000] [--fleet-watchers 15000]

--baseline REV adds a fourth server, "base": pyetcd as of git revision REV (a temporary worktree run by
this venv's Python), interleaved with the others, so a change is compared with what it replaced in the
same run ("pyetcd/base" ratios).

After the single-member loads, a 3-member pyetcd cluster is run beside a 3-member etcd cluster with the
same heartbeat/election settings (bench/cluster.py: PUT to the leader and to a follower, quorum GET,
plain GET spread over the members, and the failover window after kill -9 of the leader); --no-cluster
skips that part, --only-cluster runs only it.

Then etcd 3.4's v2 proxy and pyetcd's in front of one 3-member pyetcd cluster, and the same loads straight at
the member both forward to (bench/proxy.py: put@64, get@64, put@1, get@1, watch@1000, --proxy-repeat runs
each, pyetcd-proxy/etcd-proxy ratios); --no-proxy skips that part, --only-proxy runs only it (under "proxy"
in latest.json, its targets appended to "targets").

Then auth: one member with auth off, one with auth on (guest revoked, credentials on every request), get@64
on/off, and GET@16 p99 alone vs under a storm of distinct wrong passwords (bench/auth.py); --no-auth skips it,
--only-auth runs only it (under "auth" in latest.json).

Then the fleet scale (bench/fleet.py), pyetcd beside etcd: --fleet-watchers (15,000) long polls on one member
(RSS per watcher, wake p50/p99/max after one PUT, how many were woken), --fleet-proxy-watchers (10,000) over two
proxies in front of a 3-member cluster of each kind, --fleet-keys (1,000,000) keys of 100 B loaded at 64
clients (load time, PUT p99/p99.9/max, RSS and bytes per key, data dir, restart after kill -9), and PUT@64 on
that store while it snapshots (p99 in windows with a snapshot vs without); --no-fleet skips it, --only-fleet
runs only it (under "fleet" in latest.json, its targets appended to "targets").

Results go to stdout as a table and to bench/results/latest.json (the cluster part under "cluster", its
targets appended to "targets").
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench import auth, cluster, fleet, proxy
from bench.loadgen import raise_nofile, run_loadgen, taskset
from tests.support.servers import (
    PYETCD_BIN,
    REPO,
    Server,
    etcd_available,
    etcd_server,
    free_port,
    pyetcd_server,
)

SERVERS = ("pyetcd", "base", "etcd", "ceiling", "raw")  # raw: opt-in loadgen capacity check; base: --baseline
DEFAULT_SERVERS = ("pyetcd", "etcd", "ceiling")
LOADS = ("put@1", "put@16", "put@64", "get@64", "watch@1000")
RESULTS = REPO / "bench" / "results" / "latest.json"
SERVER_CORE, LOADGEN_CORE = "0", "1"

Result = dict[str, Any]


# ---------------------------------------------------------------- servers


def ceiling_server(base: Path, raw: bool = False) -> Server:
    port = free_port()
    argv = [sys.executable, "-m", "bench.ceiling", "--port", str(port), *(["--raw"] if raw else [])]
    name = "raw" if raw else "ceiling"
    return Server(name, port, base / name, argv)


def baseline_server(base: Path, worktree: Path) -> Server:
    """pyetcd from another checkout (its daemon/ first on the path), with this venv's dependencies."""
    srv = pyetcd_server(base, name="base")
    code = "import sys; from pyetcd.cli.daemon import main; sys.exit(main())"
    srv.argv = ["env", f"PYTHONPATH={worktree / 'daemon'}", sys.executable, "-c", code, *srv.argv[1:]]
    srv.kind = "base"
    return srv


@contextmanager
def baseline_worktree(rev: str | None) -> Iterator[Path | None]:
    if not rev:
        yield None
        return
    path = Path(tempfile.mkdtemp(prefix="pyetcd-base-", dir="/var/tmp"))
    subprocess.run(["git", "worktree", "add", "--detach", "--force", str(path), rev], cwd=REPO, check=True,
                   capture_output=True)
    try:
        yield path
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(path)], cwd=REPO, capture_output=True)
        shutil.rmtree(path, ignore_errors=True)


def make_server(kind: str, base: Path, worktree: Path | None = None) -> Server:
    if kind == "base":
        if worktree is None:
            raise RuntimeError("no --baseline revision given")
        return baseline_server(base, worktree)
    if kind == "pyetcd":
        if not PYETCD_BIN.exists():
            raise RuntimeError(f"{PYETCD_BIN} not found")
        return pyetcd_server(base)
    if kind == "etcd":
        if not etcd_available():
            raise RuntimeError("etcd not on PATH (make etcd)")
        return etcd_server(base)
    if kind in ("ceiling", "raw"):
        return ceiling_server(base, raw=kind == "raw")
    raise ValueError(kind)


@contextmanager
def running(kinds: list[str], base: Path, pin: bool,
            worktree: Path | None = None) -> Iterator[tuple[dict[str, Server], dict[str, str]]]:
    """Start each server (pinned); yield the running ones and a status per kind; stop them by PID."""
    servers: dict[str, Server] = {}
    status: dict[str, str] = {}
    try:
        for kind in kinds:
            try:
                srv = make_server(kind, base, worktree)
                if pin:
                    srv.argv = taskset(SERVER_CORE, srv.argv)
                servers[kind] = srv.start()
                status[kind] = "ok"
            except (RuntimeError, OSError) as e:
                lines = [x.strip() for x in str(e).strip().splitlines() if x.strip()]
                status[kind] = "not run: " + " ... ".join(dict.fromkeys([lines[0], lines[-1]]))[:300] if lines \
                    else "not run"
                print(f"[bench] {kind}: {status[kind]}", file=sys.stderr)
        yield servers, status
    finally:
        for srv in servers.values():
            srv.stop()


# ---------------------------------------------------------------- loads


def parse_load(name: str) -> tuple[str, int]:
    kind, _, n = name.partition("@")
    if kind not in ("put", "get", "watch") or not n.isdigit():
        raise argparse.ArgumentTypeError(f"bad load {name!r}: want put@N, get@N or watch@N")
    return kind, int(n)


def run_load(name: str, srv: Server, a: argparse.Namespace) -> Result:
    """Run one load against one server in a loadgen subprocess (pinned to the other core)."""
    kind, n = parse_load(name)
    assert srv.proc is not None
    args = ["--port", str(srv.port), "--load", kind, "--clients", str(n), "--duration", str(a.duration),
            "--warmup", str(a.warmup), "--procs", str(a.procs), "--rounds", str(a.watch_rounds),
            "--server-pid", str(srv.proc.pid)]
    if kind == "get":
        args.append("--prefill")
    timeout = a.duration + a.warmup + 60 + (15 * a.watch_rounds if kind == "watch" else 0)
    return run_loadgen(args, a.pin, timeout, LOADGEN_CORE)


def run_all(servers: dict[str, Server], a: argparse.Namespace) -> dict[str, dict[str, Result]]:
    """Every load against every server, interleaved; with --repeat N, each cell keeps its median run."""
    results: dict[str, dict[str, Result]] = {}
    for name in a.loads:
        results[name] = {}
        for kind, srv in servers.items():
            if name.startswith("watch") and kind in ("ceiling", "raw"):
                results[name][kind] = {"n/a": f"the {kind} server does not serve watches"}
                continue
            runs = []
            for i in range(a.repeat):
                print(f"[bench] {name:<11} {kind:<8} run {i + 1}/{a.repeat}", file=sys.stderr, flush=True)
                runs.append(run_load(name, srv, a))
                time.sleep(a.pause)
            results[name][kind] = median_run(runs)
    return results


def median_run(runs: list[Result]) -> Result:
    """The run with the median throughput (or median all-woken time); all runs are kept under 'runs'."""
    if len(runs) == 1:
        return runs[0]
    ok = [r for r in runs if "error" not in r]
    if not ok:
        return runs[-1]
    key = "all_woken_ms_median" if "all_woken_ms_median" in ok[0] else "ops_s"
    ok.sort(key=lambda r: r[key] if r[key] == r[key] else float("inf"))
    pick = dict(ok[(len(ok) - 1) // 2])
    pick["runs"] = [{k: r.get(k) for k in (key, "p50_ms", "p99_ms", "error") if k in r} for r in runs]
    return pick


# ---------------------------------------------------------------- ratios and targets


def ratio(num: float | None, den: float | None) -> float | None:
    if not num or not den or num != num or den != den:
        return None
    return round(num / den, 3)


def metric(results: dict[str, dict[str, Result]], load: str, kind: str, key: str) -> float | None:
    v = results.get(load, {}).get(kind, {}).get(key)
    return v if isinstance(v, int | float) else None


def ratios(results: dict[str, dict[str, Result]]) -> dict[str, dict[str, float | None]]:
    out: dict[str, dict[str, float | None]] = {}
    for load in results:
        key = "all_woken_ms_median" if load.startswith("watch") else "ops_s"
        out[load] = {
            "pyetcd/etcd": ratio(metric(results, load, "pyetcd", key), metric(results, load, "etcd", key)),
            "pyetcd/ceiling": ratio(metric(results, load, "pyetcd", key), metric(results, load, "ceiling", key)),
            "etcd/ceiling": ratio(metric(results, load, "etcd", key), metric(results, load, "ceiling", key)),
        }
        if any("base" in per for per in results.values()):
            out[load]["pyetcd/base"] = ratio(metric(results, load, "pyetcd", key), metric(results, load, "base", key))
            out[load]["base/etcd"] = ratio(metric(results, load, "base", key), metric(results, load, "etcd", key))
        if load.startswith("put"):
            out[load]["p99 pyetcd/etcd"] = ratio(metric(results, load, "pyetcd", "p99_ms"),
                                                 metric(results, load, "etcd", "p99_ms"))
    return out


def targets(results: dict[str, dict[str, Result]], rat: dict[str, dict[str, float | None]]) -> list[Result]:
    """The informational targets: (name, measured value, threshold, PASS/FAIL/n/a)."""
    def check(name: str, value: float | None, limit: float, at_least: bool) -> Result:
        ok = None if value is None else (value >= limit if at_least else value <= limit)
        verdict = "n/a" if ok is None else ("PASS" if ok else "FAIL")
        return {"target": name, "value": value, "limit": limit, "status": verdict}

    # Issue 15's: the write path near the stack's ceiling, its tail near etcd's.
    out = [check("GET@64 ops >= 0.95x ceiling", rat.get("get@64", {}).get("pyetcd/ceiling"), 0.95, True),
           check("PUT@64 ops >= 0.6x ceiling", rat.get("put@64", {}).get("pyetcd/ceiling"), 0.6, True),
           check("PUT@64 p99 <= 1.5x etcd's", rat.get("put@64", {}).get("p99 pyetcd/etcd"), 1.5, False),
           check("PUT@1 p50 <= 0.35 ms", metric(results, "put@1", "pyetcd", "p50_ms"), 0.35, False)]
    return out


# ---------------------------------------------------------------- output


def fmt(v: Any, spec: str = ".0f") -> str:
    return "-" if v is None or (isinstance(v, float) and v != v) else format(v, spec)


def row(load: str, kind: str, r: Result) -> str:
    if "error" in r or "n/a" in r:
        return f"{load:<11} {kind:<8} {r.get('error') or 'n/a (' + r['n/a'] + ')'}"
    if "all_woken_ms" in r:
        rounds = ", ".join(fmt(x, ".1f") for x in r["all_woken_ms"])
        return (f"{load:<11} {kind:<8} all woken in {fmt(r['all_woken_ms_median'], '.1f')} ms (median; rounds: "
                f"{rounds}), woken {min(r['woken'])}/{r['clients']}, armed {min(r['armed_before_put'])}, "
                f"per-watcher p50 {fmt(statistics.median(r['per_watcher_p50_ms']), '.1f')} ms")
    return (f"{load:<11} {kind:<8} {fmt(r['ops_s']):>8} {fmt(r['p50_ms'], '.3f'):>8} {fmt(r['p99_ms'], '.3f'):>8}"
            f" {r['errors'] + r['io_errors']:>5} {fmt(r['server_cpu'], '.2f'):>7} {fmt(r['loadgen_cpu'], '.2f'):>6}")


def table(results: dict[str, dict[str, Result]], rat: dict[str, dict[str, float | None]]) -> str:
    lines = [f"{'load':<11} {'server':<8} {'ops/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'err':>5} "
             f"{'srv cpu':>7} {'lg cpu':>6}"]
    for load, per in results.items():
        lines.append("-" * 66)
        lines += [row(load, kind, r) for kind, r in per.items()]
        what = "all-woken time" if load.startswith("watch") else "ops/s"
        lines.append(f"{'':<11} ratios ({what}): " + "  ".join(f"{k} {fmt(v, '.2f')}x" for k, v in rat[load].items()))
    return "\n".join(lines)


def header(a: argparse.Namespace, status: dict[str, str]) -> str:
    servers = ", ".join(f"{k}: {v}" for k, v in status.items())
    pin = f"servers on core {SERVER_CORE}, loadgen on core {LOADGEN_CORE}" if a.pin and shutil.which("taskset") \
        else "not pinned"
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return (f"pyetcd bench: {a.duration:g} s per load after {a.warmup:g} s warm-up, x{a.repeat}, {pin}; "
            f"loadavg {load}\nservers: {servers}\n")


def meta(a: argparse.Namespace, status: dict[str, str]) -> Result:
    git = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=REPO)
    return {"time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "git": git.stdout.strip(), "host": platform.node(),
            "python": platform.python_version(), "cpus": os.cpu_count(), "loadavg": os.getloadavg(),
            "pinned": bool(a.pin and shutil.which("taskset")), "duration_s": a.duration, "warmup_s": a.warmup,
            "loadgen_procs": a.procs, "repeat": a.repeat, "servers": status}


# ---------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description="pyetcd vs etcd vs the h11 ceiling")
    ap.add_argument("--duration", type=float, default=5.0, help="measured seconds per load (default 5)")
    ap.add_argument("--warmup", type=float, default=1.0, help="unmeasured seconds before each load")
    ap.add_argument("--only", default=",".join(DEFAULT_SERVERS),
                    help="comma list of pyetcd,etcd,ceiling (default) and raw (h11-less server: loadgen check)")
    ap.add_argument("--loads", default=",".join(LOADS), help="comma list of put@N, get@N, watch@N")
    ap.add_argument("--procs", type=int, default=1, help="load generator processes per load (default 1)")
    ap.add_argument("--repeat", type=int, default=1, help="runs per load and server; the median run is kept")
    ap.add_argument("--watch-rounds", type=int, default=3)
    ap.add_argument("--pause", type=float, default=0.5, help="seconds between runs")
    ap.add_argument("--no-pin", dest="pin", action="store_false", help="do not use taskset")
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--baseline", metavar="REV", default="",
                    help="also run pyetcd as of git revision REV (server 'base'), for before/after in one run")
    ap.add_argument("--cluster", action=argparse.BooleanOptionalAction, default=True,
                    help="also run the 3-member cluster comparison after the single-member loads (default on)")
    ap.add_argument("--only-cluster", action="store_true", help="run only the cluster comparison")
    cluster.add_cluster_args(ap)
    ap.add_argument("--proxy", action=argparse.BooleanOptionalAction, default=True,
                    help="also run the v2 proxy comparison (etcd's proxy vs pyetcd's, bench/proxy.py; default on)")
    ap.add_argument("--only-proxy", action="store_true", help="run only the proxy comparison")
    proxy.add_proxy_args(ap)
    ap.add_argument("--auth", action=argparse.BooleanOptionalAction, default=True,
                    help="also run the auth comparison (auth on vs off, wrong-password storm; bench/auth.py)")
    ap.add_argument("--only-auth", action="store_true", help="run only the auth comparison")
    ap.add_argument("--fleet", action=argparse.BooleanOptionalAction, default=True,
                    help="also run the fleet-scale comparison (15,000 watchers, 1M keys, snapshots under load; "
                         "bench/fleet.py; default on)")
    ap.add_argument("--only-fleet", action="store_true", help="run only the fleet-scale comparison")
    fleet.add_fleet_args(ap)
    a = ap.parse_args(argv)
    if a.only_fleet:
        a.fleet, a.auth, a.cluster, a.proxy = True, False, False, False
        a.only_auth = a.only_cluster = a.only_proxy = False
    elif a.only_auth or a.only_cluster or a.only_proxy:
        a.fleet = False
    if a.only_auth:
        a.auth, a.cluster, a.proxy, a.only_proxy, a.only_cluster = True, False, False, False, False
    if a.only_cluster:
        a.cluster = True
    if a.only_proxy:
        a.proxy, a.cluster = True, False
    try:
        cluster.check_cluster_args(a)
        proxy.check_proxy_args(a)
        fleet.check_fleet_args(a)
    except argparse.ArgumentTypeError as e:
        ap.error(str(e))
    a.only = [s for s in a.only.split(",") if s]
    if a.baseline and "base" not in a.only:
        a.only.append("base")
    bad = set(a.only) - set(SERVERS)
    if bad:
        ap.error(f"unknown server(s) {sorted(bad)}")
    a.only = [s for s in SERVERS if s in a.only]
    a.loads = [x for x in a.loads.split(",") if x]
    for x in a.loads:
        parse_load(x)
    return a


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    os.chdir(REPO)
    raise_nofile(8192)  # inherited by the servers: 1000 watchers need 1000+ descriptors on each side
    results: dict[str, dict[str, Result]] = {}
    status: dict[str, str] = {}
    if not a.only_cluster and not a.only_proxy and not a.only_auth and not a.only_fleet:
        base = Path(tempfile.mkdtemp(prefix="pyetcd-bench-", dir="/var/tmp"))  # disk-backed, so fsync costs
        try:
            with baseline_worktree(a.baseline) as worktree, running(a.only, base, a.pin, worktree) as (servers, status):
                results = run_all(servers, a)
        finally:
            shutil.rmtree(base, ignore_errors=True)
    cdoc = cluster.run(a) if a.cluster else None
    pdoc = proxy.run(a) if a.proxy and not a.only_cluster else None
    adoc = auth.run(a.duration, 3, a.pin) if a.auth and not a.only_cluster and not a.only_proxy else None
    fdoc = fleet.run(a) if a.fleet else None
    rat = ratios(results)
    tgt = targets(results, rat) if results else []
    if results:
        print(header(a, status))
        print(table(results, rat))
    if cdoc is not None:
        print(("\n" if results else "") + cluster.report(cdoc))
        tgt += cdoc["targets"]
    if pdoc is not None:
        print(("\n" if results or cdoc is not None else "") + proxy.report(pdoc))
        tgt += pdoc["targets"]
    if adoc is not None:
        print("\n" + auth.report(adoc))
        tgt += [{"target": name, "status": "ok" if ok else "MISS", "value": None, "limit": None}
                for name, ok in adoc["targets"].items()]
    if fdoc is not None:
        print("\n" + fleet.report(fdoc))
        tgt += fdoc["targets"]
    print("\ntargets (informational):")
    cluster.print_targets(tgt)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    doc: Result = {"meta": meta(a, status), "loads": results, "ratios": rat, "targets": tgt}
    if cdoc is not None:
        doc["cluster"] = cdoc
    if pdoc is not None:
        doc["proxy"] = pdoc
    if adoc is not None:
        doc["auth"] = adoc
    if fdoc is not None:
        doc["fleet"] = fdoc
    a.out.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"\nwrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
