"""The token service's settings (flags, DISC_* variables, URL and address checks) and limits."""

from __future__ import annotations

import argparse
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

log = logging.getLogger("pyetcd.discovery")

DEFAULT_ETCD = "http://127.0.0.1:2379"
DEFAULT_HOST = "https://discovery.etcd.io"
DEFAULT_ADDR = ":8087"
DOCS_URL = "https://etcd.io/docs/v3.4/op-guide/clustering/#etcd-discovery"
REGISTRY = "/v2/keys/_etcd/registry"
DEFAULT_SIZE = 3

CONNECT_TIMEOUT_S = 5.0     # dialling a backing member; a dead one is skipped after this
RESPONSE_TIMEOUT_S = 30.0   # non-watch proxied requests (a watch has no limit, as in the original)
IDLE_TIMEOUT_S = 300.0      # a client connection silent this long (between requests) is closed
HANDSHAKE_TIMEOUT_S = 10.0  # a TLS client must finish its handshake within this
MAX_CONNECTIONS = 4096      # one thread each; beyond this new connections are closed at once
MAX_BODY_BYTES = 16 << 20   # request bodies are buffered whole (they are forwarded, maybe twice)
MAX_REDIRECTS = 10          # 307 leader redirects followed for PUT/DELETE (11 attempts in all)

TOKEN_RE = re.compile(r"[a-f0-9]{32}")
_METHOD_RE = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_CHUNK_SIZE_RE = re.compile(rb"[0-9A-Fa-f]{1,15}")
_FOLD_RE = re.compile(r"\r?\n[ \t]*")
TEXT_CT = "text/plain; charset=utf-8"
HTML_CT = "text/html; charset=utf-8"
_NOSNIFF = ("X-Content-Type-Options", "nosniff")
_HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-connection", "proxy-authenticate",
                         "proxy-authorization", "te", "trailer", "transfer-encoding", "upgrade"})
_NOT_FORWARDED = _HOP_BY_HOP | {"host", "content-length", "expect"}
_NOT_RELAYED = _HOP_BY_HOP | {"content-length"}


# ---- settings ----------------------------------------------------------------------------------

class ConfigError(Exception):
    """A setting that cannot work; main() prints it and exits 2 (as Go's flag errors do)."""


@dataclass(frozen=True)
class Settings:
    etcd: tuple[str, ...]          # backing endpoints, scheme://host[:port] each
    host: str                      # prefix written into token URLs
    addr: str                      # listen address, Go style ("[host]:port")
    etcd_ca_file: str | None = None
    etcd_cert_file: str | None = None
    etcd_key_file: str | None = None
    etcd_username: str | None = None  # etcd v2 auth on the backing endpoints (HTTP basic auth)
    etcd_password: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    etcd_timeout_s: float = 1.0    # per request of /new and /health (the original's 1 s header timeout)
    log_level: str = "info"


# (flag, env var, metavar, help); a flag beats its variable, as viper does for DISC_*.
_OPTIONS: tuple[tuple[str, str, str, str], ...] = (
    ("etcd", "DISC_ETCD", "URL[,URL...]", f"backing etcd v2 endpoints, failed over in turn (default {DEFAULT_ETCD})"),
    ("host", "DISC_HOST", "URL", f"prefix of the token URLs handed out (default {DEFAULT_HOST})"),
    ("addr", "DISC_ADDR", "[HOST]:PORT", f"listen address (default {DEFAULT_ADDR})"),
    ("etcd-ca-file", "DISC_ETCD_CA_FILE", "FILE", "CA bundle to verify https backing endpoints"),
    ("etcd-cert-file", "DISC_ETCD_CERT_FILE", "FILE", "client certificate for the backing endpoints"),
    ("etcd-key-file", "DISC_ETCD_KEY_FILE", "FILE", "key of --etcd-cert-file"),
    ("etcd-username", "DISC_ETCD_USERNAME", "USER", "etcd v2 auth user for the backing endpoints (basic auth)"),
    ("etcd-password", "DISC_ETCD_PASSWORD", "PASSWORD", "its password (better given as the variable)"),
    ("cert-file", "DISC_CERT_FILE", "FILE", "serve https with this certificate"),
    ("key-file", "DISC_KEY_FILE", "FILE", "key of --cert-file"),
    ("etcd-timeout", "DISC_ETCD_TIMEOUT", "SECONDS", "per backing request of /new and /health (default 1)"),
    ("log-level", "DISC_LOG_LEVEL", "LEVEL", "debug (a line per request), info, warning or error (default info)"),
)
_SHORT = {"etcd": "-e", "host": "-h", "addr": "-a"}  # the original's pflag shorthands (-h is --host!)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pyetcd discovery-service", add_help=False,
                                description="A discovery.etcd.io-compatible token service backed by etcd v2. "
                                            "Every flag can also be given as the environment variable shown.")
    p.add_argument("--help", action="help", help="show this help and exit")
    for name, env, metavar, text in _OPTIONS:
        flags = [f"--{name}"] + ([_SHORT[name]] if name in _SHORT else [])
        p.add_argument(*flags, dest=name.replace("-", "_"), metavar=metavar, help=f"{text} [{env}]")
    return p


def parse_settings(argv: Sequence[str], environ: Mapping[str, str]) -> Settings:
    """Flags, then DISC_* variables, then defaults. argparse exits (SystemExit) on unknown flags."""
    ns = _parser().parse_args(list(argv))

    def get(name: str, env: str) -> str | None:
        value = getattr(ns, name.replace("-", "_"))
        return value if value is not None else environ.get(env) or None

    values = {name: get(name, env) for name, env, _, _ in _OPTIONS}
    endpoints = tuple(host_only_url(u) for u in (values["etcd"] or DEFAULT_ETCD).split(",") if u.strip())
    if not endpoints:
        raise ConfigError("--etcd: no endpoint given")
    addr = values["addr"] or DEFAULT_ADDR
    parse_addr(addr)
    for cert, key in (("cert-file", "key-file"), ("etcd-cert-file", "etcd-key-file")):
        if bool(values[cert]) != bool(values[key]):
            raise ConfigError(f"--{cert} and --{key} go together")
    if values["etcd-password"] and not values["etcd-username"]:
        raise ConfigError("--etcd-password needs --etcd-username")
    try:
        timeout = float(values["etcd-timeout"] or 1.0)
    except ValueError:
        raise ConfigError(f"--etcd-timeout: not a number: {values['etcd-timeout']!r}") from None
    if not 0 < timeout < 3600:
        raise ConfigError("--etcd-timeout must be between 0 and 3600 seconds")
    level = (values["log-level"] or "info").lower()
    if level not in ("debug", "info", "warning", "warn", "error"):
        raise ConfigError(f"--log-level: unknown level {level!r}")
    return Settings(etcd=endpoints, host=values["host"] if values["host"] is not None else DEFAULT_HOST,
                    addr=addr, etcd_ca_file=values["etcd-ca-file"], etcd_cert_file=values["etcd-cert-file"],
                    etcd_key_file=values["etcd-key-file"], etcd_username=values["etcd-username"],
                    etcd_password=values["etcd-password"], cert_file=values["cert-file"],
                    key_file=values["key-file"], etcd_timeout_s=timeout, log_level=level)


def host_only_url(text: str) -> str:
    """scheme://host[:port] of a backing URL. Like the original's mustHostOnlyURL it refuses a query,
    a fragment or a missing host; unlike it, it also refuses a path instead of dropping it silently."""
    text = text.strip()
    try:
        u = urlsplit(text)
        u.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as e:
        raise ConfigError(f"--etcd: invalid url {text!r}: {e}") from None
    if u.scheme not in ("http", "https"):
        raise ConfigError(f"--etcd: expected an http or https url, got {text!r}")
    if u.query:
        raise ConfigError(f"--etcd: expected url without query (?{u.query})")
    if u.fragment:
        raise ConfigError(f"--etcd: expected url without fragment ({u.fragment})")
    if not u.hostname:
        raise ConfigError(f"--etcd: expected hostname (none given) in {text!r}")
    if u.path not in ("", "/"):
        raise ConfigError(f"--etcd: expected url without path ({u.path})")
    return f"{u.scheme}://{u.netloc}"


def parse_addr(addr: str) -> tuple[str, int]:
    """Go's "host:port" listen address: ":8087" (every interface), "127.0.0.1:8087", "[::1]:8087"."""
    host, sep, port_text = addr.rpartition(":")
    if not sep or not port_text.isdigit() or int(port_text) > 65535:
        raise ConfigError(f"--addr: expected [host]:port, got {addr!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port_text)


