"""`pyetcd certs member --auto`: a host issues its own certificates from the fleet CA, inside a throwaway
network namespace (10.0.0.5 on the default route's interface, 198.51.100.7 public), then serves HTTPS with
them. Needs root."""

from __future__ import annotations

import http.client
import json
import os
import socket
import ssl
import subprocess
import time
from pathlib import Path

import pytest
from cryptography import x509
from pyetcd.ops.certs import create_ca

from tests.integration.test_hostfacts import MakeNs, _ip, make_netns  # noqa: F401 (a fixture)
from tests.support.kit import clean_env, terminate
from tests.support.servers import PYETCD_BIN, REPO, free_port

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root")
HOST = socket.gethostname()


def _auto(ns: str, pki: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", "netns", "exec", ns, str(PYETCD_BIN), "certs", "member", "--auto",
                           "--dir", str(pki), *extra], capture_output=True, text=True, timeout=60, cwd=REPO,
                          env=clean_env())


def _sans(path: Path) -> list[str]:
    cert = x509.load_pem_x509_certificate(path.read_bytes())
    return [str(n.value) for n in cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value]


def test_auto_issues_for_this_host_removes_the_ca_key_and_serves_https(make_netns: MakeNs,  # noqa: F811
                                                                        tmp_path: Path) -> None:
    ns = make_netns()
    pki = tmp_path / "pki"
    ca = create_ca(pki)
    proc = _auto(ns, pki)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    server, peer = pki / f"{HOST}.crt", pki / f"{HOST}-peer.crt"
    for cert in (server, peer):
        assert _sans(cert) == [HOST, "10.0.0.5", "198.51.100.7", "127.0.0.1", "localhost"]
        assert f"wrote {cert} " in proc.stdout
    for key in (pki / f"{HOST}.key", pki / f"{HOST}-peer.key"):
        assert key.stat().st_mode & 0o777 == 0o600
    assert not ca.key.exists() and ca.cert.exists()
    assert proc.stdout.splitlines()[-1] == (
        f"removed the fleet CA key {ca.key}: this host can no longer issue certificates")

    # A reboot: the CA key is gone and the addresses are the same, so there is nothing to do.
    before = server.read_bytes()
    again = _auto(ns, pki)
    assert again.returncode == 0, again.stderr
    assert "nothing to do" in again.stdout and "wrote" not in again.stdout
    assert server.read_bytes() == before

    # The public address changed and the CA key is gone: exit 1, one line, nothing written.
    _ip("-n", ns, "addr", "del", "198.51.100.7/24", "dev", "d1")
    _ip("-n", ns, "addr", "add", "198.51.100.8/24", "dev", "d1")
    moved = _auto(ns, pki)
    assert moved.returncode == 1 and moved.stdout == ""
    assert len(moved.stderr.splitlines()) == 1 and "Traceback" not in moved.stderr
    assert "no longer fit it" in moved.stderr and "198.51.100.8" in moved.stderr
    assert f"the CA key {ca.key} is gone" in moved.stderr
    assert server.read_bytes() == before

    # A member serving HTTPS on 127.0.0.1 with the issued certificate; the client trusts only the CA.
    port = free_port()
    url = f"https://127.0.0.1:{port}"
    member = subprocess.Popen(
        [str(PYETCD_BIN), "--name", HOST, "--data-dir", str(tmp_path / "data"), "--listen-client-urls", url,
         "--advertise-client-urls", url, "--cert-file", str(server), "--key-file", str(pki / f"{HOST}.key"),
         "--trusted-ca-file", str(ca.cert)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, env=clean_env())
    try:
        ctx = ssl.create_default_context(cafile=str(ca.cert))
        for host in ("127.0.0.1", "localhost"):
            body = _get_version(host, port, ctx, member)
            assert "etcdserver" in body, body
    finally:
        terminate(member)


def _get_version(host: str, port: int, ctx: ssl.SSLContext, member: subprocess.Popen[bytes]) -> dict:
    deadline = time.monotonic() + 20
    while True:
        assert member.poll() is None, f"pyetcd exited with {member.returncode}"
        conn = http.client.HTTPSConnection(host, port, context=ctx, timeout=2)
        try:
            conn.request("GET", "/version")
            resp = conn.getresponse()
            assert resp.status == 200
            return json.loads(resp.read())
        except (ConnectionError, TimeoutError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
        finally:
            conn.close()


def test_keep_ca_key_name_and_extra_sans(make_netns: MakeNs, tmp_path: Path) -> None:  # noqa: F811
    ns = make_netns()
    pki = tmp_path / "pki"
    ca = create_ca(pki)
    proc = _auto(ns, pki, "--keep-ca-key", "--name", "n1", "--san", "n1.example.com")
    assert proc.returncode == 0, proc.stderr
    assert _sans(pki / "n1.crt") == [HOST, "10.0.0.5", "198.51.100.7", "127.0.0.1", "localhost",
                                     "n1.example.com"]
    assert ca.key.exists()
    assert "kept the fleet CA key" in proc.stdout and "removed" not in proc.stdout
    # Idempotent with the key kept too; without --keep-ca-key a later no-op run still removes it.
    again = _auto(ns, pki, "--keep-ca-key", "--name", "n1", "--san", "n1.example.com")
    assert again.returncode == 0 and "nothing to do" in again.stdout and ca.key.exists()
    last = _auto(ns, pki, "--name", "n1")
    assert last.returncode == 0, last.stderr
    assert "nothing to do" in last.stdout and "removed the fleet CA key" in last.stdout
    assert not ca.key.exists()


def test_no_private_address_exits_1_naming_the_interfaces(make_netns: MakeNs, tmp_path: Path) -> None:  # noqa: F811
    ns = make_netns(default_route=False)
    pki = tmp_path / "pki"
    ca = create_ca(pki)
    proc = _auto(ns, pki)
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.startswith("pyetcd certs: error: --auto needs this host's private IPv4: "
                                  "$private_ipv4: no IPv4 default route; interfaces: lo 127.0.0.1/8")
    assert "d1 198.51.100.7/24" in proc.stderr and len(proc.stderr.splitlines()) == 1
    assert ca.key.exists() and sorted(p.name for p in pki.iterdir()) == ["ca.crt", "ca.key"]


def test_no_ca_key_and_no_certificates_exits_1(make_netns: MakeNs, tmp_path: Path) -> None:  # noqa: F811
    pki = tmp_path / "pki"
    create_ca(pki).key.unlink()
    proc = _auto(make_netns(), pki)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("pyetcd certs: error: cannot read CA key ")
