"""`pyetcd certs`: real keys and certificates on tmp_path, read back with `cryptography` and `openssl`."""

from __future__ import annotations

import ipaddress
import os
import re
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from pyetcd.ops.certs import CertError, CertFiles, create_ca, issue, load_ca, main

SERVER_AUTH = ExtendedKeyUsageOID.SERVER_AUTH
CLIENT_AUTH = ExtendedKeyUsageOID.CLIENT_AUTH
OPENSSL = shutil.which("openssl")
needs_openssl = pytest.mark.skipif(OPENSSL is None, reason="openssl CLI not installed")


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> CertFiles:
    return create_ca(tmp_path_factory.mktemp("ca"))


@pytest.fixture(scope="module")
def other_ca(tmp_path_factory: pytest.TempPathFactory) -> CertFiles:
    return create_ca(tmp_path_factory.mktemp("other-ca"), common_name="someone else's CA")


def _cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def _ext(cert: x509.Certificate, cls: type) -> x509.Extension:
    return cert.extensions.get_extension_for_class(cls)


def _mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


# --- the CA ------------------------------------------------------------------------------------------


def test_ca_is_a_self_signed_ca_that_signs_leaves_only(ca: CertFiles) -> None:
    assert ca.cert.name == "ca.crt" and ca.key.name == "ca.key"
    cert = _cert(ca.cert)
    cert.verify_directly_issued_by(cert)
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "pyetcd CA"
    constraints = _ext(cert, x509.BasicConstraints)
    assert constraints.critical and constraints.value.ca and constraints.value.path_length == 0
    usage = _ext(cert, x509.KeyUsage)
    assert usage.critical and usage.value.key_cert_sign and usage.value.crl_sign
    assert not usage.value.digital_signature
    ski = _ext(cert, x509.SubjectKeyIdentifier).value
    assert ski == x509.SubjectKeyIdentifier.from_public_key(cert.public_key())
    assert cert.signature_hash_algorithm is not None and cert.signature_hash_algorithm.name == "sha256"
    assert cert.not_valid_after_utc - cert.not_valid_before_utc >= timedelta(days=3650)


def test_ca_key_is_unencrypted_pkcs8_p256_mode_0600_and_cert_0644(ca: CertFiles) -> None:
    pem = ca.key.read_bytes()
    assert pem.startswith(b"-----BEGIN PRIVATE KEY-----")  # PKCS8, not "EC PRIVATE KEY"
    key = serialization.load_pem_private_key(pem, password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp256r1"
    assert key.public_key() == _cert(ca.cert).public_key()
    assert _mode(ca.key) == 0o600
    assert _mode(ca.cert) == 0o644


def test_ca_name_cn_and_days(tmp_path: Path) -> None:
    files = create_ca(tmp_path, name="root", common_name="Fleet Root", days=30)
    assert files == CertFiles(tmp_path / "root.crt", tmp_path / "root.key")
    cert = _cert(files.cert)
    assert cert.subject.rfc4514_string() == "CN=Fleet Root"
    assert timedelta(days=30) <= cert.not_valid_after_utc - cert.not_valid_before_utc <= timedelta(days=30,
                                                                                                  minutes=6)


def test_missing_output_dir_is_created_private(tmp_path: Path) -> None:
    create_ca(tmp_path / "a" / "pki")
    assert _mode(tmp_path / "a" / "pki") == 0o700


def test_modes_do_not_depend_on_the_umask(tmp_path: Path, ca: CertFiles) -> None:
    old = os.umask(0)
    try:
        loose = issue(tmp_path, ca, "loose", "client")
    finally:
        os.umask(0o077)
    try:
        tight = issue(tmp_path, ca, "tight", "client")
    finally:
        os.umask(old)
    assert (_mode(loose.key), _mode(loose.cert)) == (0o600, 0o644)
    assert (_mode(tight.key), _mode(tight.cert)) == (0o600, 0o644)


# --- leaves ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("kind", "ekus"), [
    ("server", [SERVER_AUTH]),
    ("client", [CLIENT_AUTH]),
    ("peer", [SERVER_AUTH, CLIENT_AUTH]),
])
def test_leaf_fields_per_kind(tmp_path: Path, ca: CertFiles, kind: str, ekus: list[x509.ObjectIdentifier]) -> None:
    files = issue(tmp_path, ca, "n1", kind, ["127.0.0.1", "localhost", "::1", "n1.example.com"])
    cert, ca_cert = _cert(files.cert), _cert(ca.cert)
    cert.verify_directly_issued_by(ca_cert)
    assert cert.subject.rfc4514_string() == "CN=n1"
    assert cert.issuer == ca_cert.subject
    assert list(_ext(cert, x509.ExtendedKeyUsage).value) == ekus
    constraints = _ext(cert, x509.BasicConstraints)
    assert constraints.critical and not constraints.value.ca
    usage = _ext(cert, x509.KeyUsage)
    assert usage.critical and usage.value.digital_signature and not usage.value.key_cert_sign
    san = _ext(cert, x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1"),
                                                        ipaddress.ip_address("::1")]
    assert san.get_values_for_type(x509.DNSName) == ["localhost", "n1.example.com"]
    aki = _ext(cert, x509.AuthorityKeyIdentifier).value
    assert aki.key_identifier == _ext(ca_cert, x509.SubjectKeyIdentifier).value.digest
    assert _mode(files.key) == 0o600 and _mode(files.cert) == 0o644


def test_leaf_validity_is_backdated_a_little_and_lasts_days(tmp_path: Path, ca: CertFiles) -> None:
    before = datetime.now(UTC)
    cert = _cert(issue(tmp_path, ca, "n1", "server", ["localhost"], days=10).cert)
    skew = before - cert.not_valid_before_utc
    assert timedelta(minutes=4) <= skew <= timedelta(minutes=6)
    assert timedelta(days=10) - timedelta(seconds=5) <= cert.not_valid_after_utc - before <= timedelta(days=10,
                                                                                                       seconds=5)


def test_serials_are_random_and_distinct(tmp_path: Path, ca: CertFiles) -> None:
    serials = {_cert(issue(tmp_path, ca, f"c{i}", "client").cert).serial_number for i in range(3)}
    assert len(serials) == 3 and all(s.bit_length() > 64 for s in serials)


def test_common_name_override_and_no_sans(tmp_path: Path, ca: CertFiles) -> None:
    cert = _cert(issue(tmp_path, ca, "etcdctl", "client", common_name="root").cert)
    assert cert.subject.rfc4514_string() == "CN=root"
    with pytest.raises(x509.ExtensionNotFound):
        _ext(cert, x509.SubjectAlternativeName)


def test_duplicate_and_padded_sans_collapse(tmp_path: Path, ca: CertFiles) -> None:
    cert = _cert(issue(tmp_path, ca, "n1", "server", [" localhost", "localhost", "10.0.0.1", "10.0.0.1 "]).cert)
    assert [str(n.value) for n in _ext(cert, x509.SubjectAlternativeName).value] == ["localhost", "10.0.0.1"]


def test_expired_and_not_yet_valid_certificates(tmp_path: Path, ca: CertFiles) -> None:
    now = datetime.now(UTC)
    expired = _cert(issue(tmp_path, ca, "old", "server", ["localhost"], not_after=now - timedelta(days=1)).cert)
    assert expired.not_valid_after_utc < now
    assert expired.not_valid_before_utc < expired.not_valid_after_utc
    future = _cert(issue(tmp_path, ca, "new", "server", ["localhost"], not_before=now + timedelta(days=1),
                         days=2).cert)
    assert future.not_valid_before_utc > now
    assert future.not_valid_after_utc - future.not_valid_before_utc == timedelta(days=2)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"kind": "admin"}, "unknown certificate kind 'admin'"),
    ({"name": "../x"}, "plain file name"),
    ({"name": ""}, "plain file name"),
    ({"days": 0}, "days must be at least 1"),
    ({"sans": ["bad host"]}, "bad SAN 'bad host'"),
    ({"sans": ["10.0.0.256"]}, "bad SAN '10.0.0.256'"),
    ({"common_name": "x" * 65}, "bad common name"),
    ({"not_before": datetime(2030, 1, 1, tzinfo=UTC), "not_after": datetime(2029, 1, 1, tzinfo=UTC)},
     "is not before not_after"),
])
def test_bad_input_is_refused_before_anything_is_written(tmp_path: Path, ca: CertFiles, kwargs: dict,
                                                         message: str) -> None:
    args = {"name": "n1", "kind": "server", **kwargs}
    with pytest.raises(CertError, match=re.escape(message)):
        issue(tmp_path / "out", ca, **args)
    assert not (tmp_path / "out").exists()


def test_a_leaf_cannot_act_as_a_ca(tmp_path: Path, ca: CertFiles) -> None:
    leaf = issue(tmp_path, ca, "leaf", "server", ["localhost"])
    with pytest.raises(CertError, match="is not a CA certificate"):
        issue(tmp_path, leaf, "n2", "server")


def test_ca_key_must_match_and_be_readable(tmp_path: Path, ca: CertFiles, other_ca: CertFiles) -> None:
    with pytest.raises(CertError, match="does not belong to"):
        load_ca(CertFiles(ca.cert, other_ca.key))
    with pytest.raises(CertError, match="cannot read CA key .*No such file"):
        load_ca(CertFiles(ca.cert, tmp_path / "missing.key"))
    (tmp_path / "junk.crt").write_text("hello\n")
    with pytest.raises(CertError, match="is not a PEM certificate"):
        load_ca(CertFiles(tmp_path / "junk.crt", ca.key))
    key = serialization.load_pem_private_key(ca.key.read_bytes(), password=None)
    (tmp_path / "locked.key").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"secret")))
    with pytest.raises(CertError, match="is encrypted"):
        load_ca(CertFiles(ca.cert, tmp_path / "locked.key"))


def test_existing_files_are_kept_unless_forced(tmp_path: Path, ca: CertFiles) -> None:
    first = issue(tmp_path, ca, "n1", "server", ["localhost"])
    key_before, cert_before = first.key.read_bytes(), first.cert.read_bytes()
    with pytest.raises(CertError, match="already exists .*--force"):
        issue(tmp_path, ca, "n1", "server", ["localhost"])
    assert (first.key.read_bytes(), first.cert.read_bytes()) == (key_before, cert_before)
    again = issue(tmp_path, ca, "n1", "server", ["localhost"], force=True)
    assert again == first
    assert first.key.read_bytes() != key_before and first.cert.read_bytes() != cert_before
    assert _mode(first.key) == 0o600 and _mode(first.cert) == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["n1.crt", "n1.key"]  # no temporary files left


def test_a_lone_existing_key_blocks_the_pair(tmp_path: Path) -> None:
    (tmp_path / "ca.key").write_text("precious\n")
    with pytest.raises(CertError, match="ca.key already exists"):
        create_ca(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ca.key"]


# --- openssl agrees ----------------------------------------------------------------------------------


def _openssl_verify(ca: CertFiles, leaf: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    assert OPENSSL is not None
    return subprocess.run([OPENSSL, "verify", "-x509_strict", *extra, "-CAfile", str(ca.cert), str(leaf)],
                          capture_output=True, text=True, timeout=10)


@needs_openssl
def test_openssl_verifies_every_kind_against_its_ca_only(tmp_path: Path, ca: CertFiles,
                                                         other_ca: CertFiles) -> None:
    for kind, purpose in (("server", "sslserver"), ("client", "sslclient"), ("peer", "sslserver"),
                          ("peer", "sslclient")):
        leaf = issue(tmp_path, ca, f"{kind}-{purpose}", kind, ["127.0.0.1", "localhost"]).cert
        done = _openssl_verify(ca, leaf, "-purpose", purpose)
        assert done.returncode == 0 and done.stdout.strip().endswith(": OK"), done.stdout + done.stderr
        refused = _openssl_verify(other_ca, leaf)
        assert refused.returncode != 0
        assert "unable to get local issuer certificate" in refused.stdout + refused.stderr


@needs_openssl
def test_openssl_checks_the_purpose_and_expiry(tmp_path: Path, ca: CertFiles) -> None:
    client = issue(tmp_path, ca, "client", "client").cert
    assert _openssl_verify(ca, client, "-purpose", "sslserver").returncode != 0
    server = issue(tmp_path, ca, "server", "server", ["localhost"]).cert
    assert _openssl_verify(ca, server, "-purpose", "sslclient").returncode != 0
    old = issue(tmp_path, ca, "old", "server", ["localhost"], not_after=datetime.now(UTC) - timedelta(hours=1))
    done = _openssl_verify(ca, old.cert)
    assert done.returncode != 0 and "certificate has expired" in done.stdout + done.stderr


# --- the CLI -----------------------------------------------------------------------------------------


WROTE_CERT = re.compile(r"wrote (/\S+\.crt) \((\w+) certificate, valid until (\d{4}-\d\d-\d\d)(, SANs: .*)?\)")
WROTE_KEY = re.compile(r"wrote (/\S+\.key) \(private key, mode 0600\)")


def test_cli_ca_issue_member(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pki = tmp_path / "pki"
    assert main(["ca", "--dir", str(pki), "--cn", "Test CA", "--days", "100"]) == 0
    out = capsys.readouterr()
    lines = out.out.splitlines()
    assert out.err == "" and len(lines) == 2
    cert_line = WROTE_CERT.fullmatch(lines[0])
    assert cert_line and cert_line[1] == str(pki / "ca.crt") and cert_line[2] == "CA"
    assert cert_line[3] == f"{_cert(pki / 'ca.crt').not_valid_after_utc:%Y-%m-%d}"
    assert WROTE_KEY.fullmatch(lines[1]) and lines[1].startswith(f"wrote {pki / 'ca.key'} ")
    assert _cert(pki / "ca.crt").subject.rfc4514_string() == "CN=Test CA"

    assert main(["issue", "--dir", str(pki), "--kind", "client", "--name", "etcdctl", "--cn", "root"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [WROTE_CERT.fullmatch(lines[0])[2], bool(WROTE_KEY.fullmatch(lines[1]))] == ["client", True]
    assert _cert(pki / "etcdctl.crt").subject.rfc4514_string() == "CN=root"

    assert main(["member", "--dir", str(pki), "--name", "n1", "--san", "127.0.0.1,localhost", "--san", "::1"]) == 0
    out = capsys.readouterr()
    lines = out.out.splitlines()
    assert out.err == "" and len(lines) == 4
    assert lines[0].endswith(", SANs: 127.0.0.1 localhost ::1)")
    assert [m[1] for m in map(WROTE_CERT.fullmatch, lines[0::2]) if m] == [str(pki / "n1.crt"),
                                                                         str(pki / "n1-peer.crt")]
    server, peer = _cert(pki / "n1.crt"), _cert(pki / "n1-peer.crt")
    assert list(_ext(server, x509.ExtendedKeyUsage).value) == [SERVER_AUTH]
    assert list(_ext(peer, x509.ExtendedKeyUsage).value) == [SERVER_AUTH, CLIENT_AUTH]
    assert server.subject == peer.subject
    assert _ext(server, x509.SubjectAlternativeName).value == _ext(peer, x509.SubjectAlternativeName).value


def test_cli_explicit_ca_paths(tmp_path: Path, ca: CertFiles, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["issue", "--dir", str(tmp_path), "--kind", "server", "--name", "s", "--san", "localhost"]
    assert main([*args, "--ca", str(ca.cert)]) == 0  # --ca-key defaults to the --ca path with .key
    _cert(tmp_path / "s.crt").verify_directly_issued_by(_cert(ca.cert))
    assert main([*args, "--name", "t", "--ca", str(ca.cert), "--ca-key", str(ca.key)]) == 0
    capsys.readouterr()


@pytest.mark.parametrize(("argv", "message"), [
    ([], "the following arguments are required"),
    (["bogus"], "invalid choice: 'bogus'"),
    (["issue", "--dir", "D", "--kind", "admin", "--name", "x"], "invalid choice: 'admin'"),
    (["issue", "--dir", "D", "--kind", "server"], "the following arguments are required: --name"),
    (["ca", "--dir", "D", "--days", "0"], "argument --days: must be at least 1"),
    (["ca", "--dir", "D", "--days", "ten"], "argument --days: not a whole number"),
    (["issue", "--dir", "D", "--kind", "server", "--name", "x"], "cannot read CA certificate"),
    (["issue", "--dir", "D", "--kind", "server", "--name", "x", "--san", "a b"], "bad SAN 'a b'"),
    (["ca", "--dir", "D", "--name", "a/b"], "plain file name"),
])
def test_cli_bad_input_is_one_line_and_status_1(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                 argv: list[str], message: str) -> None:
    argv = [str(tmp_path / "D") if a == "D" else a for a in argv]
    assert main(argv) == 1
    out = capsys.readouterr()
    assert out.out == ""
    assert out.err.startswith("pyetcd certs: error: ") and out.err.count("\n") == 1
    assert message in out.err


def test_cli_refuses_to_overwrite_unless_forced(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ca", "--dir", str(tmp_path)]) == 0
    key = (tmp_path / "ca.key").read_bytes()
    assert main(["ca", "--dir", str(tmp_path)]) == 1
    assert capsys.readouterr().err == f"pyetcd certs: error: {tmp_path / 'ca.crt'} already exists (use --force to replace it)\n"
    assert (tmp_path / "ca.key").read_bytes() == key
    assert main(["ca", "--dir", str(tmp_path), "--force"]) == 0
    assert (tmp_path / "ca.key").read_bytes() != key


def test_cli_member_writes_nothing_if_any_of_its_files_exists(tmp_path: Path, ca: CertFiles,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "n1-peer.key").write_text("keep me\n")
    argv = ["member", "--dir", str(tmp_path), "--name", "n1", "--san", "localhost", "--ca", str(ca.cert)]
    assert main(argv) == 1
    assert "n1-peer.key already exists" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["n1-peer.key"]


def test_cli_member_needs_a_name_without_auto(tmp_path: Path, ca: CertFiles,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["member", "--dir", str(tmp_path), "--san", "localhost", "--ca", str(ca.cert)]) == 1
    assert capsys.readouterr().err == ("pyetcd certs: error: the following arguments are required: --name "
                                       "(or use --auto)\n")
    assert main(["member", "--dir", str(tmp_path), "--name", "n1", "--keep-ca-key", "--ca", str(ca.cert)]) == 1
    assert capsys.readouterr().err == "pyetcd certs: error: --keep-ca-key and --advertise-interface go with --auto\n"
    assert list(tmp_path.iterdir()) == []


def test_cli_warns_about_a_server_cert_without_sans(tmp_path: Path, ca: CertFiles,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["issue", "--dir", str(tmp_path), "--kind", "peer", "--name", "p", "--ca", str(ca.cert)]) == 0
    err = capsys.readouterr().err
    assert err.startswith("pyetcd certs: warning: peer certificate without --san")


def test_cli_help_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    assert capsys.readouterr().out.startswith("usage: pyetcd certs ")
    assert main(["issue", "--help"]) == 0
    assert "--kind {server,client,peer}" in capsys.readouterr().out


RUN_MAIN = "import sys; from pyetcd.ops.certs import main; sys.exit(main(sys.argv[1:]))"


def _run(tmp_path: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", RUN_MAIN, *argv], cwd=tmp_path, capture_output=True,
                          text=True, timeout=30)


def test_cli_in_a_subprocess(tmp_path: Path) -> None:
    done = _run(tmp_path, "ca", "--dir", "pki")  # a relative --dir is reported as an absolute path
    assert done.returncode == 0 and done.stderr == ""
    lines = done.stdout.splitlines()
    assert len(lines) == 2
    assert WROTE_CERT.fullmatch(lines[0])[1] == str(tmp_path / "pki" / "ca.crt")
    assert WROTE_KEY.fullmatch(lines[1])[1] == str(tmp_path / "pki" / "ca.key")

    done = _run(tmp_path, "issue", "--dir", "pki", "--kind", "nope", "--name", "x")
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.startswith("pyetcd certs: error: argument --kind: invalid choice: 'nope'")
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr

    done = _run(tmp_path, "issue", "--dir", "elsewhere", "--kind", "server", "--name", "x")
    assert done.returncode == 1
    assert done.stderr == ("pyetcd certs: error: cannot read CA certificate elsewhere/ca.crt: "
                           "No such file or directory\n")
