"""Daemon settings from etcd's flag names: command-line flags, ETCD_* environment variables, a YAML file.

Precedence: a flag beats its environment variable, which beats the config file (`--config-file`, keys
named as the flags, etcd's nested `*-transport-security` sections accepted), which beats the default.
An unknown key or a bad value stops the start, naming the key and where it came from. Validated once
into a frozen Settings that remembers each value's source (`pyetcd --print-config`).

etcd 3.4's settings that pyetcd does not implement (UNSUPPORTED, the one table for flags, ETCD_*
variables and YAML keys) are never dropped silently: each is warned about at start, naming it and where
it came from, or refused when ignoring it would be unsafe. So are ETCD_* variables etcd does not know
(etcd warns about them too) and a variable shadowed by its flag (etcd refuses to start with both).

The name and the URL settings may use `$private_ipv4`, `$public_ipv4` and `$hostname` (see
ops/hostfacts.py); they are resolved, from netlink, before validation.
"""

from __future__ import annotations

import os
import platform
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import urlsplit

import yaml

from ..gocompat import flag as gflag
from . import hostfacts
from .tlsfiles import TlsFiles


class SettingsError(ValueError):
    def __init__(self, message: str, key: str = "") -> None:
        super().__init__(message)
        self.key = key  # the setting at fault, when there is one


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
    discovery_srv: str = ""
    discovery_srv_name: str = ""
    initial_cluster_explicit: bool = False
    proxy: str = "off"  # "on", "readonly" or "off" (etcd's v2 proxy; see proxy/)
    proxy_failure_wait_ms: int = 5000
    proxy_refresh_interval_ms: int = 30000
    proxy_dial_timeout_ms: int = 1000
    proxy_write_timeout_ms: int = 5000
    proxy_read_timeout_ms: int = 0
    wal_dir: Path | None = None  # --wal-dir; None: <data-dir>/member/wal
    max_snapshots: int = 5  # snapshot files kept (0: all)
    max_wals: int = 5  # WAL segment files kept once snapshots cover them (0: all)
    sources: dict[str, str] = field(default_factory=dict, compare=False)  # setting -> "flag", "env ...", ...
    values: dict[str, str] = field(default_factory=dict, compare=False)  # the effective values (resolved)
    templates: dict[str, str] = field(default_factory=dict, compare=False)  # setting -> text before resolving
    warnings: tuple[str, ...] = field(default=(), compare=False)  # settings given but ignored; logged at start


# flag -> (default, help). Every flag also reads ETCD_<FLAG_WITH_UNDERSCORES>.
FLAGS: dict[str, tuple[str, str]] = {
    "name": ("default", "human-readable name for this member"),
    "data-dir": ("", "path to the data directory (default: ${name}.etcd)"),
    "wal-dir": ("", "path to the dedicated WAL directory (default: the data directory's member/wal)"),
    "max-snapshots": ("5", "maximum number of snapshot files to retain (0 is unlimited)"),
    "max-wals": ("5", "maximum number of WAL files to retain (0 is unlimited); a file is deleted only once a "
                      "snapshot covers it"),
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
    "log-level": ("info", "debug, info, warn or error"),
    "logger": ("capnslog", "log format: 'capnslog' (text lines) or 'zap' (JSON lines)"),
    "log-outputs": ("default", "comma-separated: 'default' (the journal under systemd, else stderr), 'stderr', "
                               "'stdout', 'journal' or a file path"),
    "config-file": ("", "YAML file with etcd's configuration keys (flags and ETCD_* variables override its keys)"),
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
    "discovery-fallback": ("proxy", "what to do when the token is full: 'exit', or 'proxy' (become a v2 proxy "
                                    "for the cluster registered there)"),
    "discovery-proxy": ("", "HTTP proxy for the discovery service"),
    "discovery-srv": ("", "DNS domain whose SRV records (_etcd-server[-ssl]._tcp) list the initial cluster"),
    "discovery-srv-name": ("", "suffix of the SRV service names (_etcd-server-<name>._tcp)"),
    "proxy": ("off", "v2 proxy mode: 'off', 'readonly' or 'on'"),
    "proxy-failure-wait": ("5000", "time (ms) an endpoint is held out after a failure (proxy)"),
    "proxy-refresh-interval": ("30000", "time (ms) between refreshes of the endpoint list (proxy)"),
    "proxy-dial-timeout": ("1000", "time (ms) to wait for a connection to an endpoint (proxy; 0: no timeout)"),
    "proxy-write-timeout": ("5000", "time (ms) to wait for a request to be written (proxy; 0: no timeout)"),
    "proxy-read-timeout": ("0", "time (ms) to wait between reads from an endpoint (proxy; 0: no timeout)"),
    "advertise-interface": ("", "interface whose primary IPv4 address is $private_ipv4 "
                                "(default: the one holding the IPv4 default route)"),
}
# Settings whose values may name host facts ($private_ipv4, $public_ipv4, $hostname).
HOST_FACT_FLAGS = ("name", "listen-client-urls", "advertise-client-urls", "listen-peer-urls",
                   "initial-advertise-peer-urls", "initial-cluster")
BOOL_FLAGS = frozenset({"client-cert-auth", "peer-client-cert-auth"})


@dataclass(frozen=True)
class Unsupported:
    """An etcd setting pyetcd does not implement. `refuse`: ignoring it would be unsafe (less security than
    asked for, or an action that silently would not happen), so the start stops; otherwise a warning.
    `inert`: the values (lower case; booleans as "true"/"false") that ask for nothing pyetcd does not do
    anyway, accepted without a word."""

    refuse: bool
    what: str  # what pyetcd does instead
    boolean: bool = False
    inert: frozenset[str] = frozenset({""})


def _warn(what: str, *inert: str, boolean: bool = False) -> Unsupported:
    return Unsupported(False, what, boolean, frozenset(inert or (("", "false") if boolean else ("",))))


def _refuse(what: str, *inert: str, boolean: bool = False) -> Unsupported:
    return Unsupported(True, what, boolean, frozenset(inert or (("", "false") if boolean else ("",))))


_GRPC = "gRPC only; pyetcd has no gRPC (v3) API"
_LOGS = "logs go to journald when stderr is the journal, else to stderr"
# etcd 3.4's flags (etcdmain/config.go) and YAML keys (embed/config.go) that pyetcd does not implement: the
# flag, its ETCD_* variable and the YAML key all come here. README.md's table "Settings pyetcd does not
# implement" is this one.
UNSUPPORTED: dict[str, Unsupported] = {
    # member and storage
    "quota-backend-bytes": _warn("no space quota and no NOSPACE alarm"),
    "backend-batch-interval": _warn("no bbolt backend"),
    "backend-batch-limit": _warn("no bbolt backend"),
    "max-txn-ops": _warn("v3 transactions only; pyetcd has no v3 API"),
    "max-request-bytes": _warn("pyetcd's own limit applies (a request body of up to 10 MiB)"),
    "max-concurrent-streams": _warn(_GRPC),
    "grpc-keepalive-min-time": _warn(_GRPC),
    "grpc-keepalive-interval": _warn(_GRPC),
    "grpc-keepalive-timeout": _warn(_GRPC),
    "enable-grpc-gateway": _warn("no v3 JSON gateway (/v3/...)", boolean=True),
    "auto-compaction-mode": _warn("v3 history compaction; pyetcd keeps no v3 history"),
    "auto-compaction-retention": _warn("v3 history compaction; pyetcd keeps no v3 history"),
    "initial-election-tick-advance": _warn("pyetcd's own election timing at start", "", boolean=True),
    "pre-vote": _warn("pyetcd's Raft always uses PreVote", "", "true", boolean=True),
    "strict-reconfig-check": _warn("member changes are not checked against quorum loss", boolean=True),
    "unsafe-no-fsync": _warn("pyetcd always fsyncs", boolean=True),
    "force-new-cluster": _refuse("pyetcd cannot restart a member as a new one-member cluster", boolean=True),
    "enable-v2": _refuse("pyetcd serves only the v2 API", "", "true", boolean=True),
    # security: ignoring any of these would serve with less protection than configured
    "auto-tls": _refuse("no self-signed certificates are made; give --cert-file/--key-file (`pyetcd certs`)",
                        boolean=True),
    "peer-auto-tls": _refuse("no self-signed certificates are made; give --peer-cert-file/--peer-key-file "
                             "(`pyetcd certs`)", boolean=True),
    "client-crl-file": _refuse("certificate revocation lists are not checked"),
    "peer-crl-file": _refuse("certificate revocation lists are not checked"),
    "client-cert-allowed-hostname": _refuse("client certificates are not matched against a host name"),
    "peer-cert-allowed-hostname": _refuse("peer certificates are not matched against a host name "
                                          "(--peer-cert-allowed-cn is implemented)"),
    "cipher-suites": _refuse("the TLS cipher suites are Python's defaults"),
    "cors": _refuse("every origin is allowed (Access-Control-Allow-Origin: *)", "", "*"),
    "host-whitelist": _refuse("the Host header of client requests is not checked", "", "*"),
    "experimental-peer-skip-client-san-verification": _warn("peers' certificates are verified as usual",
                                                            boolean=True),
    "auth-token": _warn("v3 auth tokens; pyetcd has no v3 API"),
    "bcrypt-cost": _warn("v3 auth only"),
    "auth-token-ttl": _warn("v3 auth tokens only"),
    # logging and monitoring
    "log-output": _warn(_LOGS, "", "default", "stderr"),
    "debug": _warn("use --log-level debug", boolean=True),
    "log-package-levels": _warn("use --log-level"),
    "enable-pprof": _warn("no /debug/pprof", boolean=True),
    "metrics": _warn("one set of metrics is served on /metrics (etcd's basic and extensive levels are not told apart)"),
    "listen-metrics-urls": _warn("/metrics is served on the client URLs only, not on listeners of its own"),
    # experimental
    "experimental-initial-corrupt-check": _warn("no corruption check between members", boolean=True),
    "experimental-corrupt-check-time": _warn("no corruption check between members"),
    "experimental-enable-v2v3": _warn("the v2 API is served from pyetcd's v2 store"),
    "experimental-backend-bbolt-freelist-type": _warn("no bbolt backend"),
    "experimental-enable-lease-checkpoint": _warn("no v3 leases", boolean=True),
    "experimental-enable-lease-checkpoint-persist": _warn("no v3 leases", boolean=True),
    "experimental-compaction-batch-limit": _warn("v3 history compaction; pyetcd keeps no v3 history"),
    "experimental-watch-progress-notify-interval": _warn("v3 watches only"),
    "experimental-warning-apply-duration": _warn("no slow-apply warning"),
}
# etcd reads ETCD_UNSUPPORTED_ARCH itself, before its flags, on the architectures it does not support (there,
# the machine's architecture as Go names it lets it start, without a warning); elsewhere it is unrecognized.
_GO_ARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64", "ppc64le": "ppc64le",
            "s390x": "s390x", "i386": "386", "i686": "386", "armv7l": "arm", "armv6l": "arm", "riscv64": "riscv64"}
_ETCD_SUPPORTED_ARCHES = ("amd64", "ppc64le")
# etcd's YAML nests the TLS settings; these map its keys onto our flags (and onto UNSUPPORTED's).
_YAML_TLS_SECTIONS = {
    "client-transport-security": {"cert-file": "cert-file", "key-file": "key-file",
                                  "trusted-ca-file": "trusted-ca-file", "client-cert-auth": "client-cert-auth",
                                  "auto-tls": "auto-tls", "allowed-hostname": "client-cert-allowed-hostname"},
    "peer-transport-security": {"cert-file": "peer-cert-file", "key-file": "peer-key-file",
                                "trusted-ca-file": "peer-trusted-ca-file",
                                "client-cert-auth": "peer-client-cert-auth", "allowed-cn": "peer-cert-allowed-cn",
                                "auto-tls": "peer-auto-tls", "allowed-hostname": "peer-cert-allowed-hostname"},
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


# `pyetcd --help`, grouped as etcd 3.4 groups its flags (etcdmain/help.go); a flag of no group here comes last.
HELP_GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Member", ("name", "data-dir", "wal-dir", "snapshot-count", "heartbeat-interval", "election-timeout",
                "initial-election-tick-advance", "listen-peer-urls", "listen-client-urls", "max-snapshots",
                "max-wals", "quota-backend-bytes", "backend-batch-interval", "backend-batch-limit", "max-txn-ops",
                "max-request-bytes", "grpc-keepalive-min-time", "grpc-keepalive-interval", "grpc-keepalive-timeout",
                "max-concurrent-streams")),
    ("Clustering", ("initial-advertise-peer-urls", "initial-cluster", "initial-cluster-state",
                    "initial-cluster-token", "advertise-client-urls", "discovery", "discovery-fallback",
                    "discovery-proxy", "discovery-srv", "discovery-srv-name", "strict-reconfig-check", "pre-vote",
                    "auto-compaction-retention", "auto-compaction-mode", "enable-v2", "enable-grpc-gateway",
                    "advertise-interface")),
    ("Security", ("cert-file", "key-file", "client-cert-auth", "client-crl-file", "client-cert-allowed-hostname",
                  "trusted-ca-file", "auto-tls", "peer-cert-file", "peer-key-file", "peer-client-cert-auth",
                  "peer-trusted-ca-file", "peer-cert-allowed-cn", "peer-cert-allowed-hostname", "peer-auto-tls",
                  "peer-crl-file", "cipher-suites", "cors", "host-whitelist")),
    ("Auth", ("auth-token", "bcrypt-cost", "auth-token-ttl")),
    ("Profiling and Monitoring", ("enable-pprof", "metrics", "listen-metrics-urls")),
    ("Logging", ("logger", "log-outputs", "log-level")),
    ("v2 Proxy (to be deprecated in v4)", ("proxy", "proxy-failure-wait", "proxy-refresh-interval",
                                           "proxy-dial-timeout", "proxy-write-timeout", "proxy-read-timeout")),
    ("Experimental feature", ()),  # every experimental-* flag not placed above
    ("Unsafe feature", ("force-new-cluster", "unsafe-no-fsync")),
    ("TO BE DEPRECATED", ("debug", "log-package-levels", "log-output")),
)
_HELP_DEFAULTS = {"data-dir": "${name}.etcd", "initial-cluster": "${name}=<--initial-advertise-peer-urls>"}
USAGE = """\
Usage:

  pyetcd [flags]
    Start a pyetcd member (or an etcd v2 proxy).

  pyetcd --version
    Show the version of pyetcd and of the etcd API it serves.

  pyetcd -h | --help
    Show the help information about pyetcd.

  pyetcd --config-file <file>
    Path to the server configuration file: YAML with etcd's keys (the flags' names; the TLS settings
    also in etcd's client-transport-security and peer-transport-security sections). Unlike etcd, which
    then ignores every other flag and ETCD_* variable, pyetcd reads both: a flag beats its ETCD_*
    variable, which beats the file's key, which beats the default. A key etcd does not know stops the
    start; one pyetcd does not implement is warned about (or refused, see below).

  pyetcd --print-config
    Print the effective settings, each with where it came from, then exit.

  pyetcd certs ...  |  pyetcd discovery-service ...
    Certificate tooling; a discovery token service.

Flags are written as etcd (Go's flag package) takes them: -name x, --name x, -name=x, --name=x, and a
bool flag alone (-client-cert-auth) means true (false: -client-cert-auth=false). Each flag is also read
from its environment variable ETCD_<FLAG> (upper case, '-' as '_'), e.g. ETCD_DATA_DIR.
"""


def _is_bool(flag: str) -> bool:
    return flag in BOOL_FLAGS or (flag in UNSUPPORTED and UNSUPPORTED[flag].boolean)


def help_text() -> str:
    """`pyetcd --help`: USAGE, then every setting in etcd's groups with its default; the settings pyetcd
    does not implement say so (and what it does instead)."""
    known = [*FLAGS, *UNSUPPORTED]
    placed = {"config-file"}  # in USAGE
    groups: list[tuple[str, list[str]]] = []
    for title, names in HELP_GROUPS:
        members = [n for n in names if n in known and n not in placed]
        if title == "Experimental feature":
            members += [n for n in known if n.startswith("experimental-") and n not in placed and n not in members]
        placed.update(members)
        groups.append((title, members))
    groups.append(("pyetcd", [n for n in known if n not in placed]))
    out = [USAGE]
    for title, names in groups:
        if not names:
            continue
        out.append(f"\n{title}:\n")
        for flag in names:
            if flag in FLAGS:
                default, what = FLAGS[flag]
                shown = _HELP_DEFAULTS.get(flag, "false" if flag in BOOL_FLAGS and not default else default)
                out.append(f"  --{flag} '{shown}'\n    {what[:1].upper() + what[1:]}.\n")
            else:
                entry = UNSUPPORTED[flag]
                verdict = "refused" if entry.refuse else "ignored with a warning"
                silent = sorted(v for v in entry.inert if v)
                unless = f" unless {'/'.join(repr(v) for v in silent)}" if silent else ""
                out.append(f"  --{flag}{' (bool)' if entry.boolean else ''}\n    Not implemented by pyetcd: "
                           f"{verdict}{unless}; {entry.what}.\n")
    return "".join(out)


def _scan(argv: list[str]) -> tuple[dict[str, str], set[str]]:
    """The command line as etcd's Go flag package reads it: (setting -> value as given, for FLAGS and
    UNSUPPORTED; a bool flag alone is "true"), and the actions asked for ("version", "print-config").
    `-h`/`--help` print the help and exit 0; a bad command line is a SettingsError in Go's words."""
    actions = {"version", "print-config"}

    def is_bool(name: str) -> bool | None:
        if name in actions:
            return True
        if name in FLAGS or name in UNSUPPORTED:
            return _is_bool(name)
        return None

    scanner = gflag.FlagScanner(argv, is_bool)
    given: dict[str, str] = {}
    asked: set[str] = set()
    try:
        for name, value in scanner:
            if name in actions:
                try:
                    on = gflag.bool_value(value) if value is not None else True
                except ValueError as e:
                    raise gflag.UsageError(f'invalid boolean value "{value}" for -{name}: {e}') from None
                (asked.add if on else asked.discard)(name)
            else:
                given[name] = "true" if value is None else value
    except gflag.HelpRequested:
        print(help_text(), end="")
        raise SystemExit(0) from None
    except gflag.UsageError as e:
        raise SettingsError(f"{e} (see 'pyetcd --help')") from None
    if scanner.rest:
        raise SettingsError(f"{scanner.rest[0]!r} is not a valid flag (see 'pyetcd --help')")
    return given, asked


def load(argv: list[str] | None = None, environ: dict[str, str] | None = None) -> Settings:
    environ = dict(os.environ if environ is None else environ)
    args, asked = _scan(list(sys.argv[1:] if argv is None else argv))
    if "version" in asked:
        from .. import ETCD_SERVER_VERSION, __version__

        print(f"pyetcd Version: {__version__}\netcd API Version: {ETCD_SERVER_VERSION}")
        raise SystemExit(0)
    values = {flag: default for flag, (default, _) in FLAGS.items()}
    sources = dict.fromkeys(FLAGS, "default")
    given = {flag: args.get(flag) for flag in FLAGS}
    env = {flag: environ.get(_env_name(flag)) for flag in FLAGS}
    config_file = given["config-file"] if given["config-file"] is not None else env["config-file"]
    unsupported: dict[str, tuple[str, str]] = {}  # setting -> (value, source)
    if config_file:
        path = Path(config_file)
        for flag, value in _from_yaml(path).items():
            if flag in UNSUPPORTED:
                unsupported[flag] = (value, f"file {path}")
            else:
                values[flag], sources[flag] = value, f"file {path}"
    for flag in FLAGS:
        if env[flag] is not None:
            values[flag], sources[flag] = env[flag], f"env {_env_name(flag)}"
        if given[flag] is not None:
            values[flag], sources[flag] = given[flag], f"flag --{flag}"
    for flag in UNSUPPORTED:
        if environ.get(_env_name(flag)) is not None:
            unsupported[flag] = (environ[_env_name(flag)], f"env {_env_name(flag)}")
        if (value := args.get(flag)) is not None:
            unsupported[flag] = (value, f"flag --{flag}")
    warnings = _unsupported_warnings(unsupported) + _environment_warnings(environ, args)
    try:
        if sources["discovery"] == "flag --discovery" and not values["discovery"].strip():
            # etcd takes `--discovery ""` for no discovery and bootstraps a cluster of its own; an empty
            # token URL is far likelier a variable that expanded to nothing ($TOKEN), so it is refused.
            raise SettingsError("--discovery is empty: give the discovery token URL, or leave the flag out",
                                "discovery")
        templates = _resolve_host_facts(values)
        cfg = _validate(values, sources["listen-peer-urls"] != "default", sources["initial-cluster"] != "default"
                        and bool(values["initial-cluster"]))
    except SettingsError as e:
        where = sources.get(e.key, "default")
        raise SettingsError(f"{e} (from {where})" if e.key and where != "default" else str(e), e.key) from None
    cfg = replace(cfg, sources=sources, values=values, templates=templates, warnings=tuple(warnings))
    if "print-config" in asked:
        print(describe(cfg), end="")
        raise SystemExit(0)
    return cfg


def describe(cfg: Settings) -> str:
    """The effective settings as YAML a config file could hold, each with its source as a comment."""
    lines = []
    for flag in FLAGS:
        if flag == "config-file":
            continue
        value = cfg.values.get(flag, "")
        rendered = yaml.safe_dump({flag: value}, default_flow_style=True, width=1 << 20).strip()[1:-1]
        template = f", from {cfg.templates[flag]}" if flag in cfg.templates else ""
        lines.append(f"{rendered}  # {cfg.sources.get(flag, 'default')}{template}")
    lines += [f"# warning: {w}" for w in cfg.warnings]
    return "\n".join(lines) + "\n"


def _unsupported_warnings(given: dict[str, tuple[str, str]]) -> list[str]:
    """A warning for each setting of UNSUPPORTED given with a value that asks for something; SettingsError
    for the first one pyetcd must refuse."""
    warnings = []
    for flag, (value, source) in given.items():
        entry = UNSUPPORTED[flag]
        text = value.strip().lower()
        if entry.boolean:
            if text in ("true", "1", "t", "yes"):
                text = "true"
            elif text in ("false", "0", "f", "no", ""):
                text = "false" if text else ""
            else:
                raise SettingsError(f"--{flag}: {value!r} is not a boolean (from {source})", flag)
        if text in entry.inert:
            continue
        if entry.refuse:
            raise SettingsError(f"{flag}={value} (from {source}): pyetcd does not implement it and must not "
                                f"ignore it: {entry.what}", flag)
        warnings.append(f"{flag}={value} (from {source}) is ignored: pyetcd does not implement it ({entry.what})")
    return warnings


def _environment_warnings(environ: dict[str, str], args: dict[str, str]) -> list[str]:
    """etcd's checks of its ETCD_* variables (pkg/flags verifyEnv): one that no setting reads is
    unrecognized, and one shadowed by its command-line flag stops etcd (here a warning: the flag wins)."""
    warnings = []
    arch = _GO_ARCH.get(platform.machine().lower(), platform.machine().lower())
    for name in sorted(environ):
        if not name.startswith("ETCD_"):
            continue
        flag = name[len("ETCD_"):].lower().replace("_", "-")
        if flag in FLAGS or flag in UNSUPPORTED:
            if flag in args:
                warnings.append(f"environment variable {name} is ignored: flag --{flag} is given too "
                                f"(etcd refuses to start with both)")
        elif name == "ETCD_UNSUPPORTED_ARCH" and arch not in _ETCD_SUPPORTED_ARCHES and environ[name] == arch:
            continue  # what etcd needs on this architecture; pyetcd needs nothing
        else:
            warnings.append(f"unrecognized environment variable {name} (ignored)")
    return warnings


def _resolve_host_facts(values: dict[str, str]) -> dict[str, str]:
    """Substitute the host facts in place; returns the texts that used any (setting -> text)."""
    facts = hostfacts.Facts(values["advertise-interface"].strip())
    templates: dict[str, str] = {}
    for flag in HOST_FACT_FLAGS:
        if hostfacts.uses_variables(values[flag]):
            try:
                resolved = hostfacts.resolve(values[flag], facts)
            except hostfacts.HostFactsError as e:
                raise SettingsError(f"--{flag} {values[flag]!r}: {e}", flag) from None
            templates[flag], values[flag] = values[flag], resolved
    return templates


def _env_name(flag: str) -> str:
    return "ETCD_" + flag.upper().replace("-", "_")


def _from_yaml(path: Path) -> dict[str, str]:
    """The file's settings (only the keys it sets). Unknown keys and unusable values are errors."""
    try:
        doc = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as e:
        raise SettingsError(f"config file {path}: {e}") from e
    if not isinstance(doc, dict):
        raise SettingsError(f"config file {path}: expected a mapping of setting names to values")
    flat: dict[str, object] = {}
    for key, value in doc.items():
        if key in _YAML_TLS_SECTIONS:
            if not isinstance(value, dict):
                raise SettingsError(f"config file {path}: {key} must be a mapping")
            for sub, sub_value in value.items():
                if sub not in _YAML_TLS_SECTIONS[key]:
                    raise SettingsError(f"config file {path}: unknown key {key}.{sub}")
                flat[_YAML_TLS_SECTIONS[key][sub]] = sub_value
        elif (key in FLAGS and key != "config-file") or key in UNSUPPORTED:
            flat[key] = value
        else:
            raise SettingsError(f"config file {path}: unknown key {key!r}")
    out: dict[str, str] = {}
    for key, value in flat.items():
        if key == "proxy" and isinstance(value, bool):  # YAML 1.1 reads a bare on/off as a boolean
            out[key] = "on" if value else "off"
        elif isinstance(value, list) and all(isinstance(v, str | int) for v in value):
            out[key] = ",".join(map(str, value))
        elif isinstance(value, bool):
            out[key] = str(value).lower()
        elif isinstance(value, str | int | float) or value is None:
            out[key] = "" if value is None else str(value)
        else:
            raise SettingsError(f"config file {path}: {key} has an unusable value {value!r}")
    return out


def _int(values: dict[str, str], flag: str, minimum: int) -> int:
    try:
        value = int(values[flag])
    except ValueError:
        raise SettingsError(f"--{flag}: {values[flag]!r} is not an integer", flag) from None
    if value < minimum:
        raise SettingsError(f"--{flag} must be at least {minimum}", flag)
    return value


def _bool(values: dict[str, str], flag: str) -> bool:
    text = values[flag].strip().lower()
    if text in ("true", "1", "t", "yes"):
        return True
    if text in ("false", "0", "f", "no", ""):
        return False
    raise SettingsError(f"--{flag}: {values[flag]!r} is not a boolean", flag)


def _tls(values: dict[str, str], prefix: str, listen: tuple[ListenUrl, ...], role: str) -> TlsFiles:
    files = TlsFiles(values[prefix + "cert-file"], values[prefix + "key-file"], values[prefix + "trusted-ca-file"],
                     _bool(values, prefix + "client-cert-auth"),
                     values["peer-cert-allowed-cn"] if prefix else "")
    if bool(files.cert_file) != bool(files.key_file):
        raise SettingsError(f"--{prefix}cert-file and --{prefix}key-file go together", prefix + "cert-file")
    https = [u for u in listen if u.scheme == "https"]
    if https and not files.cert_file:
        raise SettingsError(f"{role} URL https://{https[0].host}:{https[0].port} needs --{prefix}cert-file "
                            f"and --{prefix}key-file")
    if files.client_cert_auth and not files.trusted_ca_file:
        raise SettingsError(f"--{prefix}client-cert-auth needs --{prefix}trusted-ca-file", prefix + "client-cert-auth")
    for key, path in (("cert-file", files.cert_file), ("key-file", files.key_file),
                      ("trusted-ca-file", files.trusted_ca_file)):
        if path and not os.access(path, os.R_OK):
            raise SettingsError(f"--{prefix}{key}: cannot read {path}", prefix + key)
    return files


def _listen_urls(values: dict[str, str], flag: str) -> tuple[ListenUrl, ...]:
    try:
        return tuple(parse_listen_url(u) for u in _split(values[flag]))
    except SettingsError as e:
        raise SettingsError(f"--{flag}: {e}", flag) from None


def _validate(values: dict[str, str], peer_listen_explicit: bool = False,
              initial_cluster_explicit: bool = False) -> Settings:
    name = values["name"]
    listen = _listen_urls(values, "listen-client-urls")
    if not listen:
        raise SettingsError("--listen-client-urls is empty", "listen-client-urls")
    listen_peer = _listen_urls(values, "listen-peer-urls")
    discovery = values["discovery"].strip()
    if discovery:
        if initial_cluster_explicit:
            raise SettingsError("--discovery and --initial-cluster cannot both be set", "discovery")
        parts = urlsplit(discovery)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise SettingsError(f"--discovery {discovery!r} is not an http(s) URL", "discovery")
    if values["discovery-fallback"] not in ("exit", "proxy"):
        raise SettingsError("--discovery-fallback must be 'exit' or 'proxy'", "discovery-fallback")
    if values["discovery-srv"] and (discovery or initial_cluster_explicit):
        raise SettingsError("--discovery-srv cannot be combined with --discovery or --initial-cluster",
                            "discovery-srv")
    peer_urls = _split(values["initial-advertise-peer-urls"])
    state = values["initial-cluster-state"]
    if state not in ("new", "existing"):
        raise SettingsError("--initial-cluster-state must be 'new' or 'existing'", "initial-cluster-state")
    try:
        initial = parse_initial_cluster(values["initial-cluster"] or ",".join(f"{name}={u}" for u in peer_urls))
    except SettingsError as e:
        raise SettingsError(str(e), "initial-cluster" if values["initial-cluster"] else
                            "initial-advertise-peer-urls") from None
    owners: dict[str, str] = {}
    for member, urls in initial:
        for url in urls:
            if owners.setdefault(url, member) != member:
                raise SettingsError(f"--initial-cluster: {url} is given to both {owners[url]} and {member}",
                                    "initial-cluster")
    proxy = values["proxy"].strip()
    if proxy not in ("off", "readonly", "on"):
        raise SettingsError(f"--proxy {proxy!r}: must be 'off', 'readonly' or 'on'", "proxy")
    mine = dict(initial).get(name)
    if mine is None and proxy == "off":
        raise SettingsError(f"--initial-cluster has no member named {name!r}", "initial-cluster")
    if mine is not None and sorted(mine) != sorted(peer_urls) and proxy == "off":
        raise SettingsError(f"--initial-cluster has {name}={','.join(mine)} but --initial-advertise-peer-urls "
                            f"is {','.join(peer_urls)}")
    heartbeat_ms = _int(values, "heartbeat-interval", 1)
    election_ms = _int(values, "election-timeout", 1)
    if election_ms < 5 * heartbeat_ms:
        raise SettingsError("--election-timeout should be at least 5 times --heartbeat-interval", "election-timeout")
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
        discovery_srv=values["discovery-srv"].strip().rstrip("."),
        discovery_srv_name=values["discovery-srv-name"].strip(),
        initial_cluster_explicit=initial_cluster_explicit,
        proxy=proxy,
        proxy_failure_wait_ms=_int(values, "proxy-failure-wait", 0),
        proxy_refresh_interval_ms=_int(values, "proxy-refresh-interval", 1),
        proxy_dial_timeout_ms=_int(values, "proxy-dial-timeout", 0),
        proxy_write_timeout_ms=_int(values, "proxy-write-timeout", 0),
        proxy_read_timeout_ms=_int(values, "proxy-read-timeout", 0),
        wal_dir=Path(values["wal-dir"].strip()) if values["wal-dir"].strip() else None,
        max_snapshots=_int(values, "max-snapshots", 0),
        max_wals=_int(values, "max-wals", 0),
    )


def with_initial_cluster(cfg: Settings, text: str, token: str, urls_checked: bool = False) -> Settings:
    """The settings a discovered cluster gives: `text` as --initial-cluster, `token` (the discovery URL)
    as the cluster token, state new; checked as a user-given --initial-cluster would be. `urls_checked`:
    our entry may name our address differently (an SRV target host name); the caller matched it."""
    initial = parse_initial_cluster(text)
    owners: dict[str, str] = {}
    for member, urls in initial:
        for url in urls:
            if owners.setdefault(url, member) != member:
                raise SettingsError(f"discovery cluster {text} has duplicate url {url}")
    mine = dict(initial).get(cfg.name)
    if mine is None or (not urls_checked and sorted(mine) != sorted(cfg.initial_advertise_peer_urls)):
        raise SettingsError(f"discovery cluster {text} does not list {cfg.name} with its peer URLs")
    return replace(cfg, initial_cluster=initial, initial_cluster_token=token, initial_cluster_state="new")
