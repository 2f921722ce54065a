"""Starting pyetcd as etcd's v2 proxy (`--proxy on|readonly`, or a latecomer at a full discovery token
with `--discovery-fallback proxy`, or a data dir that holds `proxy/`): where the cluster is, TLS, listeners.

Where the cluster is, as etcd decides: the kept DATA_DIR/proxy/cluster if there is one (then the token
and --initial-cluster are not needed: a restarted proxy comes back on its own), else the members
registered at the discovery token, else --initial-cluster. From then on the peers' GET /members keeps
the list current (proxy_loop.py), and each refresh rewrites the kept file.
"""

from __future__ import annotations

import logging
import random
import selectors
import ssl

from ..client.tls import client_context
from ..ops import settings as settings_mod
from ..proxy.director import Director
from ..runtime.connections import Listener
from ..runtime.proxy_loop import ProxyLoop
from ..runtime.proxying import ProxyFrontend, Timeouts
from ..runtime.supervision import Supervisor
from ..runtime.tls import server_context
from ..storage.proxy_cluster import cluster_path, proxy_dir, read_peer_urls

log = logging.getLogger("pyetcd.proxy")


def _peer_urls(cfg: settings_mod.Settings) -> list[str] | None:
    """The cluster's peer URLs (see the module docstring); None: cannot start (logged)."""
    try:
        kept = read_peer_urls(cfg.data_dir)
    except ValueError as e:
        log.error("cannot start the proxy: %s", e)
        return None
    if kept is not None:
        if cfg.discovery:
            log.warning("discovery token ignored since the proxy has already been initialized. Valid cluster "
                        "file found at %s", cluster_path(cfg.data_dir))
        log.info("proxy: using peer urls %s from cluster file %s", kept, cluster_path(cfg.data_dir))
        return kept
    if cfg.discovery:
        from ..discovery import join

        ca = cfg.peer_tls.trusted_ca_file or cfg.client_tls.trusted_ca_file
        ctx = client_context(ca, cfg.peer_tls.cert_file, cfg.peer_tls.key_file) \
            if cfg.discovery.startswith("https") else None
        try:
            text = join.get_cluster(cfg.discovery, ssl_context=ctx, proxy=cfg.discovery_proxy or None)
        except join.DiscoveryError as e:
            log.error("proxy: cannot read the cluster from the discovery token %s: %s", cfg.discovery, e)
            return None
        urls = [u for _, member_urls in settings_mod.parse_initial_cluster(text) for u in member_urls]
    else:
        urls = [u for _, member_urls in cfg.initial_cluster for u in member_urls]
    log.info("proxy: using peer urls %s", urls)
    return urls


def _contexts(cfg: settings_mod.Settings) -> tuple[ssl.SSLContext | None, ssl.SSLContext | None]:
    """Contexts for dialling the members: their client URLs with the client TLS files (the peer ones when
    there are none, as etcd's proxy falls back to them), their peer URLs with the peer TLS files."""
    client_files = cfg.client_tls if (cfg.client_tls.cert_file or cfg.client_tls.trusted_ca_file) else cfg.peer_tls
    peer_files = cfg.peer_tls

    def make(files: settings_mod.TlsFiles) -> ssl.SSLContext | None:
        if not files.cert_file and not files.trusted_ca_file:
            return None  # https members are then checked against the system's CAs
        return client_context(files.trusted_ca_file, files.cert_file, files.key_file)

    return make(client_files), make(peer_files)


def run_proxy(cfg: settings_mod.Settings, supervisor: Supervisor, bind: object) -> int:
    readonly = cfg.proxy == "readonly"
    if (cfg.data_dir / "member").exists():
        log.error("invalid data dir %s: it holds a member's data (member/); a proxy needs its own data dir",
                  cfg.data_dir)
        return 1
    # Every listener is bound before anything is written to the data dir (as for a member).
    socks = []
    for u in cfg.listen_client_urls:
        try:
            socks.append(bind(u.bind_host, u.port))  # type: ignore[operator]
        except OSError as e:
            reason = e.strerror or str(e)
            log.error("cannot listen on %s://%s:%d (--listen-client-urls): %s", u.scheme,
                      f"[{u.host}]" if ":" in u.host else u.host, u.port, reason[:1].lower() + reason[1:])
            return 1
    try:
        client_ctx, peer_ctx = _contexts(cfg)
        listen_ctx = server_context(cfg.client_tls) if cfg.client_tls.enabled else None
    except (ssl.SSLError, OSError) as e:
        log.error("cannot load TLS certificates: %s", e)
        return 1
    listeners = [Listener(sock, False, listen_ctx if u.scheme == "https" else None)
                 for sock, u in zip(socks, cfg.listen_client_urls, strict=True)]
    with supervisor.keepalive_during("proxy: finding the cluster"):
        peer_urls = _peer_urls(cfg)
    if not peer_urls:
        if peer_urls is not None:
            log.error("proxy: no peer URLs to ask for the cluster (give --initial-cluster or --discovery)")
        return 1
    proxy_dir(cfg.data_dir).mkdir(mode=0o700, parents=True, exist_ok=True)
    director = Director(cfg.proxy_failure_wait_ms / 1000, cfg.proxy_refresh_interval_ms / 1000, random.Random())
    timeouts = Timeouts(cfg.proxy_dial_timeout_ms / 1000, cfg.proxy_write_timeout_ms / 1000,
                        cfg.proxy_read_timeout_ms / 1000)
    front = ProxyFrontend(selectors.DefaultSelector(), director, client_ctx, peer_ctx, readonly, timeouts)
    log.info("pyetcd %s: v2 %sproxy listening for client requests on %s", cfg.name, "readonly " if readonly else "",
             ", ".join(f"{u.scheme}://{u.host}:{u.port}" for u in cfg.listen_client_urls))
    # A proxy advertises nothing to the cluster; its listened client addresses are what its clients use.
    listened = [f"{u.scheme}://{u.host}:{u.port}" for u in cfg.listen_client_urls]
    ProxyLoop(front, director, listeners, peer_urls, cfg.data_dir, supervisor, listened).run()
    return 0
