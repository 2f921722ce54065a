"""Auth benchmark: what v2 auth costs a pyetcd member, and whether wrong passwords can stall it.

Two single members side by side: "off" (auth disabled) and "on" (auth enabled, the guest role revoked, so
every request must carry credentials: a user whose role reads /bench/*). Both are prefilled before auth is
enabled. Members run on core 0, the load generator (bench.loadgen, a subprocess) on core 1.

    get@64           closed-loop GETs at 64 clients; on/off throughput (target >= 0.8: credentials already
                     verified come from the cache, not from bcrypt)
    p99 under storm  GET@16 on "on" with valid credentials, alone and while another process sends GETs with
                     a new wrong password each time (every one is a bcrypt check the cache cannot answer),
                     storm/alone p99 (target <= 2: the checks run off the loop)

Interleaved, --repeat runs each, the median run kept.

    .venv/bin/python -m bench.auth [--duration 5] [--repeat 3] [--no-pin]
"""

from __future__ import annotations

import argparse
import base64
import json
import multiprocessing
import os
import secrets
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.cluster import LOADGEN_CORE, MEMBER_CORE, log, pinning_possible, taskset
from bench.loadgen import prefill, run_loadgen
from tests.support.servers import REPO, Server, pyetcd_server

USER, PASSWORD = "bench", "bench-password"
AUTH_HEADER = "Authorization: Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
STORM_CONNS = 64


def _call(port: int, method: str, path: str, doc: object = None, creds: tuple[str, str] | None = None) -> int:
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Content-Type": "application/json"} if doc is not None else {}
    if creds:
        headers["Authorization"] = "Basic " + base64.b64encode(f"{creds[0]}:{creds[1]}".encode()).decode()
    conn.request(method, path, body=None if doc is None else json.dumps(doc), headers=headers)
    status = conn.getresponse().status
    conn.close()
    return status


def enable_auth(port: int) -> None:
    root = ("root", "root-password")
    steps = [("PUT", "/v2/auth/users/root", {"user": "root", "password": root[1]}, None, (201, 200)),
             ("PUT", "/v2/auth/roles/reader", {"role": "reader", "permissions": {"kv": {"read": ["/bench/*"],
                                                                                        "write": []}}}, None, (201,)),
             ("PUT", f"/v2/auth/users/{USER}", {"user": USER, "password": PASSWORD, "roles": ["reader"]}, None,
              (200, 201)),
             ("PUT", "/v2/auth/enable", None, root, (200,)),
             ("PUT", "/v2/auth/roles/guest", {"role": "guest", "revoke": {"kv": {"read": ["/*"], "write": ["/*"]}}},
              root, (200,))]
    for method, path, doc, creds, ok in steps:
        status = _call(port, method, path, doc, creds)
        if status not in ok:
            raise RuntimeError(f"{method} {path}: {status}")
    if _call(port, "GET", "/v2/keys/bench/k1") != 401:
        raise RuntimeError("auth is not enforced: a GET without credentials was answered")


def loadgen(port: int, clients: int, duration: float, pin: bool, header: str = "") -> dict[str, Any]:
    args = ["--port", str(port), "--load", "get", "--clients", str(clients), "--duration", str(duration),
            "--warmup", "1"]
    if header:
        args += ["--header", header]
    out = run_loadgen(args, pin, duration + 60, LOADGEN_CORE)
    if "error" in out:
        raise RuntimeError(f"auth bench loadgen: {out['error']}")
    return out


def _storm(port: int, stop_at: float, counts: Any) -> None:
    """GETs with a fresh wrong password each, on STORM_CONNS keep-alive connections, until `stop_at`."""
    conns = [socket.create_connection(("127.0.0.1", port)) for _ in range(STORM_CONNS)]
    for c in conns:
        c.settimeout(30)
    sent = answered = 0
    while time.time() < stop_at:
        for c in conns:
            bad = base64.b64encode(f"{USER}:{secrets.token_hex(8)}".encode()).decode()
            c.sendall(f"GET /v2/keys/bench/k1 HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {bad}\r\n\r\n".encode())
            sent += 1
        for c in conns:
            buf = b""
            while b"\r\n\r\n" not in buf:
                buf += c.recv(65536)
            head, _, rest = buf.partition(b"\r\n\r\n")
            length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
            while len(rest) < length:
                rest += c.recv(65536)
            answered += 1
    counts.extend([sent, answered])


def settle(port: int, timeout_s: float = 120.0) -> None:
    """Wait until the checks a storm left queued are done: a fresh wrong password is answered quickly."""
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        t0 = time.time()
        _call(port, "GET", "/v2/keys/bench/k1", creds=(USER, secrets.token_hex(8)))
        if time.time() - t0 < 0.5:
            return
    log("the password worker did not settle")


def median_by(runs: list[dict[str, Any]], key: str) -> dict[str, Any]:
    runs = sorted(runs, key=lambda r: r[key])
    return runs[len(runs) // 2]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", type=float, default=5.0)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--no-pin", dest="pin", action="store_false")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "auth.json")
    a = ap.parse_args(argv)
    result = run(a.duration, a.repeat, a.pin)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


def run(duration: float, repeat: int, pin: bool) -> dict[str, Any]:
    """The whole comparison (see the module docstring); the result document."""
    a = argparse.Namespace(duration=duration, repeat=repeat)
    pin = pin and pinning_possible()
    with tempfile.TemporaryDirectory(prefix="pyetcd-bench-auth-") as tmp:
        base = Path(tmp)
        servers: dict[str, Server] = {"off": pyetcd_server(base, "off"), "on": pyetcd_server(base, "on")}
        for srv in servers.values():
            if pin:
                srv.argv = taskset(MEMBER_CORE, srv.argv)
            srv.start()
        try:
            for srv in servers.values():
                prefill(srv.port)
            enable_auth(servers["on"].port)
            log("auth enabled on 'on'; guest revoked")
            runs: dict[str, list[dict[str, Any]]] = {"off": [], "on": [], "alone": [], "storm": []}
            storms: list[list[int]] = []
            for i in range(a.repeat):
                order = ["off", "on"] if i % 2 == 0 else ["on", "off"]
                for kind in order:
                    header = AUTH_HEADER if kind == "on" else ""
                    runs[kind].append(loadgen(servers[kind].port, 64, a.duration, pin, header))
                    log(f"get@64 {kind}: {runs[kind][-1]['ops_s']:.0f} ops/s")
                port = servers["on"].port
                runs["alone"].append(loadgen(port, 16, a.duration, pin, AUTH_HEADER))
                with multiprocessing.Manager() as mgr:
                    counts = mgr.list()
                    storm = multiprocessing.Process(target=_storm, args=(port, time.time() + a.duration + 2, counts))
                    storm.start()
                    runs["storm"].append(loadgen(port, 16, a.duration, pin, AUTH_HEADER))
                    storm.join(a.duration + 60)
                    storms.append(list(counts))
                settle(port)
                log(f"get@16 p99 alone {runs['alone'][-1]['p99_ms']:.2f} ms, under storm "
                    f"{runs['storm'][-1]['p99_ms']:.2f} ms (wrong passwords sent/answered {storms[-1]})")
        finally:
            for srv in servers.values():
                srv.stop()
    off, on = median_by(runs["off"], "ops_s"), median_by(runs["on"], "ops_s")
    alone, storm = median_by(runs["alone"], "p99_ms"), median_by(runs["storm"], "p99_ms")
    result = {
        "get64_ops": {"off": off["ops_s"], "on": on["ops_s"], "on/off": round(on["ops_s"] / off["ops_s"], 3)},
        "get16_p99_ms": {"alone": alone["p99_ms"], "storm": storm["p99_ms"],
                         "storm/alone": round(storm["p99_ms"] / alone["p99_ms"], 3)},
        "errors": {k: [r["errors"] for r in v] for k, v in runs.items()},
        "storm_sent_answered": storms,
        "targets": {"get64 on/off >= 0.8": on["ops_s"] / off["ops_s"] >= 0.8,
                    "p99 storm/alone <= 2": storm["p99_ms"] / alone["p99_ms"] <= 2.0},
        "repeat": a.repeat, "duration_s": a.duration, "pinned": pin, "cpus": os.cpu_count(),
        "spread": {k: round(statistics.pstdev([r["ops_s"] for r in v]), 1) for k, v in runs.items()},
    }
    return result


def report(doc: dict[str, Any]) -> str:
    g, p = doc["get64_ops"], doc["get16_p99_ms"]
    return (f"auth (one member, guest revoked; medians of {doc['repeat']}):\n"
            f"  get@64 ops/s   off {g['off']:.0f}   on {g['on']:.0f}   on/off {g['on/off']:.3f}\n"
            f"  get@16 p99 ms  alone {p['alone']:.2f}   wrong-password storm {p['storm']:.2f}   "
            f"storm/alone {p['storm/alone']:.3f}")


if __name__ == "__main__":
    sys.exit(main())
