"""Metrics counters (pure): what the hot path bumps for /metrics, as plain ints and floats.

Rule 1: the loop's hot path only adds to ints here (a bisect for a histogram); nothing is formatted, locked
or allocated per event. Rule 2: everything that can be read from live state at scrape time (leader, commit
and applied index, pending requests, store counters, watchers, connections) is read then, by the collector
in runtime/metrics.py, never mirrored here.

Histogram buckets are etcd's (client_golang's ExponentialBuckets, computed the same way, by repeated
multiplication, so the `le` labels print as etcd's do).
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass, field


def exponential_buckets(start: float, factor: float, count: int) -> tuple[float, ...]:
    """client_golang's ExponentialBuckets: start, start*factor, ... (count upper bounds)."""
    out = []
    for _ in range(count):
        out.append(start)
        start *= factor
    return tuple(out)


# etcd 3.4's buckets (wal/metrics.go, rafthttp/metrics.go, proxy/httpproxy/metrics.go)
WAL_FSYNC_BUCKETS = exponential_buckets(0.001, 2, 14)  # 1 ms .. 8.192 s
PEER_RTT_BUCKETS = exponential_buckets(0.0001, 2, 16)  # 0.1 ms .. 3.2768 s
PROXY_HANDLING_BUCKETS = exponential_buckets(0.0005, 2, 13)  # 0.5 ms .. 2.048 s
# pyetcd's own
LOOP_TURN_BUCKETS = exponential_buckets(0.0001, 2, 16)  # 0.1 ms .. 3.2768 s
PER_TURN_BUCKETS = (1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0)


class Histogram:
    """Counts per bucket (not cumulative; `cumulative()` makes Prometheus' form), their sum and count.
    A value v falls in the first bucket whose upper bound is >= v (Prometheus' `le`)."""

    __slots__ = ("bounds", "counts", "sum", "count")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        assert list(bounds) == sorted(bounds) and len(set(bounds)) == len(bounds), bounds
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last one: above every bound (+Inf only)
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value
        self.count += 1

    def cumulative(self) -> list[tuple[float, int]]:
        """(upper bound, observations <= it) per bound, then (inf, count)."""
        out, running = [], 0
        for bound, n in zip(self.bounds, self.counts, strict=False):
            running += n
            out.append((bound, running))
        out.append((float("inf"), self.count))
        return out


@dataclass(slots=True)
class LoopMetrics:
    """The event loop's own figures (pyetcd_loop_*)."""

    turns: Histogram = field(default_factory=lambda: Histogram(LOOP_TURN_BUCKETS))  # busy seconds per turn
    requests_per_turn: Histogram = field(default_factory=lambda: Histogram(PER_TURN_BUCKETS))
    _requests_seen: int = 0

    def turn_done(self, busy_s: float, requests_total: int) -> None:
        """One turn ended after `busy_s` seconds of work; `requests_total` is the front's running count of
        client requests handed out (the turn's share is observed when it has any)."""
        self.turns.observe(busy_s)
        n = requests_total - self._requests_seen
        if n:
            self._requests_seen = requests_total
            self.requests_per_turn.observe(n)


@dataclass(slots=True)
class WalMetrics:
    """The WAL's figures: fdatasync latency (etcd_disk_wal_fsync_duration_seconds), entries made durable
    per sync (pyetcd_wal_entries_per_fsync: the group commit's batch) and bytes written by syncs."""

    fsync: Histogram = field(default_factory=lambda: Histogram(WAL_FSYNC_BUCKETS))
    entries_per_fsync: Histogram = field(default_factory=lambda: Histogram(PER_TURN_BUCKETS))
    write_bytes: int = 0


@dataclass(slots=True)
class PeerLinkMetrics:
    """One outbound peer link's figures (labels To=<peer id hex>)."""

    rtt: Histogram = field(default_factory=lambda: Histogram(PEER_RTT_BUCKETS))
    sent_bytes: int = 0


@dataclass(slots=True)
class ProxyMetrics:
    """A v2 proxy's figures, as etcd's httpproxy counts them (etcd_proxy_*), keyed by label values."""

    requests: dict[str, int] = field(default_factory=dict)  # method
    handled: dict[tuple[str, str], int] = field(default_factory=dict)  # (method, code)
    dropped: dict[tuple[str, str], int] = field(default_factory=dict)  # (method, proxying_error)
    handling: dict[str, Histogram] = field(default_factory=dict)  # method -> seconds to the answer's head

    def incoming(self, method: str) -> None:
        method = _method_label(method)
        self.requests[method] = self.requests.get(method, 0) + 1

    def answered(self, method: str, status: int, seconds: float) -> None:
        method = _method_label(method)
        key = (method, str(status))
        self.handled[key] = self.handled.get(key, 0) + 1
        hist = self.handling.get(method)
        if hist is None:
            hist = self.handling[method] = Histogram(PROXY_HANDLING_BUCKETS)
        hist.observe(seconds)

    def drop(self, method: str, why: str) -> None:
        key = (_method_label(method), why)
        self.dropped[key] = self.dropped.get(key, 0) + 1


_METHODS = frozenset({"GET", "HEAD", "PUT", "POST", "DELETE", "OPTIONS", "PATCH", "TRACE", "CONNECT"})


def _method_label(method: str) -> str:
    """The method as etcd labels it; any other token a client invents is "OTHER" (bounded label values)."""
    return method if method in _METHODS else "OTHER"


# etcd's httpproxy forwardingError values (the proxying_error label)
ZERO_ENDPOINTS = "zero_endpoints"
FAILED_SENDING_REQUEST = "failed_sending_request"
FAILED_GETTING_RESPONSE = "failed_getting_response"
