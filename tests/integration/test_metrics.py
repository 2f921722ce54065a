"""GET /metrics on a real member: Prometheus' text format with etcd 3.4's names, types, labels and buckets.

The reference is Debian's etcd 3.4 (`--enable-v2=true`) scraped the same way: every etcd_* family pyetcd
serves must have etcd's type, label names and histogram buckets when etcd serves it too (a single etcd has
no peers, so the etcd_network_* families are compared in tests/cluster/test_prometheus.py).
"""

from __future__ import annotations

import re
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.integration._http import RawConn, build_request, request
from tests.support.servers import etcd_available, etcd_server

# The families issue 14 asks for (etcd's names and types), and pyetcd's own.
REQUIRED = {
    "etcd_server_has_leader": "gauge",
    "etcd_server_is_leader": "gauge",
    "etcd_server_leader_changes_seen_total": "counter",
    "etcd_server_proposals_committed_total": "gauge",  # sic: etcd's are gauges named *_total
    "etcd_server_proposals_applied_total": "gauge",
    "etcd_server_proposals_pending": "gauge",
    "etcd_server_proposals_failed_total": "counter",
    "etcd_server_version": "gauge",
    "etcd_server_id": "gauge",
    "etcd_server_is_learner": "gauge",
    "etcd_cluster_version": "gauge",
    "etcd_disk_wal_write_bytes_total": "gauge",
    "etcd_network_active_peers": "gauge",
    "etcd_disk_wal_fsync_duration_seconds": "histogram",
    "etcd_network_peer_round_trip_time_seconds": "histogram",
    "etcd_network_peer_sent_bytes_total": "counter",
    "etcd_network_peer_received_bytes_total": "counter",
    "etcd_network_peer_sent_failures_total": "counter",
    "etcd_debugging_store_reads_total": "counter",
    "etcd_debugging_store_writes_total": "counter",
    "etcd_debugging_store_expires_total": "counter",
    "etcd_debugging_store_watch_requests_total": "counter",
    "etcd_debugging_store_watchers": "gauge",
    "process_cpu_seconds_total": "counter",
    "process_resident_memory_bytes": "gauge",
    "process_open_fds": "gauge",
    "process_max_fds": "gauge",
    "process_start_time_seconds": "gauge",
    "pyetcd_loop_turn_duration_seconds": "histogram",
    "pyetcd_loop_requests_per_turn": "histogram",
    "pyetcd_wal_entries_per_fsync": "histogram",
    "pyetcd_connections": "gauge",
    "pyetcd_watch_connections": "gauge",
    "pyetcd_snapshot_lag_entries": "gauge",
    "pyetcd_snapshot_writing": "gauge",
    "pyetcd_watches_refused_total": "counter",
}
ETCD_FSYNC_LE = ["0.001", "0.002", "0.004", "0.008", "0.016", "0.032", "0.064", "0.128", "0.256", "0.512",
                 "1.024", "2.048", "4.096", "8.192", "+Inf"]
_TYPE_LINE = re.compile(r"^# TYPE (\S+) (\S+)$", re.M)


@dataclass
class Scrape:
    text: str
    types: dict[str, str]  # family name as on its TYPE line -> type
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float] = field(default_factory=dict)

    def value(self, name: str, **labels: str) -> float:
        return self.samples[(name, frozenset(labels.items()))]

    def series(self, name: str) -> dict[frozenset[tuple[str, str]], float]:
        return {labels: v for (n, labels), v in self.samples.items() if n == name}

    def label_names(self, family: str) -> set[frozenset[str]]:
        """The label-name sets of a family's series (a histogram's `le` left out)."""
        names = {family, family + "_bucket", family + "_sum", family + "_count"}
        return {frozenset(k for k, _ in labels if k != "le") for (n, labels) in self.samples if n in names}

    def buckets(self, family: str) -> list[str]:
        les: list[str] = []
        for (n, labels) in self.samples:
            if n == family + "_bucket":
                le = dict(labels)["le"]
                if le not in les:
                    les.append(le)
        return sorted(les, key=float)


def parse(text: str) -> Scrape:
    s = Scrape(text, dict(_TYPE_LINE.findall(text)))
    for fam in text_string_to_metric_families(text):
        for sample in fam.samples:
            s.samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return s


def scrape(port: int, timeout: float = 5.0) -> Scrape:
    r = request(port, "GET", "/metrics", timeout=timeout)
    assert r.status == 200, (r.status, r.body[:300])
    ct = r.header("Content-Type") or ""
    assert ct.startswith("text/plain; version=0.0.4"), ct
    return parse(r.body.decode())


def compare_with_etcd(ours: Scrape, ref: Scrape, prefix: str = "etcd_") -> list[str]:
    """Every family of ours under `prefix` that etcd serves too: the same type, label names and buckets."""
    problems = []
    for name, kind in sorted(ours.types.items()):
        if not name.startswith(prefix) or name not in ref.types:
            continue
        if ref.types[name] != kind:
            problems.append(f"{name}: type {kind}, etcd's {ref.types[name]}")
        theirs, mine = ref.label_names(name), ours.label_names(name)
        if theirs and mine and theirs != mine:
            problems.append(f"{name}: labels {sorted(map(sorted, mine))}, etcd's {sorted(map(sorted, theirs))}")
        if kind == "histogram" and ref.buckets(name) and ours.buckets(name) != ref.buckets(name):
            problems.append(f"{name}: buckets {ours.buckets(name)}, etcd's {ref.buckets(name)}")
    return problems


def _store_writes(s: Scrape, action: str) -> float:
    return s.samples.get(("etcd_debugging_store_writes_total", frozenset({("action", action)})), 0.0)


def test_member_serves_etcd_metrics(server) -> None:  # type: ignore[no-untyped-def]
    before = scrape(server.port)
    for name, kind in REQUIRED.items():
        assert before.types.get(name) == kind, (name, before.types.get(name))
    assert before.value("etcd_server_has_leader") == 1
    assert before.value("etcd_server_is_leader") == 1
    assert before.value("etcd_server_leader_changes_seen_total") >= 1
    assert before.buckets("etcd_disk_wal_fsync_duration_seconds") == ETCD_FSYNC_LE

    for i in range(5):
        assert request(server.port, "PUT", f"/v2/keys/m{i}", form={"value": "v"}).status in (200, 201)
    assert request(server.port, "PUT", "/v2/keys/m0?prevValue=nope", form={"value": "w"}).status == 412
    assert request(server.port, "GET", "/v2/keys/m0").status == 200
    assert request(server.port, "GET", "/v2/keys/absent").status == 404
    with RawConn(server.port) as watch:
        watch.send(build_request("GET", "/v2/keys/w?wait=true"))
        watch.read_head()
        during = scrape(server.port)
    after = scrape(server.port)

    assert _store_writes(after, "set") - _store_writes(before, "set") == 5
    assert _store_writes(after, "compareAndSwap") - _store_writes(before, "compareAndSwap") == 1
    assert after.value("etcd_debugging_store_reads_total", action="get") - \
        before.value("etcd_debugging_store_reads_total", action="get") == 2
    assert during.value("etcd_debugging_store_watchers") == 1
    assert during.value("pyetcd_watch_connections") == 1
    assert during.value("etcd_debugging_store_watch_requests_total") == \
        before.value("etcd_debugging_store_watch_requests_total") + 1
    assert during.value("pyetcd_connections", kind="client") >= 2  # the watch and the scrape
    assert after.value("etcd_debugging_store_watchers") == 0

    committed = after.value("etcd_server_proposals_committed_total")
    assert committed >= before.value("etcd_server_proposals_committed_total") + 6
    assert after.value("etcd_server_proposals_applied_total") == committed
    assert after.value("etcd_server_proposals_pending") == 0
    assert after.value("etcd_server_proposals_failed_total") == 0
    # No snapshot yet (--snapshot-count 10000): every entry applied since is behind the last snapshot.
    assert after.value("pyetcd_snapshot_lag_entries") - before.value("pyetcd_snapshot_lag_entries") == \
        committed - before.value("etcd_server_proposals_committed_total")
    assert after.value("pyetcd_snapshot_writing") == 0
    assert after.value("pyetcd_watches_refused_total") == 0
    fsyncs = after.value("etcd_disk_wal_fsync_duration_seconds_count")
    assert fsyncs >= before.value("etcd_disk_wal_fsync_duration_seconds_count") + 6
    assert after.value("etcd_disk_wal_fsync_duration_seconds_bucket", le="+Inf") == fsyncs
    assert after.value("pyetcd_wal_entries_per_fsync_sum") >= committed - 1  # every entry but none twice
    assert after.value("pyetcd_loop_requests_per_turn_sum") >= 9
    assert after.value("pyetcd_loop_turn_duration_seconds_count") > 0
    assert after.value("process_resident_memory_bytes") > 1e6
    assert after.value("etcd_server_version", server_version="3.4.23") == 1


def test_metrics_request_forms(server) -> None:  # type: ignore[no-untyped-def]
    assert request(server.port, "GET", "/metrics?format=text").status == 200
    head = RawConn(server.port)
    with head:
        head.send(build_request("HEAD", "/metrics"))
        r = head.read_response(head_request=True)
    assert r.status == 200 and not r.body
    # Keep-alive: scrapes on one connection, as Prometheus does
    with RawConn(server.port) as c:
        for _ in range(3):
            assert c.call("GET", "/metrics").status == 200


@pytest.mark.skipif(not etcd_available(), reason="etcd 3.4 (Debian's etcd-server) is not installed")
def test_names_types_and_buckets_match_etcd(server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ref = etcd_server(tmp_path, "ref").start()
    try:
        for port in (server.port, ref.port):
            assert request(port, "PUT", "/v2/keys/a", form={"value": "1"}).status in (200, 201)
            assert request(port, "PUT", "/v2/keys/a?prevValue=x", form={"value": "2"}).status == 412
            assert request(port, "GET", "/v2/keys/a").status == 200
            assert request(port, "GET", "/v2/keys/missing").status == 404
        theirs, ours = scrape(ref.port), scrape(server.port)
    finally:
        ref.stop()
    assert compare_with_etcd(ours, theirs) == []
    for name in REQUIRED:
        if name.startswith(("etcd_server_", "etcd_disk_", "etcd_debugging_store_", "process_")):
            assert name in theirs.types, f"{name} is not etcd 3.4's"
    # the same counts for the same requests (etcd's also count its own internal reads and sets: the member
    # attributes it publishes, the cluster version; not compared)
    for name, labels in [("etcd_debugging_store_writes_total", {"action": "compareAndSwap"}),
                         ("etcd_debugging_store_watchers", {})]:
        assert ours.value(name, **labels) == theirs.value(name, **labels), name
    assert ours.value("etcd_server_is_leader") == theirs.value("etcd_server_is_leader") == 1


def test_scrape_is_cheap(server) -> None:  # type: ignore[no-untyped-def]
    """A scrape is answered by the loop itself: it must stay around a millisecond of its time."""
    with RawConn(server.port) as c:
        took = []
        for _ in range(40):
            t = time.perf_counter()
            assert c.call("GET", "/metrics").status == 200
            took.append(time.perf_counter() - t)
    median = statistics.median(took)
    print(f"scrape round trip: median {median * 1000:.2f} ms, max {max(took) * 1000:.2f} ms")
    assert median < 0.025, took  # loose: a loaded CI machine; measured ~1-2 ms on a quiet one
