#!/usr/bin/env python3
"""Render cloud-config/pyetcd-fleet.yaml: ONE user-data for every host of a fleet (standard library only).

    render.py --discovery URL --deb PATH_OR_URL (--ca-dir DIR | --no-tls) [--keep-ca-key]
              [--advertise-interface IFACE] [--out FILE | --seed-dir DIR --hostname NAME]

--ca-dir holds the fleet CA as `pyetcd certs ca --dir DIR` writes it: ca.crt and ca.key. Both go into the
user-data; each host issues its own certificates from them at first boot and deletes the CA key (kept with
--keep-ca-key). Anyone who can read the user-data can mint certificates the fleet trusts: see README.md.
--no-tls renders plain http for clients and peers.
--advertise-interface names the interface whose IPv4 address is the host's $private_ipv4 (default: the one
holding the default route), the same on every host (e.g. eth1 under Vagrant).
The user-data goes to --out or stdout. --seed-dir writes a NoCloud seed for one host instead: user-data
(byte-identical for every host given the same inputs) and meta-data (instance-id from the user-data's
digest and the host name, so a changed user-data is a new instance; local-hostname: NAME).
Bad input: exit 1 with a message naming the argument.
"""

from __future__ import annotations

import argparse
import hashlib
import re
import sys
from pathlib import Path

TEMPLATE = Path(__file__).resolve().with_name("pyetcd-fleet.yaml")
_HOSTNAME_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_IFACE_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,15}$")
_BLOCK_RE = re.compile(r"^\s*# (BEGIN|END) tls\s*$")
# Characters that would need escaping in a double-quoted YAML scalar or a shell word.
_UNSAFE = set("\"'\\`$ \t\r\n")


class RenderError(ValueError):
    pass


def _check(discovery: str, deb: str, advertise_interface: str) -> None:
    if not re.match(r"^https?://[^/\s]+/\S+$", discovery) or _UNSAFE & set(discovery):
        raise RenderError(f"--discovery {discovery!r}: expected an http(s) token URL "
                          "(e.g. http://tokens.example:2379/v2/keys/_etcd/registry/<token>)")
    if not deb or _UNSAFE & set(deb) or not (deb.startswith("/") or re.match(r"^https?://", deb)):
        raise RenderError(f"--deb {deb!r}: expected an absolute path on the host or an http(s) URL, "
                          "without quotes, spaces or '$'")
    if advertise_interface and not _IFACE_RE.match(advertise_interface):
        raise RenderError(f"--advertise-interface {advertise_interface!r}: expected an interface name")


def _read_pem(path: Path, what: str, marker: str) -> str:
    try:
        pem = path.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise RenderError(f"--ca-dir: {what} {path}: {getattr(e, 'strerror', None) or e}") from None
    if "-----BEGIN" not in pem or marker not in pem:
        raise RenderError(f"--ca-dir: {what} {path} is not a PEM {marker.lower()}")
    return pem.strip("\n")


def render(discovery: str, deb: str, ca_dir: Path | None, keep_ca_key: bool = False,
           advertise_interface: str = "", template: str | None = None) -> str:
    """The fleet's user-data. ca_dir None: plain http (no TLS part)."""
    _check(discovery, deb, advertise_interface)
    if keep_ca_key and ca_dir is None:
        raise RenderError("--keep-ca-key goes with --ca-dir (there is no CA key without TLS)")
    text = TEMPLATE.read_text() if template is None else template
    pems: dict[str, str] = {}
    if ca_dir is not None:
        if not ca_dir.is_dir():
            raise RenderError(f"--ca-dir {ca_dir}: not a directory (make one with `pyetcd certs ca --dir DIR`)")
        pems["@CA_CRT@"] = _read_pem(ca_dir / "ca.crt", "CA certificate", "CERTIFICATE")
        pems["@CA_KEY@"] = _read_pem(ca_dir / "ca.key", "CA key", "PRIVATE KEY")
    out: list[str] = []
    in_tls = False
    for line in text.splitlines():
        marker = _BLOCK_RE.match(line)
        if marker:
            in_tls = marker.group(1) == "BEGIN"
            continue
        if in_tls and ca_dir is None:
            continue
        stripped = line.strip()
        if stripped in pems:
            # A PEM placeholder stands alone in a block scalar: the file goes in with that indentation.
            indent = line[: len(line) - len(line.lstrip())]
            out.extend(indent + pem_line if pem_line else "" for pem_line in pems[stripped].splitlines())
            continue
        out.append(line)
    rendered = "\n".join(out) + "\n"
    for placeholder, value in (("@SCHEME@", "https" if ca_dir is not None else "http"),
                               ("@DISCOVERY@", discovery), ("@DEB@", deb),
                               ("@ADVERTISE_INTERFACE@", advertise_interface),
                               ("@KEEP_CA_KEY@", "true" if keep_ca_key else "false")):
        rendered = rendered.replace(placeholder, value)
    # The header comment documents the placeholders; replace it so no '@' ever reaches a rendered file.
    lines = rendered.splitlines()
    body = 1
    while body < len(lines) and lines[body].startswith("#"):
        body += 1
    header = [lines[0], "# pyetcd fleet user-data, rendered from cloud-config/pyetcd-fleet.yaml by "
              "cloud-config/render.py:", "# the same file for every host (members and proxies)."]
    if ca_dir is not None:
        header.append("# It carries the fleet CA key: whoever reads it can mint certificates the fleet trusts.")
    rendered = "\n".join(header + lines[body:]) + "\n"
    leftover = sorted(set(re.findall(r"@[A-Z_]+@", rendered)))
    if leftover:
        raise RenderError(f"unfilled placeholders: {' '.join(leftover)}")
    return rendered


def meta_data(user_data: str, hostname: str) -> str:
    if not _HOSTNAME_RE.match(hostname):
        raise RenderError(f"--hostname {hostname!r}: use a host name (lower-case letters, digits, '-')")
    digest = hashlib.sha256(user_data.encode()).hexdigest()[:12]
    return f"instance-id: pyetcd-{hostname}-{digest}\nlocal-hostname: {hostname}\n"


def write_seed(seed_dir: Path, hostname: str, user_data: str) -> None:
    """A NoCloud seed for one host: the fleet's user-data and this host's meta-data."""
    meta = meta_data(user_data, hostname)
    seed_dir.mkdir(parents=True, exist_ok=True)
    write_user_data(seed_dir / "user-data", user_data)
    (seed_dir / "meta-data").write_text(meta)


def write_user_data(path: Path, user_data: str) -> None:
    """Mode 0600: the user-data may carry the CA key."""
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    path.write_text(user_data)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        sys.exit(1)


def main(argv: list[str] | None = None) -> int:
    p = _Parser(prog="render.py", description="Render the pyetcd fleet's user-data (one file for every host).")
    p.add_argument("--discovery", required=True, help="discovery token URL")
    p.add_argument("--deb", required=True, help="the pyetcd .deb as seen from the hosts: a path or http(s) URL")
    tls = p.add_mutually_exclusive_group(required=True)
    tls.add_argument("--ca-dir", type=Path, help="directory with the fleet CA: ca.crt and ca.key")
    tls.add_argument("--no-tls", action="store_true", help="plain http for clients and peers")
    p.add_argument("--keep-ca-key", action="store_true",
                   help="hosts keep the CA key after issuing their certificates (default: they delete it)")
    p.add_argument("--advertise-interface", default="", metavar="IFACE",
                   help="interface whose IPv4 address is $private_ipv4 (default: the default route's)")
    dest = p.add_mutually_exclusive_group()
    dest.add_argument("--out", type=Path, help="write the user-data here (default: stdout)")
    dest.add_argument("--seed-dir", type=Path, help="write a NoCloud seed (user-data, meta-data) here")
    p.add_argument("--hostname", help="with --seed-dir: the host's name (meta-data local-hostname)")
    args = p.parse_args(argv)
    if args.seed_dir is not None and not args.hostname:
        p.error("--seed-dir needs --hostname")
    if args.hostname and args.seed_dir is None:
        p.error("--hostname goes with --seed-dir (the user-data itself names no host)")
    try:
        text = render(args.discovery, args.deb, None if args.no_tls else args.ca_dir, args.keep_ca_key,
                      args.advertise_interface)
        if args.seed_dir is not None:
            write_seed(args.seed_dir, args.hostname, text)
        elif args.out is not None:
            write_user_data(args.out, text)
        else:
            sys.stdout.write(text)
    except RenderError as e:
        print(f"render.py: error: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"render.py: error: {e.filename or ''}: {e.strerror or e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
