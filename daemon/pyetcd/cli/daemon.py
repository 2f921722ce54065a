"""`pyetcd`: settings -> recover (snapshot + WAL) -> bind -> run the loop until SIGTERM/SIGINT."""

from __future__ import annotations

import gc
import http.client
import json
import logging
import os
import resource
import socket
import sys
import time
from urllib.parse import urlsplit

from ..ops import settings as settings_mod
from ..runtime.loop import EventLoop
from ..runtime.member import ClusterSpec, MemberState
from ..server.members import Member, cluster_id, member_id
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
    self_id = member_id(list(cfg.initial_advertise_peer_urls), token)
    election_ticks = max(2, round(cfg.election_timeout_ms / cfg.heartbeat_interval_ms))
    return ClusterSpec(cfg.name, self_id, initial, cfg.initial_cluster_state == "new",
                       list(cfg.advertise_client_urls), election_ticks, 1, token)


def _identity(cfg: settings_mod.Settings, spec: ClusterSpec) -> int:
    """Cluster id (and, for a joining member, its member id and the current members).

    New cluster: ids from the initial members, as etcd computes them. Joining (`existing`): a running
    member's GET /members tells the cluster id (header) and our id (the member with our peer URLs,
    added earlier by POST /v2/members). Both are kept in the data dir so restarts need nobody."""
    path = cfg.data_dir / "member" / "identity"
    if path.exists():
        cid_hex, self_hex = path.read_text().split()
        spec.self_id = int(self_hex, 16)
        return int(cid_hex, 16)
    if spec.state_new:
        cid = cluster_id([m.id for m in spec.initial])
    else:
        cid, members = _ask_peers(spec)
        mine = sorted(cfg.initial_advertise_peer_urls)
        me = [m for m in members if sorted(m.peer_urls) == mine]
        if not me:
            raise SystemExit(f"pyetcd: the cluster has no member with peer URLs {','.join(mine)}; "
                             "add it first (POST /v2/members)")
        spec.self_id = me[0].id
        spec.initial = members
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w") as f:
        f.write(f"{cid:x} {spec.self_id:x}\n")
        f.flush()
        os.fsync(f.fileno())
    os.rename(tmp, path)
    return cid


def _ask_peers(spec: ClusterSpec, timeout_s: float = 30.0) -> tuple[int, list[Member]]:
    deadline = time.monotonic() + timeout_s
    while True:
        for m in spec.initial:
            if m.id == spec.self_id:
                continue
            for url in m.peer_urls:
                parts = urlsplit(url)
                try:
                    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port or 2380, timeout=2)
                    conn.request("GET", "/members")
                    resp = conn.getresponse()
                    body = resp.read()
                    header = resp.getheader("X-Etcd-Cluster-Id")
                    conn.close()
                    if resp.status == 200 and header:
                        members = [Member(int(d["id"], 16), d["name"], list(d["peerURLs"]), list(d["clientURLs"]))
                                   for d in json.loads(body)]
                        return int(header, 16), members
                except (OSError, ValueError, KeyError):
                    continue
        if time.monotonic() > deadline:
            raise SystemExit("pyetcd: cannot reach any member of the existing cluster to join it")
        time.sleep(0.5)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        cfg = settings_mod.load(argv)
    except settings_mod.SettingsError as e:
        print(f"pyetcd: {e}", file=sys.stderr)
        return 2
    logging.getLogger().setLevel(cfg.log_level.upper() if cfg.log_level.upper() in
                                 ("DEBUG", "INFO", "WARNING", "ERROR") else "INFO")
    _raise_fd_limit()
    spec = _cluster_spec(cfg)
    try:
        cid = _identity(cfg, spec)
        member = MemberState(spec, cfg.data_dir, cfg.snapshot_count, time.time_ns(), cid)
    except (WalCorrupt, SnapshotCorrupt) as e:
        log.error("cannot recover data in %s: %s", cfg.data_dir, e)
        return 1
    listeners, peer_listeners = [], []
    try:
        for url in cfg.listen_client_urls:
            listeners.append(_bind(url.bind_host, url.port))
        if cfg.peer_listen_explicit or len(spec.initial) > 1:
            for url in cfg.listen_peer_urls:
                peer_listeners.append(_bind(url.bind_host, url.port))
    except OSError as e:
        log.error("cannot listen: %s", e)
        return 1
    log.info("pyetcd %s (member %x, cluster %s) ready to serve client requests on %s%s", cfg.name,
             member.self_id, member.cluster_id_bytes.decode(),
             ", ".join(f"{u.scheme}://{u.host}:{u.port}" for u in cfg.listen_client_urls),
             "; peers on " + ", ".join(f"{u.scheme}://{u.host}:{u.port}" for u in cfg.listen_peer_urls)
             if peer_listeners else "")
    # The tree and history are long-lived: freeze them out of the cyclic GC, and collect young objects
    # less often (every request allocates a few dozen short-lived objects, almost none cyclic).
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)
    tick_s = cfg.heartbeat_interval_ms / 1000
    request_timeout_s = 5.0 + 2 * cfg.election_timeout_ms / 1000  # etcd's v2 request timeout
    EventLoop(member, listeners, peer_listeners, tick_s, request_timeout_s).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
