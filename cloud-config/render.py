#!/usr/bin/env python3
"""Render cloud-config/pyetcd-member.yaml for one member (standard library only).

    render.py --name pyetcd1 --address 10.0.0.11 --discovery URL --deb PATH_OR_URL [--tls-dir DIR | --no-tls]
              [--out FILE | --seed-dir DIR]

--tls-dir holds what `pyetcd certs ca --dir DIR` and `pyetcd certs member --dir DIR --name NAME --san ADDRESS,NAME`
write: ca.crt, NAME.crt, NAME.key, NAME-peer.crt, NAME-peer.key. With it, clients (on the address) and peers
speak https and peers must show a certificate from the CA; --no-tls renders plain http.
--seed-dir writes a NoCloud seed (user-data, meta-data with an instance-id derived from the user-data, so a
changed user-data is a new instance); otherwise the user-data goes to --out or stdout.
"""

from __future__ import annotations

import argparse
import hashlib
import ipaddress
import re
import sys
from pathlib import Path

TEMPLATE = Path(__file__).resolve().with_name("pyetcd-member.yaml")
_NAME_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_BLOCK_RE = re.compile(r"^\s*# (BEGIN|END) tls\s*$")
# PEM placeholders stand alone on a line inside a block scalar: the file goes in with that indentation.
_PEM_FILES = {"@CA_CRT@": "ca.crt", "@SERVER_CRT@": "{name}.crt", "@SERVER_KEY@": "{name}.key",
              "@PEER_CRT@": "{name}-peer.crt", "@PEER_KEY@": "{name}-peer.key"}


class RenderError(ValueError):
    pass


def _check(name: str, address: str, discovery: str, deb: str) -> None:
    if not _NAME_RE.match(name):
        raise RenderError(f"--name {name!r}: use a host name (lower-case letters, digits, '-')")
    try:
        ipaddress.ip_address(address)
    except ValueError:
        if not _NAME_RE.match(address.split(".")[0]):
            raise RenderError(f"--address {address!r} is neither an IP address nor a host name") from None
    if ":" in address:
        raise RenderError("--address: IPv6 is not supported by this template (URLs would need brackets)")
    if not re.match(r"^https?://[^/]+/.+", discovery):
        raise RenderError(f"--discovery {discovery!r}: expected an http(s) token URL")
    if not deb or any(c in deb for c in "\"'\n"):
        raise RenderError(f"--deb {deb!r}: expected a path or URL without quotes")


def render(name: str, address: str, discovery: str, deb: str, tls_dir: Path | None,
           template: str | None = None) -> str:
    _check(name, address, discovery, deb)
    text = TEMPLATE.read_text() if template is None else template
    pems: dict[str, str] = {}
    if tls_dir is not None:
        for placeholder, pattern in _PEM_FILES.items():
            path = tls_dir / pattern.format(name=name)
            try:
                pem = path.read_text()
            except OSError as e:
                raise RenderError(f"TLS file {path}: {e.strerror or e}") from None
            if "-----BEGIN" not in pem:
                raise RenderError(f"TLS file {path} is not PEM")
            pems[placeholder] = pem.strip("\n")
    out: list[str] = []
    in_tls = False
    for line in text.splitlines():
        marker = _BLOCK_RE.match(line)
        if marker:
            in_tls = marker.group(1) == "BEGIN"
            continue
        if in_tls and tls_dir is None:
            continue
        stripped = line.strip()
        if stripped in pems:
            indent = line[: len(line) - len(line.lstrip())]
            out.extend(indent + pem_line if pem_line else "" for pem_line in pems[stripped].splitlines())
            continue
        out.append(line)
    scheme = "https" if tls_dir is not None else "http"
    rendered = "\n".join(out) + "\n"
    for placeholder, value in (("@CLIENT_SCHEME@", scheme), ("@PEER_SCHEME@", scheme), ("@NAME@", name),
                               ("@ADDRESS@", address), ("@DISCOVERY@", discovery), ("@DEB@", deb)):
        rendered = rendered.replace(placeholder, value)
    # The header comment documents the placeholders; replace it so no '@' ever reaches a rendered file.
    lines = rendered.splitlines()
    body = 1
    while body < len(lines) and lines[body].startswith("#"):
        body += 1
    rendered = "\n".join([lines[0], f"# pyetcd member {name}, rendered from cloud-config/pyetcd-member.yaml"]
                          + lines[body:]) + "\n"
    leftover = sorted(set(re.findall(r"@[A-Z_]+@", rendered)))
    if leftover:
        raise RenderError(f"unfilled placeholders: {' '.join(leftover)}")
    return rendered


def write_seed(seed_dir: Path, name: str, user_data: str) -> None:
    seed_dir.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256(user_data.encode()).hexdigest()[:12]
    (seed_dir / "user-data").write_text(user_data)
    (seed_dir / "meta-data").write_text(f"instance-id: pyetcd-{name}-{digest}\nlocal-hostname: {name}\n")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Render the pyetcd member cloud-config for one host.")
    p.add_argument("--name", required=True, help="member name and host name")
    p.add_argument("--address", required=True, help="this host's address (IPv4 or DNS name)")
    p.add_argument("--discovery", required=True, help="discovery token URL")
    p.add_argument("--deb", required=True, help="the pyetcd .deb as seen from the host: a path or http(s) URL")
    tls = p.add_mutually_exclusive_group(required=True)
    tls.add_argument("--tls-dir", type=Path, help="directory with ca.crt, NAME.crt/.key, NAME-peer.crt/.key")
    tls.add_argument("--no-tls", action="store_true", help="plain http for clients and peers")
    dest = p.add_mutually_exclusive_group()
    dest.add_argument("--out", type=Path, help="write the user-data here (default: stdout)")
    dest.add_argument("--seed-dir", type=Path, help="write a NoCloud seed (user-data, meta-data) here")
    args = p.parse_args(argv)
    try:
        text = render(args.name, args.address, args.discovery, args.deb, None if args.no_tls else args.tls_dir)
    except RenderError as e:
        print(f"render.py: {e}", file=sys.stderr)
        return 1
    if args.seed_dir:
        write_seed(args.seed_dir, args.name, text)
    elif args.out:
        args.out.write_text(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
