"""Daemon settings from etcd's flag names, their ETCD_* environment variables, or a YAML config file.

Precedence as in etcd: a command-line flag beats its environment variable; `--config-file` (YAML with
etcd's keys) replaces both. Validated once into a frozen Settings.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import yaml


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
}


def parse_listen_url(text: str) -> ListenUrl:
    parts = urlsplit(text.strip())
    if parts.scheme not in ("http", "https"):
        raise SettingsError(f"listen URL {text!r}: scheme must be http or https")
    if parts.scheme == "https":
        raise SettingsError(f"listen URL {text!r}: https needs TLS flags, which this build does not have yet")
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
        parser.add_argument(f"--{flag}", dest=flag.replace("-", "_"), default=None, help=help_text)
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    args = parser.parse_args(argv)
    if args.version:
        from .. import ETCD_SERVER_VERSION, __version__

        print(f"pyetcd Version: {__version__}\netcd API Version: {ETCD_SERVER_VERSION}")
        raise SystemExit(0)
    values: dict[str, str] = {}
    explicit_peer = args.listen_peer_urls is not None or "ETCD_LISTEN_PEER_URLS" in environ
    for flag, (default, _) in FLAGS.items():
        given = getattr(args, flag.replace("-", "_"))
        env = environ.get("ETCD_" + flag.upper().replace("-", "_"))
        values[flag] = given if given is not None else env if env is not None else default
    if values["config-file"]:
        values = _from_yaml(Path(values["config-file"]))
        explicit_peer = values["listen-peer-urls"] != FLAGS["listen-peer-urls"][0]
    return _validate(values, explicit_peer)


def _from_yaml(path: Path) -> dict[str, str]:
    try:
        doc = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as e:
        raise SettingsError(f"config file {path}: {e}") from e
    if not isinstance(doc, dict):
        raise SettingsError(f"config file {path}: expected a mapping")
    values = {flag: default for flag, (default, _) in FLAGS.items()}
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


def _validate(values: dict[str, str], peer_listen_explicit: bool = False) -> Settings:
    name = values["name"]
    listen = tuple(parse_listen_url(u) for u in _split(values["listen-client-urls"]))
    if not listen:
        raise SettingsError("--listen-client-urls is empty")
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
        listen_peer_urls=tuple(parse_listen_url(u) for u in _split(values["listen-peer-urls"])),
        initial_advertise_peer_urls=peer_urls,
        initial_cluster=initial,
        initial_cluster_token=values["initial-cluster-token"],
        initial_cluster_state=state,
        snapshot_count=_int(values, "snapshot-count", 1),
        heartbeat_interval_ms=heartbeat_ms,
        election_timeout_ms=election_ms,
        log_level=values["log-level"],
        peer_listen_explicit=peer_listen_explicit,
    )
