"""GET /metrics: Prometheus' text format, for a member and for a v2 proxy, with etcd 3.4's metric names,
types and labels wherever pyetcd measures the same thing (so etcd's dashboards and alerts work).

Theory of operation. The exposition is prometheus_client's (generate_latest over a private
CollectorRegistry: no global registry, no thread, no HTTP server of its own); it is served by the loop
like any other request, on the client listeners (etcd serves /metrics on its client URLs too). Nothing is
registered per event: the hot path only bumps plain ints in server/metrics.py's objects (or ones it already
kept for /v2/stats), and the custom collectors below read those, and the live state (Raft's leader, commit
and applied index, the request table, the store's counters, watchers, connections), only when scraped.
A scrape of a member costs about a millisecond of the loop (measured in tests/integration/test_metrics.py).

Differences from etcd, by design: the v2 store's `reads_total` has the action `get` for every read
(pyetcd's store counts gets as /v2/stats/store does, not split by recursion); proposals are writes and
membership changes (a quorum GET is a ReadIndex round, not a proposal, in pyetcd); the peer round-trip
time is that of each `POST /raft` (etcd probes its peers on a separate stream); `python_*` stands where
Go's `go_*` is. Metrics of etcd's v3 parts (mvcc, grpc, leases, backend) do not exist here.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    GCCollector,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.utils import floatToGoString

from .. import ETCD_CLUSTER_VERSION, ETCD_SERVER_VERSION
from ..http.client_api import Reply
from ..server.members import id_hex
from ..server.metrics import Histogram, ProxyMetrics
from ..server.pending import Kind
from .peers import LinkState

METRICS_PATH = b"/metrics"
_CONNECTED = (LinkState.READY, LinkState.IN_FLIGHT)
# Prometheus' text format 0.0.4, as etcd (client_golang) answers; newer prometheus_client's
# CONTENT_TYPE_LATEST names 1.0.0, the same lines for the names served here
_HEADERS = [(b"Content-Type", b"text/plain; version=0.0.4; charset=utf-8")]

# etcd's v2 store actions (v2store/event.go) for pyetcd's StoreStats fields (writes), in etcd's order
_WRITE_ACTIONS = (("create", "create"), ("set", "sets"), ("update", "update"), ("delete", "delete"),
                  ("compareAndSwap", "cas"), ("compareAndDelete", "cad"))


def is_metrics_request(target: bytes) -> bool:
    return target == METRICS_PATH or target.startswith(b"/metrics?")


def _histogram(name: str, doc: str, labels: list[str] | None = None,
               values: Iterable[tuple[list[str], Histogram]] = ()) -> HistogramMetricFamily:
    fam = HistogramMetricFamily(name, doc, labels=labels or [])
    for label_values, h in values:
        fam.add_metric(label_values, [(floatToGoString(b), n) for b, n in h.cumulative()], h.sum)
    return fam


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=value)


def _counter(name: str, doc: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, doc, value=value)


def _version_metrics() -> list[Metric]:
    server = GaugeMetricFamily("etcd_server_version",
                               "Which version is running. 1 for 'server_version' label with current version.",
                               labels=["server_version"])
    server.add_metric([ETCD_SERVER_VERSION], 1)
    cluster = GaugeMetricFamily("etcd_cluster_version",
                                "Which version is running. 1 for 'cluster_version' label with current cluster version",
                                labels=["cluster_version"])
    cluster.add_metric([ETCD_CLUSTER_VERSION.rsplit(".", 1)[0]], 1)
    return [cluster, server]


class MemberCollector:
    """Reads a member's event loop (runtime/loop.py's EventLoop) at scrape time."""

    def __init__(self, loop: Any) -> None:
        self.loop = loop

    def collect(self) -> Iterator[Metric]:
        loop = self.loop
        driver, front = loop.driver, loop.front
        raft = driver.raft
        lead = raft.lead
        yield _gauge("etcd_server_has_leader", "Whether or not a leader exists. 1 is existence, 0 is not.",
                     1 if lead else 0)
        yield _gauge("etcd_server_is_leader", "Whether or not this member is a leader. 1 if is, 0 otherwise.",
                     1 if raft.is_leader else 0)
        yield _gauge("etcd_server_is_learner", "Whether or not this member is a learner. 1 if is, 0 otherwise.",
                     0)  # pyetcd has no learners
        server_id = GaugeMetricFamily("etcd_server_id", "Server or member ID in hexadecimal format. 1 for "
                                      "'server_id' label with current ID.", labels=["server_id"])
        server_id.add_metric([id_hex(driver.self_id)], 1)
        yield server_id
        yield _counter("etcd_server_leader_changes_seen_total", "The number of leader changes seen.",
                       driver.leader_changes)
        # etcd exposes these two as gauges named *_total (the Raft commit and applied index): so do we
        yield _gauge("etcd_server_proposals_committed_total", "The total number of consensus proposals committed.",
                     raft.commit_index)
        yield _gauge("etcd_server_proposals_applied_total", "The total number of consensus proposals applied.",
                     raft.applied_index)
        pending = sum(1 for p in driver.requests.by_id.values() if p.kind is not Kind.READ)
        yield _gauge("etcd_server_proposals_pending", "The current number of pending proposals to commit.", pending)
        yield _counter("etcd_server_proposals_failed_total", "The total number of failed proposals seen.",
                       driver.proposals_failed)
        yield from _version_metrics()
        yield from self._disk(loop)
        yield from self._network(loop)
        yield from self._store(driver, front)
        yield from self._own(loop)

    def _disk(self, loop: Any) -> Iterator[Metric]:
        wal = getattr(loop.storage, "metrics", None)
        if wal is None:
            return
        yield _histogram("etcd_disk_wal_fsync_duration_seconds", "The latency distributions of fsync called by WAL.",
                         values=[([], wal.fsync)])
        yield _gauge("etcd_disk_wal_write_bytes_total", "Total number of bytes written in WAL.", wal.write_bytes)
        yield _histogram("pyetcd_wal_entries_per_fsync",
                         "Raft entries made durable by one WAL fdatasync (the group commit's batch).",
                         values=[([], wal.entries_per_fsync)])

    def _network(self, loop: Any) -> Iterator[Metric]:
        links = sorted(loop.transport.links.items())
        sent = CounterMetricFamily("etcd_network_peer_sent_bytes_total", "The total number of bytes sent to peers.",
                                   labels=["To"])
        failures = CounterMetricFamily("etcd_network_peer_sent_failures_total",
                                       "The total number of send failures from peers.", labels=["To"])
        for pid, link in links:
            sent.add_metric([id_hex(pid)], link.metrics.sent_bytes)
            failures.add_metric([id_hex(pid)], link.stats.fail)
        received = CounterMetricFamily("etcd_network_peer_received_bytes_total",
                                       "The total number of bytes received from peers.", labels=["From"])
        for pid, n in sorted(loop.front.peer_received.items()):
            received.add_metric([id_hex(pid)], n)
        rx_failed = CounterMetricFamily("etcd_network_peer_received_failures_total",
                                        "The total number of receive failures from peers.", labels=["From"])
        for pid, n in sorted(loop.front.peer_receive_failures.items()):
            rx_failed.add_metric([id_hex(pid)], n)
        active = GaugeMetricFamily("etcd_network_active_peers", "The current number of active peer connections.",
                                   labels=["Local", "Remote"])
        local = id_hex(loop.driver.self_id)
        for pid, link in links:
            active.add_metric([local, id_hex(pid)], 1 if link.state in _CONNECTED else 0)
        yield active
        yield sent
        yield received
        yield failures
        yield rx_failed
        yield _histogram("etcd_network_peer_round_trip_time_seconds", "Round-Trip-Time histogram between peers.",
                         ["To"], [([id_hex(pid)], link.metrics.rtt) for pid, link in links])

    def _store(self, driver: Any, front: Any) -> Iterator[Metric]:
        store = driver.store
        st = store.stats
        reads = CounterMetricFamily("etcd_debugging_store_reads_total",
                                    "Total number of reads action by (get/getRecursive), local to this member.",
                                    labels=["action"])
        reads.add_metric(["get"], st.gets_success + st.gets_fail)
        writes = CounterMetricFamily("etcd_debugging_store_writes_total",
                                     "Total number of writes (e.g. set/compareAndDelete) seen by this member.",
                                     labels=["action"])
        for action, field in _WRITE_ACTIONS:
            n = getattr(st, f"{field}_success") + getattr(st, f"{field}_fail")
            if n:  # etcd's labelled counters appear once used
                writes.add_metric([action], n)
        # etcd 3.4 defines reads_failed_total and writes_failed_total but never registers them: not served
        yield reads
        yield writes
        yield _counter("etcd_debugging_store_expires_total", "Total number of expired keys.", st.expire_count)
        yield _counter("etcd_debugging_store_watch_requests_total",
                       "Total number of incoming watch requests (new or reestablished).", front.watch_requests)
        yield _gauge("etcd_debugging_store_watchers", "Count of currently active watchers.", store.hub.count)

    def _own(self, loop: Any) -> Iterator[Metric]:
        m = loop.metrics
        yield _histogram("pyetcd_loop_turn_duration_seconds",
                         "Busy time of one event-loop turn (from select's return to the turn's end).",
                         values=[([], m.turns)])
        yield _histogram("pyetcd_loop_requests_per_turn",
                         "Client requests handed out in one event-loop turn (turns with at least one).",
                         values=[([], m.requests_per_turn)])
        yield from _connection_metrics(loop.connections.conns.values(), len(loop.front.watch_conns))
        yield _counter("pyetcd_server_write_batches_total", "Raft proposals that carried more than one client write.",
                       loop.driver.write_batches)
        driver = loop.driver
        yield _gauge("pyetcd_snapshot_lag_entries",
                     "Applied entries after the last saved snapshot (what a restart replays from the WAL); far past "
                     "--snapshot-count means the snapshot writer is falling behind.",
                     driver.raft.applied_index - driver.snap_index)
        yield _gauge("pyetcd_snapshot_writing", "1 while a snapshot is being written (a forked writer).",
                     int(driver.snapshotting))
        yield _counter("pyetcd_watches_refused_total",
                       "Watches answered 503 \"too many watches\": the share of connections for watches was full.",
                       loop.front.watches_refused)


def _connection_metrics(conns: Iterable[Any], watching: int) -> list[Metric]:
    fam = GaugeMetricFamily("pyetcd_connections", "Open accepted connections, by listener kind.", labels=["kind"])
    peers = clients = 0
    for c in conns:
        if c.is_peer:
            peers += 1
        else:
            clients += 1
    fam.add_metric(["client"], clients)
    fam.add_metric(["peer"], peers)
    return [fam, _gauge("pyetcd_watch_connections", "Client connections holding a watch.", watching)]


class ProxyCollector:
    """Reads a v2 proxy's loop (runtime/proxy_loop.py's ProxyLoop) at scrape time: etcd's etcd_proxy_*."""

    def __init__(self, loop: Any) -> None:
        self.loop = loop

    def collect(self) -> Iterator[Metric]:
        m: ProxyMetrics = self.loop.front.metrics
        requests = CounterMetricFamily("etcd_proxy_requests_total", "Counter requests incoming by method.",
                                       labels=["method"])
        for method, n in sorted(m.requests.items()):
            requests.add_metric([method], n)
        handled = CounterMetricFamily("etcd_proxy_handled_total",
                                      "Counter of requests fully handled (by authoratitave servers)",
                                      labels=["method", "code"])
        for (method, code), n in sorted(m.handled.items()):
            handled.add_metric([method, code], n)
        dropped = CounterMetricFamily("etcd_proxy_dropped_total", "Counter of requests dropped on the proxy.",
                                      labels=["method", "proxying_error"])
        for (method, why), n in sorted(m.dropped.items()):
            dropped.add_metric([method, why], n)
        yield requests
        yield handled
        yield dropped
        yield _histogram("etcd_proxy_handling_duration_seconds",
                         "Bucketed histogram of handling time of successful events (non-watches), by method "
                         "(GET/PUT etc.).", ["method"], sorted(([k], h) for k, h in m.handling.items()))
        yield _gauge("pyetcd_proxy_endpoints", "Members' client URLs the proxy may forward to now.",
                     len(self.loop.director.available(time.monotonic())))
        yield from _connection_metrics(self.loop.connections.conns.values(), 0)[:1]


class MetricsEndpoint:
    """The /metrics answer: one private registry (the collector above, process_*, python_*)."""

    def __init__(self, collector: Any) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(collector)
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)

    def reply(self, method: str) -> Reply:
        """Any method, as etcd's promhttp handler (HEAD: the headers only)."""
        return Reply(200, list(_HEADERS), generate_latest(self.registry), head=method == "HEAD")


def member_metrics(loop: Any) -> MetricsEndpoint:
    return MetricsEndpoint(MemberCollector(loop))


def proxy_metrics(loop: Any) -> MetricsEndpoint:
    return MetricsEndpoint(ProxyCollector(loop))
