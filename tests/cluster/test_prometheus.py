"""Debian's real Prometheus server scraping a 3-member pyetcd cluster (and proxies), queried with PromQL.

Prometheus (bookworm's 2.42) is installed with apt-get when missing; the test is skipped, saying why, only
when that fails. It scrapes the members every second from a temporary config; the checks are PromQL over
its HTTP API, as a dashboard or an alert rule would ask: every target up, exactly one member with
etcd_server_is_leader 1 (the one the cluster agrees on, and a new one after the leader is killed), etcd's
histograms usable with histogram_quantile, etcd's alert expressions evaluating.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.cluster.conftest import MakeCluster, StartProxy, put_retry
from tests.integration._http import request
from tests.integration.test_metrics import compare_with_etcd, scrape
from tests.support.kit import Child, wait_for
from tests.support.servers import etcd_available, free_port

APT_ENV = {"DEBIAN_FRONTEND": "noninteractive", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}


def _prometheus_binary() -> str:
    """The prometheus binary, installed from Debian if missing; skip (with the reason) if that fails."""
    found = shutil.which("prometheus")
    if found:
        return found
    if shutil.which("apt-get") is None:
        pytest.skip("prometheus is not installed and there is no apt-get to install it")
    why = ""
    for cmd in (["apt-get", "install", "-y", "-qq", "--no-install-recommends", "prometheus"],
                ["apt-get", "update", "-qq"],
                ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "prometheus"]):
        try:
            r = subprocess.run(cmd, env=APT_ENV, capture_output=True, text=True, timeout=600)
        except (OSError, subprocess.TimeoutExpired) as e:
            pytest.skip(f"cannot install Debian's prometheus ({' '.join(cmd)}): {e}")
        why = (r.stderr or r.stdout).strip()[-500:]
        if cmd[1] == "install" and r.returncode == 0:
            break
    found = shutil.which("prometheus") or ("/usr/bin/prometheus" if Path("/usr/bin/prometheus").exists() else None)
    if not found:
        pytest.skip(f"cannot install Debian's prometheus with apt-get: {why}")
    # the package starts its own service where systemd runs: that one scrapes localhost:9090 only; ours
    # uses its own port and data directory, so both may run
    return found


class Prometheus:
    def __init__(self, binary: str, base: Path, targets: dict[str, list[str]]) -> None:
        self.port = free_port()
        base.mkdir(parents=True, exist_ok=True)
        jobs = "".join(
            f"  - job_name: {job}\n    scrape_interval: 1s\n    scrape_timeout: 1s\n"
            f"    static_configs:\n      - targets: [{', '.join(repr(t) for t in addrs)}]\n"
            for job, addrs in targets.items())
        config = base / "prometheus.yml"
        config.write_text(f"global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n{jobs}")
        self.proc = Child(base / "prometheus.log")
        self.proc.launch([binary, f"--config.file={config}", f"--storage.tsdb.path={base / 'data'}",
                          f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"],
                         banner="==== prometheus\n")
        assert wait_for(self.ready, 30.0, 0.2), f"prometheus not ready:\n{self.proc.log_tail()}"

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/-/ready", timeout=2) as r:
                return bool(r.status == 200)
        except OSError:
            return False

    def query(self, promql: str) -> list[dict[str, Any]]:
        url = f"http://127.0.0.1:{self.port}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
        with urllib.request.urlopen(url, timeout=5) as r:
            body = json.loads(r.read())
        assert body["status"] == "success", body
        return list(body["data"]["result"])

    def scalar(self, promql: str) -> float | None:
        """The value of a one-element vector (None when empty)."""
        result = self.query(promql)
        assert len(result) <= 1, result
        return float(result[0]["value"][1]) if result else None

    def wait_value(self, promql: str, want: float, timeout_s: float = 30.0) -> None:
        seen: list[float | None] = []

        def check() -> bool:
            seen.append(self.scalar(promql))
            return seen[-1] == want

        assert wait_for(check, timeout_s, 0.5), f"{promql}: {seen[-5:]} (wanted {want})\n{self.proc.log_tail()}"

    def stop(self) -> None:
        self.proc.stop()


@pytest.fixture
def prometheus_binary() -> str:
    return _prometheus_binary()


def test_prometheus_sees_exactly_one_leader(make_cluster: MakeCluster, start_proxy: StartProxy,
                                             prometheus_binary: str, tmp_path: Path) -> None:
    c = make_cluster(3)
    proxy = start_proxy(c)
    addrs = {m.name: f"127.0.0.1:{m.client_port}" for m in c.members}
    prom = Prometheus(prometheus_binary, tmp_path / "prom",
                      {"etcd": list(addrs.values()), "etcd-proxy": [f"127.0.0.1:{proxy.port}"]})
    try:
        prom.wait_value('count(up{job="etcd"} == 1)', 3)
        prom.wait_value('up{job="etcd-proxy"}', 1)
        for i in range(20):  # while scraped: the rates below see them
            put_retry(c, f"/prom/k{i}", "v")
            assert request(proxy.port, "GET", f"/v2/keys/prom/k{i}?quorum=true").status == 200
        prom.wait_value('sum(etcd_server_is_leader{job="etcd"})', 1)
        assert prom.scalar('count(etcd_server_is_leader{job="etcd"} == 1)') == 1
        assert prom.scalar('min(etcd_server_has_leader{job="etcd"})') == 1
        leader = c.wait_leader()
        lead = prom.query('etcd_server_is_leader{job="etcd"} == 1')
        assert [r["metric"]["instance"] for r in lead] == [addrs[leader.name]]

        # etcd's histograms work as etcd's dashboards use them
        prom.wait_value('count(histogram_quantile(0.99, sum by (instance, le) '
                        '(rate(etcd_disk_wal_fsync_duration_seconds_bucket{job="etcd"}[30s]))) >= 0)', 3)
        # every member has a link to each other one (6 series); traffic flows leader <-> followers only (4)
        assert prom.scalar('count(etcd_network_peer_sent_bytes_total{job="etcd"})') == 6
        prom.wait_value('count(histogram_quantile(0.99, sum by (instance, To, le) '
                        '(rate(etcd_network_peer_round_trip_time_seconds_bucket{job="etcd"}[30s]))) >= 0)', 4)
        assert prom.scalar('count(rate(etcd_network_peer_sent_bytes_total{job="etcd"}[30s]) > 0)') == 4
        assert prom.scalar('count(rate(etcd_network_peer_received_bytes_total{job="etcd"}[30s]) > 0)') == 4
        assert prom.scalar('sum(etcd_server_proposals_committed_total{job="etcd"}) > 60') is not None
        # etcd's own alerts (etcd-mixin): no leader, many failed proposals: none firing, both evaluating
        assert prom.query('etcd_server_has_leader{job="etcd"} == 0') == []
        assert prom.query('rate(etcd_server_proposals_failed_total{job="etcd"}[15m]) > 5') == []
        assert prom.query('increase((max without (instance) (etcd_server_leader_changes_seen_total'
                          '{job="etcd"}))[15m:1m]) >= 4') == []
        # the proxy's own figures, under etcd's proxy names
        assert wait_for(lambda: prom.scalar('sum(etcd_proxy_handled_total{job="etcd-proxy", method="GET", '
                                            'code="200"}) >= 20') is not None, 30.0, 0.5)  # the next scrape

        # kill the leader: Prometheus sees it down and exactly one new leader among the other two
        leader.kill9()
        prom.wait_value(f'up{{instance="{addrs[leader.name]}"}}', 0)
        prom.wait_value('sum(etcd_server_is_leader{job="etcd"})', 1)
        new = prom.query('etcd_server_is_leader{job="etcd"} == 1')
        assert len(new) == 1 and new[0]["metric"]["instance"] != addrs[leader.name], new
        survivors = [m for m in c.members if m is not leader]
        assert wait_for(lambda: c.agreed_leader(survivors) is not None, 15.0)
        agreed = c.agreed_leader(survivors)
        assert agreed is not None and new[0]["metric"]["instance"] == addrs[agreed.name]
        assert wait_for(lambda: (prom.scalar('max(etcd_server_leader_changes_seen_total{job="etcd"})') or 0) >= 2,
                        15.0, 0.5)
    finally:
        prom.stop()


def test_proxy_metrics_match_etcds_proxy(make_cluster: MakeCluster, start_proxy: StartProxy) -> None:
    """pyetcd's proxy serves etcd 3.4's etcd_proxy_* families (same types, labels, buckets) and counts the
    same requests the same way."""
    c = make_cluster(3)
    ours = start_proxy(c)
    theirs = start_proxy(c, binary="etcd") if etcd_available() else None
    proxies = [p for p in (ours, theirs) if p is not None]
    before = {p.port: scrape(p.port) for p in proxies}
    for p in proxies:
        for i in range(3):
            assert request(p.port, "PUT", f"/v2/keys/px{p.port}-{i}", form={"value": "v"}).status in (200, 201)
            assert request(p.port, "GET", f"/v2/keys/px{p.port}-{i}").status == 200
        assert request(p.port, "GET", "/v2/keys/px-missing").status == 404
    after = {p.port: scrape(p.port) for p in proxies}

    def delta(port: int, name: str, **labels: str) -> float:
        key = (name, frozenset(labels.items()))
        return after[port].samples.get(key, 0.0) - before[port].samples.get(key, 0.0)

    counted = [("etcd_proxy_requests_total", {"method": "GET"}, 4),
               ("etcd_proxy_requests_total", {"method": "PUT"}, 3),
               ("etcd_proxy_handled_total", {"method": "GET", "code": "200"}, 3),
               ("etcd_proxy_handled_total", {"method": "GET", "code": "404"}, 1),
               ("etcd_proxy_handled_total", {"method": "PUT", "code": "201"}, 3),
               ("etcd_proxy_handling_duration_seconds_count", {"method": "PUT"}, 3)]
    for name, labels, want in counted:
        assert delta(ours.port, name, **labels) == want, (name, labels)
    mine = after[ours.port]
    assert mine.value("process_open_fds") > 0
    if theirs is None:
        pytest.skip("etcd 3.4 is not installed: pyetcd's proxy checked alone")
    ref = after[theirs.port]
    assert compare_with_etcd(mine, ref, prefix="etcd_proxy_") == []
    for name in ("etcd_proxy_requests_total", "etcd_proxy_handled_total", "etcd_proxy_handling_duration_seconds"):
        assert name in ref.types, f"{name} is not served by etcd's proxy"
    for name, labels, want in counted:  # etcd's proxy counts the same requests the same way
        assert delta(theirs.port, name, **labels) == want, (name, labels)
