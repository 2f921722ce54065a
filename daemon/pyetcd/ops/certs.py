"""`pyetcd certs`: a small CA and the TLS certificates members and clients need, built with `cryptography`.

Theory of operation: `create_ca` makes a self-signed CA (path length 0: it signs leaves only); `issue`
signs one leaf of a kind -- "server" (client-facing HTTPS), "client" (etcdctl and friends) or "peer"
(member to member, which is TLS server and client at once, hence both EKUs). Every key is a fresh EC P-256
key (cheap on slow CPUs; Go, etcd and OpenSSL all take ECDSA), written as unencrypted PKCS8 PEM.

Files: a key file is created 0600 by `os.open` itself, so no moment exists where it is readable by others;
certificates are 0644. Existing files are refused unless `force`, which writes a temporary file and renames
it over the old one (a reader never sees half a key). All checks on the inputs run before any file is
written, so a refused run leaves the directory as it was.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import re
import secrets
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

if TYPE_CHECKING:  # the name exists from cryptography 40; bookworm has 38
    from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes

KEY_MODE = 0o600
CERT_MODE = 0o644
DIR_MODE = 0o700  # a directory we create holds private keys
# Backdating not_before lets a member whose clock runs a little behind accept a fresh certificate.
CLOCK_SKEW = timedelta(minutes=5)

KINDS: dict[str, tuple[x509.ObjectIdentifier, ...]] = {
    "server": (ExtendedKeyUsageOID.SERVER_AUTH,),
    "client": (ExtendedKeyUsageOID.CLIENT_AUTH,),
    "peer": (ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH),
}

# One DNS label (underscores allowed: some internal names use them); a leading "*." wildcard is allowed.
_LABEL = r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"
_DNS_NAME = re.compile(rf"(?:\*\.)?{_LABEL}(?:\.{_LABEL})*")


class CertError(ValueError):
    """Bad input or an unusable CA/file; the message is one line meant for the operator."""


@dataclass(frozen=True)
class CertFiles:
    cert: Path
    key: Path


def create_ca(out_dir: Path, name: str = "ca", common_name: str = "pyetcd CA", days: int = 3650,
              *, force: bool = False) -> CertFiles:
    """Write a self-signed CA as out_dir/<name>.crt and out_dir/<name>.key."""
    files = _target(out_dir, name)
    not_before, not_after = _validity(days, None, None)
    subject = _name(common_name)
    _refuse_existing([files.cert, files.key], force)
    key = ec.generate_private_key(ec.SECP256R1())
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        _base(subject, subject, key.public_key(), not_before, not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(key_cert_sign=True, crl_sign=True), critical=True)
        .add_extension(ski, critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False)
        .sign(key, hashes.SHA256())
    )
    _write_pair(files, cert, key, force)
    return files


def issue(out_dir: Path, ca: CertFiles, name: str, kind: str, sans: Sequence[str] = (),
          common_name: str | None = None, days: int = 365,
          not_before: datetime | None = None, not_after: datetime | None = None,
          *, force: bool = False) -> CertFiles:
    """Sign a leaf of `kind` with `ca`, written as out_dir/<name>.crt and out_dir/<name>.key.

    Each SAN that parses as an IPv4/IPv6 address becomes an IP SAN, anything else a DNS SAN. Validity is
    now-5min .. now+days. `not_before`/`not_after` pin either end, so tests can make expired or
    not-yet-valid certificates: with only not_before, not_after is `days` later; with only not_after,
    not_before is `days` earlier or now-5min, whichever comes first.
    """
    if kind not in KINDS:
        raise CertError(f"unknown certificate kind {kind!r} (choose from {', '.join(KINDS)})")
    files = _target(out_dir, name)
    start, end = _validity(days, not_before, not_after)
    subject = _name(name if common_name is None else common_name)
    names = _sans(sans)
    ca_cert, ca_key = load_ca(ca)
    _refuse_existing([files.cert, files.key], force)
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (
        _base(subject, ca_cert.subject, key.public_key(), start, end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(digital_signature=True), critical=True)
        .add_extension(x509.ExtendedKeyUsage(list(KINDS[kind])), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(_authority_key_id(ca_cert), critical=False)
    )
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    cert = builder.sign(ca_key, _signing_hash(ca_key))
    _write_pair(files, cert, key, force)
    return files


def load_ca(ca: CertFiles) -> tuple[x509.Certificate, CertificateIssuerPrivateKeyTypes]:
    """Read a CA certificate and its key, checking that it may sign and that the two belong together."""
    cert_pem = _read(ca.cert, "CA certificate")
    key_pem = _read(ca.key, "CA key")
    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
    except ValueError:
        raise CertError(f"{ca.cert} is not a PEM certificate") from None
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except TypeError:  # cryptography's way of saying "encrypted, and no password given"
        raise CertError(f"{ca.key} is encrypted; pyetcd certs needs an unencrypted CA key") from None
    except ValueError:
        raise CertError(f"{ca.key} is not a PEM private key") from None
    try:
        constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        constraints = None
    if constraints is None or not constraints.ca:
        raise CertError(f"{ca.cert} is not a CA certificate (no basicConstraints CA:TRUE)")
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
                      | ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey):
        raise CertError(f"{ca.key}: unsupported key type {type(key).__name__}")
    if _spki(key.public_key()) != _spki(cert.public_key()):
        raise CertError(f"{ca.key} does not belong to {ca.cert}")
    if _not_after(cert) <= datetime.now(UTC):
        raise CertError(f"{ca.cert} expired on {_not_after(cert):%Y-%m-%d}")
    return cert, key


# --- building blocks ---------------------------------------------------------------------------------


def _target(out_dir: Path, name: str) -> CertFiles:
    # The name becomes a file name: a path in it would write outside out_dir.
    if not name or name in (".", "..") or "/" in name or "\0" in name:
        raise CertError(f"bad name {name!r}: it must be a plain file name")
    return CertFiles(cert=out_dir / f"{name}.crt", key=out_dir / f"{name}.key")


def _not_after(cert: x509.Certificate) -> datetime:
    """Expiry as an aware datetime on cryptography 42+ and on Debian bookworm's 38."""
    aware = getattr(cert, "not_valid_after_utc", None)
    return aware if aware is not None else cert.not_valid_after.replace(tzinfo=UTC)


def _utc(when: datetime) -> datetime:
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def _validity(days: int, not_before: datetime | None, not_after: datetime | None) -> tuple[datetime, datetime]:
    if days < 1:
        raise CertError(f"days must be at least 1, not {days}")
    now = datetime.now(UTC)
    span = timedelta(days=days)
    if not_before is not None:
        start = _utc(not_before)
        end = _utc(not_after) if not_after is not None else start + span
    elif not_after is not None:
        end = _utc(not_after)
        start = min(now - CLOCK_SKEW, end - span)
    else:
        start, end = now - CLOCK_SKEW, now + span
    if start >= end:
        raise CertError(f"not_before {start:%Y-%m-%d %H:%M} is not before not_after {end:%Y-%m-%d %H:%M}")
    return start, end


def _name(common_name: str) -> x509.Name:
    if not common_name:
        raise CertError("the common name may not be empty")
    try:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    except ValueError as e:  # e.g. longer than the 64 characters X.509 allows
        raise CertError(f"bad common name {common_name!r}: {e}") from None


def _sans(entries: Sequence[str]) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = []
    for raw in entries:
        entry = raw.strip()
        name = _san(entry)
        if name not in names:
            names.append(name)
    return names


def _san(entry: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(entry))
    except ValueError:
        pass
    # "10.0.0.300" would pass as a DNS name and then never match anything; say so instead.
    if entry.replace(".", "").isdigit() or not _DNS_NAME.fullmatch(entry) or len(entry) > 253:
        raise CertError(f"bad SAN {entry!r}: neither an IP address nor a DNS name")
    return x509.DNSName(entry)


def _key_usage(digital_signature: bool = False, key_cert_sign: bool = False,
               crl_sign: bool = False) -> x509.KeyUsage:
    return x509.KeyUsage(digital_signature=digital_signature, content_commitment=False,
                         key_encipherment=False, data_encipherment=False, key_agreement=False,
                         key_cert_sign=key_cert_sign, crl_sign=crl_sign, encipher_only=False,
                         decipher_only=False)


def _base(subject: x509.Name, issuer: x509.Name, public_key: ec.EllipticCurvePublicKey,
          not_before: datetime, not_after: datetime) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
    )


def _authority_key_id(ca_cert: x509.Certificate) -> x509.AuthorityKeyIdentifier:
    # Reuse the CA's own SKI when it has one: chain builders match AKI against it byte for byte.
    try:
        ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    except x509.ExtensionNotFound:
        return x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_cert.public_key())  # type: ignore[arg-type]
    return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)


def _signing_hash(key: CertificateIssuerPrivateKeyTypes) -> hashes.SHA256 | None:
    # EdDSA signs the message itself; cryptography wants no separate hash for it.
    return None if isinstance(key, ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey) else hashes.SHA256()


def _spki(public_key: object) -> bytes:
    return public_key.public_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


# --- files -------------------------------------------------------------------------------------------


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise CertError(f"cannot read {what} {path}: {e.strerror or e}") from None


def _refuse_existing(paths: Sequence[Path], force: bool) -> None:
    if force:
        return
    for path in paths:
        if os.path.lexists(path):
            raise CertError(f"{path} already exists (use --force to replace it)")


def _prepare_dir(out_dir: Path) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise CertError(f"{out_dir} is not a directory")
    out_dir.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)


def _write_pair(files: CertFiles, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey,
                force: bool) -> None:
    _prepare_dir(files.cert.parent)
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    _write_file(files.key, key_pem, KEY_MODE, force)
    _write_file(files.cert, cert.public_bytes(serialization.Encoding.PEM), CERT_MODE, force)


def _write_file(path: Path, data: bytes, mode: int, force: bool) -> None:
    """Create `path` with `mode` from the first byte on; with `force`, rename a fresh file over it."""
    target = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp") if force else path
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
    try:
        fd = os.open(target, flags, mode)
    except FileExistsError:
        raise CertError(f"{path} already exists (use --force to replace it)") from None
    try:
        # The umask may have narrowed the mode (a cert to 0600, say); set it exactly while still empty.
        os.fchmod(fd, mode)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        os.unlink(target)
        raise
    os.close(fd)
    if force:
        os.replace(target, path)


# --- CLI ---------------------------------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # One line and exit status 1, like every other failure here (argparse would print usage, exit 2).
        raise CertError(f"{message} (see `{self.prog} --help`)")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _parser() -> _Parser:
    parser = _Parser(prog="pyetcd certs",
                     description="Create a CA and the TLS certificates pyetcd members and clients use.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="{ca,issue,member}")

    ca = sub.add_parser("ca", help="create a CA (DIR/NAME.crt, DIR/NAME.key)",
                        description="Create a self-signed CA that signs leaf certificates only.")
    ca.add_argument("--dir", type=Path, required=True, help="output directory (created 0700 if missing)")
    ca.add_argument("--name", default="ca", help="file name stem (default: ca)")
    ca.add_argument("--cn", default="pyetcd CA", help="common name (default: pyetcd CA)")
    ca.add_argument("--days", type=_positive_int, default=3650, help="validity in days (default: 3650)")
    ca.add_argument("--force", action="store_true", help="replace existing files")
    ca.set_defaults(run=_run_ca)

    issue_p = sub.add_parser("issue", help="issue one server, peer or client certificate",
                             description="Issue a certificate signed by the CA. server: serverAuth "
                             "(client-facing HTTPS); client: clientAuth; peer: both (member to member).")
    _leaf_args(issue_p, with_kind=True)
    issue_p.set_defaults(run=_run_issue)

    member = sub.add_parser("member", help="issue a member's server (NAME.crt) and peer (NAME-peer.crt) certs",
                            description="Issue both certificates a member needs: NAME.crt (server, for "
                            "--cert-file) and NAME-peer.crt (peer, for --peer-cert-file), same SANs. With "
                            "--auto the host issues its own at first boot: SANs from its host name and "
                            "addresses, then the CA key is removed from the host.")
    _leaf_args(member, with_kind=False, name_required=False)
    member.add_argument("--auto", action="store_true",
                        help="SANs = host name, private IPv4 (required), public IPv4 (if any), 127.0.0.1 "
                        "and localhost, plus any --san; --name defaults to the host name; nothing to do "
                        "if this host's certificates exist and fit its addresses; the CA key is removed "
                        "after issuing")
    member.add_argument("--keep-ca-key", action="store_true", help="with --auto: do not remove the CA key")
    member.add_argument("--advertise-interface", default="", metavar="IFACE",
                        help="with --auto: take the private IPv4 from this interface instead of the one "
                        "holding the default route")
    member.set_defaults(run=_run_member)
    return parser


def _leaf_args(p: argparse.ArgumentParser, with_kind: bool, days: int = 365, name_required: bool = True) -> None:
    p.add_argument("--dir", type=Path, required=True, help="output directory (created 0700 if missing)")
    if with_kind:
        p.add_argument("--kind", choices=list(KINDS), required=True, help="certificate kind")
    p.add_argument("--name", required=name_required,
                   help="file name stem, and the default common name" + ("" if name_required else
                                                                        " (required unless --auto)"))
    p.add_argument("--san", action="append", default=[], metavar="HOST[,HOST...]",
                   help="subject alternative names, comma-separated or repeated; IP addresses become "
                   "IP SANs, anything else DNS SANs")
    if with_kind:
        p.add_argument("--cn", help="common name (default: --name)")
    p.add_argument("--ca", type=Path, metavar="CRT", help="CA certificate (default: DIR/ca.crt)")
    p.add_argument("--ca-key", type=Path, metavar="KEY", help="CA key (default: the --ca path with .key)")
    p.add_argument("--days", type=_positive_int, default=days, help=f"validity in days (default: {days})")
    p.add_argument("--force", action="store_true", help="replace existing files")


def _ca_files(args: argparse.Namespace) -> CertFiles:
    cert = args.ca if args.ca is not None else args.dir / "ca.crt"
    return CertFiles(cert=cert, key=args.ca_key if args.ca_key is not None else cert.with_suffix(".key"))


def _san_list(args: argparse.Namespace) -> list[str]:
    return [s.strip() for group in args.san for s in group.split(",") if s.strip()]


def _warn_no_sans(kind: str, sans: list[str]) -> None:
    if kind != "client" and not sans:
        print(f"pyetcd certs: warning: {kind} certificate without --san; TLS clients that check the host "
              "name (Go, Python, curl) will reject it", file=sys.stderr)


def _report(files: CertFiles, what: str) -> None:
    cert = x509.load_pem_x509_certificate(files.cert.read_bytes())
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = [str(n.value) for n in san]
    except x509.ExtensionNotFound:
        names = []
    sans = f", SANs: {' '.join(names)}" if names else ""
    print(f"wrote {files.cert.absolute()} ({what} certificate, valid until {_not_after(cert):%Y-%m-%d}{sans})")
    mode = files.key.stat().st_mode & 0o777
    print(f"wrote {files.key.absolute()} (private key, mode {mode:04o})")


def _run_ca(args: argparse.Namespace) -> None:
    _report(create_ca(args.dir, args.name, args.cn, args.days, force=args.force), "CA")


def _run_issue(args: argparse.Namespace) -> None:
    sans = _san_list(args)
    files = issue(args.dir, _ca_files(args), args.name, args.kind, sans, common_name=args.cn,
                  days=args.days, force=args.force)
    _report(files, args.kind)
    _warn_no_sans(args.kind, sans)


def _run_member(args: argparse.Namespace) -> None:
    if args.auto:
        _run_member_auto(args)
        return
    if args.keep_ca_key or args.advertise_interface:
        raise CertError("--keep-ca-key and --advertise-interface go with --auto")
    if not args.name:
        raise CertError("the following arguments are required: --name (or use --auto)")
    sans = _san_list(args)
    ca = _ca_files(args)
    server, peer = _target(args.dir, args.name), _target(args.dir, f"{args.name}-peer")
    # Check everything before writing anything, so a refusal never leaves half a member behind.
    _sans(sans)
    load_ca(ca)
    _refuse_existing([server.cert, server.key, peer.cert, peer.key], args.force)
    for stem, kind in ((args.name, "server"), (f"{args.name}-peer", "peer")):
        files = issue(args.dir, ca, stem, kind, sans, common_name=args.name, days=args.days, force=args.force)
        _report(files, kind)
    _warn_no_sans("server", sans)


# --- member --auto: a host issues its own certificates at first boot -----------------------------------


def _host_sans(interface: str) -> tuple[str, list[str]]:
    """(host name, SANs): host name, private IPv4, public IPv4 if any, 127.0.0.1, localhost."""
    from pyetcd.ops.hostfacts import Facts, HostFactsError

    facts = Facts(interface)
    hostname = facts.get("hostname")
    try:
        private = facts.get("private_ipv4")
    except HostFactsError as e:
        raise CertError(f"--auto needs this host's private IPv4: {e}") from None
    try:
        public: str | None = facts.get("public_ipv4")
    except HostFactsError:
        public = None
    return hostname, [hostname, private, *([public] if public else []), "127.0.0.1", "localhost"]


def _fits(files: CertFiles, ca_cert: Path, wanted: list[x509.GeneralName]) -> str:
    """Why this existing certificate does not fit ("" if it does): unreadable, key not its own, expired,
    not from the CA in ca_cert, or missing one of the wanted SANs."""
    try:
        cert = x509.load_pem_x509_certificate(files.cert.read_bytes())
        key = serialization.load_pem_private_key(files.key.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as e:
        return f"{files.cert} or its key cannot be read ({e})"
    if _spki(key.public_key()) != _spki(cert.public_key()):
        return f"{files.key} does not belong to {files.cert}"
    if _not_after(cert) <= datetime.now(UTC) + timedelta(days=1):
        return f"{files.cert} expires on {_not_after(cert):%Y-%m-%d}"
    try:
        ca = x509.load_pem_x509_certificate(ca_cert.read_bytes())
    except (OSError, ValueError):
        ca = None
    if ca is not None:
        verify = getattr(cert, "verify_directly_issued_by", None)  # cryptography 40+
        try:
            if cert.issuer != ca.subject:
                raise ValueError
            if verify is not None:
                verify(ca)
        except (ValueError, TypeError, InvalidSignature):
            return f"{files.cert} was not issued by {ca_cert}"
    try:
        have = list(cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value)
    except x509.ExtensionNotFound:
        have = []
    missing = [str(n.value) for n in wanted if n not in have]
    if missing:
        return (f"{files.cert} is for {' '.join(str(n.value) for n in have) or 'no SANs'}, "
                f"not for {' '.join(missing)}")
    return ""


def _remove_ca_key(path: Path) -> None:
    # Overwriting first buys nothing on journaling/CoW file systems and SSDs; unlink and make it durable.
    os.unlink(path)
    fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    print(f"removed the fleet CA key {path.absolute()}: this host can no longer issue certificates")


def _run_member_auto(args: argparse.Namespace) -> None:
    hostname, sans = _host_sans(args.advertise_interface)
    sans += [s for s in _san_list(args) if s not in sans]
    name = args.name or hostname
    ca = _ca_files(args)
    server, peer = _target(args.dir, name), _target(args.dir, f"{name}-peer")
    wanted = _sans(sans)
    paths = [server.cert, server.key, peer.cert, peer.key]
    if not args.force and all(os.path.lexists(p) for p in paths):
        why = _fits(server, ca.cert, wanted) or _fits(peer, ca.cert, wanted)
        if not why:
            print(f"{server.cert.absolute()} and {peer.cert.absolute()} already fit this host "
                  f"({' '.join(sans)}): nothing to do")
            if os.path.lexists(ca.key) and not args.keep_ca_key:
                _remove_ca_key(ca.key)  # a run that stopped between issuing and removing it
            return
        if not os.path.lexists(ca.key):
            raise CertError(f"this host's certificates no longer fit it ({why}) and the CA key {ca.key} is "
                            "gone: issue new ones elsewhere with `pyetcd certs member` and copy them here")
        raise CertError(f"this host's certificates no longer fit it ({why}); use --force to replace them")
    load_ca(ca)
    _refuse_existing(paths, args.force)
    for stem, kind in ((name, "server"), (f"{name}-peer", "peer")):
        files = issue(args.dir, ca, stem, kind, sans, common_name=name, days=args.days, force=args.force)
        _report(files, kind)
    if args.keep_ca_key:
        print(f"kept the fleet CA key {ca.key.absolute()} (--keep-ca-key): this host can still issue "
              "certificates")
    else:
        _remove_ca_key(ca.key)


def main(argv: list[str]) -> int:
    """`pyetcd certs ...`: 0 on success; 1 with a one-line message on stderr for any failure."""
    try:
        args = _parser().parse_args(argv)
        args.run(args)
    except SystemExit as e:  # --help
        return e.code if isinstance(e.code, int) else 0
    except CertError as e:
        print(f"pyetcd certs: error: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        where = f"{e.filename}: " if e.filename else ""
        print(f"pyetcd certs: error: {where}{e.strerror or e}", file=sys.stderr)
        return 1
    return 0
