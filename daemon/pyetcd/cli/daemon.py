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
from ..storage.datadir import StartupError
from ..storage.datadir import check as check_dirs
from ..storage.datadir import hold as hold_dir
from ..storage.errors import DiskFull, io_from_environment
from ..storage.files import FileStorage, wal_path
from ..storage.identity import identity_path, read_identity, write_identity
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


def _identity(cfg: settings_mod.Settings, spec: ClusterSpec, peer_ctx: ssl.SSLContext | None) -> tuple[int, bool]:
    """Cluster id (and, for a joining member, its member id and the current members), and whether it is
    new, to be written to the data dir once the listeners are bound. Reads only.

    New cluster: ids from the initial members, as etcd computes them. Joining (`existing`): a running
    member's GET /members tells the cluster id (header) and our id (the member with our peer URLs,
    added earlier by POST /v2/members). Both are kept in the data dir so restarts need nobody."""
    try:
        known = read_identity(cfg.data_dir)
    except (OSError, ValueError) as e:
        raise StartupError(f"{identity_path(cfg.data_dir)} is damaged ({e}): it should hold "
                           "'<cluster id hex> <member id hex>'") from None
    if known is not None:
        cid, spec.self_id = known
        return cid, False
    if spec.state_new:
        return cluster_id([m.id for m in spec.initial]), True
    cid, members = _ask_peers(spec, peer_ctx, 1.0 + cfg.election_timeout_ms / 1000)
    mine = sorted(cfg.initial_advertise_peer_urls)
    me = [m for m in members if sorted(m.peer_urls) == mine]
    if not me:
        raise StartupError(f"cannot join the existing cluster: it has no member with peer URLs {','.join(mine)}; "
                           "add it first (POST /v2/members)")
    spec.self_id = me[0].id
    spec.initial = members
    return cid, True


def _ask_peers(spec: ClusterSpec, peer_ctx: ssl.SSLContext | None, dial_timeout_s: float,
               timeout_s: float = 10.0) -> tuple[int, list[Member]]:
    """GET /members from the other members' peer URLs, each tried once in turn, as etcd 3.4 does when it
    joins (GetClusterFromRemotePeers: a 10 s timeout per request, connections with the peer dial timeout
    of 1 s + the election timeout); the first answer wins. Else StartupError naming every URL and why."""
    urls = [u for m in spec.initial if m.id != spec.self_id for u in m.peer_urls]
    if not urls:
        raise StartupError("cannot join the existing cluster: --initial-cluster names no other member to ask")
    failures = []
    for url in urls:
        try:
            status, header, body = _get_members(url, peer_ctx, dial_timeout_s, timeout_s)
        except ssl.SSLError as e:
            failures.append(f"{url}: TLS: {e.reason or e}")
            continue
        except (OSError, http.client.HTTPException) as e:
            failures.append(f"{url}: {_reason(e)}")
            continue
        if status != 200 or not header:
            failures.append(f"{url}: GET /members answered {status}" + ("" if header else " without a cluster id"))
            continue
        try:
            # etcd's form (ids as JSON numbers; our own unstarted entry has no name or clientURLs), or an
            # older pyetcd's (ids as hex strings): still accepted so a new member can join an older
            # pyetcd cluster during a rolling upgrade.
            listed = json.loads(body)
            if not isinstance(listed, list):
                raise ValueError("not a JSON list")
            return int(header, 16), [Member.from_peer_json_obj(d) for d in listed]
        except (ValueError, KeyError, TypeError) as e:
            failures.append(f"{url}: unusable answer to GET /members ({e})")
    raise StartupError("cannot join the existing cluster: no member answered GET /members: " + "; ".join(failures))


def _get_members(url: str, peer_ctx: ssl.SSLContext | None, dial_timeout_s: float,
                 timeout_s: float) -> tuple[int, str, bytes]:
    parts = urlsplit(url)
    host = parts.hostname or "127.0.0.1"
    if parts.scheme == "https":
        conn: http.client.HTTPConnection = http.client.HTTPSConnection(
            host, parts.port or 2380, timeout=dial_timeout_s, context=peer_ctx or ssl.create_default_context())
    else:
        conn = http.client.HTTPConnection(host, parts.port or 2380, timeout=dial_timeout_s)
    try:
        conn.connect()
        if conn.sock is not None:
            conn.sock.settimeout(timeout_s)
        conn.request("GET", "/members")
        resp = conn.getresponse()
        return resp.status, resp.getheader("X-Etcd-Cluster-Id") or "", resp.read()
    finally:
        conn.close()


def _reason(e: BaseException) -> str:
    """An OS error as a short lower-case reason ("connection refused", "timed out")."""
    text = (e.strerror if isinstance(e, OSError) and e.strerror else str(e)) or type(e).__name__
    return text[:1].lower() + text[1:]


class _FallBackToProxy(Exception):
    """The discovery token is full and --discovery-fallback is proxy: become a proxy for that cluster."""


def _should_proxy(cfg: settings_mod.Settings) -> bool:
    """--proxy on/readonly, or a data dir that already holds a proxy's `proxy/` (a latecomer that fell back
    to proxying stays a proxy across restarts, as with etcd). Both member/ and proxy/ there: refuse."""
    has_proxy, has_member = (cfg.data_dir / "proxy").is_dir(), (cfg.data_dir / "member").is_dir()
    if has_proxy and has_member:
        raise StartupError(f"invalid data dir {cfg.data_dir}: both member/ and proxy/ exist")
    return cfg.proxy != "off" or has_proxy


def _has_data(cfg: settings_mod.Settings) -> bool:
    wal_dir = wal_path(cfg.data_dir, cfg.wal_dir)
    return wal_dir.is_dir() and any(p.suffix == ".wal" for p in wal_dir.iterdir())


def _discover(cfg: settings_mod.Settings) -> settings_mod.Settings | None:
    """Bootstrap by discovery token (etcd's v2 discovery): register, wait for the others, and use the
    first `size` registrations as the initial cluster, with the token URL as the cluster token.
    None means: stop (the reason is logged, in etcd's words)."""
    from ..discovery import join

    durl = cfg.discovery
    if _has_data(cfg):
        log.warning("discovery token ignored since a cluster has already been initialized. Valid log found at %s",
                    wal_path(cfg.data_dir, cfg.wal_dir))
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


_Bound = list[tuple[socket.socket, settings_mod.ListenUrl, bool]]  # (socket, its URL, is a peer listener)


def _url_text(u: settings_mod.ListenUrl) -> str:
    return f"{u.scheme}://[{u.host}]:{u.port}" if ":" in u.host else f"{u.scheme}://{u.host}:{u.port}"


def _bind_all(cfg: settings_mod.Settings, peers: bool) -> _Bound:
    """Bind every client URL (and peer URL, if `peers`), before anything is written; StartupError naming
    the URL at the first that cannot be bound (the others are closed again)."""
    wanted = [(u, False) for u in cfg.listen_client_urls] + [(u, True) for u in cfg.listen_peer_urls if peers]
    bound: _Bound = []
    for u, is_peer in wanted:
        try:
            bound.append((_bind(u.bind_host, u.port), u, is_peer))
        except OSError as e:
            for sock, _, _ in bound:
                sock.close()
            flag = "--listen-peer-urls" if is_peer else "--listen-client-urls"
            raise StartupError(f"cannot listen on {_url_text(u)} ({flag}): {_reason(e)}") from None
    return bound


def _listeners(cfg: settings_mod.Settings, bound: _Bound) -> list[Listener]:
    client_ctx = server_context(cfg.client_tls) if cfg.client_tls.enabled else None
    peer_ctx = server_context(cfg.peer_tls) if cfg.peer_tls.enabled else None
    return [Listener(sock, True, peer_ctx if u.scheme == "https" else None, cfg.peer_tls.allowed_cn) if is_peer
            else Listener(sock, False, client_ctx if u.scheme == "https" else None) for sock, u, is_peer in bound]


def _prebound(bound: _Bound) -> object:
    """A bind function for run_proxy that hands out the client sockets bound already (the peer ones close)."""
    pool = {}
    for sock, u, is_peer in bound:
        if is_peer:
            sock.close()
        else:
            pool[(u.bind_host, u.port)] = sock

    def bind(host: str, port: int) -> socket.socket:
        return pool.pop((host, port))

    return bind


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
    try:
        io = io_from_environment()
    except ValueError as e:
        log.error("%s", e)
        return 1
    # Start-up errors are one line naming what and where (exit status 1), and nothing is written to the
    # data dir before every listener is bound and the cluster is known: a rerun keeps nothing of a failed one.
    try:
        proxying = _should_proxy(cfg)
        check_dirs(cfg.data_dir, None if proxying else cfg.wal_dir)  # reads only
        if not proxying:
            # Peers too when they may be needed: a cluster of one opens no peer port unless told to.
            bound = _bind_all(cfg, cfg.peer_listen_explicit or len(cfg.initial_cluster) > 1
                              or bool(cfg.discovery or cfg.discovery_srv))
    except StartupError as e:
        log.error("%s", e)
        return 1
    if proxying:
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

            return run_proxy(cfg, supervisor, _prebound(bound))
        if found is None:
            return 1
        cfg = found
    spec = _cluster_spec(cfg)
    if not (cfg.peer_listen_explicit or len(spec.initial) > 1):  # a lone member opens no peer port
        for sock, _, is_peer in bound:
            if is_peer:
                sock.close()
        bound = [b for b in bound if not b[2]]
    request_timeout_s = 5.0 + 2 * cfg.election_timeout_ms / 1000  # etcd's v2 request timeout
    try:
        listeners = _listeners(cfg, bound)
        dial_ctx = _peer_client_context(cfg)
    except (ssl.SSLError, OSError) as e:
        log.error("cannot load TLS certificates: %s", e)
        return 1
    try:
        with supervisor.keepalive_during("recovering data" if spec.state_new else "joining the cluster"):
            cid, new_identity = _identity(cfg, spec, dial_ctx)
            # The data dir holds the cluster's data: private to the service's user, as etcd makes it.
            cfg.data_dir.mkdir(mode=0o700, exist_ok=True)
            held = _hold_dirs(cfg)
            storage = FileStorage(cfg.data_dir, io, cfg.wal_dir, cfg.max_wals, cfg.max_snapshots)
            if new_identity:  # after the WAL: an identity never stands without one
                write_identity(cfg.data_dir, cid, spec.self_id)
            rec = recover(storage, spec, RaftConfig(spec.self_id, election_ticks=spec.election_ticks,
                                                    heartbeat_ticks=spec.heartbeat_ticks), random.Random())
    except StartupError as e:
        log.error("%s", e)
        return 1
    except (WalCorrupt, SnapshotCorrupt) as e:
        log.error("cannot recover data in %s: %s", cfg.data_dir, e)
        return 1
    except DiskFull as e:
        log.error("cannot start: the disk holding %s is full (%s); free some space", cfg.data_dir, e)
        return 1
    except OSError as e:
        log.error("cannot start with data dir %s: %s", cfg.data_dir, e)
        return 1
    _log_recovered(rec)
    # Request ids must not repeat across restarts: an entry proposed before a crash can commit afterwards
    # and would otherwise answer a new request (etcd seeds its ids from the clock too).
    driver = MemberDriver(rec.node, rec.raft, rec.snap_index,
                          DriverConfig(cfg.name, list(cfg.advertise_client_urls), cfg.snapshot_count,
                                       request_timeout_s, time.time_ns() // 1000))
    member = MemberView(driver, cfg.name, cid, spec.token, time.time_ns())
    fields.member = member
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
    supervisor.status("waiting for a leader")
    advertised = [*cfg.advertise_client_urls, *cfg.initial_advertise_peer_urls]
    EventLoop(driver, member, storage, listeners, tick_s, dial_ctx, cfg.peer_tls.allowed_cn, supervisor,
              advertised).run()
    for fd in held:  # the WAL is closed: another pyetcd may take the data dir now
        os.close(fd)
    return 0


def _hold_dirs(cfg: settings_mod.Settings) -> list[int]:
    """This process's hold on its data dir (and --wal-dir): descriptors kept open until it exits."""
    held = [hold_dir(cfg.data_dir, "data dir")]
    if cfg.wal_dir is not None:
        cfg.wal_dir.mkdir(mode=0o700, exist_ok=True)
        held.append(hold_dir(cfg.wal_dir, "--wal-dir"))
    return held


def _log_recovered(rec: Recovered) -> None:
    st = rec.raft.status()
    log.info("recovered: snapshot index %d, %d entries in the log, %d replayed, etcd index %d, raft index %d, "
             "term %d, voters %s", rec.snap_index, st.last_index - st.snap_index, rec.replayed, rec.node.store.index,
             st.commit, st.term, ",".join(id_hex(v) for v in st.voters))


if __name__ == "__main__":
    sys.exit(main())
