"""PeerTransport: the outbound side of the peer network, on the event loop's selector.

One PeerLink (peers.py) per other member, following membership changes. Messages are queued on their
link; `pump()` connects, sends what queued, times out stuck requests, and returns what the transport
learned for Raft (peers unreachable, snapshots delivered or lost, a peer saying we were removed) as a
value, for the loop to hand to the driver.
"""

from __future__ import annotations

import logging
import selectors
import socket
import ssl
import time
from dataclasses import dataclass, field

from ..raft.types import Message
from ..server.members import MemberRegistry
from .peers import LinkState, PeerLink
from .tls import TlsRefused

log = logging.getLogger("pyetcd.transport")


@dataclass
class LinkReports:
    unreachable: list[int] = field(default_factory=list)
    snapshots: list[tuple[int, bool]] = field(default_factory=list)  # (peer, delivered)
    removed_by: int = 0  # a peer answered 410: this member was removed while it could not hear of it


class PeerTransport:
    def __init__(self, sel: selectors.BaseSelector, self_id: int, cluster_id_hex: str,
                 dial_tls: ssl.SSLContext | None, allowed_cn: str) -> None:
        self.sel = sel
        self.self_id = self_id
        self.cluster_id_hex = cluster_id_hex
        self.dial_tls = dial_tls  # context for https peer URLs
        self.allowed_cn = allowed_cn
        self.links: dict[int, PeerLink] = {}

    def sync(self, members: MemberRegistry) -> None:
        """One link per other member, following membership changes."""
        by_id = members.by_id
        for pid in [pid for pid in self.links if pid not in by_id]:
            self._close_link(self.links.pop(pid))
            log.info("removed peer %x", pid)
        for pid, m in by_id.items():
            if pid == self.self_id:
                continue
            link = self.links.get(pid)
            if link is None:
                self.links[pid] = PeerLink(pid, list(m.peer_urls), self.self_id, self.cluster_id_hex,
                                           self.dial_tls, self.allowed_cn)
                log.info("added peer %x %s", pid, list(m.peer_urls))
            elif link.urls != list(m.peer_urls):
                link.urls = list(m.peer_urls)

    def send(self, messages: list[Message]) -> None:
        for m in messages:
            link = self.links.get(m.to)
            if link is not None:
                link.enqueue(m)

    def pump(self, mono: float) -> LinkReports:
        reports = LinkReports()
        for link in self.links.values():
            if link.timed_out(mono):
                self._close_link(link)
                link.fail(mono, "request timed out")
            sock = link.connect(mono)
            if sock is not None:
                self.sel.register(sock, selectors.EVENT_WRITE, link)
            if link.maybe_send(mono):
                self._flush(link)
            if link.removed:
                reports.removed_by = link.peer_id
            if link.unreachable:
                link.unreachable = False
                reports.unreachable.append(link.peer_id)
            reports.snapshots.extend((link.peer_id, ok) for ok in link.snapshot_results)
            link.snapshot_results.clear()
        return reports

    def on_event(self, link: PeerLink, mask: int) -> None:
        mono = time.monotonic()
        if link.state is LinkState.CONNECTING:
            if not link.on_connected():
                for key in list(self.sel.get_map().values()):
                    if key.data is link:
                        self.sel.unregister(key.fileobj)
                return
            assert link.sock is not None
            self.sel.modify(link.sock, selectors.EVENT_READ, link)
            link.maybe_send(mono)
            if link.has_output():  # the request, and on TLS the ClientHello
                self._flush(link)
            return
        if mask & selectors.EVENT_READ:
            sock = link.sock
            link.on_readable(mono)
            if link.sock is None and sock is not None:
                self._unregister(sock)
                return
            link.maybe_send(mono)  # the answer freed the link: send what queued meanwhile
        if mask & selectors.EVENT_WRITE or link.has_output():
            self._flush(link)

    def close(self) -> None:
        for link in self.links.values():
            self._close_link(link)

    def _flush(self, link: PeerLink) -> None:
        sock = link.sock
        if sock is None:
            return
        try:
            buf = link.wire_bytes()
        except TlsRefused as e:
            self._unregister(sock)
            link.fail(time.monotonic(), str(e))
            return
        if buf:
            try:
                sent = sock.send(buf)
                del buf[:sent]
            except (BlockingIOError, InterruptedError):
                pass
            except OSError as e:
                self._unregister(sock)
                link.fail(time.monotonic(), f"send: {e}")
                return
        events = selectors.EVENT_READ | (selectors.EVENT_WRITE if buf else 0)
        try:
            self.sel.modify(sock, events, link)
        except KeyError:
            self.sel.register(sock, events, link)

    def _close_link(self, link: PeerLink) -> None:
        if link.sock is not None:
            self._unregister(link.sock)
        link.close()

    def _unregister(self, sock: socket.socket) -> None:
        try:
            self.sel.unregister(sock)
        except (KeyError, ValueError):
            pass
