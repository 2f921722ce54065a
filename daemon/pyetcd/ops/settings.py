"""Daemon settings from etcd's flag names, their ETCD_* environment variables, or a YAML config file.

Precedence as in etcd: a command-line flag beats its environment variable; `--config-file` (YAML with
etcd's keys) replaces both. Validated once into a frozen Settings.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import urlsplit

import yaml

from ..runtime.tls import TlsFiles


class SettingsError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class ListenUrl:
    scheme: str
    host: str
    port: int

    @property
    def bind_host(self) -> str:
        return "127.0.0.1" if self.host == "localhost" else self.host


@dataclass(frozen=True)
class Settings:
    name: str
    data_dir: Path
    listen_client_urls: tuple[ListenUrl, ...]
    advertise_client_urls: tuple[str, ...]
    listen_peer_urls: tuple[ListenUrl, ...]
    initial_advertise_peer_urls: tuple[str, ...]
    initial_cluster: tuple[tuple[str, tuple[str, ...]], ...]  # (name, peer URLs) in flag order
    initial_cluster_token: str
    initial_cluster_state: str
    snapshot_count: int
    heartbeat_interval_ms: int
    election_timeout_ms: int
    log_level: str
    peer_listen_explicit: bool = False  # --listen-peer-urls given (else a lone member opens no peer port)
    client_tls: TlsFiles = TlsFiles()
    peer_tls: TlsFiles = TlsFiles()
    discovery: str = ""  # token URL; the initial cluster then comes from the token (see discovery/join.py)
    discovery_fallback: str = "proxy"
    discovery_proxy: str = ""
    initial_cluster_explicit: bool = False


# flag -> (default, help). Every flag also reads ETCD_<FLAG_WITH_UNDERSCORES>.
FLAGS: dict[str, tuple[str, str]] = {
    "name": ("default", "human-readable name for this member"),
    "data-dir": ("", "path to the data directory (default: ${name}.etcd)"),
    "listen-client-urls": ("http://localhost:2379", "URLs to listen on for client traffic"),
    "advertise-client-urls": ("http://localhost:2379", "client URLs to advertise to the cluster"),
    "listen-peer-urls": ("http://localhost:2380", "URLs to listen on for peer traffic"),
    "initial-advertise-peer-urls": ("http://localhost:2380", "peer URLs to advertise to the cluster"),
    "initial-cluster": ("", "initial cluster configuration for bootstrapping (name=peerURL,...)"),
    "initial-cluster-token": ("etcd-cluster", "initial cluster token"),
    "initial-cluster-state": ("new", "initial cluster state ('new' or 'existing')"),
    "snapshot-count": ("10000", "number of committed entries that trigger a snapshot"),
    "heartbeat-interval": ("100", "time (ms) of a heartbeat interval"),
    "election-timeout": ("1000", "time (ms) for an election to time out"),
    "enable-v2": ("true", "accepted for compatibility; the v2 API is always on"),
    "log-level": ("info", "debug, info, warn or error"),
    "logger": ("", "accepted for compatibility"),
    "log-outputs": ("", "accepted for compatibility (logs go to stderr/journald)"),
    "config-file": ("", "YAML file with etcd's configuration keys; replaces flags and environment"),
    "cert-file": ("", "client TLS: server certificate (PEM) for https client URLs"),
    "key-file": ("", "client TLS: key of --cert-file"),
    "trusted-ca-file": ("", "client TLS: CA that signs client certificates"),
    "client-cert-auth": ("false", "client TLS: require a client certificate signed by --trusted-ca-file"),
    "peer-cert-file": ("", "peer TLS: certificate (PEM), used as server and as client certificate"),
    "peer-key-file": ("", "peer TLS: key of --peer-cert-file"),
    "peer-trusted-ca-file": ("", "peer TLS: CA that signs the other members' certificates"),
    "peer-client-cert-auth": ("false", "peer TLS: require peers to present a certificate from the trusted CA"),
    "peer-cert-allowed-cn": ("", "peer TLS: only accept peer certificates with this CommonName"),
    "discovery": ("", "discovery token URL used to bootstrap the cluster"),
    "discovery-fallback": ("proxy", "what to do when the token is full: 'exit' or 'proxy' (not supported)"),
    "discovery-proxy": ("", "HTTP proxy for the discovery service"),
    "discovery-srv": ("", "DNS domain for SRV bootstrap (not supported yet)"),
    "discovery-srv-name": ("", "suffix of the SRV service name (not supported yet)"),
}
BOOL_FLAGS = frozenset({"client-cert-auth", "peer-client-cert-auth", "enable-v2"})
# etcd's YAML nests the TLS settings; these map its keys onto our flags.
_YAML_TLS_SECTIONS = {
    "client-transport-security": {"cert-file": "cert-file", "key-file": "key-file",
                                  "trusted-ca-file": "trusted-ca-file", "client-cert-auth": "client-cert-auth"},
    "peer-transport-security": {"cert-file": "peer-cert-file", "key-file": "peer-key-file",
                                "trusted-ca-file": "peer-trusted-ca-file",
                                "client-cert-auth": "peer-client-cert-auth", "allowed-cn": "peer-cert-allowed-cn"},
}


def parse_listen_url(text: str) -> ListenUrl:
    parts = urlsplit(text.strip())
    if parts.scheme not in ("http", "https"):
        raise SettingsError(f"listen URL {text!r}: scheme must be http or https")
    if parts.path not in ("", "/") or parts.query:
        raise SettingsError(f"listen URL {text!r} must not contain a path")
    if parts.port is None or not parts.hostname:
        raise SettingsError(f"listen URL {text!r} needs a host and a port")
    return ListenUrl(parts.scheme, parts.hostname, parts.port)


def parse_initial_cluster(text: str) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """`name=url,name=url2,other=url3` -> ((name, (url, url2)), (other, (url3,))), as etcd reads it."""
    by_name: dict[str, list[str]] = {}
    for item in _split(text):
        name, sep, url = item.partition("=")
        if not sep or not name or not url:
            raise SettingsError(f"--initial-cluster: {item!r} is not name=peerURL")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.port is None:
            raise SettingsError(f"--initial-cluster: {url!r} is not an http(s) URL with a port")
        by_name.setdefault(name, []).append(url)
    return tuple((name, tuple(urls)) for name, urls in by_name.items())


def _split(text: str) -> tuple[str, ...]:
    return tuple(u.strip() for u in text.split(",") if u.strip())


def load(argv: list[str] | None = None, environ: dict[str, str] | None = None) -> Settings:
    environ = dict(os.environ if environ is None else environ)
    parser = argparse.ArgumentParser(prog="pyetcd", description="etcd v2-compatible key-value store")
    for flag, (_, help_text) in FLAGS.items():
        if flag in BOOL_FLAGS:  # `--client-cert-auth` alone means true, as with Go's bool flags
            parser.add_argument(f"--{flag}", dest=flag.replace("-", "_"), default=None, help=help_text,
                                nargs="?", const="true")
        else:
            parser.add_argument(f"--{flag}", dest=flag.replace("-", "_"), default=None, help=help_text)
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    args = parser.parse_args(argv)
    if args.version:
        from .. import ETCD_SERVER_VERSION, __version__

        print(f"pyetcd Version: {__version__}\netcd API Version: {ETCD_SERVER_VERSION}")
        raise SystemExit(0)
    values: dict[str, str] = {}
    explicit_peer = args.listen_peer_urls is not None or "ETCD_LISTEN_PEER_URLS" in environ
    explicit_cluster = args.initial_cluster is not None or "ETCD_INITIAL_CLUSTER" in environ
    for flag, (default, _) in FLAGS.items():
        given = getattr(args, flag.replace("-", "_"))
        env = environ.get("ETCD_" + flag.upper().replace("-", "_"))
        values[flag] = given if given is not None else env if env is not None else default
    if values["config-file"]:
        values = _from_yaml(Path(values["config-file"]))
        explicit_peer = values["listen-peer-urls"] != FLAGS["listen-peer-urls"][0]
        explicit_cluster = bool(values["initial-cluster"])
    return _validate(values, explicit_peer, explicit_cluster)


def _from_yaml(path: Path) -> dict[str, str]:
    try:
        doc = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as e:
        raise SettingsError(f"config file {path}: {e}") from e
    if not isinstance(doc, dict):
        raise SettingsError(f"config file {path}: expected a mapping")
    values = {flag: default for flag, (default, _) in FLAGS.items()}
    for section, keys in _YAML_TLS_SECTIONS.items():
        sub = doc.pop(section, None)
        if isinstance(sub, dict):
            for key, value in sub.items():
                if key in keys:
                    doc[keys[key]] = value
    for key, value in doc.items():
        if key not in FLAGS:
            continue
        values[key] = ",".join(map(str, value)) if isinstance(value, list) else str(value).lower() \
            if isinstance(value, bool) else str(value)
    return values


def _int(values: dict[str, str], flag: str, minimum: int) -> int:
    try:
        value = int(values[flag])
    except ValueError:
        raise SettingsError(f"--{flag}: {values[flag]!r} is not an integer") from None
    if value < minimum:
        raise SettingsError(f"--{flag} must be at least {minimum}")
    return value


def _bool(values: dict[str, str], flag: str) -> bool:
    text = values[flag].strip().lower()
    if text in ("true", "1", "t", "yes"):
        return True
    if text in ("false", "0", "f", "no", ""):
        return False
    raise SettingsError(f"--{flag}: {values[flag]!r} is not a boolean")


def _tls(values: dict[str, str], prefix: str, listen: tuple[ListenUrl, ...], role: str) -> TlsFiles:
    files = TlsFiles(values[prefix + "cert-file"], values[prefix + "key-file"], values[prefix + "trusted-ca-file"],
                     _bool(values, prefix + "client-cert-auth"),
                     values["peer-cert-allowed-cn"] if prefix else "")
    if bool(files.cert_file) != bool(files.key_file):
        raise SettingsError(f"--{prefix}cert-file and --{prefix}key-file go together")
    https = [u for u in listen if u.scheme == "https"]
    if https and not files.cert_file:
        raise SettingsError(f"{role} URL https://{https[0].host}:{https[0].port} needs --{prefix}cert-file "
                            f"and --{prefix}key-file")
    if files.client_cert_auth and not files.trusted_ca_file:
        raise SettingsError(f"--{prefix}client-cert-auth needs --{prefix}trusted-ca-file")
    for path in (files.cert_file, files.key_file, files.trusted_ca_file):
        if path and not os.access(path, os.R_OK):
            raise SettingsError(f"cannot read {path} (given in the {role} TLS flags)")
    return files


def _validate(values: dict[str, str], peer_listen_explicit: bool = False,
              initial_cluster_explicit: bool = False) -> Settings:
    name = values["name"]
    listen = tuple(parse_listen_url(u) for u in _split(values["listen-client-urls"]))
    if not listen:
        raise SettingsError("--listen-client-urls is empty")
    listen_peer = tuple(parse_listen_url(u) for u in _split(values["listen-peer-urls"]))
    discovery = values["discovery"].strip()
    if discovery:
        if initial_cluster_explicit:
            raise SettingsError("--discovery and --initial-cluster cannot both be set")
        parts = urlsplit(discovery)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise SettingsError(f"--discovery {discovery!r} is not an http(s) URL")
    if values["discovery-fallback"] not in ("exit", "proxy"):
        raise SettingsError("--discovery-fallback must be 'exit' or 'proxy'")
    if values["discovery-srv"]:
        raise SettingsError("--discovery-srv (DNS SRV bootstrap) is not supported yet; use --discovery "
                            "or --initial-cluster")
    peer_urls = _split(values["initial-advertise-peer-urls"])
    state = values["initial-cluster-state"]
    if state not in ("new", "existing"):
        raise SettingsError("--initial-cluster-state must be 'new' or 'existing'")
    initial = parse_initial_cluster(values["initial-cluster"] or ",".join(f"{name}={u}" for u in peer_urls))
    owners: dict[str, str] = {}
    for member, urls in initial:
        for url in urls:
            if owners.setdefault(url, member) != member:
                raise SettingsError(f"--initial-cluster: {url} is given to both {owners[url]} and {member}")
    mine = dict(initial).get(name)
    if mine is None:
        raise SettingsError(f"--initial-cluster has no member named {name!r}")
    if sorted(mine) != sorted(peer_urls):
        raise SettingsError(f"--initial-cluster has {name}={','.join(mine)} but --initial-advertise-peer-urls "
                            f"is {','.join(peer_urls)}")
    heartbeat_ms = _int(values, "heartbeat-interval", 1)
    election_ms = _int(values, "election-timeout", 1)
    if election_ms < 5 * heartbeat_ms:
        raise SettingsError("--election-timeout should be at least 5 times --heartbeat-interval")
    return Settings(
        name=name,
        data_dir=Path(values["data-dir"] or f"{name}.etcd"),
        listen_client_urls=listen,
        advertise_client_urls=_split(values["advertise-client-urls"]),
        listen_peer_urls=listen_peer,
        initial_advertise_peer_urls=peer_urls,
        initial_cluster=initial,
        initial_cluster_token=values["initial-cluster-token"],
        initial_cluster_state=state,
        snapshot_count=_int(values, "snapshot-count", 1),
        heartbeat_interval_ms=heartbeat_ms,
        election_timeout_ms=election_ms,
        log_level=values["log-level"],
        peer_listen_explicit=peer_listen_explicit,
        client_tls=_tls(values, "", listen, "client"),
        peer_tls=_tls(values, "peer-", listen_peer, "peer"),
        discovery=discovery,
        discovery_fallback=values["discovery-fallback"],
        discovery_proxy=values["discovery-proxy"],
        initial_cluster_explicit=initial_cluster_explicit,
    )


def with_initial_cluster(cfg: Settings, text: str, token: str) -> Settings:
    """The settings a discovered cluster gives: `text` as --initial-cluster, `token` (the discovery URL)
    as the cluster token, state new; checked as a user-given --initial-cluster would be."""
    initial = parse_initial_cluster(text)
    owners: dict[str, str] = {}
    for member, urls in initial:
        for url in urls:
            if owners.setdefault(url, member) != member:
                raise SettingsError(f"discovery cluster {text} has duplicate url {url}")
    mine = dict(initial).get(cfg.name)
    if mine is None or sorted(mine) != sorted(cfg.initial_advertise_peer_urls):
        raise SettingsError(f"discovery cluster {text} does not list {cfg.name} with its peer URLs")
    return replace(cfg, initial_cluster=initial, initial_cluster_token=token, initial_cluster_state="new")
