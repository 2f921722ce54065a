"""Outbound peer transport: one keep-alive HTTP/1.1 (h11) connection per peer, on the event loop.

Each link batches every queued Raft message into one `POST /raft` and keeps at most one request in
flight; the next batch goes when the answer arrives. A failed connect or request closes the link,
tells Raft the peer is unreachable, and reconnects after an exponential backoff. The queue is bounded:
past `QUEUE_MSGS_MAX` messages the oldest are dropped (Raft retransmits what matters). Snapshots travel
in the same request body, written in chunks. Every request carries X-Server-From, X-Etcd-Cluster-ID and
X-Server-Version, like etcd's. An https peer URL gets TLS (see tls.py): the peer's certificate must
come from our trusted CA and name the URL's host, and `--peer-cert-allowed-cn` is checked here too.
"""

from __future__ import annotations

import errno
import logging
import socket
import ssl
import time
from collections import deque
from dataclasses import dataclass, field
from enum import Enum
from urllib.parse import urlsplit

import h11

from .. import ETCD_SERVER_VERSION
from ..http.wire import encode_batch
from ..raft.types import Message, MsgType
from ..server.metrics import PeerLinkMetrics
from .tls import TlsRefused, TlsSession

log = logging.getLogger("pyetcd.peers")
QUEUE_MSGS_MAX = 4096
BATCH_MSGS_MAX = 1024
CHUNK_BYTES = 256 * 1024
BACKOFF_MIN_S = 0.05
BACKOFF_MAX_S = 1.0
REQUEST_TIMEOUT_S = 5.0


class LinkState(Enum):
    IDLE = "idle"  # no connection
    CONNECTING = "connecting"
    READY = "ready"
    IN_FLIGHT = "in-flight"


@dataclass
class LinkStats:
    """Per-follower figures for /v2/stats/leader (latency in ms of POST /raft round trips)."""

    success: int = 0
    fail: int = 0
    latencies_ms: deque[float] = field(default_factory=lambda: deque(maxlen=128))
    current_ms: float = 0.0


class PeerLink:
    def __init__(self, peer_id: int, urls: list[str], self_id: int, cluster_id_hex: str,
                 tls_context: ssl.SSLContext | None = None, allowed_cn: str = "") -> None:
        self.peer_id = peer_id
        self.tls_context = tls_context
        self.allowed_cn = allowed_cn
        self.tls: TlsSession | None = None
        self.urls = urls
        self.self_id = self_id
        self.cluster_id_hex = cluster_id_hex
        self.state = LinkState.IDLE
        self.queue: deque[Message] = deque()
        self.sock: socket.socket | None = None
        self.h11: h11.Connection | None = None
        self.out = bytearray()
        self.backoff_s = BACKOFF_MIN_S
        self.retry_at = 0.0
        self.sent_at = 0.0
        self.url_index = 0
        self.unreachable = False  # to report to Raft
        self.snapshot_results: list[bool] = []  # to report to Raft (one per snapshot sent)
        self._snapshots_in_flight = 0
        self.response_status = 0
        self.stats = LinkStats()
        self.metrics = PeerLinkMetrics()  # /metrics: bytes sent, round trips (etcd_network_peer_*)
        self.removed = False  # the peer said we are no longer a member
        self.active = False  # what the log last said: "peer <id> became active" / "became inactive"

    def enqueue(self, m: Message) -> None:
        if len(self.queue) >= QUEUE_MSGS_MAX:
            self.queue.popleft()
            self.unreachable = True
        self.queue.append(m)

    # ---- connection ----------------------------------------------------------------------------

    def connect(self, now: float) -> socket.socket | None:
        """Start a non-blocking connect if due; returns the socket to register for writability."""
        if self.state is not LinkState.IDLE or now < self.retry_at or not self.queue:
            return None
        url = urlsplit(self.urls[self.url_index % len(self.urls)])
        host = url.hostname or "127.0.0.1"
        host = "127.0.0.1" if host == "localhost" else host
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        try:
            sock = socket.socket(family, socket.SOCK_STREAM)
        except OSError as e:  # EMFILE/ENFILE: out of fds; back off like a refused connect
            self.fail(now, f"socket: {e.strerror or e}")
            return None
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        err = sock.connect_ex((host, url.port or 2380))
        if err not in (0, errno.EINPROGRESS):
            sock.close()
            self.fail(now, f"connect: {errno.errorcode.get(err, err)}")
            return None
        self.sock = sock
        self.h11 = h11.Connection(h11.CLIENT)
        if url.scheme == "https":
            ctx = self.tls_context or ssl.create_default_context()
            self.tls = TlsSession(ctx, False, now, server_hostname=url.hostname, allowed_cn=self.allowed_cn)
        self.state = LinkState.CONNECTING
        self.sent_at = now
        return sock

    def on_connected(self) -> bool:
        assert self.sock is not None
        err = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err:
            self.fail(time.monotonic(), f"connect: {errno.errorcode.get(err, err)}")
            return False
        self.state = LinkState.READY
        self.backoff_s = BACKOFF_MIN_S
        if self.tls is not None:
            self.tls.start()
        return True

    def has_output(self) -> bool:
        return bool(self.out) or (self.tls is not None and bool(self.tls.wire))

    def wire_bytes(self) -> bytearray:
        """The bytes to write to the socket (ciphertext on TLS); the caller deletes what it sent."""
        if self.tls is None:
            return self.out
        if self.out:
            self.tls.send(self.out)
            self.out.clear()
        return self.tls.wire

    def fail(self, now: float, why: str) -> None:
        if self.active and (self.state is not LinkState.READY or self.queue):  # not an idle connection closed
            self.active = False
            log.info("peer %x became inactive (message send to peer failed): %s", self.peer_id, why)
        if self.state is not LinkState.IDLE:
            # A refused certificate is a configuration problem an operator must see; the rest is churn.
            level = logging.WARNING if why.startswith(("certificate", "TLS", "CommonName")) else logging.DEBUG
            log.log(level, "peer %x: %s", self.peer_id, why)
        self.close()
        self.unreachable = True
        self.stats.fail += 1
        self.snapshot_results.extend([False] * self._snapshots_in_flight)
        self._snapshots_in_flight = 0
        self.retry_at = now + self.backoff_s
        self.backoff_s = min(self.backoff_s * 2, BACKOFF_MAX_S)
        self.url_index += 1

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
        self.sock = None
        self.h11 = None
        self.tls = None
        self.out.clear()
        self.state = LinkState.IDLE

    # ---- requests ------------------------------------------------------------------------------

    def maybe_send(self, now: float) -> bool:
        """Start the next POST /raft if the link is ready and has messages. True if bytes are queued."""
        if self.state is not LinkState.READY or not self.queue or self.h11 is None:
            return False
        batch = []
        while self.queue and len(batch) < BATCH_MSGS_MAX:
            batch.append(self.queue.popleft())
        self._snapshots_in_flight = sum(1 for m in batch if m.type is MsgType.SNAP)
        body = encode_batch(batch)
        headers = [(b"Host", b"pyetcd-peer"), (b"Content-Type", b"application/octet-stream"),
                   (b"Content-Length", b"%d" % len(body)), (b"X-Server-From", b"%x" % self.self_id),
                   (b"X-Etcd-Cluster-ID", self.cluster_id_hex.encode()),
                   (b"X-Server-Version", ETCD_SERVER_VERSION.encode())]
        h = self.h11
        self.out += h.send(h11.Request(method=b"POST", target=b"/raft", headers=headers))  # type: ignore[arg-type]
        for start in range(0, len(body), CHUNK_BYTES):
            self.out += h.send(h11.Data(data=body[start:start + CHUNK_BYTES]))  # type: ignore[arg-type]
        self.out += h.send(h11.EndOfMessage())  # type: ignore[arg-type]
        self.metrics.sent_bytes += len(body)
        self.state = LinkState.IN_FLIGHT
        self.sent_at = now
        self.response_status = 0
        return True

    def on_readable(self, now: float) -> None:
        assert self.sock is not None and self.h11 is not None
        try:
            data = self.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as e:
            self.fail(now, f"recv: {e}")
            return
        if self.tls is not None and data:
            try:
                data = self.tls.receive(data)
            except TlsRefused as e:
                self.fail(now, str(e))
                return
            if not data:
                return  # handshake progress only; the loop sends what TLS owes
        try:
            self.h11.receive_data(data)
            while True:
                event = self.h11.next_event()
                if event is h11.NEED_DATA:
                    break
                if isinstance(event, h11.Response):
                    self.response_status = event.status_code
                elif isinstance(event, h11.EndOfMessage):
                    self._finish(now)
                    if self.h11 is None:
                        return
                    if self.h11.our_state is h11.DONE and self.h11.their_state is h11.DONE:
                        self.h11.start_next_cycle()
                    else:
                        self.close()
                        return
                elif isinstance(event, h11.ConnectionClosed):
                    self.fail(now, "peer closed the connection")
                    return
                elif event is h11.PAUSED:
                    break
        except h11.ProtocolError as e:
            self.fail(now, f"protocol error: {e}")

    def _finish(self, now: float) -> None:
        status = self.response_status
        if status == 204:
            rtt_ms = (now - self.sent_at) * 1000
            self.stats.success += 1
            self.stats.current_ms = rtt_ms
            self.stats.latencies_ms.append(rtt_ms)
            self.metrics.rtt.observe(now - self.sent_at)
            self.snapshot_results.extend([True] * self._snapshots_in_flight)
            self._snapshots_in_flight = 0
            self.state = LinkState.READY
            if not self.active:
                self.active = True
                log.info("peer %x became active", self.peer_id)
            return
        if status == 410:
            self.removed = True
        self.fail(now, f"POST /raft answered {status}")

    def timed_out(self, now: float) -> bool:
        busy = self.state in (LinkState.CONNECTING, LinkState.IN_FLIGHT)
        return busy and now - self.sent_at > REQUEST_TIMEOUT_S + 2 * self._snapshots_in_flight * REQUEST_TIMEOUT_S
