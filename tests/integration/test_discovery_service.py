"""`pyetcd discovery-service` (spec discovery.md §2) as real processes on loopback sockets.

1. Our service over pyetcd: /new, the token routes, a long-poll that waits for a registration, bad input,
   failover between backing endpoints, a dead backing, TLS on both sides, SIGTERM with a parked watch.
2. Differential: Debian's real discovery.etcd.io and ours, each over its own fresh etcd 3.4, answer the same
   request script with the same statuses, content types and bodies (tokens and indexes normalised).
3. Real etcd 3.4 members bootstrap from our service backed by pyetcd; a fourth is refused as "full".
"""

from __future__ import annotations

import http.client
import json
import re
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

import pytest
from pyetcd.discovery import service
from pyetcd.ops.certs import CertFiles, create_ca, issue

from tests.support import kit
from tests.support.servers import Server, etcd_available, etcd_server, free_port, pyetcd_server

from ._http import recv_head

OURS = [sys.executable, "-m", "pyetcd.discovery.service"]
REAL_BIN = "/usr/bin/discovery.etcd.io"
FORM_CT = "application/x-www-form-urlencoded"
TEXT_CT = "text/plain; charset=utf-8"
TOKEN = re.compile(r"[a-f0-9]{32}")

needs_etcd = pytest.mark.skipif(not etcd_available(), reason="Debian's etcd (etcd-server) is not installed")


# ---- helpers -----------------------------------------------------------------------------------

@dataclass
class Reply:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)

    def json(self) -> dict:  # type: ignore[type-arg]
        return json.loads(self.body)


def call(port: int, method: str, path: str, form: dict[str, str] | None = None, timeout: float = 10.0,
         tls: ssl.SSLContext | None = None, headers: dict[str, str] | None = None) -> Reply:
    if tls is not None:
        conn: http.client.HTTPConnection = http.client.HTTPSConnection("127.0.0.1", port, timeout=timeout, context=tls)
    else:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        hdrs = dict(headers or {})
        body = None
        if form is not None:
            body = urlencode(form)
            hdrs["Content-Type"] = FORM_CT
        conn.request(method, path, body=body, headers=hdrs)
        resp = conn.getresponse()
        return Reply(resp.status, resp.getheaders(), resp.read())
    finally:
        conn.close()


@dataclass
class Disco(kit.LoggedProcess):
    """A token service process (ours or the real one) on a free loopback port."""

    argv: list[str]
    port: int
    log_path: Path
    tls: ssl.SSLContext | None = None
    proc: subprocess.Popen[bytes] | None = None

    @property
    def prefix(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def start(self, wait_s: float = 15.0) -> Disco:
        self.launch(self.argv, kit.clean_env("DISC_"))
        self.wait_ready(self._answers, self.argv[0], wait_s)
        return self

    def _answers(self) -> bool:
        try:
            return call(self.port, "GET", "/robots.txt", timeout=1, tls=self.tls).status == 200
        except OSError:
            return False

    def call(self, method: str, path: str, form: dict[str, str] | None = None, timeout: float = 10.0) -> Reply:
        return call(self.port, method, path, form, timeout, self.tls)

    def new(self, size: int = 3) -> str:
        r = self.call("GET", f"/new?size={size}")
        assert r.status == 200, (r, self.log())
        text = r.body.decode()
        assert text.startswith(self.prefix + "/") and TOKEN.fullmatch(text.rsplit("/", 1)[1]), text
        return text.rsplit("/", 1)[1]



@dataclass
class Discos:
    base: Path
    made: list[Disco] = field(default_factory=list)

    def start(self, etcd: str, binary: list[str] | None = None, extra: list[str] | None = None,
              tls: ssl.SSLContext | None = None) -> Disco:
        port = free_port()
        scheme = "https" if tls else "http"
        argv = [*(binary or OURS), "--etcd", etcd, "--host", f"{scheme}://127.0.0.1:{port}",
                "--addr", f"127.0.0.1:{port}", *(extra or [])]
        disco = Disco(argv, port, self.base / f"disco-{port}.log", tls)
        self.made.append(disco)
        return disco.start()

    def stop_all(self) -> None:
        for d in self.made:
            d.stop()


@pytest.fixture
def discos(tmp_path: Path) -> Iterator[Discos]:
    made = Discos(tmp_path)
    yield made
    made.stop_all()


@pytest.fixture(scope="module")
def backing(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One pyetcd for the module; every test uses tokens of its own."""
    srv = pyetcd_server(tmp_path_factory.mktemp("backing"), name="backing").start()
    yield srv
    srv.stop()


def raw_exchange(port: int, data: bytes, timeout: float = 10.0) -> bytes:
    """Send raw bytes, read until the server closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        out = b""
        while chunk := s.recv(65536):
            out += chunk
        return out


# ---- 1. our service over pyetcd ----------------------------------------------------------------

def test_token_lifecycle_over_pyetcd(backing: Server, discos: Discos) -> None:
    d = discos.start(backing.url)
    r = d.call("GET", "/new?size=3")
    assert (r.status, r.header("Content-Type")) == (200, TEXT_CT)
    assert re.fullmatch(rf"http://127\.0\.0\.1:{d.port}/[a-f0-9]{{32}}", r.body.decode()), r.body  # no newline
    token = r.body.decode().rsplit("/", 1)[1]

    r = d.call("GET", f"/{token}/_config/size")
    assert r.status == 200 and r.header("Content-Type") == "application/json"
    assert r.json()["node"] == {**r.json()["node"], "key": f"/_etcd/registry/{token}/_config/size", "value": "3"}

    r = d.call("PUT", f"/{token}/a1?prevExist=false", {"value": "m1=http://127.0.0.1:1"})
    assert r.status == 201 and r.json()["action"] == "create", r.body
    first = r.json()["node"]["createdIndex"]
    r = d.call("PUT", f"/{token}/a1?prevExist=false", {"value": "m1=http://127.0.0.1:1"})
    assert r.status == 412 and r.json()["errorCode"] == 105, r.body

    r = d.call("GET", f"/{token}?quorum=false&recursive=false&sorted=false")
    assert r.status == 200 and r.header("X-Etcd-Index") is not None
    nodes = r.json()["node"]["nodes"]
    assert [(n["key"], n["value"]) for n in nodes] == [(f"/_etcd/registry/{token}/a1", "m1=http://127.0.0.1:1")]
    assert d.call("GET", f"/{token}/").body == r.body  # the trailing slash names the same directory

    # A long-poll from the listing's index + 1 waits until the next member registers.
    got: list[Reply] = []
    watch = threading.Thread(target=lambda: got.append(
        d.call("GET", f"/{token}?wait=true&waitIndex={first + 1}&recursive=true", timeout=15)))
    watch.start()
    watch.join(0.7)
    assert watch.is_alive() and not got, "the watch returned before anything happened"
    r = d.call("PUT", f"/{token}/b2?prevExist=false", {"value": "m2=http://127.0.0.1:2"})
    assert r.status == 201
    watch.join(10)
    assert got and got[0].status == 200, got
    event = got[0].json()
    assert event["action"] == "create" and event["node"]["key"] == f"/_etcd/registry/{token}/b2"

    # Machines can be deleted; the size key is read-only through the service.
    assert d.call("DELETE", f"/{token}/b2").status == 200
    assert d.call("PUT", f"/{token}/_config/size", {"value": "9"}).status == 405
    assert d.call("DELETE", f"/{token}").status == 405

    # size from a form body; bad sizes are Go's strconv.Atoi error, as plain text.
    r = d.call("PUT", "/new", {"size": "5"})
    assert r.status == 200
    assert d.call("GET", f"/{r.body.decode().rsplit('/', 1)[1]}/_config/size").json()["node"]["value"] == "5"
    r = d.call("GET", "/new?size=abc")
    assert (r.status, r.header("Content-Type"), r.body) == (
        400, TEXT_CT, b'strconv.Atoi: parsing "abc": invalid syntax\n')

    r = d.call("GET", "/health")
    assert (r.status, r.body) == (200, b"OK")
    for path in ("/nope", f"/{token.upper()}", f"/{token[:-1]}", f"/{token}x", f"/{token}/a/b", "/new/"):
        r = d.call("GET", path)
        assert (r.status, r.body) == (404, b"404 page not found\n"), path
    r = d.call("GET", "/")
    assert r.status == 301 and r.header("Location")
    r = d.call("GET", "//new?size=1")
    assert (r.status, r.header("Location")) == (301, "/new?size=1")
    metrics = d.call("GET", "/metrics").body.decode()
    assert 'endpoint_new_requests_total{code="400",method="GET"} 1' in metrics, metrics


def test_bad_input_never_hurts_the_service(backing: Server, discos: Discos) -> None:
    d = discos.start(backing.url, extra=["--log-level", "debug"])
    token = d.new()
    assert raw_exchange(d.port, b"HELLO\r\n\r\n").startswith(b"HTTP/1.1 400 ")
    assert raw_exchange(d.port, b"GET /new HTTP/1.1\r\nContent-Length: x\r\n\r\n").startswith(b"HTTP/1.1 400 ")
    too_big = b"PUT /new HTTP/1.1\r\nContent-Length: 999999999999\r\n\r\n"
    assert raw_exchange(d.port, too_big).startswith(b"HTTP/1.1 413 ")
    assert b" 404 " in raw_exchange(d.port, b"GET /\xff\xfe%00 HTTP/1.1\r\nConnection: close\r\n\r\n")
    assert raw_exchange(d.port, b"GET /%zz HTTP/1.1\r\n\r\n").startswith(b"HTTP/1.1 400 ")

    # A chunked body is decoded and forwarded; two pipelined requests get two answers in order.
    put = (f"PUT /{token}/c1?prevExist=false HTTP/1.1\r\nHost: x\r\nContent-Type: {FORM_CT}\r\n"
           "Transfer-Encoding: chunked\r\n\r\n6\r\nvalue=\r\n2\r\nm1\r\n0\r\n\r\n").encode()
    get = f"GET /{token}/c1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()
    out = raw_exchange(d.port, put + get)
    assert out.startswith(b"HTTP/1.1 201 ") and out.count(b"HTTP/1.1 200 ") == 1, out
    assert out.count(b'"value":"m1"') == 2, out

    # A body cut short, and a long-poll whose client hangs up: both are dropped without a trace.
    with socket.create_connection(("127.0.0.1", d.port)) as s:
        s.sendall(b"PUT /new HTTP/1.1\r\nContent-Length: 100\r\n\r\nsize=")
    with socket.create_connection(("127.0.0.1", d.port)) as s:
        s.sendall(f"GET /{token}?wait=true&recursive=true HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        assert recv_head(s).startswith(b"HTTP/1.1 200 ")  # relayed once the backing's watch is in place
    deadline = time.monotonic() + 5
    while "client left" not in d.log() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "client left" in d.log(), d.log()

    assert d.call("GET", "/health").status == 200
    assert d.proc is not None and d.proc.poll() is None


def test_failover_dead_backing_and_sigterm(backing: Server, discos: Discos) -> None:
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    d = discos.start(f"{dead},{backing.url}")
    for _ in range(3):
        token = d.new()
        assert d.call("GET", f"/{token}").status == 200
    assert d.call("GET", "/health").status == 200

    lost = discos.start(dead)
    r = lost.call("GET", "/new")
    assert (r.status, r.body) == (400, b"Unable to generate token\n")
    r = lost.call("GET", "/health")
    assert (r.status, r.body) == (400, b"health failed to setupToken\n")
    r = lost.call("GET", f"/{token}")
    assert (r.status, r.body) == (500, b"All attempts at proxying to etcd failed\n")

    # SIGTERM with a watch parked in the proxy: a prompt, clean exit.
    parked = socket.create_connection(("127.0.0.1", d.port))
    parked.sendall(f"GET /{token}?wait=true&recursive=true HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    assert recv_head(parked).startswith(b"HTTP/1.1 200 ")  # parked in the proxy, waiting for an event
    assert d.proc is not None
    proc = d.proc
    started = time.monotonic()
    assert d.stop() == 0, d.log()
    assert time.monotonic() - started < 3
    parked.close()
    assert proc.returncode == 0


def test_bad_settings_exit_2() -> None:
    assert service.main(["--etcd", "http://127.0.0.1:2379/v2/keys"]) == 2
    assert service.main(["--etcd", "http://127.0.0.1:2379?x=1"]) == 2
    assert service.main(["--addr", "nonsense"]) == 2
    assert service.main(["--cert-file", "/nonexistent"]) == 2
    assert service.main(["--no-such-flag"]) == 2


@dataclass
class Pki:
    ca: CertFiles
    member: CertFiles

    def context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.ca.cert))
        ctx.load_cert_chain(str(self.member.cert), str(self.member.key))
        return ctx


def test_tls_backing_and_serving(tmp_path: Path, discos: Discos) -> None:
    """An https-only pyetcd demanding client certificates behind a service that itself serves https."""
    ca = create_ca(tmp_path / "pki")
    pki = Pki(ca, issue(tmp_path / "pki", ca, "member", "peer", ["127.0.0.1", "localhost"]))
    port = free_port()
    url = f"https://127.0.0.1:{port}"
    srv = pyetcd_server(tmp_path, port=port, extra=[
        "--listen-client-urls", url, "--advertise-client-urls", url, "--cert-file", str(pki.member.cert),
        "--key-file", str(pki.member.key), "--trusted-ca-file", str(pki.ca.cert), "--client-cert-auth"])
    # The later --listen/--advertise flags win; Server.start() only knows plain HTTP health checks.
    srv.proc = subprocess.Popen(srv.argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert kit.wait_for(lambda: call(port, "GET", "/health", timeout=1, tls=pki.context()).status == 200, 15,
                            0.1), "the TLS pyetcd did not come up"
        files = ["--etcd-ca-file", str(pki.ca.cert), "--etcd-cert-file", str(pki.member.cert),
                 "--etcd-key-file", str(pki.member.key),
                 "--cert-file", str(pki.member.cert), "--key-file", str(pki.member.key)]
        d = discos.start(url, extra=files, tls=ssl.create_default_context(cafile=str(pki.ca.cert)))
        token = d.new(size=1)
        assert d.prefix.startswith("https://")
        assert d.call("PUT", f"/{token}/t1?prevExist=false", {"value": "t=https://127.0.0.1:1"}).status == 201
        assert [n["value"] for n in d.call("GET", f"/{token}").json()["node"]["nodes"]] == ["t=https://127.0.0.1:1"]
        assert d.call("GET", "/health").body == b"OK"
    finally:
        srv.stop()


# ---- 2. differential against the real discovery.etcd.io ----------------------------------------

_INDEX = re.compile(rb'"(modifiedIndex|createdIndex|index)":\d+')
_VOLATILE = {"date", "content-length", "x-etcd-index", "x-raft-index", "x-raft-term", "x-etcd-cluster-id"}


def _normalised(r: Reply, token: str, prefix: str) -> tuple[int, str | None, bytes, list[str]]:
    body = r.body.replace(prefix.encode(), b"<host>").replace(token.encode(), b"<token>")
    body = TOKEN.sub("<other-token>", body.decode(errors="replace")).encode()
    names = sorted({k.lower() for k, _ in r.headers} - _VOLATILE - {"transfer-encoding"})
    return r.status, r.header("Content-Type"), _INDEX.sub(rb'"\1":N', body), names


def _script(d: Disco) -> list[tuple[str, tuple[int, str | None, bytes, list[str]]]]:
    """The same requests against one service; each answer normalised for comparison."""
    token = d.new(size=3)
    absent = "0123456789abcdef0123456789abcdef"
    steps: list[tuple[str, str, dict[str, str] | None]] = [
        ("GET", "/new?size=abc", None),
        ("GET", "/new?size=99999999999999999999", None),
        ("GET", f"/{token}", None),
        ("GET", f"/{token}/", None),
        ("GET", f"/{token}/_config/size", None),
        ("GET", f"/{token}/_config", None),
        ("PUT", f"/{token}/7e27652122e8b2ae?prevExist=false", {"value": "infra0=http://10.0.1.10:2380"}),
        ("PUT", f"/{token}/7e27652122e8b2ae?prevExist=false", {"value": "infra0=http://10.0.1.10:2380"}),
        ("GET", f"/{token}?quorum=false&recursive=false&sorted=false", None),
        ("GET", f"/{token}/7e27652122e8b2ae", None),
        ("GET", f"/{token}/nosuch", None),
        ("GET", f"/{absent}/_config/size", None),
        ("PUT", f"/{token}/_config/size", {"value": "1"}),
        ("DELETE", f"/{token}", None),
        ("POST", f"/{token}/x", None),
        ("DELETE", f"/{token}/7e27652122e8b2ae", None),
        ("GET", "/health", None),
        ("GET", "/nope", None),
        ("GET", f"/{token.upper()}", None),
        ("GET", f"/{token}/a/b", None),
        ("GET", "//new", None),
        ("GET", "/robots.txt", None),
    ]
    out = []
    for method, path, form in steps:
        r = d.call(method, path, form)
        label = path.replace(token, "<token>").replace(token.upper(), "<TOKEN>")
        out.append((f"{method} {label}", _normalised(r, token, d.prefix)))
    # The token URL itself, and a size given in a form body.
    r = d.call("PUT", "/new", {"size": "7"})
    fresh = r.body.decode().rsplit("/", 1)[-1]
    out.append(("PUT /new size=7", _normalised(r, fresh, d.prefix)))
    size = d.call("GET", f"/{fresh}/_config/size")
    out.append(("GET /<fresh>/_config/size", _normalised(size, fresh, d.prefix)))
    return out


@needs_etcd
@pytest.mark.skipif(not Path(REAL_BIN).exists() or not Path("/etc/etcd-discovery/etcd-discovery.conf").exists(),
                    reason="Debian's etcd-discovery (/usr/bin/discovery.etcd.io) is not installed")
def test_same_answers_as_the_real_service(tmp_path: Path, discos: Discos) -> None:
    etcds = [etcd_server(tmp_path, name=f"ref{i}").start() for i in range(2)]
    try:
        real = discos.start(etcds[0].url, binary=[REAL_BIN])
        ours = discos.start(etcds[1].url)
        theirs, mine = _script(real), _script(ours)
        assert [step for step, _ in theirs] == [step for step, _ in mine]
        for (step, want), (_, got) in zip(theirs, mine, strict=True):
            assert got == want, f"{step}:\n real: {want}\n ours: {got}"
        # "/" redirects both, to a docs page of each one's choosing.
        assert real.call("GET", "/").status == ours.call("GET", "/").status == 301
    finally:
        for e in etcds:
            e.stop()


# ---- 3. real etcd members bootstrap from our service -------------------------------------------

@dataclass
class EtcdMember(kit.LoggedProcess):
    name: str
    client: int
    peer: int
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None


def _tls_flags(pki: Path | None) -> list[str]:
    """etcd's flags for mutual TLS on client and peer URLs, with the certificates `pki` holds."""
    if pki is None:
        return []
    crt, key, ca = str(pki / "member.crt"), str(pki / "member.key"), str(pki / "ca.crt")
    return ["--cert-file", crt, "--key-file", key, "--trusted-ca-file", ca, "--client-cert-auth",
            "--peer-cert-file", crt, "--peer-key-file", key, "--peer-trusted-ca-file", ca, "--peer-client-cert-auth"]


def _launch(tmp: Path, name: str, durl: str, extra: list[str] | None = None, pki: Path | None = None) -> EtcdMember:
    client, peer = free_port(), free_port()
    scheme = "https" if pki else "http"
    c, p = f"{scheme}://127.0.0.1:{client}", f"{scheme}://127.0.0.1:{peer}"
    argv = [shutil.which("etcd") or "etcd", "--name", name, "--data-dir", str(tmp / f"{name}.etcd"),
            "--discovery", durl, "--listen-client-urls", c, "--advertise-client-urls", c,
            "--listen-peer-urls", p, "--initial-advertise-peer-urls", p, *_tls_flags(pki), *(extra or [])]
    member = EtcdMember(name, client, peer, tmp / f"{name}.log")
    member.launch(argv)
    return member


def _registered(d: Disco, token: str) -> int:
    return len(d.call("GET", f"/{token}").json()["node"].get("nodes", []))


def _member_list(m: EtcdMember, pki: Path | None = None) -> dict | None:  # type: ignore[type-arg]
    etcdctl = shutil.which("etcdctl")
    assert etcdctl is not None
    env = kit.clean_env(add={"ETCDCTL_API": "3"})
    tls = [] if pki is None else ["--cacert", str(pki / "ca.crt"), "--cert", str(pki / "member.crt"),
                                  "--key", str(pki / "member.key")]
    scheme = "https" if pki else "http"
    done = subprocess.run([etcdctl, "--endpoints", f"{scheme}://127.0.0.1:{m.client}", "--command-timeout", "2s",
                           *tls, "member", "list", "-w", "json"], capture_output=True, env=env, timeout=10)
    return json.loads(done.stdout) if done.returncode == 0 else None


def _wait(what: str, check: Callable[[], bool], timeout_s: float) -> None:
    assert kit.wait_for(check, timeout_s, 0.1), f"timed out waiting for {what}"


@needs_etcd
@pytest.mark.skipif(shutil.which("etcdctl") is None, reason="Debian's etcdctl (etcd-client) is not installed")
@pytest.mark.parametrize("tls", [False, True], ids=["plain", "mutual-tls"])
def test_real_etcd_members_bootstrap_from_our_service(backing: Server, discos: Discos, tmp_path: Path,
                                                     tls: bool) -> None:
    """With `tls`, the members run mutual TLS on their peer and client URLs (certificates from `pyetcd certs`)."""
    pki: Path | None = None
    if tls:
        from pyetcd.ops.certs import create_ca, issue

        pki = tmp_path / "pki"
        issue(pki, create_ca(pki), "member", "peer", ["127.0.0.1", "localhost"])
    d = discos.start(backing.url)
    token = d.new(size=3)
    durl = f"{d.prefix}/{token}"
    members: list[EtcdMember] = []
    try:
        # One at a time, each started once the previous one waits in a long-poll through the proxy.
        for i, waiting in ((1, "waiting for 2 more"), (2, "waiting for 1 more"), (3, None)):
            m = _launch(tmp_path, f"m{i}", durl, pki=pki)
            members.append(m)
            if waiting is not None:
                _wait(f"m{i} to wait for the others", lambda m=m, w=waiting: w in m.log(), 15)
        lists: list[dict] = []  # type: ignore[type-arg]

        def all_listed() -> bool:
            lists[:] = [x for x in (_member_list(m, pki) for m in members) if x is not None]
            return len(lists) == 3 and all(len(x["members"]) == 3 for x in lists)

        _wait("a 3-member cluster", all_listed, 15)
        views = [sorted((m["name"], tuple(m["peerURLs"])) for m in x["members"]) for x in lists]
        assert views[0] == views[1] == views[2], views
        scheme = "https" if tls else "http"
        assert views[0] == [(m.name, (f"{scheme}://127.0.0.1:{m.peer}",)) for m in members]
        assert len({x["header"]["cluster_id"] for x in lists}) == 1
        assert _registered(d, token) == 3
        assert "found 2 peer(s), waiting for 1 more" in members[1].log()
        assert all("found 3 needed peer(s)" in m.log() for m in members)

        late = _launch(tmp_path, "m4", durl, ["--discovery-fallback", "exit"], pki=pki)
        members.append(late)
        assert late.proc is not None and late.proc.wait(20) == 1, late.log()
        assert "cluster is full" in late.log(), late.log()
        assert _registered(d, token) == 3  # refused before registering
    finally:
        for m in members:  # throw-away members: SIGKILL by PID (a graceful stop of all three takes seconds)
            m.kill9()
