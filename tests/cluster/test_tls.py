"""Mutual TLS for peers and HTTPS for clients, with real handshakes between real processes.

One CA signs the members' certificates (CN "member", IP SAN 127.0.0.1). Outsiders hold a certificate
from another CA, an expired one from the right CA, or a right-CA one with a CN the members do not
allow; each must be refused on the peer port (no Raft, no /members) with the reason in the log.
"""

from __future__ import annotations

import http.client
import json
import shutil
import socket
import ssl
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pyetcd.ops.certs import CertFiles, create_ca, issue

from tests.support.kit import clean_env, wait_for
from tests.support.nodes import Node
from tests.support.servers import PYETCD_BIN, free_port

ALLOWED_CN = "member"


@dataclass
class Pki:
    ca: CertFiles
    member: CertFiles  # peer + server certificate shared by the members (CN "member")
    client: CertFiles
    other_ca_member: CertFiles  # CN "member", signed by another CA
    expired: CertFiles  # right CA, expired yesterday
    wrong_cn: CertFiles  # right CA, CN "intruder"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    d = tmp_path_factory.mktemp("pki")
    ca = create_ca(d)
    sans = ["127.0.0.1", "localhost"]
    other = create_ca(d / "other", name="other-ca", common_name="Other CA")
    past = datetime.now(UTC) - timedelta(days=2)
    return Pki(
        ca=ca,
        member=issue(d, ca, "member", "peer", sans, common_name=ALLOWED_CN),
        client=issue(d, ca, "client", "client", [], common_name="client"),
        other_ca_member=issue(d / "other", other, "member", "peer", sans, common_name=ALLOWED_CN),
        expired=issue(d, ca, "expired", "peer", sans, common_name=ALLOWED_CN, not_before=past,
                      not_after=past + timedelta(days=1)),
        wrong_cn=issue(d, ca, "intruder", "peer", sans, common_name="intruder"),
    )


def client_ctx(pki: Pki, cert: CertFiles | None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(pki.ca.cert))
    if cert is not None:
        ctx.load_cert_chain(str(cert.cert), str(cert.key))
    return ctx


def https(port: int, method: str, path: str, ctx: ssl.SSLContext, body: str | None = None,
          timeout: float = 5.0) -> tuple[int, dict]:  # type: ignore[type-arg]
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=timeout)
    try:
        headers = {"Content-Type": "application/x-www-form-urlencoded"} if body is not None else {}
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, json.loads(data) if data.strip().startswith((b"{", b"[")) else {}
    finally:
        conn.close()


@pytest.fixture(scope="module")
def cluster(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Node]]:
    base = tmp_path_factory.mktemp("tls-cluster")
    members = [Node(f"m{i}", free_port(), free_port(), base / f"m{i}.etcd") for i in range(1, 4)]
    initial = ",".join(f"{m.name}=https://127.0.0.1:{m.peer_port}" for m in members)
    for m in members:
        c, p = f"https://127.0.0.1:{m.client_port}", f"https://127.0.0.1:{m.peer_port}"
        argv = [str(PYETCD_BIN), "--name", m.name, "--data-dir", str(m.data_dir),
                "--listen-client-urls", c, "--advertise-client-urls", c,
                "--listen-peer-urls", p, "--initial-advertise-peer-urls", p, "--initial-cluster", initial,
                "--heartbeat-interval", "50", "--election-timeout", "500",
                "--cert-file", str(pki.member.cert), "--key-file", str(pki.member.key),
                "--trusted-ca-file", str(pki.ca.cert), "--client-cert-auth",
                "--peer-cert-file", str(pki.member.cert), "--peer-key-file", str(pki.member.key),
                "--peer-trusted-ca-file", str(pki.ca.cert), "--peer-client-cert-auth",
                "--peer-cert-allowed-cn", ALLOWED_CN]
        m.launch(argv)
    ctx = client_ctx(pki, pki.client)
    try:
        ok = wait_for(lambda: all(https(m.client_port, "GET", "/health", ctx, timeout=1)[0] == 200
                                  for m in members), 30)
        assert ok, "TLS cluster did not become healthy:\n" + "\n".join(m.log()[-2000:] for m in members)
        yield members
    finally:
        for m in members:
            m.kill9()


def test_writes_replicate_over_mutual_tls(cluster: list[Node], pki: Pki) -> None:
    ctx = client_ctx(pki, pki.client)
    status, body = https(cluster[0].client_port, "PUT", "/v2/keys/tls/a", ctx, body="value=over-tls")
    assert status in (200, 201), body
    for m in cluster:
        status, body = https(m.client_port, "GET", "/v2/keys/tls/a?quorum=true", ctx)
        assert (status, body["node"]["value"]) == (200, "over-tls")
    status, members = https(cluster[1].client_port, "GET", "/v2/members", ctx)
    assert status == 200
    assert sorted(u for m in members["members"] for u in m["peerURLs"]) == \
        sorted(f"https://127.0.0.1:{m.peer_port}" for m in cluster)


def test_client_without_certificate_is_refused(cluster: list[Node], pki: Pki) -> None:
    with pytest.raises((ssl.SSLError, ConnectionError)):
        https(cluster[0].client_port, "GET", "/v2/keys/tls/a", client_ctx(pki, None))
    assert wait_for(lambda: "rejected client connection" in cluster[0].log(), 5)


@pytest.mark.parametrize("which, reason", [
    ("other_ca_member", "certificate"),
    ("expired", "certificate"),
    ("wrong_cn", "CommonName authentication failed"),
])
def test_outsider_certificate_is_refused_on_the_peer_port(cluster: list[Node], pki: Pki, which: str,
                                                          reason: str) -> None:
    """Neither a Raft message nor a read of /members gets through; the member's log says why."""
    cert: CertFiles = getattr(pki, which)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # the outsider does not care who we are: only our refusal counts
    ctx.load_cert_chain(str(cert.cert), str(cert.key))
    target = cluster[2]
    before = target.log().count("rejected peer connection")
    for method, path, body in (("GET", "/members", None), ("POST", "/raft", "x" * 64)):
        try:
            conn = http.client.HTTPSConnection("127.0.0.1", target.peer_port, context=ctx, timeout=5)
            conn.request(method, path, body=body)
            status = conn.getresponse().status
            conn.close()
        except (ssl.SSLError, ConnectionError, http.client.RemoteDisconnected):
            status = None
        assert status is None, f"{which}: {method} {path} answered {status}"
    assert wait_for(lambda: target.log().count("rejected peer connection") >= before + 2, 5)
    refusals = [line for line in target.log().splitlines() if "rejected peer connection" in line]
    assert any(reason in line for line in refusals[-2:]), refusals[-2:]


def test_member_with_outsider_certificate_cannot_reach_the_cluster(cluster: list[Node], pki: Pki,
                                                                  tmp_path: Path) -> None:
    """A real pyetcd started as a joining member with another CA's certificate gets no member list."""
    client, peer = free_port(), free_port()
    p = f"https://127.0.0.1:{peer}"
    initial = ",".join([f"{m.name}=https://127.0.0.1:{m.peer_port}" for m in cluster] + [f"intruder={p}"])
    cert = pki.other_ca_member
    argv = [str(PYETCD_BIN), "--name", "intruder", "--data-dir", str(tmp_path / "intruder"),
            "--listen-client-urls", f"http://127.0.0.1:{client}", "--advertise-client-urls",
            f"http://127.0.0.1:{client}", "--listen-peer-urls", p, "--initial-advertise-peer-urls", p,
            "--initial-cluster", initial, "--initial-cluster-state", "existing",
            "--peer-cert-file", str(cert.cert), "--peer-key-file", str(cert.key),
            "--peer-trusted-ca-file", str(pki.ca.cert)]
    log_path = tmp_path / "intruder.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        assert wait_for(lambda: "rejected peer connection" in cluster[0].log() and
                        "TLS" in log_path.read_text(), 15), log_path.read_text()
        assert proc.poll() is None or proc.returncode != 0
    finally:
        proc.kill()
        proc.wait(10)


def test_plain_http_to_tls_port_and_tls_to_plain_port_fail_cleanly(cluster: list[Node], pki: Pki,
                                                                     tmp_path: Path) -> None:
    ctx = client_ctx(pki, pki.client)
    # A keep-alive TLS connection open across the bad ones keeps working.
    good = http.client.HTTPSConnection("127.0.0.1", cluster[0].client_port, context=ctx, timeout=5)
    good.request("GET", "/version")
    assert good.getresponse().read()
    with socket.create_connection(("127.0.0.1", cluster[0].client_port), timeout=5) as s:
        s.sendall(b"GET /v2/keys/ HTTP/1.1\r\nHost: x\r\n\r\n")
        reply = s.recv(4096)
    assert reply.startswith(b"HTTP/1.0 400 Bad Request") and b"HTTP request to an HTTPS server" in reply
    # A stalled handshake (a few bytes of nothing) does not block anyone.
    stalled = socket.create_connection(("127.0.0.1", cluster[0].peer_port), timeout=5)
    stalled.sendall(b"\x16\x03\x01")
    good.request("GET", "/v2/keys/tls/a")
    assert good.getresponse().status in (200, 404)
    status, _ = https(cluster[1].client_port, "GET", "/health", ctx)
    assert status == 200
    stalled.settimeout(10)
    assert stalled.recv(100) == b""  # dropped after the handshake timeout
    stalled.close()
    good.close()
    # TLS to a plain port: a pyetcd with a plain client URL answers the ClientHello with a 400 and closes.
    port = free_port()
    plain = subprocess.Popen([str(PYETCD_BIN), "--name", "plain", "--data-dir", str(tmp_path / "plain"),
                              "--listen-client-urls", f"http://127.0.0.1:{port}",
                              "--advertise-client-urls", f"http://127.0.0.1:{port}"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert wait_for(lambda: _plain_get(port, "/health") == 200, 10)
        with pytest.raises((ssl.SSLError, ConnectionError)):
            https(port, "GET", "/health", ctx)
        assert _plain_get(port, "/health") == 200
    finally:
        plain.kill()
        plain.wait(10)


def _plain_get(port: int, path: str) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        conn.request("GET", path)
        return conn.getresponse().status
    finally:
        conn.close()


@pytest.mark.skipif(shutil.which("etcdctl") is None, reason="Debian's etcd-client is not installed")
def test_etcdctl_speaks_https_with_client_certificates(cluster: list[Node], pki: Pki) -> None:
    env = clean_env(add={"ETCDCTL_API": "2"})
    base = ["etcdctl", "--endpoints", f"https://127.0.0.1:{cluster[0].client_port}",
            "--ca-file", str(pki.ca.cert), "--cert-file", str(pki.client.cert), "--key-file", str(pki.client.key)]
    out = subprocess.run([*base, "set", "/tls/ctl", "hello"], env=env, capture_output=True, text=True, timeout=20)
    assert out.returncode == 0, out.stderr
    out = subprocess.run([*base, "get", "/tls/ctl"], env=env, capture_output=True, text=True, timeout=20)
    assert (out.returncode, out.stdout) == (0, "hello\n"), out.stderr
    out = subprocess.run([*base, "cluster-health"], env=env, capture_output=True, text=True, timeout=20)
    assert out.returncode == 0 and "cluster is healthy" in out.stdout, out.stdout + out.stderr
