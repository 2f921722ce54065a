"""etcd 3.4's v2 auth, differentially: the script of auth_cases.py runs on a fresh Debian etcd 3.4 and a fresh
pyetcd (or, with ``DIFF_AGAINST=etcd``, a second etcd: that mode proves the script and the harness), and
every answer must agree: status, body (indexes relative to the phase's start, JSON field order, Go's
encoding and its trailing newline), Content-Type, X-Etcd-Index, X-Etcd-Cluster-Id, Allow, and, added
here to the harness's view of each answer, WWW-Authenticate and the change of /v2/stats/store's counters
between two snapshots of one phase.

The whole script runs once per module (its phases depend on each other, so selecting one test still runs
them all; both servers are restarted before the phases in RESTART_BEFORE); each phase is its own test so
that a mismatch is reported under the phase where it happens. Two more tests start servers of their own:
requests pipelined on one connection while passwords are checked, and --client-cert-auth over HTTPS
(a verified certificate's CN names the user).
"""

from __future__ import annotations

import base64
import http.client
import json
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pyetcd.ops.certs import create_ca, issue

from tests.differential.auth_cases import (
    AUTH_SCRIPT,
    CERT_NAMES,
    CERT_SCRIPT,
    PIPE_SETUP,
    PIPELINE,
    RESTART_BEFORE,
    ROOT,
    authorization,
)
from tests.differential.harness import (
    DEFAULT_TIMEOUT,
    Case,
    Connection,
    Context,
    Outcome,
    Response,
    Send,
    Target,
    compare_outcomes,
    describe_request,
    exchange,
    normalise,
    render_request,
    request_headers,
    run_both,
)
from tests.differential.test_differential import AGAINST, start_other, warm_up
from tests.support.servers import PYETCD_BIN, Server, etcd_available, etcd_server, pyetcd_server

pytestmark = pytest.mark.skipif(not etcd_available(), reason="etcd (Debian etcd-server 3.4) is not on PATH")

# Framing (Content-Length or chunked) is left out, as the harness does for every answer but a watch: etcd
# chunks answers past 2048 bytes (Go's ResponseWriter), pyetcd always sends a Content-Length.
EXTRA_HEADERS = ("WWW-Authenticate",)


def with_extra_headers(outcomes: list[Outcome]) -> list[Outcome]:
    for o in outcomes:
        headers = o.view.get("headers")
        if isinstance(headers, dict):
            for name in EXTRA_HEADERS:
                headers[name.lower()] = o.response.header(name)
    return outcomes


def with_stats_deltas(outcomes: list[Outcome]) -> list[Outcome]:
    """Each /v2/stats/store answer after the first of a phase also carries its counters' change since the
    one before (the harness compares the counters themselves only as "<int>")."""
    before: dict[str, int] | None = None
    for o in outcomes:
        if not o.request.startswith("GET /v2/stats/store") or o.response.status != 200:
            continue
        now = json.loads(o.response.body)
        if before is not None:
            o.view["stats_delta"] = {k: v - before.get(k, 0) for k, v in now.items()}
        before = now
    return outcomes


def views(outcomes: list[Outcome]) -> list[Outcome]:
    # Against pyetcd the counters' changes are left out on purpose: etcd keeps its auth records in its v2
    # store, so /v2/stats/store also counts its own reads and writes of them; pyetcd counts client
    # operations only (README, "Access control"). Etcd against etcd still compares them.
    outcomes = with_extra_headers(outcomes)
    return outcomes if AGAINST == "pyetcd" else with_stats_deltas(outcomes)


def nul_password_refused(got: list[Outcome], server: Server) -> str | None:
    """Go's bcrypt takes a NUL byte in a password; the bcrypt library pyetcd uses cannot (C strings). pyetcd
    refuses such a password with a 400 saying so, and stays up; a login with one is refused."""
    first = got[0].response
    problems = []
    if first.status != 400 or b"NUL byte" not in first.body:
        problems.append(f"{got[0].request}: expected 400 naming the NUL byte, got {first.status} {first.body!r}")
    if not server.alive:
        problems.append("pyetcd died on a NUL byte in a password")
    return "\n".join(problems) or None


def without_etcd_crashes(ref: list[Outcome], other: list[Outcome]) -> tuple[list[Outcome], list[Outcome], list[str]]:
    """Requests on which etcd 3.4 panics (an empty key pattern: it indexes pattern[len-1]) and drops the
    connection: not copied. Dropped from the comparison; pyetcd must answer them with a refusal instead."""
    if AGAINST != "pyetcd":
        return ref, other, []
    keep_ref, keep_other, problems = [], [], []
    for r, o in zip(ref, other, strict=True):
        if r.response.status == 0 and r.view.get("client_error"):
            if o.response.status != 401:
                problems.append(f"{o.request}: etcd drops the connection; pyetcd must refuse (401), got "
                                f"{o.response.status}")
            continue
        keep_ref.append(r)
        keep_other.append(o)
    return keep_ref, keep_other, problems


def restart(*servers: Server) -> None:
    """Stop both, then start them again from their data directories (same flags, same ports)."""
    for s in servers:
        s.stop()
    for s in servers:
        s.start()


def run_script(ref: Server, other: Server) -> dict[str, str | None]:
    """Every phase in order on both servers; per phase, the mismatch report (None: all agree)."""
    reports: dict[str, str | None] = {}
    names = ("etcd", AGAINST if AGAINST == "pyetcd" else "etcd#2")
    for c in AUTH_SCRIPT:
        if c.name in RESTART_BEFORE:
            restart(ref, other)
        try:
            got_ref, got_other = run_both(c, "", Target(names[0], ref.port), Target(names[1], other.port))
        except RuntimeError as exc:  # e.g. a phase's start could not read its base index
            alive = {names[0]: ref.alive, names[1]: other.alive}
            states = ", ".join(f"{n} {'running' if up else 'NOT RUNNING'}" for n, up in alive.items())
            reports[c.name] = (f"phase {c.name!r} could not run: {exc} ({states})\n[{names[1]} log tail]\n"
                               + other.log_tail(2000))
            continue
        if c.name == "nul_password" and AGAINST == "pyetcd":
            reports[c.name] = nul_password_refused(got_other, other)
            continue
        got_ref, got_other, problems = without_etcd_crashes(got_ref, got_other)
        report = compare_outcomes(c, views(got_ref), views(got_other), names)
        reports[c.name] = "\n".join([*problems, report]) if problems and report else (
            "\n".join(problems) if problems else report)
    return reports


SNAPSHOTS = ["--snapshot-count", "25"]


@pytest.fixture(scope="module")
def script_reports(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str | None]]:
    # A low snapshot count: the restart recovers auth state from a snapshot plus the log after it
    ref = etcd_server(tmp_path_factory.mktemp("auth-ref"), extra=SNAPSHOTS).start()
    try:
        other = start_other(tmp_path_factory.mktemp("auth-other"), SNAPSHOTS)
    except BaseException:
        ref.stop()
        raise
    try:
        for s in (ref, other):
            warm_up(s)
        yield run_script(ref, other)
    finally:
        other.stop()
        ref.stop()


@pytest.mark.parametrize("c", AUTH_SCRIPT, ids=[c.name for c in AUTH_SCRIPT])
def test_auth_phase(c: Case, script_reports: dict[str, str | None]) -> None:
    report = script_reports[c.name]
    if report:
        pytest.fail(report, pytrace=False)


def pipelined(server: Server, steps: list[Send]) -> list[Outcome]:
    """The requests back to back on one keep-alive connection, then their answers in order (indexes
    relative to the store index a root read sees first)."""
    root = exchange(server.port, "GET", "/v2/keys/", headers=list(authorization(ROOT)))
    ctx = Context(server.port, server.url, "", int(root.header("X-Etcd-Index") or 0))
    sent = [(s.req, ctx.fill(s.req.target), ctx.fill_body(s.req), request_headers(ctx, s.req)) for s in steps]
    conn = Connection(server.port)
    try:
        conn.send(b"".join(render_request(r.method, target, server.port, body, hdrs)
                           .replace(b"Connection: close\r\n", b"") for r, target, body, hdrs in sent))
        out = []
        for no, (r, target, body, hdrs) in enumerate(sent, 1):
            resp = conn.read_body(conn.read_head(DEFAULT_TIMEOUT), r.method, DEFAULT_TIMEOUT)
            view = normalise(resp, ctx, r.method, target, body, watch=False)
            out.append(Outcome(no, describe_request(r.method, target, body, hdrs), resp, view))
        return out
    finally:
        conn.close()


def test_pipelined_credentials(tmp_path: Path) -> None:
    """Requests pipelined on one connection, some waiting for a password check: answered in order, each as
    etcd answers it."""
    for d in ("ref", "other"):
        (tmp_path / d).mkdir()
    ref = etcd_server(tmp_path / "ref").start()
    try:
        other = start_other(tmp_path / "other")
    except BaseException:
        ref.stop()
        raise
    try:
        for s in (ref, other):
            warm_up(s)
        names = ("etcd", AGAINST if AGAINST == "pyetcd" else "etcd#2")
        setup = run_both(PIPE_SETUP, "", Target(names[0], ref.port), Target(names[1], other.port))
        report = compare_outcomes(PIPE_SETUP, *setup, names)
        pipe = Case("pipeline", tuple(PIPELINE))
        report = "\n\n".join(filter(None, [report, compare_outcomes(pipe, views(pipelined(ref, PIPELINE)),
                                                                     views(pipelined(other, PIPELINE)), names)]))
    finally:
        other.stop()
        ref.stop()
    if report:
        pytest.fail(report, pytrace=False)


def https_exchange(port: int, tls: ssl.SSLContext, method: str, target: str, body: bytes | None = None,
                   headers: list[tuple[str, str]] | None = None) -> Response:
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=tls, timeout=DEFAULT_TIMEOUT)
    try:
        conn.request(method, target, body=body, headers=dict(headers or []))
        r = conn.getresponse()
        return Response(r.status, r.reason, r.getheaders(), r.read(), recv_time=time.time())
    except (OSError, http.client.HTTPException) as exc:
        return Response(0, "", [], b"", error=f"{type(exc).__name__}: {exc}")
    finally:
        conn.close()


def start_tls(kind: str, base: Path, extra: list[str], tls: ssl.SSLContext) -> Server:
    """etcd or pyetcd serving clients over HTTPS only, with `extra` (TLS) flags."""
    base.mkdir()
    s = etcd_server(base, extra=extra) if kind == "etcd" else pyetcd_server(base, name="ref", extra=extra)
    s.argv = [a.replace(s.url, s.url.replace("http:", "https:")) for a in s.argv]
    s.log_path = base / f"{s.data_dir.name}.log"
    s.launch(s.argv)
    s.wait_ready(lambda: https_exchange(s.port, tls, "GET", "/health").status == 200, kind, 20.0)
    return s


def run_cert_script(s: Server, contexts: dict[str, ssl.SSLContext]) -> list[Outcome]:
    url = s.url.replace("http:", "https:")
    base = https_exchange(s.port, contexts["root"], "GET", "/v2/keys/").header("X-Etcd-Index")
    ctx = Context(s.port, url, "", int(base or 0))
    out = []
    for no, (cn, step) in enumerate(CERT_SCRIPT, 1):
        r = step.req
        target, body, hdrs = ctx.fill(r.target), ctx.fill_body(r), request_headers(ctx, r)
        resp = https_exchange(s.port, contexts[cn], r.method, target, body, hdrs)
        view = normalise(resp, ctx, r.method, target, body, watch=False)
        out.append(Outcome(no, f"[client certificate CN={cn}] " + describe_request(r.method, target, body, hdrs),
                           resp, view))
    return out


def test_client_certificate_identifies_the_user(tmp_path: Path) -> None:
    """With --client-cert-auth, a request without an Authorization header is the user named by its verified
    client certificate's CN (etcd's userFromClientCertificate), for keys, members and the auth API alike."""
    ca = create_ca(tmp_path / "pki")
    server = issue(tmp_path / "pki", ca, "server", "server", ["127.0.0.1", "localhost"], common_name="server")
    contexts = {}
    for cn in CERT_NAMES:
        cert = issue(tmp_path / "pki", ca, cn, "client", [], common_name=cn)
        contexts[cn] = ssl.create_default_context(cafile=str(ca.cert))
        contexts[cn].load_cert_chain(str(cert.cert), str(cert.key))
    extra = ["--cert-file", str(server.cert), "--key-file", str(server.key), "--trusted-ca-file", str(ca.cert),
             "--client-cert-auth"]
    if AGAINST == "pyetcd" and not PYETCD_BIN.exists():
        pytest.skip(f"pyetcd is not installed at {PYETCD_BIN}")
    names = ("etcd", AGAINST if AGAINST == "pyetcd" else "etcd#2")
    ref = start_tls("etcd", tmp_path / "ref", extra, contexts["root"])
    try:
        other = start_tls("etcd" if AGAINST == "etcd" else "pyetcd", tmp_path / "other", extra, contexts["root"])
        try:
            got = [run_cert_script(s, contexts) for s in (ref, other)]
        finally:
            other.stop()
    finally:
        ref.stop()
    report = compare_outcomes(Case("client_cert_auth", ()), views(got[0]), views(got[1]), names)
    if report:
        pytest.fail(report, pytrace=False)


def decoded(authorization: str) -> str:
    try:
        return base64.b64decode(authorization.removeprefix("Basic "), validate=True).decode()
    except ValueError:
        return ""


def test_script_covers_the_refusals() -> None:
    """The issue's refusal list is in the script (a cheap guard against trimming it)."""
    sent = [(s.req.method, s.req.target, dict(s.req.headers).get("Authorization", ""), s.req.body or "")
            for c in AUTH_SCRIPT for s in c.steps if isinstance(s, Send)]
    creds = {decoded(h) for _, _, h, _ in sent}
    assert {"root:wrong", "nobody:x"} <= creds  # wrong password, unknown user
    assert any(h == "Basic !!!not-base64" for _, _, h, _ in sent)  # malformed
    assert any('"revoke":{"kv":{"read":["/*"],"write":["/*"]}}' in b and "/roles/guest" in t for _, t, _, b in sent)
    assert any(m == "PUT" and t == "/v2/auth/enable" and not h for m, t, h, _ in sent)  # without a root user
    assert any(m == "DELETE" and t == "/v2/auth/users/root" for m, t, _, _ in sent)
    assert any(m == "POST" and t == "/v2/members" for m, t, _, _ in sent)
    assert len({c.name for c in AUTH_SCRIPT}) == len(AUTH_SCRIPT)
    assert len(sent) >= 250
