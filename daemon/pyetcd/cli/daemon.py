"""`pyetcd`: settings -> recover (snapshot + WAL) -> bind -> run the loop until SIGTERM/SIGINT."""

from __future__ import annotations

import gc
import logging
import resource
import socket
import sys
import time

from ..ops import settings as settings_mod
from ..runtime.loop import EventLoop
from ..runtime.member import MemberState
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
    try:
        member = MemberState(cfg.name, cfg.data_dir, cfg.initial_advertise_peer_urls, cfg.advertise_client_urls,
                             cfg.initial_cluster_token, cfg.snapshot_count, time.time_ns())
    except (WalCorrupt, SnapshotCorrupt) as e:
        log.error("cannot recover data in %s: %s", cfg.data_dir, e)
        return 1
    listeners = []
    try:
        for url in cfg.listen_client_urls:
            listeners.append(_bind(url.bind_host, url.port))
    except OSError as e:
        log.error("cannot listen for client requests: %s", e)
        return 1
    log.info("pyetcd %s (member %x, cluster %s) ready to serve client requests on %s", cfg.name,
             member.self_id, member.cluster_id_bytes.decode(),
             ", ".join(f"{u.scheme}://{u.host}:{u.port}" for u in cfg.listen_client_urls))
    # The tree and history are long-lived: freeze them out of the cyclic GC, and collect young objects
    # less often (every request allocates a few dozen short-lived objects, almost none cyclic).
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)
    EventLoop(member, listeners).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
