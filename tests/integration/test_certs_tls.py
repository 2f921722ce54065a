"""Certificates from `pyetcd certs` in real TLS handshakes: Python's `ssl` on both ends of a loopback pair.

Both contexts are as strict as a member's: TLS 1.2+, the server requires a client certificate, the client
checks the server's host name, and both set VERIFY_X509_STRICT (the default from Python 3.13 on)."""

from __future__ import annotations

import socket
import ssl
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pyetcd.ops.certs import CertFiles, create_ca, issue

SANS = ["127.0.0.1", "::1", "localhost"]
VERSIONS = [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3]


@dataclass(frozen=True)
class Pki:
    ca: CertFiles
    certs: dict[str, CertFiles]


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    d: Path = tmp_path_factory.mktemp("pki")
    ca = create_ca(d)
    other_ca = create_ca(d, name="other-ca", common_name="someone else's CA")
    expired = datetime.now(UTC) - timedelta(hours=1)
    certs = {
        "n1-peer": issue(d, ca, "n1-peer", "peer", SANS, common_name="n1"),
        "n2-peer": issue(d, ca, "n2-peer", "peer", SANS, common_name="n2"),
        "server": issue(d, ca, "server", "server", SANS),
        "client": issue(d, ca, "client", "client", common_name="root"),
        "client-with-sans": issue(d, ca, "client-with-sans", "client", SANS),
        "foreign-server": issue(d, other_ca, "foreign-server", "server", SANS),
        "foreign-client": issue(d, other_ca, "foreign-client", "client"),
        "expired-server": issue(d, ca, "expired-server", "server", SANS, not_after=expired),
        "expired-client": issue(d, ca, "expired-client", "client", not_after=expired),
    }
    return Pki(ca, certs)


def _server_context(pki: Pki, cert: str) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.verify_flags |= ssl.VERIFY_X509_STRICT
    ctx.load_verify_locations(pki.ca.cert)
    ctx.load_cert_chain(pki.certs[cert].cert, pki.certs[cert].key)
    return ctx


def _client_context(pki: Pki, cert: str | None, version: ssl.TLSVersion) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # check_hostname and CERT_REQUIRED are its defaults
    assert ctx.check_hostname and ctx.verify_mode == ssl.CERT_REQUIRED
    ctx.minimum_version = ctx.maximum_version = version
    ctx.verify_flags |= ssl.VERIFY_X509_STRICT
    ctx.load_verify_locations(pki.ca.cert)
    if cert is not None:
        ctx.load_cert_chain(pki.certs[cert].cert, pki.certs[cert].key)
    return ctx


@dataclass
class Outcome:
    server_error: BaseException | None = None
    client_error: BaseException | None = None
    version: str | None = None
    server_saw: dict | None = None  # the client's certificate, as the server saw it
    client_saw: dict | None = None

    @property
    def ok(self) -> bool:
        return self.server_error is None and self.client_error is None


def _handshake(server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext, hostname: str) -> Outcome:
    """Handshake, then one message each way: with TLS 1.3 the server judges the client's certificate only
    after the client has finished its handshake, so only a round trip shows that both sides agreed."""
    out = Outcome()
    server_sock, client_sock = socket.socketpair()
    for sock in (server_sock, client_sock):
        sock.settimeout(5)

    def serve() -> None:
        try:
            with server_ctx.wrap_socket(server_sock, server_side=True) as tls:
                out.server_saw = tls.getpeercert()
                tls.sendall(b"ping")
                assert tls.recv(4) == b"pong"
        except BaseException as e:  # handed to the test thread
            out.server_error = e
        finally:
            server_sock.close()

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        with client_ctx.wrap_socket(client_sock, server_hostname=hostname) as tls:
            out.version = tls.version()
            out.client_saw = tls.getpeercert()
            assert tls.recv(4) == b"ping"
            tls.sendall(b"pong")
    except BaseException as e:
        out.client_error = e
    finally:
        client_sock.close()
    thread.join(10)
    assert not thread.is_alive()
    return out


def _cn(seen: dict | None) -> str:
    assert seen is not None
    return dict(rdn[0] for rdn in seen["subject"])["commonName"]


def _verify_failure(exc: BaseException | None, reason: str) -> None:
    assert isinstance(exc, ssl.SSLCertVerificationError), repr(exc)
    assert reason in exc.verify_message, exc.verify_message


@pytest.mark.parametrize("version", VERSIONS, ids=lambda v: v.name)
@pytest.mark.parametrize("hostname", ["127.0.0.1", "::1", "localhost"])
def test_peers_handshake_mutually(pki: Pki, hostname: str, version: ssl.TLSVersion) -> None:
    out = _handshake(_server_context(pki, "n1-peer"), _client_context(pki, "n2-peer", version), hostname)
    assert out.ok, (out.server_error, out.client_error)
    assert out.version == {ssl.TLSVersion.TLSv1_2: "TLSv1.2", ssl.TLSVersion.TLSv1_3: "TLSv1.3"}[version]
    assert _cn(out.client_saw) == "n1" and _cn(out.server_saw) == "n2"


@pytest.mark.parametrize("version", VERSIONS, ids=lambda v: v.name)
def test_client_cert_against_server_cert(pki: Pki, version: ssl.TLSVersion) -> None:
    out = _handshake(_server_context(pki, "server"), _client_context(pki, "client", version), "localhost")
    assert out.ok, (out.server_error, out.client_error)
    assert _cn(out.client_saw) == "server" and _cn(out.server_saw) == "root"


def test_a_name_outside_the_sans_is_refused(pki: Pki) -> None:
    out = _handshake(_server_context(pki, "server"), _client_context(pki, "client", VERSIONS[-1]),
                     "n9.example.com")
    _verify_failure(out.client_error, "Hostname mismatch")
    assert out.server_error is not None
    out = _handshake(_server_context(pki, "server"), _client_context(pki, "client", VERSIONS[-1]), "10.9.9.9")
    _verify_failure(out.client_error, "IP address mismatch")


@pytest.mark.parametrize("version", VERSIONS, ids=lambda v: v.name)
def test_a_server_from_another_ca_is_refused(pki: Pki, version: ssl.TLSVersion) -> None:
    out = _handshake(_server_context(pki, "foreign-server"), _client_context(pki, "client", version),
                     "127.0.0.1")
    _verify_failure(out.client_error, "unable to get local issuer certificate")
    assert out.server_error is not None


@pytest.mark.parametrize("version", VERSIONS, ids=lambda v: v.name)
def test_a_client_from_another_ca_is_refused(pki: Pki, version: ssl.TLSVersion) -> None:
    out = _handshake(_server_context(pki, "server"), _client_context(pki, "foreign-client", version),
                     "127.0.0.1")
    _verify_failure(out.server_error, "unable to get local issuer certificate")
    assert out.client_error is not None


@pytest.mark.parametrize("version", VERSIONS, ids=lambda v: v.name)
def test_expired_certificates_are_refused(pki: Pki, version: ssl.TLSVersion) -> None:
    out = _handshake(_server_context(pki, "expired-server"), _client_context(pki, "client", version),
                     "localhost")
    _verify_failure(out.client_error, "certificate has expired")
    out = _handshake(_server_context(pki, "server"), _client_context(pki, "expired-client", version),
                     "localhost")
    _verify_failure(out.server_error, "certificate has expired")
    assert out.client_error is not None


def test_a_client_without_a_certificate_is_refused(pki: Pki) -> None:
    out = _handshake(_server_context(pki, "server"), _client_context(pki, None, VERSIONS[-1]), "localhost")
    assert isinstance(out.server_error, ssl.SSLError), repr(out.server_error)
    assert "PEER_DID_NOT_RETURN_A_CERTIFICATE" in str(out.server_error)
    assert out.client_error is not None


def test_the_extended_key_usage_is_enforced(pki: Pki) -> None:
    # A client certificate cannot serve (even with the right SANs); a server one cannot authenticate a client.
    out = _handshake(_server_context(pki, "client-with-sans"), _client_context(pki, "client", VERSIONS[-1]),
                     "localhost")
    _verify_failure(out.client_error, "unsuitable certificate purpose")
    out = _handshake(_server_context(pki, "server"), _client_context(pki, "server", VERSIONS[-1]), "localhost")
    _verify_failure(out.server_error, "unsuitable certificate purpose")
