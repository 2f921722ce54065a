"""The proxy's event loop: the same single-threaded selectors shell as a member's (loop.py), serving the
client API by relaying to the members (proxying.py) instead of running Raft.

One turn: select -> accept and read client connections, move bytes on member connections -> flush the
clients with output, resume members whose clients caught up -> every HOUSEKEEPING_S: deadlines (dial,
write, read), the members refresh when due, idle and stalled connections -> watchdog and status.
READY=1 goes to systemd after the first refresh, answered or not, as etcd's proxy starts serving then.
"""

from __future__ import annotations

import logging
import selectors
import time
from pathlib import Path

from ..proxy.director import Director
from ..storage.proxy_cluster import write_peer_urls
from .addresses import AdvertisedAddresses
from .connections import Conn, Connections, Listener
from .metrics import proxy_metrics
from .proxying import MembersRefresh, ProxyFrontend
from .stopsignals import StopSignals
from .supervision import Supervisor
from .upstream import UpstreamConn

log = logging.getLogger("pyetcd.proxy")

HOUSEKEEPING_S = 0.1
REAP_S = 1.0


class ProxyLoop:
    def __init__(self, front: ProxyFrontend, director: Director, listeners: list[Listener], peer_urls: list[str],
                 data_dir: Path, supervisor: Supervisor, advertised: list[str] | None = None) -> None:
        self.front, self.director = front, director
        self.sel = front.sel
        self.supervisor = supervisor
        self.peer_urls = list(peer_urls)
        self.data_dir = data_dir
        self.connections = Connections(self.sel, front, peers=False, fds_per_conn=2)  # a relay holds 2 fds
        front.close_client = self.connections.close
        front.metrics_endpoint = proxy_metrics(self)  # GET /metrics (etcd's proxy serves it on its client URLs)
        self.dirty = front.dirty
        self.running = True
        for listener in listeners:
            listener.sock.setblocking(False)
            self.sel.register(listener.sock, selectors.EVENT_READ, listener)
        self.listeners = [listener.sock for listener in listeners]
        self.signals = StopSignals(self.sel, self.stop)
        self.addresses = AdvertisedAddresses(self.sel, advertised or [], supervisor)
        self.refresh: MembersRefresh | None = None
        self._next_refresh = 0.0
        self._next_housekeeping = 0.0
        self._next_reap = 0.0
        self._status = ""

    def stop(self) -> None:
        self.running = False

    def run(self) -> None:
        while self.running:
            self.run_turn(max(0.0, min(self._next_housekeeping, self._next_refresh) - time.monotonic()))
        self.shutdown()

    def run_turn(self, timeout: float) -> None:
        for key, mask in self.sel.select(timeout):
            data = key.data
            kind = type(data)
            if kind is Conn:
                if mask & selectors.EVENT_READ:
                    self.connections.on_readable(data)
                if mask & selectors.EVENT_WRITE:
                    self.connections.flush(data)
            elif kind is UpstreamConn:
                self.front.on_upstream(data, mask)
            elif kind is Listener:
                self.connections.accept(data)
            elif kind is AdvertisedAddresses:
                data.on_readable()
            else:
                self.signals.drain()
        while self.dirty:
            self.connections.flush(self.dirty.pop())
        if self.front.paused:
            self.front.resume_paused()
        mono = time.monotonic()
        self.supervisor.ping(mono)
        if mono >= self._next_housekeeping:
            self._next_housekeeping = mono + HOUSEKEEPING_S
            self.front.check_deadlines(mono)
            if self.refresh is not None:
                self.refresh.check_deadline(mono)
            if mono >= self._next_refresh and self.refresh is None:
                self._next_refresh = mono + 3600.0  # until this refresh ends
                self.refresh = MembersRefresh(self.front, self.peer_urls, self._refreshed)
            if mono >= self._next_reap:
                self._next_reap = mono + REAP_S
                self.connections.reap_idle(mono)

    def _refreshed(self, clients: list[str], peers: list[str]) -> None:
        self.refresh = None
        self.director.set_urls(clients)
        if peers:
            if sorted(peers) != sorted(self.peer_urls):
                log.info("proxy: updated peer urls in cluster file from %s to %s", self.peer_urls, peers)
            try:
                write_peer_urls(self.data_dir, peers)
            except OSError as e:
                log.warning("proxy: error on writing the cluster file: %s", e)
            self.peer_urls = peers
        now = time.monotonic()
        self._next_refresh = now + self.director.next_refresh_in(now)
        available = self.director.available(now)
        status = (f"proxy for {len(available)} endpoint(s): {', '.join(e.url for e in available)}" if available
                  else "proxy: no endpoint available; retrying")
        if not self.supervisor.ready:
            self.supervisor.mark_ready(status)
        else:
            self.supervisor.status(status)

    def shutdown(self) -> None:
        self.supervisor.stopping()
        for lsock in self.listeners:
            self.sel.unregister(lsock)
            lsock.close()
        for conn in list(self.connections.conns.values()):
            self.connections.flush(conn)
            self.connections.close(conn)
        self.front.shutdown()
        self.addresses.close()
        log.info("stopped")
