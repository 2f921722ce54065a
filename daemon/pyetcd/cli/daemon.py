"""`pyetcd`: settings -> (discovery) -> recover (snapshot + WAL) -> bind -> run the loop until SIGTERM/SIGINT.

Subcommands: `pyetcd certs ...` (certificate tooling), `pyetcd discovery-service ...` (a token service).
"""

from __future__ import annotations

import gc
import http.client
import json
import logging
import os
import random
import resource
import signal
import socket
import ssl
import sys
import threading
import time
from urllib.parse import urlsplit

from ..client.tls import client_context
from ..ops import settings as settings_mod
from ..raft.core import RaftConfig
from ..runtime.connections import Listener
from ..runtime.loop import EventLoop
from ..runtime.member import MemberView
from ..runtime.supervision import Supervisor, setup_logging
from ..runtime.tls import server_context
from ..server.driver import DriverConfig, MemberDriver
from ..server.members import Member, cluster_id, id_hex, member_id
from ..server.recovery import ClusterSpec, Recovered, recover
from ..storage.errors import DiskFull, io_from_environment
from ..storage.files import FileStorage
from ..storage.identity import read_identity, write_identity
from ..storage.snap import SnapshotCorrupt
from ..storage.wal import WalCorrupt

log = logging.getLogger("pyetcd")


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(1024)
    return sock


def _raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _cluster_spec(cfg: settings_mod.Settings) -> ClusterSpec:
    token = cfg.initial_cluster_token
    initial = [Member(member_id(list(urls), token), name, list(urls), []) for name, urls in cfg.initial_cluster]
    # Our ID comes from our initial-cluster entry, as every other member computes it (with SRV bootstrap
    # that entry names the SRV target, which may differ from the advertised URL by host name).
    self_id = member_id(list(dict(cfg.initial_cluster).get(cfg.name, cfg.initial_advertise_peer_urls)), token)
    election_ticks = max(2, round(cfg.election_timeout_ms / cfg.heartbeat_interval_ms))
    return ClusterSpec(cfg.name, self_id, initial, cfg.initial_cluster_state == "new",
                       list(cfg.advertise_client_urls), election_ticks, 1, token)


def _peer_client_context(cfg: settings_mod.Settings) -> ssl.SSLContext | None:
    if not cfg.peer_tls.enabled and not cfg.peer_tls.trusted_ca_file:
        return None
    return client_context(cfg.peer_tls.trusted_ca_file, cfg.peer_tls.cert_file, cfg.peer_tls.key_file)


def _identity(cfg: settings_mod.Settings, spec: ClusterSpec) -> int:
    """Cluster id (and, for a joining member, its member id and the current members).

    New cluster: ids from the initial members, as etcd computes them. Joining (`existing`): a running
    member's GET /members tells the cluster id (header) and our id (the member with our peer URLs,
    added earlier by POST /v2/members). Both are kept in the data dir so restarts need nobody."""
    known = read_identity(cfg.data_dir)
    if known is not None:
        cid, spec.self_id = known
        return cid
    if spec.state_new:
        cid = cluster_id([m.id for m in spec.initial])
    else:
        cid, members = _ask_peers(spec, _peer_client_context(cfg))
        mine = sorted(cfg.initial_advertise_peer_urls)
        me = [m for m in members if sorted(m.peer_urls) == mine]
        if not me:
            raise SystemExit(f"pyetcd: the cluster has no member with peer URLs {','.join(mine)}; "
                             "add it first (POST /v2/members)")
        spec.self_id = me[0].id
        spec.initial = members
    write_identity(cfg.data_dir, cid, spec.self_id)
    return cid


def _ask_peers(spec: ClusterSpec, peer_ctx: ssl.SSLContext | None,
               timeout_s: float = 30.0) -> tuple[int, list[Member]]:
    deadline = time.monotonic() + timeout_s
    while True:
        for m in spec.initial:
            if m.id == spec.self_id:
                continue
            for url in m.peer_urls:
                parts = urlsplit(url)
                try:
                    host = parts.hostname or "127.0.0.1"
                    if parts.scheme == "https":
                        conn: http.client.HTTPConnection = http.client.HTTPSConnection(
                            host, parts.port or 2380, timeout=2, context=peer_ctx or ssl.create_default_context())
                    else:
                        conn = http.client.HTTPConnection(host, parts.port or 2380, timeout=2)
                    conn.request("GET", "/members")
                    resp = conn.getresponse()
                    body = resp.read()
                    header = resp.getheader("X-Etcd-Cluster-Id")
                    conn.close()
                    if resp.status == 200 and header:
                        # etcd's form (ids as JSON numbers; our own unstarted entry has no name or
                        # clientURLs), or an older pyetcd's (ids as hex strings): still accepted so a
                        # new member can join an older pyetcd cluster during a rolling upgrade.
                        listed = json.loads(body)
                        if not isinstance(listed, list):
                            raise ValueError("GET /members did not answer a JSON list")
                        members = [Member.from_peer_json_obj(d) for d in listed]
                        return int(header, 16), members
                except ssl.SSLError as e:
                    log.warning("joining: TLS to %s failed: %s", url, e)
                    continue
                except (OSError, ValueError, KeyError):
                    continue
        if time.monotonic() > deadline:
            raise SystemExit("pyetcd: cannot reach any member of the existing cluster to join it")
        time.sleep(0.5)


class _FallBackToProxy(Exception):
    """The discovery token is full and --discovery-fallback is proxy: become a proxy for that cluster."""


def _should_proxy(cfg: settings_mod.Settings) -> bool:
    """--proxy on/readonly, or a data dir that already holds a proxy's `proxy/` (a latecomer that fell back
    to proxying stays a proxy across restarts, as with etcd). Both member/ and proxy/ there: refuse."""
    has_proxy, has_member = (cfg.data_dir / "proxy").is_dir(), (cfg.data_dir / "member").is_dir()
    if has_proxy and has_member:
        raise SystemExit(f"pyetcd: invalid data dir {cfg.data_dir}: both member/ and proxy/ exist")
    return cfg.proxy != "off" or has_proxy


def _has_data(cfg: settings_mod.Settings) -> bool:
    wal_dir = cfg.data_dir / "member" / "wal"
    return wal_dir.is_dir() and any(p.suffix == ".wal" for p in wal_dir.iterdir())


def _discover(cfg: settings_mod.Settings) -> settings_mod.Settings | None:
    """Bootstrap by discovery token (etcd's v2 discovery): register, wait for the others, and use the
    first `size` registrations as the initial cluster, with the token URL as the cluster token.
    None means: stop (the reason is logged, in etcd's words)."""
    from ..discovery import join

    durl = cfg.discovery
    if _has_data(cfg):
        log.warning("discovery token ignored since a cluster has already been initialized. Valid log found at %s",
                    cfg.data_dir / "member" / "wal")
        return cfg
    my_id = member_id(list(cfg.initial_advertise_peer_urls), durl)
    # An https token URL: trust the peer CA (else the client CA, else the system's) and show our peer
    # certificate, so a token kept on a TLS-only pyetcd works with the fleet's one CA.
    ca = cfg.peer_tls.trusted_ca_file or cfg.client_tls.trusted_ca_file
    ctx = client_context(ca, cfg.peer_tls.cert_file, cfg.peer_tls.key_file) if durl.startswith("https") else None
    try:
        initial = join.join_cluster(durl, my_id, join.self_config(cfg.name, cfg.initial_advertise_peer_urls),
                                    ssl_context=ctx, proxy=cfg.discovery_proxy or None)
    except join.DiscoveryError as e:
        _explain_discovery_failure(cfg, e)
        return None
    try:
        return settings_mod.with_initial_cluster(cfg, initial, durl)
    except settings_mod.SettingsError as e:
        log.error("discovery cluster %s is unusable: %s", initial, e)
        return None


def _discover_srv(cfg: settings_mod.Settings) -> settings_mod.Settings | None:
    """Bootstrap from DNS SRV records (etcd's --discovery-srv); None: stop (logged)."""
    from ..discovery import srv

    if _has_data(cfg):
        return cfg
    try:
        resolver = srv.DnsResolver(os.environ.get("PYETCD_DNS_NAMESERVER", ""))
        initial = srv.srv_initial_cluster(cfg.discovery_srv, cfg.discovery_srv_name, cfg.name,
                                          cfg.initial_advertise_peer_urls, resolver)
        log.info("initial cluster from SRV records of %s: %s", cfg.discovery_srv, initial)
        return settings_mod.with_initial_cluster(cfg, initial, cfg.initial_cluster_token, urls_checked=True)
    except (srv.SrvError, settings_mod.SettingsError) as e:
        log.error("cannot bootstrap from DNS SRV records of %s: %s", cfg.discovery_srv, e)
        return None


def _explain_discovery_failure(cfg: settings_mod.Settings, e: Exception) -> None:
    from ..discovery import join

    assert isinstance(e, join.DiscoveryError)
    if e.kind is join.Kind.FULL_CLUSTER and cfg.discovery_fallback == "proxy":
        log.warning("discovery cluster full, falling back to proxy")
        raise _FallBackToProxy
    for level, line in join.explain(e, durl=cfg.discovery, name=cfg.name, data_dir=str(cfg.data_dir)):
        log.log(level, "%s", line)


def _listeners(cfg: settings_mod.Settings, spec: ClusterSpec) -> list[Listener]:
    client_ctx = server_context(cfg.client_tls) if cfg.client_tls.enabled else None
    peer_ctx = server_context(cfg.peer_tls) if cfg.peer_tls.enabled else None
    out = [Listener(_bind(u.bind_host, u.port), False, client_ctx if u.scheme == "https" else None)
           for u in cfg.listen_client_urls]
    if cfg.peer_listen_explicit or len(spec.initial) > 1:
        out += [Listener(_bind(u.bind_host, u.port), True, peer_ctx if u.scheme == "https" else None,
                         cfg.peer_tls.allowed_cn) for u in cfg.listen_peer_urls]
    return out


def _subcommand(argv: list[str]) -> int | None:
    if argv and argv[0] == "certs":
        from ..ops import certs

        return certs.main(argv[1:])
    if argv and argv[0] == "discovery-service":
        from ..discovery import service

        return service.main(argv[1:])
    return None


def _stop_signals_end_the_process() -> None:
    """Until the event loop installs its graceful handlers, SIGINT and SIGTERM end the process at once, as
    they end etcd before its own handlers are in place (discovery can wait a long time). Set explicitly:
    a SIGINT inherited ignored (a background job) must not make the daemon unstoppable."""
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_DFL)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    rc = _subcommand(argv)
    if rc is not None:
        return rc
    _stop_signals_end_the_process()
    try:
        cfg = settings_mod.load(argv)
    except settings_mod.SettingsError as e:
        print(f"pyetcd: {e}", file=sys.stderr)
        return 1
    fields = setup_logging(cfg.log_level, settings=cfg)
    fields.name = cfg.name
    for warning in cfg.warnings:  # settings given but not implemented (ops/settings.py UNSUPPORTED)
        log.warning("%s", warning)
    supervisor = Supervisor()
    _raise_fd_limit()
    if _should_proxy(cfg):
        from .proxy_start import run_proxy

        return run_proxy(cfg, supervisor, _bind)
    if cfg.discovery or cfg.discovery_srv:
        with supervisor.keepalive_during(f"discovering the cluster through {cfg.discovery or cfg.discovery_srv}"):
            try:
                found = _discover(cfg) if cfg.discovery else _discover_srv(cfg)
            except _FallBackToProxy:
                found = None
                fallback = True
            else:
                fallback = False
        if fallback:
            from .proxy_start import run_proxy

            return run_proxy(cfg, supervisor, _bind)
        if found is None:
            return 1
        cfg = found
    spec = _cluster_spec(cfg)
    # The data dir holds the cluster's data: private to the service's user, as etcd makes it.
    cfg.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    request_timeout_s = 5.0 + 2 * cfg.election_timeout_ms / 1000  # etcd's v2 request timeout
    try:
        io = io_from_environment()
    except ValueError as e:
        log.error("%s", e)
        return 1
    try:
        with supervisor.keepalive_during("recovering data" if spec.state_new else "joining the cluster"):
            cid = _identity(cfg, spec)
            storage = FileStorage(cfg.data_dir, io)
            rec = recover(storage, spec, RaftConfig(spec.self_id, election_ticks=spec.election_ticks,
                                                    heartbeat_ticks=spec.heartbeat_ticks), random.Random())
    except (WalCorrupt, SnapshotCorrupt) as e:
        log.error("cannot recover data in %s: %s", cfg.data_dir, e)
        return 1
    except DiskFull as e:
        log.error("cannot start: the disk holding %s is full (%s); free some space", cfg.data_dir, e)
        return 1
    _log_recovered(rec)
    # Request ids must not repeat across restarts: an entry proposed before a crash can commit afterwards
    # and would otherwise answer a new request (etcd seeds its ids from the clock too).
    driver = MemberDriver(rec.node, rec.raft, rec.snap_index,
                          DriverConfig(cfg.name, list(cfg.advertise_client_urls), cfg.snapshot_count,
                                       request_timeout_s, time.time_ns() // 1000))
    member = MemberView(driver, cfg.name, cid, spec.token, time.time_ns())
    fields.member = member
    try:
        listeners = _listeners(cfg, spec)
    except ssl.SSLError as e:
        log.error("cannot load TLS certificates: %s", e)
        return 1
    except OSError as e:
        log.error("cannot listen: %s", e)
        return 1
    peer_listening = any(lst.is_peer for lst in listeners)
    log.info("pyetcd %s (member %x, cluster %s) ready to serve client requests on %s%s", cfg.name,
             member.self_id, member.cluster_id_bytes.decode(),
             ", ".join(f"{u.scheme}://{u.host}:{u.port}" for u in cfg.listen_client_urls),
             "; peers on " + ", ".join(f"{u.scheme}://{u.host}:{u.port}" for u in cfg.listen_peer_urls)
             if peer_listening else "")
    # The tree and history are long-lived: freeze them out of the cyclic GC, and collect young objects
    # less often (every request allocates a few dozen short-lived objects, almost none cyclic).
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)
    tick_s = cfg.heartbeat_interval_ms / 1000
    try:
        dial_ctx = _peer_client_context(cfg)
    except ssl.SSLError as e:
        log.error("cannot load peer TLS certificates: %s", e)
        return 1
    supervisor.status("waiting for a leader")
    advertised = [*cfg.advertise_client_urls, *cfg.initial_advertise_peer_urls]
    EventLoop(driver, member, storage, listeners, tick_s, dial_ctx, cfg.peer_tls.allowed_cn, supervisor,
              advertised).run()
    return 0


def _log_recovered(rec: Recovered) -> None:
    st = rec.raft.status()
    log.info("recovered: snapshot index %d, %d entries in the log, %d replayed, etcd index %d, raft index %d, "
             "term %d, voters %s", rec.snap_index, st.last_index - st.snap_index, rec.replayed, rec.node.store.index,
             st.commit, st.term, ",".join(id_hex(v) for v in st.voters))


if __name__ == "__main__":
    sys.exit(main())
